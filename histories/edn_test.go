package histories

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// TestEDNJepsenKafkaGolden converts a history shaped like a real Jepsen
// Kafka one to JSONL and compares with the reviewed conversion.
func TestEDNJepsenKafkaGolden(t *testing.T) {
	ops, warnings, err := ReadEDNFile("testdata/jepsen_kafka.edn")
	if err != nil || len(warnings) != 0 {
		t.Fatal(warnings, err)
	}
	var got bytes.Buffer
	if err := WriteAll(&got, ops); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/jepsen_kafka.jsonl"
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Fatalf("conversion differs from %s (run with -update after checking):\n%s", golden, got.String())
	}
	// The history pairs up: every client op completes, nemesis ops pair
	// with their completions.
	p, err := Pair(ops)
	if err != nil {
		t.Fatal(err)
	}
	if p.Completion[11] != 12 || p.Invocation[12] != 11 {
		t.Fatalf("nemesis start-partition not paired: %v", p.Completion)
	}
}

func TestEDNVectorForm(t *testing.T) {
	ops, _, err := ReadEDNFile("testdata/jepsen_vector.edn")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"index":0,"time":100,"process":0,"type":"invoke","f":"send","value":[["send","11",641]]}`,
		`{"index":1,"time":150,"process":1,"type":"invoke","f":"poll","value":[["poll"]]}`,
		`{"index":2,"time":280169754615,"process":0,"type":"ok","f":"send","value":[["send","11",[537,641]]]}`,
		`{"index":3,"time":280169754620,"process":1,"type":"ok","f":"poll","value":[["poll",{"11":[[537,641]]}]]}`,
		`{"index":4,"time":280169754700,"process":-1,"type":"info","f":"pause","value":{"n2":["paused"],"at":"2024-08-20T08:26:34.633-00:00","why":"gc"}}`,
	}
	if len(ops) != len(want) {
		t.Fatalf("read %d ops, want %d", len(ops), len(want))
	}
	for i := range want {
		if got := ops[i].String(); got != want[i] {
			t.Errorf("op %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
}

func TestEDNValues(t *testing.T) {
	tests := []struct {
		name, edn, want string
	}{
		{"send invoked", `{:type :invoke, :f :send, :value [[:send 3 1042]], :time 1, :process 0}`,
			`{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":[["send","3",1042]]}`},
		{"send completed, big int suffix", `{:type :ok, :f :send, :value [[:send 3N [88 1042]]], :time 1, :process 0}`,
			`{"index":0,"time":1,"process":0,"type":"ok","f":"send","value":[["send","3",[88,1042]]]}`},
		{"send without offset", `{:type :ok, :f :send, :value [[:send 3 [nil 1042]]], :time 1, :process 0}`,
			`{"index":0,"time":1,"process":0,"type":"ok","f":"send","value":[["send","3",[null,1042]]]}`},
		{"string and keyword keys", `{:type :ok, :f :txn, :value [[:send "a b" [1 2]] [:poll {:x [[0 1]], "y" []}]], :time 1, :process 0}`,
			`{"index":0,"time":1,"process":0,"type":"ok","f":"txn","value":[["send","a b",[1,2]],["poll",{"x":[[0,1]],"y":[]}]]}`},
		{"assign from a set", `{:type :ok, :f :assign, :value #{5}, :time 1, :process 0}`,
			`{"index":0,"time":1,"process":0,"type":"ok","f":"assign","value":["5"]}`},
		{"nemesis keyword", `{:type :info, :f :start-partition, :value :majority, :time 1, :process :nemesis}`,
			`{"index":0,"time":1,"process":-1,"type":"info","f":"start-partition","value":"majority"}`},
		{"nemesis odd values", `{:type :info, :f :x, :value [1.5 2.5M 1/2 0x1F ##Inf \a \newline sym true nil "s" {nil 1, [1 2] 3, 4 5, :ns/k 6}], :time 1, :process :nemesis}`,
			`{"index":0,"time":1,"process":-1,"type":"info","f":"x","value":[1.5,2.5,"1/2","0x1F","##Inf","a","\n","sym",true,null,"s",{"nil":1,"[1 2]":3,"4":5,"ns/k":6}]}`},
		{"error as EDN", `{:type :fail, :f :poll, :value [[:poll]], :time 1, :process 0, :error [:timeout "no reply" {:ms 500}]}`,
			`{"index":0,"time":1,"process":0,"type":"fail","f":"poll","value":[["poll"]],"error":"[:timeout \"no reply\" {:ms 500}]"}`},
		{"node as keyword", `{:type :ok, :f :poll, :value [[:poll {}]], :time 1, :process 0, :node :n1, :error "x"}`,
			`{"index":0,"time":1,"process":0,"type":"ok","f":"poll","value":[["poll",{}]],"node":":n1","error":"x"}`},
		{"unknown keys, comments, commas and metadata", "{:type :ok ;; comment\n, :f :poll, :poll-ms 5, \"s\" 1, :value ^:meta [[:poll]], :time 1, :process 0}",
			`{"index":0,"time":1,"process":0,"type":"ok","f":"poll","value":[["poll"]]}`},
		{"string escapes", `{:type :ok, :f "my f", :value "tab\there \"q\" \u00e9 \101", :time 1, :process 0}`,
			`{"index":0,"time":1,"process":0,"type":"ok","f":"my f","value":"tab\there \"q\" é A"}`},
		{"empty send list", `{:type :invoke, :f :send, :value [], :time 1, :process 0}`,
			`{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":[]}`},
		{"malformed mops under a nemesis f", `{:type :info, :f :kill, :value [[:send 1]], :time 1, :process :nemesis}`,
			`{"index":0,"time":1,"process":-1,"type":"info","f":"kill","value":[["send",1]]}`},
		{"commit to a group", `{:type :invoke, :f :commit, :group "jepsen-group", :value {3 89, "x" 0}, :time 1, :process 0}`,
			`{"index":0,"time":1,"process":0,"type":"invoke","f":"commit","group":"jepsen-group","value":{"3":89,"x":0}}`},
		{"committed keys and result", `{:type :ok, :f :committed, :group :g, :value {3 89, 4 nil}, :time 1, :process 0}`,
			`{"index":0,"time":1,"process":0,"type":"ok","f":"committed","group":"g","value":{"3":89,"4":null}}`},
		{"Jepsen's rebalance log", `{:type :ok, :f :txn, :value [[:poll {}]], :time 1, :process 0, :rebalance-log [{:type :revoked, :keys [55 4]} {:type :assigned, :keys [53], :partitions []}]}`,
			`{"index":0,"time":1,"process":0,"type":"ok","f":"txn","value":[["poll",{}]],"rebalance-log":[{"type":"revoked","keys":["55","4"]},{"type":"assigned","keys":["53"]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, _, err := ReadEDN(strings.NewReader(tt.edn), "h.edn")
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) != 1 {
				t.Fatalf("read %d ops", len(ops))
			}
			if got := ops[0].String(); got != tt.want {
				t.Fatalf("\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEDNErrors(t *testing.T) {
	const ok = `{:type :ok, :f :poll, :value [[:poll]], :time 1, :process 0}`
	tests := []struct {
		name, edn, want string
	}{
		{"bad type", ok + "\n" + `{:type :okk, :f :send, :time 1, :process 0}` + "\n", `h.edn:2: key :type: want :invoke, :ok, :fail or :info, got :okk`},
		{"missing time", `{:type :ok, :f :send, :process 0}`, `h.edn:1: key :time is missing`},
		{"process not an int", `{:type :ok, :f :send, :time 1, :process "p"}`, `h.edn:1: key :process: want an integer or :nemesis, got "p"`},
		{"float time", `{:type :ok, :f :send, :time 1.5, :process 0}`, `h.edn:1: key :time: want an integer, got 1.5`},
		{"huge index", `{:type :ok, :f :send, :time 1, :process 0, :index 99999999999999999999}`, `h.edn:1: key :index: integer 99999999999999999999 does not fit in 64 bits`},
		{"index goes back", ok[:len(ok)-1] + " :index 5}\n" + ok[:len(ok)-1] + " :index 5}", `h.edn:2: key :index: want more than the previous op's index 5, got 5`},
		{"duplicate key", `{:type :ok, :type :ok, :f :send, :time 1, :process 0}`, `h.edn:1: key :type appears twice`},
		{"bad send", `{:type :ok, :f :send, :value [[:send 1 [2 3 4]]], :time 1, :process 0}`, `h.edn:1: key :value [[:send 1 [2 3 4]]]: micro-op 0: want ']' after [offset, value], got ",4]]]"`},
		{"send value not mops", `{:type :ok, :f :send, :value :x, :time 1, :process 0}`, `h.edn:1: key :value :x: a send's value must be a list of micro-operations or null, got "\"x\""`},
		{"negative offset", `{:type :ok, :f :send, :value [[:send 1 [-1 3]]], :time 1, :process 0}`, `h.edn:1: key :value [[:send 1 [-1 3]]]: micro-op 0: send offset: want null or a non-negative integer, got -1`},
		{"duplicate poll key", `{:type :ok, :f :poll, :value [[:poll {1 [] "1" []}]], :time 1, :process 0}`, `h.edn:1: key :value [[:poll {1 [], "1" []}]]: map has two keys that both become "1" in JSON`},
		{"nemesis map keys collide", `{:type :info, :f :kill, :value {:a 1 "a" 2}, :time 1, :process :nemesis}`, `map has two keys that both become "a" in JSON`},
		{"not a map", "\n\n[1 2]", `h.edn:3: want an op map like {:type :invoke, :f :send, ...}, got 1`},
		{"odd map", `{:type :ok :f}`, `h.edn:1: map has an odd number of forms`},
		{"unbalanced", `{:type :ok]`, `h.edn:1: unexpected ']'`},
		{"unterminated vector mid-file", "[{:type :ok, :f :send, :time 1, :process 0}\n", `h.edn:2: unexpected end of input inside the history's sequence of ops`},
		{"unterminated string", "{:type :ok, :error \"abc\n\n", `h.edn:3: unexpected end of input inside a string`},
		{"bad number", `{:type :ok, :f :send, :time 12abc, :process 0}`, `h.edn:1: invalid number "12abc"`},
		{"bad char", `{:type :ok, :f :send, :time 1, :process 0, :x \foo}`, `h.edn:1: invalid character literal "\\foo"`},
		{"quote is not EDN", `{:type :ok, :f '(1)}`, `h.edn:1: '\'' is Clojure reader syntax, not EDN`},
		{"deep nesting", `{:type :ok, :value ` + strings.Repeat("[", 2000), `forms nest deeper than 1000 levels`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadEDN(strings.NewReader(tt.edn), "h.edn")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestEDNTruncatedLastLine(t *testing.T) {
	full, err := os.ReadFile("testdata/jepsen_kafka.edn")
	if err != nil {
		t.Fatal(err)
	}
	in := string(full) + `{:type :invoke, :f :send, :value [[:send 3 8`
	ops, warnings, err := ReadEDN(strings.NewReader(in), "h.edn")
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 36 || len(warnings) != 1 || !strings.HasPrefix(warnings[0], "h.edn:37: skipped the last line") {
		t.Fatalf("%d ops, warnings %q", len(ops), warnings)
	}
	// With a newline after it, the same cut is an error.
	if _, _, err := ReadEDN(strings.NewReader(in+"\n"), "h.edn"); err == nil {
		t.Fatal("a cut line followed by a newline read without error")
	}
}

func TestWriteEDNFormat(t *testing.T) {
	ops, _, err := ReadFile("testdata/basic.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteEDN(&buf, ops); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	want := map[int]string{
		0:  `{:index 0, :time 1200, :type :invoke, :process 0, :f :send, :value [[:send 3 1042]]}`,
		2:  `{:index 2, :time 5100, :type :ok, :process 0, :f :send, :value [[:send 3 [88 1042]]], :node "n1"}`,
		3:  `{:index 3, :time 7000, :type :ok, :process 1, :f :poll, :value [[:poll {3 [[88 1042]]}]], :node "n2"}`,
		4:  `{:index 4, :time 9000, :type :info, :process :nemesis, :f :start-partition, :value "majority"}`,
		6:  `{:index 6, :time 9700, :type :ok, :process 2, :f :assign, :value [3 5]}`,
		8:  `{:index 8, :time 10400, :type :info, :process :nemesis, :f :start-partition, :value {:n1 ["n2" "n3"], :n2 ["n1"], :n3 ["n1"]}}`,
		11: `{:index 11, :time 30200, :type :ok, :process 10, :f :send, :value [[:send 5 [nil 1045]]], :node "n3"}`,
		14: `{:index 14, :time 40000, :type :info, :process :nemesis, :f :stop-partition, :value nil}`,
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], w)
		}
	}
	commit := Op{Type: OK, F: FCommitted, Group: "g", Value: Value{Offsets: []KeyOffset{{"3", 89}, {"x", OffsetUnknown}}},
		RebalanceLog: []Rebalance{{Type: RebalanceLost, Keys: []string{"3"}}, {Keys: []string{}}}}
	b, _ := AppendEDN(nil, &commit)
	if want := `{:index 0, :time 0, :type :ok, :process 0, :f :committed, :group "g", :value {3 89, "x" nil}, :rebalance-log [{:type :lost, :keys [3]} {:keys []}]}`; string(b) != want {
		t.Errorf("\n got %s\nwant %s", b, want)
	}
	// Keys that are not canonical numbers stay strings.
	op := Op{Type: OK, F: FAssign, Value: Value{Keys: []string{"007", "-1", "x", "10"}}}
	b, _ = AppendEDN(nil, &op)
	if want := `{:index 0, :time 0, :type :ok, :process 0, :f :assign, :value ["007" "-1" "x" 10]}`; string(b) != want {
		t.Errorf("\n got %s\nwant %s", b, want)
	}
}

// TestJSONLToEDNToJSONLIsLossless checks the promise to Jepsen users: our
// history survives the trip through Jepsen's format.
func TestJSONLToEDNToJSONLIsLossless(t *testing.T) {
	const seed = 3
	basic, _, err := ReadFile("testdata/basic.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for name, ops := range map[string][]Op{"basic": basic, "generated": genHistory(seed, 4000)} {
		var edn bytes.Buffer
		if err := WriteEDN(&edn, ops); err != nil {
			t.Fatalf("%s (seed %d): %v", name, seed, err)
		}
		back, warnings, err := ReadEDN(&edn, name+".edn")
		if err != nil || len(warnings) > 0 {
			t.Fatalf("%s (seed %d): %v %v", name, seed, warnings, err)
		}
		if len(back) != len(ops) {
			t.Fatalf("%s (seed %d): %d ops came back of %d", name, seed, len(back), len(ops))
		}
		for i := range ops {
			if !opsEqual(back[i], ops[i]) {
				t.Fatalf("%s (seed %d): op %d\n got %v\nwant %v", name, seed, i, back[i], ops[i])
			}
		}
	}
}

func TestEDNPrinterReadsBack(t *testing.T) {
	src := `[nil true 1 -2 1.5 "s\"\n" \a \newline :k :ns/k sym (1 2) [3] {:a 1, "b" [2]} #{1} #inst "2024"]`
	p := &ednParser{src: []byte(src), line: 1}
	n, err := p.read(0)
	if err != nil {
		t.Fatal(err)
	}
	printed := appendEDNNode(nil, &n)
	p2 := &ednParser{src: printed, line: 1}
	n2, err := p2.read(0)
	if err != nil {
		t.Fatalf("reading back %s: %v", printed, err)
	}
	if !reflect.DeepEqual(n, n2) {
		t.Fatalf("printed %s reads back differently", printed)
	}
}

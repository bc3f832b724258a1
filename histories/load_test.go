package histories

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// loadBoth loads text, written to a file named name, with Load and with
// LoadHistory; the two must agree on whether it is well formed and on
// their error.
func loadBoth(t *testing.T, name, text string, opts LoadOptions) (*History, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := LoadHistory(path, opts)
	if !opts.Fragment {
		ops, _, lerr := Load(path)
		if (err == nil) != (lerr == nil) || (err != nil && err.Error() != lerr.Error()) {
			t.Fatalf("LoadHistory and Load disagree: %v / %v", err, lerr)
		}
		if err == nil && len(ops) != len(h.Events) {
			t.Fatalf("Load read %d ops, LoadHistory %d", len(ops), len(h.Events))
		}
	}
	return h, err
}

const (
	invokeP0 = `{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":[["send","k",1]]}`
	okP0     = `{"index":1,"time":2,"process":0,"type":"ok","f":"send","value":[["send","k",[0,1]]]}`
	drainInv = `{"index":10,"time":10,"process":-1,"type":"invoke","f":"drain","value":null}`
	drainOK  = `{"index":11,"time":11,"process":-1,"type":"ok","f":"drain","value":null}`
	drainCut = `{"index":11,"time":11,"process":-1,"type":"info","f":"drain","value":null,"error":"interrupted"}`
)

// The loaders stop at the first op that breaks a pairing rule and name its
// line (blank lines count) and the rule.
func TestLoadPairingErrors(t *testing.T) {
	cases := []struct {
		name, text, want string
		is               error
	}{
		{"orphan completion after a blank line", "\n" + okP0 + "\n", `:2: ok send completes nothing: process 0 has no operation open`, ErrOrphanCompletion},
		{"double invoke", invokeP0 + "\n" + strings.Replace(invokeP0, `"index":0`, `"index":1`, 1) + "\n",
			`:2: process 0 invokes send while its send invoked at index 0 has not completed`, ErrDoubleInvoke},
		{"f differs", invokeP0 + "\n" + `{"index":1,"time":2,"process":0,"type":"info","f":"poll"}` + "\n",
			`:2: info poll completes the send process 0 invoked at index 0`, ErrCompletionF},
		{"key differs", invokeP0 + "\n" + `{"index":1,"time":2,"process":0,"type":"ok","f":"send","value":[["send","j",[0,1]]]}` + "\n",
			`micro-op 0 completes as a send to key "j", invoked to key "k"`, ErrCompletionMops},
		{"mop f differs", invokeP0 + "\n" + `{"index":1,"time":2,"process":0,"type":"ok","f":"send","value":[["poll",{}]]}` + "\n",
			`micro-op 0 completes as poll, invoked as send`, ErrCompletionMops},
		{"drain completed without its invocation", drainOK + "\n", `:1: the final drain completes, but no drain was invoked before it`, ErrDrainMarker},
		{"commit completes other offsets", `{"index":0,"time":1,"process":0,"type":"invoke","f":"commit","value":{"3":89}}` + "\n" +
			`{"index":1,"time":2,"process":0,"type":"ok","f":"commit","value":{"3":90}}` + "\n",
			`:2: ok commit does not report on the offsets process 0 invoked at index 0: key "3" completes with offset 90, invoked with 89`, ErrCompletionOffsets},
		{"committed answers another key", `{"index":0,"time":1,"process":0,"type":"invoke","f":"committed","value":["3","4"]}` + "\n" +
			`{"index":1,"time":2,"process":0,"type":"ok","f":"committed","value":{"3":89,"5":null}}` + "\n",
			`key "4" was invoked and is missing from the completion`, ErrCompletionOffsets},
		{"committed answers fewer keys", `{"index":0,"time":1,"process":0,"type":"invoke","f":"committed","value":["3","4"]}` + "\n" +
			`{"index":1,"time":2,"process":0,"type":"ok","f":"committed","value":{"3":89}}` + "\n",
			`1 key(s) completed, 2 invoked`, ErrCompletionOffsets},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadBoth(t, "h.jsonl", c.text, LoadOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.is) {
				t.Fatalf("error %v, want one containing %q that is %v", err, c.want, c.is)
			}
		})
	}
	edn := "{:index 0, :type :invoke, :f :send, :value [[:send 1 2]], :time 1, :process 0}\n\n{:index 1, :type :invoke,\n :f :poll, :time 2, :process 0}\n"
	_, err := loadBoth(t, "h.edn", edn, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "h.edn:3: process 0 invokes poll") {
		t.Fatalf("EDN error %v, want one naming line 3", err)
	}
}

// Completions that report less than their invocation are fine: null (info
// and fail often carry nothing) and, for an ok send, the invocation form.
func TestLoadCompletionsThatReportLess(t *testing.T) {
	text := invokeP0 + "\n" +
		`{"index":1,"time":2,"process":0,"type":"info","f":"send","value":null}` + "\n" +
		`{"index":2,"time":3,"process":1,"type":"invoke","f":"send","value":[["send","k",2]]}` + "\n" +
		`{"index":3,"time":4,"process":1,"type":"ok","f":"send","value":[["send","k",2]]}` + "\n"
	if _, err := loadBoth(t, "h.jsonl", text, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadNoOps(t *testing.T) {
	for _, text := range []string{"", "\n\n", `{"index":0,"ti`} {
		_, err := loadBoth(t, "h.jsonl", text, LoadOptions{})
		if !errors.Is(err, ErrNoOps) {
			t.Errorf("%q: error %v, want ErrNoOps", text, err)
		}
	}
	if _, err := loadBoth(t, "h.edn", "", LoadOptions{}); !errors.Is(err, ErrNoOps) {
		t.Errorf("empty EDN: error %v, want ErrNoOps", err)
	}
}

// A fragment's first event of a process may complete an op invoked before
// it; a second orphan of the same process is still an error.
func TestLoadFragment(t *testing.T) {
	h, err := loadBoth(t, "h.jsonl", okP0+"\n", LoadOptions{Fragment: true})
	if err != nil {
		t.Fatal(err)
	}
	if !h.Fragment || h.Events[0].Partner != -1 {
		t.Fatalf("fragment %v, partner %d", h.Fragment, h.Events[0].Partner)
	}
	two := okP0 + "\n" + strings.Replace(okP0, `"index":1,"time":2`, `"index":2,"time":3`, 1) + "\n"
	if _, err := loadBoth(t, "h.jsonl", two, LoadOptions{Fragment: true}); !errors.Is(err, ErrOrphanCompletion) {
		t.Fatalf("second orphan of one process: %v", err)
	}
}

func TestDrainStates(t *testing.T) {
	cases := []struct {
		name, text string
		state      DrainState
		start, end int
	}{
		{"not recorded", invokeP0 + "\n" + okP0 + "\n", DrainNotRecorded, -1, -1},
		{"completed", invokeP0 + "\n" + okP0 + "\n" + drainInv + "\n" + drainOK + "\n", DrainCompleted, 2, 3},
		{"cut short", invokeP0 + "\n" + okP0 + "\n" + drainInv + "\n" + drainCut + "\n", DrainCutShort, 2, 3},
		{"unfinished", invokeP0 + "\n" + okP0 + "\n" + drainInv + "\n", DrainUnfinished, 2, -1},
		{"a later failed attempt keeps the completed one", invokeP0 + "\n" + okP0 + "\n" + drainInv + "\n" + drainOK + "\n" +
			strings.NewReplacer(`"index":10`, `"index":12`, `"time":10`, `"time":12`).Replace(drainInv) + "\n", DrainCompleted, 2, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := loadBoth(t, "h.jsonl", c.text, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d := h.Drain; d.State != c.state || d.Start != c.start || d.End != c.end {
				t.Fatalf("drain %+v, want %v %d..%d", d, c.state, c.start, c.end)
			}
		})
	}
}

// A History gives back every op as it was read, through both formats,
// with every kind of value: Jepsen's keywords, strings and nils, records
// without offsets, offsets that jump, rebalance logs, nemesis values.
func TestHistoryKeepsEveryOp(t *testing.T) {
	text := strings.Join([]string{
		`{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":[["send","x","a"],["send","y",null],["send","y",1.5]]}`,
		`{"index":1,"time":2,"process":0,"type":"ok","f":"send","value":[["send","x",[0,"a"]],["send","y",[null,null]],["send","y",[7,1.5]]],"node":"n1"}`,
		`{"index":2,"time":3,"process":1,"type":"invoke","f":"poll","value":[["poll"]]}`,
		`{"index":3,"time":4,"process":1,"type":"ok","f":"poll","value":[["poll",{"x":[[0,"a"],[null,"b"]],"y":[[5,3],[6,4],[9,5]]}]],"rebalance-log":[{"keys":["x"]},{"keys":[]}]}`,
		`{"index":4,"time":5,"process":-1,"type":"info","f":"start-partition","value":{"n1":["n2"]},"error":"e"}`,
		`{"index":5,"time":6,"process":2,"type":"invoke","f":"assign","value":["x","y"]}`,
		`{"index":6,"time":7,"process":2,"type":"ok","f":"assign","value":["x","y"]}`,
		`{"index":7,"time":8,"process":3,"type":"invoke","f":"send","value":[["send","x",42]]}`,
		`{"index":8,"time":9,"process":2,"type":"invoke","f":"commit","group":"g","value":{"x":1,"y":10}}`,
		`{"index":9,"time":10,"process":2,"type":"ok","f":"commit","group":"g","value":{"x":1,"y":10},"rebalance-log":[{"type":"lost","keys":["y"]}]}`,
		`{"index":10,"time":11,"process":4,"type":"invoke","f":"committed","group":"h","value":["y","x"]}`,
		`{"index":11,"time":12,"process":4,"type":"ok","f":"committed","group":"h","value":{"y":null,"x":1}}`,
	}, "\n") + "\n"
	ops, _, err := ReadAll(strings.NewReader(text), "h.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	h, err := FromOps(ops, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h.IntValues() {
		t.Error("a history with text values says its values are all integers")
	}
	for i := range ops {
		if got := h.Op(i); !reflect.DeepEqual(normalize(got), normalize(ops[i])) {
			t.Errorf("op %d:\n got %s\nwant %s", i, got, ops[i])
		}
	}
	// Groups and offsets.
	if g := h.GroupOf(&h.Events[9]); h.Text(g) != "g" || h.GroupOf(&h.Events[0]) != 0 || h.GroupOf(&h.Events[10]) == g {
		t.Errorf("groups: %q, %d, %d", h.Text(g), h.GroupOf(&h.Events[0]), h.GroupOf(&h.Events[10]))
	}
	if os := h.OffsetsOf(&h.Events[11]); len(os) != 2 || h.Text(os[0].Key) != "y" || os[0].Offset != OffsetUnknown || os[1].Offset != 1 {
		t.Errorf("offsets of the committed: %+v", os)
	}
	if rb := h.Rebalances(&h.Events[9]); len(rb) != 1 || h.Text(rb[0].Type) != RebalanceLost || rb[0].Keys.Len != 1 {
		t.Errorf("rebalance log: %+v", rb)
	}
	// The partners pair invocations and completions both ways.
	if h.Events[0].Partner != 1 || h.Events[1].Partner != 0 || h.Events[7].Partner != -1 || h.Events[4].Partner != -1 {
		t.Errorf("partners %d %d %d %d", h.Events[0].Partner, h.Events[1].Partner, h.Events[7].Partner, h.Events[4].Partner)
	}
	// Equal values have equal ids, across sends and reads.
	sendA := h.Micros[h.Events[1].Value.Start].Value
	rs := h.RecsOf(&h.Reads[h.Micros[h.Events[3].Value.Start].Reads.Start])
	if rs.Vals[0] != sendA || h.Val(sendA) != (Val{Text: `"a"`}) || rs.Offset(1) != OffsetUnknown {
		t.Errorf("value ids: send %d, read %d (%s), second offset %d", sendA, rs.Vals[0], h.Val(rs.Vals[0]), rs.Offset(1))
	}
}

// FromOps refuses what a file could not hold.
func TestFromOpsChecks(t *testing.T) {
	inv := Op{Index: 0, Time: 1, Process: 0, Type: Invoke, F: FSend, Value: Value{Mops: []Mop{{F: MopSend, Key: "k", Value: 1, Offset: OffsetPending}}}}
	bad := []struct {
		name string
		ops  []Op
		want string
	}{
		{"index goes back", []Op{inv, {Index: 0, Time: 2, Process: 1, Type: Invoke, F: FPoll}}, `want more than the previous op's index 0`},
		{"time goes back", []Op{{Index: 0, Time: 5, Process: 1, Type: Invoke, F: FPoll}, {Index: 1, Time: 2, Process: 2, Type: Invoke, F: FPoll}}, `2 is before the previous op's time 5`},
		{"bad send offset", []Op{{Index: 0, Time: 1, Process: 0, Type: Invoke, F: FSend, Value: Value{Mops: []Mop{{F: MopSend, Key: "k", Offset: -7}}}}}, `has offset -7`},
		{"bad record offset", []Op{{Index: 0, Time: 1, Process: 0, Type: Invoke, F: FPoll, Value: Value{Mops: []Mop{{F: MopPoll, Polls: map[string][]Record{"k": {{Offset: -3}}}}}}}}, `record 0 has offset -3`},
		{"value text not JSON", []Op{{Index: 0, Time: 1, Process: 0, Type: Invoke, F: FSend, Value: Value{Mops: []Mop{{F: MopSend, Key: "k", Offset: OffsetPending, Text: "a"}}}}}, `value text "a"`},
		{"unknown micro-op", []Op{{Index: 0, Time: 1, Process: 0, Type: Invoke, F: FSend, Value: Value{Mops: []Mop{{F: "append"}}}}}, `"append" is neither send nor poll`},
		{"pairing", []Op{inv, inv}, `op index 1: process 0 invokes send while`},
	}
	bad[len(bad)-1].ops[1].Index, bad[len(bad)-1].ops[1].Time = 1, 2
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if _, err := FromOps(c.ops, LoadOptions{}); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if h, err := FromOps(nil, LoadOptions{}); err != nil || len(h.Events) != 0 {
		t.Fatalf("an empty history in memory: %v", err)
	}
	// A History names at most 65535 consumer groups.
	many := make([]Op, maxGroups+1)
	for i := range many {
		many[i] = Op{Index: int64(i), Time: int64(i), Process: NemesisProcess, Type: Info, F: "x", Group: strconv.Itoa(i % (maxGroups + 1))}
	}
	if _, err := FromOps(many[:maxGroups], LoadOptions{}); err != nil {
		t.Fatalf("%d groups: %v", maxGroups, err)
	}
	if _, err := FromOps(many, LoadOptions{}); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "op index 65535: ") {
		t.Fatalf("%d groups: error %v, want ErrTooLarge at op index 65535", maxGroups+1, err)
	}
}

// The first text value turns the ids of every value stored before it into
// table indexes; equal values still have equal ids.
func TestValueTableSwitch(t *testing.T) {
	ops := []Op{
		{Index: 0, Time: 1, Process: 0, Type: Invoke, F: FSend, Value: Value{Mops: []Mop{{F: MopSend, Key: "k", Value: 5, Offset: OffsetPending}}}},
		{Index: 1, Time: 2, Process: 0, Type: OK, F: FSend, Value: Value{Mops: []Mop{{F: MopSend, Key: "k", Value: 5, Offset: 0}}}},
		{Index: 2, Time: 3, Process: 1, Type: Invoke, F: FSend, Value: Value{Mops: []Mop{{F: MopSend, Key: "k", Text: `"five"`, Offset: OffsetPending}}}},
		{Index: 3, Time: 4, Process: 2, Type: Invoke, F: FPoll, Value: Value{Mops: []Mop{{F: MopPoll}}}},
		{Index: 4, Time: 5, Process: 2, Type: OK, F: FPoll, Value: Value{Mops: []Mop{{F: MopPoll, Polls: map[string][]Record{"k": {{Offset: 0, Value: 5}, {Offset: 1, Text: `"five"`}}}}}}},
	}
	h, err := FromOps(ops, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	five := h.Micros[h.Events[1].Value.Start].Value
	text := h.Micros[h.Events[2].Value.Start].Value
	rs := h.RecsOf(&h.Reads[0])
	if rs.Vals[0] != five || rs.Vals[1] != text || five == text || h.Val(five) != (Val{Int: 5}) || h.Val(text) != (Val{Text: `"five"`}) {
		t.Fatalf("ids five %d text %d, read %v", five, text, rs.Vals)
	}
}

func TestValJSON(t *testing.T) {
	for _, c := range []struct {
		v    Val
		json string
	}{{Val{Int: -3}, `-3`}, {Val{Text: `"a\"b"`}, `"a\"b"`}, {Val{Text: `null`}, `null`}, {Val{Text: `1.5`}, `1.5`}} {
		b, err := c.v.MarshalJSON()
		if err != nil || string(b) != c.json {
			t.Errorf("%v marshals as %s, %v", c.v, b, err)
		}
		var back Val
		if err := back.UnmarshalJSON(b); err != nil || back != c.v {
			t.Errorf("%s unmarshals as %v, %v", b, back, err)
		}
	}
	var v Val
	if err := v.UnmarshalJSON([]byte(`[1]`)); err == nil {
		t.Error("a list unmarshals as a value")
	}
}

// The drain markers are ops like any other in both formats: exported to
// EDN and read back, the drain is still completed.
func TestDrainMarkersInEDN(t *testing.T) {
	ops, _, err := ReadAll(strings.NewReader(invokeP0+"\n"+okP0+"\n"+drainInv+"\n"+drainOK+"\n"), "h.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var edn strings.Builder
	if err := WriteEDN(&edn, ops); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(edn.String(), ":process :nemesis, :f :drain") {
		t.Fatalf("EDN lacks the drain marker:\n%s", edn.String())
	}
	h, err := loadBoth(t, "h.edn", edn.String(), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Drain.State != DrainCompleted || h.Drain.Start != 2 || h.Drain.End != 3 {
		t.Fatalf("drain %+v after EDN", h.Drain)
	}
}

package histories

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

// jsonlSeeds cover every value form, the usual mistakes and the edges of
// the reader (blank lines, CRLF, a truncated last line).
var jsonlSeeds = []string{
	`{"index":0,"time":1200,"process":0,"type":"invoke","f":"send","value":[["send","3",1042]]}`,
	`{"index":2,"time":5100,"process":0,"type":"ok","f":"send","value":[["send","3",[88,1042]]],"node":"n1"}`,
	`{"index":2,"time":5100,"process":0,"type":"ok","f":"send","value":[["send",3,[null,1042]]]}`,
	`{"index":1,"time":1900,"process":1,"type":"invoke","f":"poll","value":[["poll"]]}`,
	`{"index":3,"time":7000,"process":1,"type":"ok","f":"poll","value":[["poll",{"3":[[87,1041],[88,1042]],"4":[]}]]}`,
	`{"index":4,"time":8000,"process":2,"type":"ok","f":"txn","value":[["send","1",[3,10]],["poll",{}]]}`,
	`{"index":0,"time":1,"process":0,"type":"ok","f":"assign","value":["0",3,"x"]}`,
	`{"index":0,"time":1,"process":0,"type":"ok","f":"subscribe","value":[]}`,
	`{"index":0,"time":1,"process":0,"type":"invoke","f":"crash","value":null,"error":"boom\n\u00e9"}`,
	`{"index":4,"time":9000,"process":-1,"type":"info","f":"start-partition","value":"majority"}`,
	`{"index":4,"time":9000,"process":-1,"type":"info","f":"start-partition","value":{"n1":["n2",{"a":[1.5e3,true,null]}]}}`,
	`{"index":4,"time":9000,"process":-1,"type":"info","f":"kill","value":[["send","3",1.5]]}`,
	`{"index":5,"time":9000,"process":2,"type":"ok","f":"poll","value":[["poll",{"x":[[null,"a"],[3,null],[4,true],[5,1e400]]}]],"rebalance-log":[{"keys":["x",7],"other":1}]}`,
	`{"index":5,"time":9000,"process":2,"type":"invoke","f":"send","value":[["send","x","\u00e9\ud800"],["send","y",[null,"k"]]]}`,
	`{"index":4,"time":9000,"process":-1,"type":"info","f":"kill","value":[]}`,
	`{"index":6,"time":9000,"process":2,"type":"invoke","f":"commit","group":"garantia-queue","value":{"3":89,"10":0}}`,
	`{"index":7,"time":9001,"process":2,"type":"ok","f":"committed","group":"garantia-queue","value":{"3":89,"10":null},"rebalance-log":[{"type":"assigned","keys":["3"]}]}`,
	"{\"index\":0,\"time\":1,\"process\":0,\"type\":\"ok\",\"f\":\"poll\"}\r\n\r\n{\"index\":1,\"time\":1,\"process\":0,\"type\":\"okk\",\"f\":\"poll\"}\n",
	"{\"index\":0,\"time\":1,\"process\":0,\"type\":\"invoke\",\"f\":\"poll\"}\n{\"index\":1,\"ti",
}

// FuzzJSONL checks that decoding never panics, that the parallel and
// sequential readers agree, and that whatever decodes re-encodes to a
// history that decodes to the same ops.
func FuzzJSONL(f *testing.F) {
	for _, s := range jsonlSeeds {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("testdata/basic.jsonl"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ops, warnings, err := readSequential(NewReader(bytes.NewReader(in), "f.jsonl"), 0)
		pOps, pWarnings, pErr := readParallel(bytes.NewReader(in), "f.jsonl", 0, 2, 16)
		if fmt.Sprint(err) != fmt.Sprint(pErr) || !reflect.DeepEqual(warnings, pWarnings) || !reflect.DeepEqual(ops, pOps) {
			t.Fatalf("readers disagree:\nsequential %v %q\nparallel   %v %q", err, warnings, pErr, pWarnings)
		}
		if err != nil {
			return
		}
		var enc bytes.Buffer
		if err := WriteAll(&enc, ops); err != nil {
			t.Fatalf("decoded ops do not encode: %v", err)
		}
		again, warnings, err := ReadAll(bytes.NewReader(enc.Bytes()), "f2.jsonl")
		if err != nil || len(warnings) > 0 {
			t.Fatalf("re-encoded history does not decode: %v %q\n%s", err, warnings, enc.Bytes())
		}
		if !reflect.DeepEqual(again, ops) {
			t.Fatalf("round trip changed the ops:\n%s\nfirst  %#v\nsecond %#v", enc.Bytes(), ops, again)
		}
	})
}

var ednSeeds = []string{
	`{:type :invoke, :f :send, :value [[:send 3 1042]], :time 1, :process 0, :index 0}`,
	`{:type :ok, :f :send, :value [[:send 3 [88 1042]] [:send "k" [nil 1]]], :time 1, :process 0}`,
	`{:type :ok, :f :poll, :value [[:poll {3 [[87 1041] [88 1042]], :x []}]], :poll-ms 100, :time 5, :process 1}`,
	`{:type :invoke, :f :txn, :value ([:send 0 4] [:poll]), :time 1, :process 4}`,
	`{:type :ok, :f :assign, :value [0 3 5], :time 1, :process 0}`,
	`{:type :ok, :f :subscribe, :value #{"a" :b}, :time 1, :process 0}`,
	`{:type :info, :f :start-partition, :value [:isolated {"n1" #{"n2" "n3"}}], :time 1, :process :nemesis}`,
	`{:type :info, :f :kill, :value {:a 1.5M, 2 ##NaN, nil \a}, :time 1, :process :nemesis, :error [:timeout "x"]}`,
	`{:type :info, :f :x, :value ["send" 1 2.5], :time 1, :process -1, :node "n1"}`,
	"[#jepsen.history.Op{:index 0, :time 100, :type :invoke, :process 0, :f :send, :value [[:send 11 641]]}\n #_ {:a 1} ; c\n {:type :ok, :f :crash, :time 2, :process 0, :value nil}]",
	"{:type :ok, :f :crash, :time 2, :process 0}\n{:type :ok, :f :crash, :ti",
	`{:type :ok, :f :poll, :value [[:poll {:x [[0 :a] [nil "b"] [2 nil]]}]], :time 1, :process 0, :rebalance-log [{:keys [:x 1] :at 5} {}]}`,
	`{:type :ok, :f :send, :value [[:send :x [nil nil]] [:send :y :kw] [:send :z 1.5]], :time 1, :process 0}`,
}

// FuzzEDN checks that EDN import never panics, that imported ops export
// to EDN and import back the same, and that they survive JSONL too.
func FuzzEDN(f *testing.F) {
	for _, s := range ednSeeds {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("testdata/jepsen_kafka.edn"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ops, _, err := ReadEDN(bytes.NewReader(in), "f.edn")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.edn:") {
				t.Fatalf("error does not name the file and line: %v", err)
			}
			return
		}
		var edn bytes.Buffer
		if err := WriteEDN(&edn, ops); err != nil {
			t.Fatalf("imported ops do not export: %v", err)
		}
		again, warnings, err := ReadEDN(bytes.NewReader(edn.Bytes()), "f2.edn")
		if err != nil || len(warnings) > 0 {
			t.Fatalf("exported history does not import: %v %q\n%s", err, warnings, edn.Bytes())
		}
		if !reflect.DeepEqual(normalizeAll(again), normalizeAll(ops)) {
			t.Fatalf("EDN round trip changed the ops:\n%s\nfirst  %#v\nsecond %#v", edn.Bytes(), ops, again)
		}
		var jsonl bytes.Buffer
		if err := WriteAll(&jsonl, ops); err != nil {
			t.Fatalf("imported ops do not encode as JSONL: %v", err)
		}
		viaJSONL, _, err := ReadAll(bytes.NewReader(jsonl.Bytes()), "f.jsonl")
		if err != nil {
			t.Fatalf("JSONL of imported ops does not decode: %v\n%s", err, jsonl.Bytes())
		}
		if !reflect.DeepEqual(normalizeAll(viaJSONL), normalizeAll(ops)) {
			t.Fatalf("JSONL round trip changed the imported ops:\n%s\nfirst  %#v\nsecond %#v", jsonl.Bytes(), ops, viaJSONL)
		}
	})
}

func normalizeAll(ops []Op) []Op {
	out := make([]Op, len(ops))
	for i := range ops {
		out[i] = normalize(ops[i])
	}
	return out
}

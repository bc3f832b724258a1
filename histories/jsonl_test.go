package histories

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeLineForTest decodes one line the way a Reader does.
func decodeLineForTest(line string) (Op, error) {
	var op Op
	err := newDecoder().decodeOp([]byte(line), &op)
	return op, err
}

func TestJSONLValueForms(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Op
		// out is the canonical re-encoding; empty means the line itself.
		out string
	}{
		{
			name: "send invoked",
			line: `{"index":0,"time":1200,"process":0,"type":"invoke","f":"send","value":[["send","3",1042]]}`,
			want: Op{Index: 0, Time: 1200, Process: 0, Type: Invoke, F: FSend, Value: Value{Mops: []Mop{{F: MopSend, Key: "3", Value: 1042, Offset: OffsetPending}}}},
		},
		{
			name: "send completed with offset",
			line: `{"index":2,"time":5100,"process":0,"type":"ok","f":"send","value":[["send","3",[88,1042]]],"node":"n1"}`,
			want: Op{Index: 2, Time: 5100, Process: 0, Type: OK, F: FSend, Node: "n1", Value: Value{Mops: []Mop{{F: MopSend, Key: "3", Value: 1042, Offset: 88}}}},
		},
		{
			name: "send completed without offset (acks=0)",
			line: `{"index":2,"time":5100,"process":0,"type":"ok","f":"send","value":[["send","3",[null,1042]]]}`,
			want: Op{Index: 2, Time: 5100, Type: OK, F: FSend, Value: Value{Mops: []Mop{{F: MopSend, Key: "3", Value: 1042, Offset: OffsetUnknown}}}},
		},
		{
			name: "poll invoked",
			line: `{"index":1,"time":1900,"process":1,"type":"invoke","f":"poll","value":[["poll"]]}`,
			want: Op{Index: 1, Time: 1900, Process: 1, Type: Invoke, F: FPoll, Value: Value{Mops: []Mop{{F: MopPoll}}}},
		},
		{
			name: "poll completed",
			line: `{"index":3,"time":7000,"process":1,"type":"ok","f":"poll","value":[["poll",{"3":[[87,1041],[88,1042]],"10":[]}]]}`,
			want: Op{Index: 3, Time: 7000, Process: 1, Type: OK, F: FPoll, Value: Value{Mops: []Mop{{F: MopPoll, Polls: map[string][]Record{
				"3": {{Offset: 87, Value: 1041}, {Offset: 88, Value: 1042}}, "10": nil}}}}},
			// Keys sort numerically.
			out: `{"index":3,"time":7000,"process":1,"type":"ok","f":"poll","value":[["poll",{"3":[[87,1041],[88,1042]],"10":[]}]]}`,
		},
		{
			name: "poll that read nothing",
			line: `{"index":3,"time":7000,"process":1,"type":"ok","f":"poll","value":[["poll",{}]]}`,
			want: Op{Index: 3, Time: 7000, Process: 1, Type: OK, F: FPoll, Value: Value{Mops: []Mop{{F: MopPoll, Polls: map[string][]Record{}}}}},
		},
		{
			name: "txn mixes sends and polls",
			line: `{"index":4,"time":8000,"process":2,"type":"ok","f":"txn","value":[["send","1",[3,10]],["poll",{"1":[[2,9],[3,10]]}]]}`,
			want: Op{Index: 4, Time: 8000, Process: 2, Type: OK, F: FTxn, Value: Value{Mops: []Mop{
				{F: MopSend, Key: "1", Value: 10, Offset: 3},
				{F: MopPoll, Polls: map[string][]Record{"1": {{Offset: 2, Value: 9}, {Offset: 3, Value: 10}}}}}}},
		},
		{
			name: "integer keys become decimal text",
			line: `{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":[["send",3,1042]]}`,
			want: Op{Time: 1, Type: Invoke, F: FSend, Value: Value{Mops: []Mop{{F: MopSend, Key: "3", Value: 1042, Offset: OffsetPending}}}},
			out:  `{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":[["send","3",1042]]}`,
		},
		{
			name: "assign keys",
			line: `{"index":0,"time":1,"process":0,"type":"ok","f":"assign","value":["0","3","5"]}`,
			want: Op{Time: 1, Type: OK, F: FAssign, Value: Value{Keys: []string{"0", "3", "5"}}},
		},
		{
			name: "assign integer keys, as Jepsen writes them",
			line: `{"index":0,"time":1,"process":0,"type":"ok","f":"subscribe","value":[0,3,5]}`,
			want: Op{Time: 1, Type: OK, F: FSubscribe, Value: Value{Keys: []string{"0", "3", "5"}}},
			out:  `{"index":0,"time":1,"process":0,"type":"ok","f":"subscribe","value":["0","3","5"]}`,
		},
		{
			name: "assign nothing",
			line: `{"index":0,"time":1,"process":0,"type":"ok","f":"assign","value":[]}`,
			want: Op{Time: 1, Type: OK, F: FAssign, Value: Value{Keys: []string{}}},
		},
		{
			name: "empty send list",
			line: `{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":[]}`,
			want: Op{Time: 1, Type: Invoke, F: FSend, Value: Value{Mops: []Mop{}}},
		},
		{
			name: "null value",
			line: `{"index":0,"time":1,"process":0,"type":"invoke","f":"crash","value":null}`,
			want: Op{Time: 1, Type: Invoke, F: FCrash},
		},
		{
			name: "missing value is null",
			line: `{"index":0,"time":1,"process":0,"type":"invoke","f":"crash"}`,
			want: Op{Time: 1, Type: Invoke, F: FCrash},
			out:  `{"index":0,"time":1,"process":0,"type":"invoke","f":"crash","value":null}`,
		},
		{
			name: "nemesis string",
			line: `{"index":4,"time":9000,"process":-1,"type":"info","f":"start-partition","value":"majority"}`,
			want: Op{Index: 4, Time: 9000, Process: -1, Type: Info, F: "start-partition", Value: Value{Raw: []byte(`"majority"`)}},
		},
		{
			name: "nemesis object, compacted",
			line: `{"index":4,"time":9000,"process":-1,"type":"info","f":"start-partition","value": {"n1" : ["n2", "n3"]} }`,
			want: Op{Index: 4, Time: 9000, Process: -1, Type: Info, F: "start-partition", Value: Value{Raw: []byte(`{"n1":["n2","n3"]}`)}},
			out:  `{"index":4,"time":9000,"process":-1,"type":"info","f":"start-partition","value":{"n1":["n2","n3"]}}`,
		},
		{
			name: "nemesis empty list stays raw",
			line: `{"index":4,"time":9000,"process":-1,"type":"info","f":"kill","value":[]}`,
			want: Op{Index: 4, Time: 9000, Process: -1, Type: Info, F: "kill", Value: Value{Raw: []byte(`[]`)}},
		},
		{
			name: "nemesis list of strings stays raw",
			line: `{"index":4,"time":9000,"process":-1,"type":"info","f":"kill","value":["n1","n2"]}`,
			want: Op{Index: 4, Time: 9000, Process: -1, Type: Info, F: "kill", Value: Value{Raw: []byte(`["n1","n2"]`)}},
		},
		{
			name: "malformed micro-ops under a nemesis f stay raw",
			line: `{"index":4,"time":9000,"process":-1,"type":"info","f":"kill","value":[["send","3"]]}`,
			want: Op{Index: 4, Time: 9000, Process: -1, Type: Info, F: "kill", Value: Value{Raw: []byte(`[["send","3"]]`)}},
		},
		{
			name: "field order does not matter; unknown fields are ignored",
			line: `{"value":[["send","3",1042]],"f":"send","extra":{"a":[1,2]},"type":"fail","error":"NOT_ENOUGH_REPLICAS","process":7,"time":3,"index":9}`,
			want: Op{Index: 9, Time: 3, Process: 7, Type: Fail, F: FSend, Error: "NOT_ENOUGH_REPLICAS", Value: Value{Mops: []Mop{{F: MopSend, Key: "3", Value: 1042, Offset: OffsetPending}}}},
			out:  `{"index":9,"time":3,"process":7,"type":"fail","f":"send","value":[["send","3",1042]],"error":"NOT_ENOUGH_REPLICAS"}`,
		},
		{
			name: "escapes in strings",
			line: `{"index":0,"time":1,"process":0,"type":"info","f":"send","value":[["send","k\"\\\u00e9",1]],"error":"line1\nline2\t\u0001 \ud83d\ude00"}`,
			want: Op{Time: 1, Type: Info, F: FSend, Error: "line1\nline2\t\x01 😀", Value: Value{Mops: []Mop{{F: MopSend, Key: "k\"\\é", Value: 1, Offset: OffsetPending}}}},
			out:  `{"index":0,"time":1,"process":0,"type":"info","f":"send","value":[["send","k\"\\é",1]],"error":"line1\nline2\t\u0001 😀"}`,
		},
		{
			name: "null node and error are empty",
			line: `{"index":0,"time":1,"process":0,"type":"invoke","f":"crash","value":null,"node":null,"error":null}`,
			want: Op{Time: 1, Type: Invoke, F: FCrash},
			out:  `{"index":0,"time":1,"process":0,"type":"invoke","f":"crash","value":null}`,
		},
		{
			name: "commit, with its group",
			line: `{"index":0,"time":1,"process":3,"type":"invoke","f":"commit","group":"g1","value":{"3":89,"0":0}}`,
			want: Op{Time: 1, Process: 3, Type: Invoke, F: FCommit, Group: "g1", Value: Value{Offsets: []KeyOffset{{"3", 89}, {"0", 0}}}},
		},
		{
			name: "committed invoked with keys",
			line: `{"index":0,"time":1,"process":3,"type":"invoke","f":"committed","group":"g1","value":[0,"3"]}`,
			want: Op{Time: 1, Process: 3, Type: Invoke, F: FCommitted, Group: "g1", Value: Value{Keys: []string{"0", "3"}}},
			out:  `{"index":0,"time":1,"process":3,"type":"invoke","f":"committed","group":"g1","value":["0","3"]}`,
		},
		{
			name: "committed completed: an offset, and none",
			line: `{"value":{"0":null,"3":89},"group":"g1","f":"committed","type":"ok","process":3,"time":1,"index":0}`,
			want: Op{Time: 1, Process: 3, Type: OK, F: FCommitted, Group: "g1", Value: Value{Offsets: []KeyOffset{{"0", OffsetUnknown}, {"3", 89}}}},
			out:  `{"index":0,"time":1,"process":3,"type":"ok","f":"committed","group":"g1","value":{"0":null,"3":89}}`,
		},
		{
			name: "commit of nothing",
			line: `{"index":0,"time":1,"process":3,"type":"ok","f":"commit","value":{}}`,
			want: Op{Time: 1, Process: 3, Type: OK, F: FCommit, Value: Value{Offsets: []KeyOffset{}}},
		},
		{
			name: "an object of integers under another f stays raw",
			line: `{"index":4,"time":9000,"process":-1,"type":"info","f":"kill","value":{"3":89}}`,
			want: Op{Index: 4, Time: 9000, Process: -1, Type: Info, F: "kill", Value: Value{Raw: []byte(`{"3":89}`)}},
		},
		{
			name: "Jepsen's rebalance log: types and keys",
			line: `{"index":0,"time":1,"process":3,"type":"ok","f":"poll","value":[["poll",{}]],"rebalance-log":[{"type":"revoked","keys":[55,4],"x":1},{"keys":["1"]},{"type":null,"keys":[]}]}`,
			want: Op{Time: 1, Process: 3, Type: OK, F: FPoll, Value: Value{Mops: []Mop{{F: MopPoll, Polls: map[string][]Record{}}}},
				RebalanceLog: []Rebalance{{Type: RebalanceRevoked, Keys: []string{"55", "4"}}, {Keys: []string{"1"}}, {Keys: []string{}}}},
			out: `{"index":0,"time":1,"process":3,"type":"ok","f":"poll","value":[["poll",{}]],"rebalance-log":[{"type":"revoked","keys":["55","4"]},{"keys":["1"]},{"keys":[]}]}`,
		},
		{
			name: "extreme integers",
			line: `{"index":9223372036854775807,"time":-9223372036854775808,"process":-1,"type":"info","f":"send","value":[["send","0",[0,-9223372036854775808]]]}`,
			want: Op{Index: 1<<63 - 1, Time: -1 << 63, Process: -1, Type: Info, F: FSend, Value: Value{Mops: []Mop{{F: MopSend, Key: "0", Value: -1 << 63, Offset: 0}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeLineForTest(tt.line)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("decoded\n got %#v\nwant %#v", got, tt.want)
			}
			enc, err := AppendOp(nil, &got)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			want := tt.out
			if want == "" {
				want = tt.line
			}
			if string(enc) != want {
				t.Fatalf("encoded\n got %s\nwant %s", enc, want)
			}
			// The canonical form is a fixed point.
			again, err := decodeLineForTest(string(enc))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("re-decoding the encoding: %v\n got %#v\nwant %#v", err, again, got)
			}
		})
	}
}

func TestJSONLDecodeErrors(t *testing.T) {
	const ok = `"index":0,"time":1,"process":0,"type":"invoke","f":"send"`
	tests := []struct {
		name, line, want string
	}{
		{"not an object", `[1,2]`, `want a JSON object`},
		{"bad type", `{"index":0,"time":1,"process":0,"type":"okk","f":"send"}`, `field "type": want invoke, ok, fail or info, got "okk"`},
		{"type not a string", `{"index":0,"time":1,"process":0,"type":3,"f":"send"}`, `field "type": column 40: want invoke, ok, fail or info, got "3,\"f\":\"send\"}"`},
		{"float process", `{"index":0,"time":1,"process":1.5,"type":"ok","f":"send"}`, `field "process": column 31: want an integer, got 1.5`},
		{"string time", `{"index":0,"time":"1","process":0,"type":"ok","f":"send"}`, `field "time": column 19: want an integer, got "\"1\",`},
		{"huge index", `{"index":99999999999999999999,"time":1,"process":0,"type":"ok","f":"send"}`, `field "index": column 10: integer 99999999999999999999 does not fit in 64 bits`},
		{"negative index", `{"index":-1,"time":1,"process":0,"type":"ok","f":"send"}`, `field "index": want a non-negative integer, got -1`},
		{"leading zero", `{"index":01,"time":1,"process":0,"type":"ok","f":"send"}`, `leading zero`},
		{"missing process", `{"index":0,"time":1,"type":"ok","f":"send"}`, `field "process" is missing`},
		{"missing f", `{"index":0,"time":1,"process":0,"type":"ok"}`, `field "f" is missing`},
		{"empty f", `{"index":0,"time":1,"process":0,"type":"ok","f":""}`, `field "f": want a function name`},
		{"duplicate field", `{"index":0,"index":1,"time":1,"process":0,"type":"ok","f":"send"}`, `field "index" appears twice`},
		{"send value not mops", `{` + ok + `,"value":"hello"}`, `field "value": a send's value must be a list of micro-operations or null, got "\"hello\""`},
		{"unknown mop", `{` + ok + `,"value":[["append","3",1]]}`, `field "value": micro-op 0: want "send" or "poll" first, got "append"`},
		{"send without value", `{` + ok + `,"value":[["send","3"]]}`, `micro-op 0: column 80: want ',' before the send's value`},
		{"negative offset", `{` + ok + `,"value":[["send","3",[-1,5]]]}`, `micro-op 0: send offset: want null or a non-negative integer, got -1`},
		{"list value", `{` + ok + `,"value":[["send","3",[1,[2]]]]}`, `micro-op 0: send value: column 84: want a value (an integer, a string or null), got "[2]]]]}"`},
		{"object value", `{` + ok + `,"value":[["send","3",{"a":1}]]}`, `micro-op 0: send value: column 81: want a value (an integer, a string or null)`},
		{"invalid UTF-8 in a key", `{` + ok + `,"value":[["send","k` + "\xff" + `",1]]}`, `invalid UTF-8 in a string: byte 0xff is not text`},
		{"invalid UTF-8 in an error", `{` + ok + `,"error":"` + "\xc3" + `"}`, `invalid UTF-8`},
		{"invalid UTF-8 in a nemesis value", `{"index":0,"time":1,"process":-1,"type":"info","f":"kill","value":"` + "\xfe" + `"}`, `invalid UTF-8`},
		{"rebalance log not a list", `{` + ok + `,"rebalance-log":{"keys":[1]}}`, `field "rebalance-log": column 76: want a list`},
		{"rebalance keys not keys", `{` + ok + `,"rebalance-log":[{"keys":[true]}]}`, `field "rebalance-log": rebalance 0: "keys": want a list of keys, got "[true]"`},
		{"second mop bad", `{` + ok + `,"value":[["send","3",1],["send",true,2]]}`, `micro-op 1: send key: column 92: want a key (a string or an integer), got "true,2]]}"`},
		{"poll record bad", `{` + ok + `,"value":[["poll",{"3":[[1,2,3]]}]]}`, `micro-op 0: poll of key "3": column 87: want ']' after [offset, value], got ",3]]}]]}"`},
		{"poll duplicate key", `{` + ok + `,"value":[["poll",{"3":[],"3":[]}]]}`, `micro-op 0: poll result has key "3" twice`},
		{"poll negative offset", `{` + ok + `,"value":[["poll",{"3":[[-5,1]]}]]}`, `micro-op 0: poll of key "3": record 0: offset -5 is negative`},
		{"trailing garbage", `{` + ok + `} x`, `column 61: unexpected data after the object: "x"`},
		{"unterminated string", `{"index":0,"time":1,"process":0,"type":"ok","f":"sen`, `string is not terminated`},
		{"truncated object", `{` + ok + `,"value":[["send","3",`, `end of line`},
		{"raw control character", "{" + ok + `,"error":"a` + "\x01" + `"}`, `control character`},
		{"bad escape", `{` + ok + `,"error":"\x"}`, `invalid escape '\x'`},
		{"bad raw JSON", `{"index":0,"time":1,"process":-1,"type":"info","f":"kill","value":{"a":tru}}`, `want a JSON value`},
		{"deep nesting", `{"index":0,"time":1,"process":-1,"type":"info","f":"kill","value":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`, `nests deeper than 1000`},
		{"node not a string", `{` + ok + `,"node":1}`, `field "node": column 67: want a string or null`},
		{"group not a string", `{` + ok + `,"group":["g"]}`, `field "group": column 68: want a string or null`},
		{"commit not offsets", `{"index":0,"time":1,"process":0,"type":"invoke","f":"commit","value":[["send","3",1]]}`, `field "value": a commit's value must be an object of offsets`},
		{"commit of keys", `{"index":0,"time":1,"process":0,"type":"invoke","f":"commit","value":["3"]}`, `a commit's value must be an object of offsets`},
		{"commit of null", `{"index":0,"time":1,"process":0,"type":"invoke","f":"commit","value":{"3":null}}`, `offset of key "3": a commit's offsets are integers >= 0, got null`},
		{"commit negative", `{"index":0,"time":1,"process":0,"type":"invoke","f":"commit","value":{"3":-1}}`, `offset of key "3": want an integer >= 0 or null, got -1`},
		{"commit fraction", `{"index":0,"time":1,"process":0,"type":"invoke","f":"commit","value":{"3":1.5}}`, `offset of key "3": column 6: want an integer, got 1.5`},
		{"commit key twice", `{"index":0,"time":1,"process":0,"type":"invoke","f":"commit","value":{"3":1,"3":2}}`, `offsets have key "3" twice`},
		{"committed string", `{"index":0,"time":1,"process":0,"type":"ok","f":"committed","value":"3"}`, `a committed's value must be a list of keys, an object of offsets or null`},
		{"committed keys not keys", `{"index":0,"time":1,"process":0,"type":"invoke","f":"committed","value":[true]}`, `a committed's value must be a list of keys`},
		{"rebalance type not a string", `{` + ok + `,"rebalance-log":[{"type":3,"keys":[]}]}`, `rebalance 0: "type": column 85: want a string or null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeLineForTest(tt.line)
			if err == nil {
				t.Fatalf("decoded %s without error, want one containing %q", tt.line, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestAppendOpRefusesWhatCannotBeRead(t *testing.T) {
	good := Op{Type: OK, F: FSend}
	tests := []struct {
		name string
		mod  func(*Op)
		want string
	}{
		{"bad type", func(o *Op) { o.Type = "okk" }, `type "okk" is not invoke, ok, fail or info`},
		{"empty f", func(o *Op) { o.F = "" }, `f is empty`},
		{"two value forms", func(o *Op) { o.Value = Value{Keys: []string{}, Raw: []byte(`1`)} }, `more than one of Mops, Keys, Offsets and Raw`},
		{"offsets of a send", func(o *Op) { o.Value = Value{Offsets: []KeyOffset{}} }, `a send's value cannot be offsets`},
		{"a commit's mops", func(o *Op) { o.F, o.Value = FCommit, Value{Mops: []Mop{}} }, `a commit's value must be offsets`},
		{"a commit's unknown offset", func(o *Op) { o.F, o.Value = FCommit, Value{Offsets: []KeyOffset{{"1", OffsetUnknown}}} }, `want an integer >= 0`},
		{"a committed's pending offset", func(o *Op) { o.F, o.Value = FCommitted, Value{Offsets: []KeyOffset{{"1", OffsetPending}}} }, `want an integer >= 0 or OffsetUnknown`},
		{"offsets key twice", func(o *Op) { o.F, o.Value = FCommitted, Value{Offsets: []KeyOffset{{"1", 1}, {"1", 2}}} }, `have key "1" twice`},
		{"invalid raw", func(o *Op) { o.Value.Raw = []byte(`{bad`) }, `raw value is not valid JSON`},
		{"empty raw", func(o *Op) { o.Value.Raw = []byte{} }, `raw value is empty`},
		{"bad mop f", func(o *Op) { o.Value.Mops = []Mop{{F: "append"}} }, `micro-op 0: f "append" is neither send nor poll`},
		{"bad offset", func(o *Op) { o.Value.Mops = []Mop{{F: MopSend, Offset: -7}} }, `send offset -7 is negative`},
		{"bad record", func(o *Op) {
			o.Value.Mops = []Mop{{F: MopPoll, Polls: map[string][]Record{"1": {{Offset: -3}}}}}
		}, `negative offset -3`},
		{"value text not JSON", func(o *Op) { o.Value.Mops = []Mop{{F: MopSend, Key: "1", Offset: 3, Text: "a"}} }, `value text "a" is not the canonical JSON`},
		{"value text not canonical", func(o *Op) { o.Value.Mops = []Mop{{F: MopSend, Key: "1", Offset: 3, Text: `"\u0061"`}} }, `is not the canonical JSON`},
		{"value text a list", func(o *Op) {
			o.Value.Mops = []Mop{{F: MopPoll, Polls: map[string][]Record{"1": {{Offset: 1, Text: "[1]"}}}}}
		}, `record 0: value text "[1]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := good
			tt.mod(&op)
			dst := []byte("prefix")
			out, err := AppendOp(dst, &op)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("AppendOp error = %v, want one containing %q", err, tt.want)
			}
			if string(out) != "prefix" {
				t.Fatalf("AppendOp left %q behind after an error", out)
			}
		})
	}
}

func TestAppendOpRawIsCompactedAndValidUTF8(t *testing.T) {
	op := Op{Type: Info, F: "kill", Process: -1, Value: Value{Raw: []byte("{\n  \"n1\": \"ki\xffed\"\n}")}}
	line, err := AppendOp(nil, &op)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"index":0,"time":0,"process":-1,"type":"info","f":"kill","value":{"n1":"ki` + "\uFFFD" + `ed"}}`
	if string(line) != want {
		t.Fatalf("got  %s\nwant %s", line, want)
	}
}

func TestJSONStringEncodingMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\"back\\slash", "\x00\x1f\x7f", "é😀", "bad\xffutf8", "\u2028\u2029", "<html>&"} {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q encoded as %s, which encoding/json rejects: %v", s, got, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back != want {
			t.Fatalf("%q encoded as %s decodes to %q, want %q", s, got, back, want)
		}
		d := decoder{b: got}
		b, err := d.str()
		if err != nil || string(b) != want {
			t.Fatalf("our decoder read %s as %q, %v; want %q", got, b, err, want)
		}
	}
}

func TestOpJSONMethods(t *testing.T) {
	op := Op{Index: 3, Time: 7, Process: 1, Type: OK, F: FPoll, Value: Value{Mops: []Mop{{F: MopPoll, Polls: map[string][]Record{"2": {{Offset: 0, Value: 5}}}}}}}
	type wrapper struct {
		Example Op `json:"example"`
	}
	b, err := json.Marshal(wrapper{op})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"example":{"index":3,"time":7,"process":1,"type":"ok","f":"poll","value":[["poll",{"2":[[0,5]]}]]}}`
	if string(b) != want {
		t.Fatalf("json.Marshal = %s, want %s", b, want)
	}
	var back wrapper
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Example, op) {
		t.Fatalf("round trip through encoding/json: got %#v, want %#v", back.Example, op)
	}
	if s := op.String(); !strings.HasPrefix(s, `{"index":3`) {
		t.Fatalf("String() = %s", s)
	}
	if v, _ := json.Marshal(Value{Keys: []string{"1"}}); string(v) != `["1"]` {
		t.Fatalf("Value.MarshalJSON = %s", v)
	}
	if err := json.Unmarshal([]byte(`{"x":{"index":0}}`), &struct{ X Op }{}); err == nil || !strings.Contains(err.Error(), `field "time" is missing`) {
		t.Fatalf("Unmarshal of a bad op: %v", err)
	}
}

func TestCompareKeys(t *testing.T) {
	keys := []string{"10", "b", "9", "a", "007", "0", "-1", "100"}
	got := append([]string(nil), keys...)
	sortKeys(got)
	want := []string{"0", "9", "10", "100", "-1", "007", "a", "b"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sorted %v, want %v", got, want)
	}
}

func sortKeys(keys []string) {
	polls := map[string][]Record{}
	for _, k := range keys {
		polls[k] = nil
	}
	copy(keys, sortedPollKeys(polls))
}

func TestWriteAllReadAllRoundTrip(t *testing.T) {
	const seed = 42
	ops := genHistory(seed, 5000)
	var buf bytes.Buffer
	if err := WriteAll(&buf, ops); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	got, warnings, err := ReadAll(bytes.NewReader(buf.Bytes()), "gen.jsonl")
	if err != nil || len(warnings) != 0 {
		t.Fatalf("seed %d: %v %v", seed, warnings, err)
	}
	if len(got) != len(ops) {
		t.Fatalf("seed %d: read %d ops, wrote %d", seed, len(got), len(ops))
	}
	for i := range ops {
		if !opsEqual(got[i], ops[i]) {
			t.Fatalf("seed %d: op %d\n got %v\nwant %v", seed, i, got[i], ops[i])
		}
	}
}

// opsEqual compares ops as the history format sees them: an empty record
// list is the same whether nil or not.
func opsEqual(a, b Op) bool {
	ea, err1 := AppendOp(nil, &a)
	eb, err2 := AppendOp(nil, &b)
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb) && reflect.DeepEqual(normalize(a), normalize(b))
}

func normalize(op Op) Op {
	if op.Value.Mops == nil {
		return op
	}
	mops := make([]Mop, len(op.Value.Mops))
	copy(mops, op.Value.Mops)
	for i := range mops {
		if mops[i].Polls != nil {
			p := make(map[string][]Record, len(mops[i].Polls))
			for k, v := range mops[i].Polls {
				if len(v) == 0 {
					v = nil
				}
				p[k] = v
			}
			mops[i].Polls = p
		}
	}
	op.Value.Mops = mops
	return op
}

package histories

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"
)

// The hand-written decoder is fast because it knows the schema; this file
// is its oracle: the same schema read the slow, obvious way, with
// encoding/json doing all the JSON, and a fuzz test that feeds both the
// same bytes. They must accept the same lines and decode them to the same
// op.

// refDecode decodes one history line by the rules of histories/doc.go.
func refDecode(line []byte) (Op, error) {
	var op Op
	if !utf8.Valid(line) {
		return op, errors.New("invalid UTF-8")
	}
	if !json.Valid(line) {
		return op, errors.New("invalid JSON")
	}
	fields, err := refObject(line)
	if err != nil {
		return op, err
	}
	seen := map[string]bool{}
	for _, f := range fields {
		switch f.name {
		case "index", "time", "process", "type", "f", "value", "node", "error", "rebalance-log", "group":
			if seen[f.name] {
				return op, fmt.Errorf("field %q twice", f.name)
			}
			seen[f.name] = true
		}
	}
	for _, name := range []string{"index", "time", "process", "type", "f"} {
		if !seen[name] {
			return op, fmt.Errorf("field %q missing", name)
		}
	}
	var value json.RawMessage
	for _, f := range fields {
		switch f.name {
		case "index":
			op.Index, err = refInt(f.raw)
			if err == nil && op.Index < 0 {
				err = errors.New("negative index")
			}
		case "time":
			op.Time, err = refInt(f.raw)
		case "process":
			op.Process, err = refInt(f.raw)
		case "type":
			var s string
			if err = json.Unmarshal(f.raw, &s); err == nil {
				op.Type = Type(s)
				if !op.Type.Valid() {
					err = errors.New("bad type")
				}
			}
		case "f":
			if err = json.Unmarshal(f.raw, &op.F); err == nil && op.F == "" {
				err = errors.New("empty f")
			}
			if f.raw[0] != '"' {
				err = errors.New("f not a string")
			}
		case "node":
			op.Node, err = refOptString(f.raw)
		case "error":
			op.Error, err = refOptString(f.raw)
		case "group":
			op.Group, err = refOptString(f.raw)
		case "rebalance-log":
			op.RebalanceLog, err = refRebalance(f.raw)
		case "value":
			value = f.raw
		}
		if err != nil {
			return op, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if value != nil {
		if op.Value, err = refValue(value, op.F); err != nil {
			return op, fmt.Errorf("value: %w", err)
		}
	}
	return op, nil
}

type refField struct {
	name string
	raw  json.RawMessage
}

// refObject splits a JSON object into its fields, in order, keeping
// duplicates (encoding/json's maps would hide them).
func refObject(b []byte) ([]refField, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	var out []refField
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		out = append(out, refField{k.(string), raw})
	}
	return out, nil
}

// refInt reads a JSON integer that fits in an int64: no fraction, no
// exponent.
func refInt(raw json.RawMessage) (int64, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil || raw[0] == '"' {
		return 0, errors.New("not a number")
	}
	return strconv.ParseInt(n.String(), 10, 64)
}

func refOptString(raw json.RawMessage) (string, error) {
	if string(raw) == "null" {
		return "", nil
	}
	if raw[0] != '"' {
		return "", errors.New("not a string")
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// refKey reads a key: a string, or an integer of any size as written.
func refKey(raw json.RawMessage) (string, error) {
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", errors.New("not a key")
	}
	if _, ok := new(big.Int).SetString(n.String(), 10); !ok {
		return "", errors.New("not an integer key")
	}
	return n.String(), nil
}

// refMessage reads a message value: an int64, or another scalar as its
// canonical JSON text.
func refMessage(raw json.RawMessage) (int64, string, error) {
	switch raw[0] {
	case '[', '{':
		return 0, "", errors.New("not a scalar")
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, "", err
		}
		return 0, string(appendJSONString(nil, s)), nil
	case 'n', 't', 'f':
		return 0, string(raw), nil
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, "", nil
	}
	return 0, string(raw), nil
}

func refList(raw json.RawMessage) ([]json.RawMessage, bool) {
	var l []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &l) != nil {
		return nil, false
	}
	return l, true
}

// refOffset reads an offset: an integer >= 0, or null.
func refOffset(raw json.RawMessage) (int64, error) {
	if string(raw) == "null" {
		return OffsetUnknown, nil
	}
	n, err := refInt(raw)
	if err == nil && n < 0 {
		err = errors.New("negative offset")
	}
	return n, err
}

// refPair reads [offset, value].
func refPair(raw json.RawMessage) (off, v int64, text string, err error) {
	l, ok := refList(raw)
	if !ok || len(l) != 2 {
		return 0, 0, "", errors.New("not a pair")
	}
	if off, err = refOffset(l[0]); err != nil {
		return
	}
	v, text, err = refMessage(l[1])
	return
}

func refMop(raw json.RawMessage) (Mop, error) {
	var m Mop
	l, ok := refList(raw)
	if !ok || len(l) == 0 || l[0][0] != '"' {
		return m, errors.New("not a micro-op")
	}
	var f string
	json.Unmarshal(l[0], &f)
	switch {
	case f == "send" && len(l) == 3:
		m.F = MopSend
		var err error
		if m.Key, err = refKey(l[1]); err != nil {
			return m, err
		}
		if l[2][0] == '[' {
			m.Offset, m.Value, m.Text, err = refPair(l[2])
		} else {
			m.Offset = OffsetPending
			m.Value, m.Text, err = refMessage(l[2])
		}
		return m, err
	case f == "poll" && len(l) == 1:
		m.F = MopPoll
		return m, nil
	case f == "poll" && len(l) == 2:
		m.F = MopPoll
		fields, err := refObject(l[1])
		if err != nil || l[1][0] != '{' {
			return m, errors.New("poll result not an object")
		}
		m.Polls = map[string][]Record{}
		for _, kf := range fields {
			if _, dup := m.Polls[kf.name]; dup {
				return m, errors.New("poll key twice")
			}
			recs, ok := refList(kf.raw)
			if !ok {
				return m, errors.New("records not a list")
			}
			var out []Record
			for _, r := range recs {
				var rec Record
				if rec.Offset, rec.Value, rec.Text, err = refPair(r); err != nil {
					return m, err
				}
				out = append(out, rec)
			}
			m.Polls[kf.name] = out
		}
		return m, nil
	}
	return m, errors.New("not a micro-op")
}

// refOffsets reads a commit's or committed's value by the rules of
// resolveValue's doc.
func refOffsets(raw json.RawMessage, f string) (Value, error) {
	var v Value
	if f == FCommitted {
		if l, ok := refList(raw); ok {
			keys := []string{}
			for _, e := range l {
				k, err := refKey(e)
				if err != nil {
					return v, err
				}
				keys = append(keys, k)
			}
			v.Keys = keys
			return v, nil
		}
	}
	if raw[0] != '{' {
		return v, errors.New("not offsets")
	}
	fields, err := refObject(raw)
	if err != nil {
		return v, err
	}
	v.Offsets = []KeyOffset{}
	for _, kf := range fields {
		for _, o := range v.Offsets {
			if o.Key == kf.name {
				return v, errors.New("key twice")
			}
		}
		if string(kf.raw) == "null" && f == FCommit {
			return v, errors.New("null commit offset")
		}
		off, err := refOffset(kf.raw)
		if err != nil {
			return v, err
		}
		v.Offsets = append(v.Offsets, KeyOffset{kf.name, off})
	}
	return v, nil
}

// refValue reads an op's value by the rules of resolveValue's doc.
func refValue(raw json.RawMessage, f string) (Value, error) {
	var v Value
	if string(raw) == "null" {
		return v, nil
	}
	if f == FCommit || f == FCommitted {
		return refOffsets(raw, f)
	}
	mopF := f == FSend || f == FPoll || f == FTxn
	if l, ok := refList(raw); ok {
		mops := []Mop{}
		var mopErr error
		for _, e := range l {
			m, err := refMop(e)
			if err != nil {
				mopErr = err
				break
			}
			mops = append(mops, m)
		}
		if mopErr == nil && (len(mops) > 0 || mopF) {
			v.Mops = mops
			return v, nil
		}
		if !mopF && (f == FAssign || f == FSubscribe) {
			keys := []string{}
			for _, e := range l {
				k, err := refKey(e)
				if err != nil {
					keys = nil
					break
				}
				keys = append(keys, k)
			}
			if keys != nil {
				v.Keys = keys
				return v, nil
			}
		}
	}
	if mopF {
		return v, errors.New("a send, poll or txn's value must be micro-ops or null")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return v, err
	}
	v.Raw = buf.Bytes()
	return v, nil
}

func refRebalance(raw json.RawMessage) ([]Rebalance, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	l, ok := refList(raw)
	if !ok {
		return nil, errors.New("not a list")
	}
	out := []Rebalance{}
	for _, e := range l {
		if e[0] != '{' {
			return nil, errors.New("not an object")
		}
		fields, err := refObject(e)
		if err != nil {
			return nil, err
		}
		rb := Rebalance{Keys: []string{}}
		for _, f := range fields {
			if f.name == "type" {
				if rb.Type, err = refOptString(f.raw); err != nil {
					return nil, err
				}
				continue
			}
			if f.name != "keys" {
				continue
			}
			kl, ok := refList(f.raw)
			if !ok {
				return nil, errors.New("keys not a list")
			}
			rb.Keys = []string{}
			for _, k := range kl {
				s, err := refKey(k)
				if err != nil {
					return nil, err
				}
				rb.Keys = append(rb.Keys, s)
			}
		}
		out = append(out, rb)
	}
	return out, nil
}

// depth is how deeply the JSON in b nests (outside strings).
func depth(b []byte) int {
	d, most, inStr := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '[' || c == '{'):
			d++
			most = max(most, d)
		case !inStr && (c == ']' || c == '}'):
			d--
		}
	}
	return most
}

var oracleSeeds = append(jsonlSeeds[:len(jsonlSeeds):len(jsonlSeeds)],
	`{"index":0,"time":1,"process":0,"type":"ok","f":"assign","value":["0",-3,123456789012345678901234567890]}`,
	`{"index":0,"time":1,"process":0,"type":"ok","f":"send","value":[["send","k",[9223372036854775807,9223372036854775808]]]}`,
	`{"index":0,"time":1,"process":0,"type":"ok","f":"poll","value":[["poll",{"a":[[null,"x"],[1,-0]],"b":[]}]],"x":[1,{"y":null}]}`,
	`{"index":0,"time":1,"process":0,"type":"ok","f":"poll","value":[["poll",{"a":[],"a":[]}]]}`,
	`{"index":0,"time":1,"process":0,"type":"ok","f":"send","value":[["send","k","\ud83d\ude00\u00e9\\\"\/"]]}`,
	`{"index":0,"time":1,"process":0,"type":"ok","f":"kill","value":[],"rebalance-log":[{"keys":[1,"a"],"keys":[2]},{}]}`,
	`{"index":0,"time":1e0,"process":0,"type":"ok","f":"x"}`,
	`{"index":0,"time":1,"process":0,"type":"ok","f":"committed","group":"g","value":{"0":null,"1":2,"0x":-0}}`,
	`{"index":0,"time":1,"process":0,"type":"ok","f":"commit","group":null,"value":{"1":2,"1":3}}`,
	`{"index":0,"time":1,"process":0,"type":"invoke","f":"committed","value":[1,"2"],"group":"a","group":"b"}`,
	`{"index":0,"time":1,"process":0,"type":"ok","f":"poll","rebalance-log":[{"type":"lost","keys":[1],"type":"assigned"},{"type":1}]}`,
	"{\"index\":0,\"time\":1,\"process\":0,\"type\":\"ok\",\"f\":\"x\",\"node\":\"\xff\"}",
)

// FuzzDecoderOracle: the hand-written decoder and the oracle accept the
// same lines and decode them to the same op.
func FuzzDecoderOracle(f *testing.F) {
	for _, s := range oracleSeeds {
		for _, line := range bytes.Split([]byte(s), []byte("\n")) {
			f.Add(line)
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		line = bytes.TrimRight(line, "\r\n")
		if bytes.ContainsAny(line, "\n") {
			return // one line at a time
		}
		if d := depth(line); d > maxDepth-5 {
			return // both refuse very deep values, at slightly different depths
		}
		var got Op
		err := newDecoder().decodeOp(line, &got)
		want, refErr := refDecode(line)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("%q:\ndecoder error: %v\noracle error:  %v", line, err, refErr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Fatalf("%q decodes differently:\ndecoder %#v\noracle  %#v", line, got, want)
		}
	})
}

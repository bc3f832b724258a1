package histories

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds how deeply a value may nest (a nemesis description): a
// recursive scanner must not be made to exhaust the stack by a hostile line.
const maxDepth = 1000

// Limits of the decoder's caches. Interning keeps a 1M-op history from
// holding a million copies of "send" and "3"; the cap keeps a history with
// unique strings (say, error messages) from growing the table forever.
const (
	internMax     = 1 << 14
	internLenMax  = 64
	slabMops      = 4096
	slabRecords   = 8192
	snippetLenMax = 40
)

// decoder parses history lines. It is a small hand-written JSON scanner for
// the history schema: it parses micro-operations straight into [Mop] values
// without building a generic tree, interns repeated strings, and carves
// []Mop and []Record from shared slabs, so decoding costs a few allocations
// per op. One decoder serves one reader; it is not safe for concurrent use.
type decoder struct {
	b []byte // the line being parsed
	i int    // the scanner's position in b

	intern  map[string]string
	ar      *arena // where decoded micro-ops, records and poll maps live
	mopTmp  []Mop
	recTmp  []Record
	scratch []byte // unescaped string bytes
	textTmp []byte // a message value's canonical text

	noColumns bool // leave columns out of errors (the text is not the user's)
}

func newDecoder() *decoder {
	return &decoder{intern: make(map[string]string, 64), ar: new(arena)}
}

// mem is the decoder's arena (a zero decoder makes its own).
func (d *decoder) mem() *arena {
	if d.ar == nil {
		d.ar = new(arena)
	}
	return d.ar
}

// arena holds the memory of decoded ops: their micro-ops, records and poll
// maps. A reader that keeps the ops gives each decoder an arena of its own
// that only grows; one that converts them and lets them go (into a
// History) gives each block of lines an arena and reuses it, memory and
// maps, once the block has been converted, so that reading a history
// allocates little more than the History itself.
type arena struct {
	mops  slab[Mop]
	recs  slab[Record]
	maps  []map[string][]Record // handed out since the last reset (reuse only)
	used  int
	reuse bool
}

// reset makes everything the arena handed out free again; the caller no
// longer uses it.
func (a *arena) reset() {
	a.mops.reset()
	a.recs.reset()
	a.used = 0
}

// pollMap returns an empty map for a poll's result.
func (a *arena) pollMap() map[string][]Record {
	if !a.reuse {
		return make(map[string][]Record, 1)
	}
	if a.used < len(a.maps) {
		m := a.maps[a.used]
		a.used++
		clear(m)
		return m
	}
	m := make(map[string][]Record, 1)
	a.maps = append(a.maps, m)
	a.used++
	return m
}

// Bits of decodeOp's record of which fields it has seen.
const (
	seenIndex = 1 << iota
	seenTime
	seenProcess
	seenType
	seenF
	seenValue
	seenNode
	seenError
	seenRebalance
	seenGroup
)

var fieldNames = [...]string{"index", "time", "process", "type", "f", "value", "node", "error", "rebalance-log", "group"}

// decodeOp parses one history line into op. It checks the line against the
// schema but not against its neighbours (index order is the reader's job).
func (d *decoder) decodeOp(line []byte, op *Op) error {
	*op = Op{}
	d.b, d.i = line, 0
	d.ws()
	if d.peek() != '{' {
		if d.i >= len(d.b) {
			return errors.New("want a JSON object, got an empty line")
		}
		return d.errf("want a JSON object starting with '{', got %s", d.snippetAt(d.i))
	}
	d.i++
	var seen uint
	var (
		valueStart, valueEnd int
		valueDone            bool  // Mops parsed in the first pass
		mopErr               error // why the first pass failed, if it did
	)
	for more := d.open('}'); more; {
		if d.peek() != '"' {
			return d.errf("want a field name in quotes, got %s", d.snippetAt(d.i))
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		bit := 0
		switch string(key) {
		case "index":
			bit = seenIndex
		case "time":
			bit = seenTime
		case "process":
			bit = seenProcess
		case "type":
			bit = seenType
		case "f":
			bit = seenF
		case "value":
			bit = seenValue
		case "node":
			bit = seenNode
		case "error":
			bit = seenError
		case "rebalance-log":
			bit = seenRebalance
		case "group":
			bit = seenGroup
		}
		if bit != 0 && seen&uint(bit) != 0 {
			return fmt.Errorf("field %q appears twice", string(key))
		}
		seen |= uint(bit)
		if err := d.expect(':', "after field name"); err != nil {
			return err
		}
		switch bit {
		case seenIndex:
			op.Index, err = d.integer("index")
		case seenTime:
			op.Time, err = d.integer("time")
		case seenProcess:
			op.Process, err = d.integer("process")
		case seenType:
			err = d.opType(op)
		case seenF:
			err = d.opF(op)
		case seenValue:
			valueStart = d.i
			// A list is tried as micro-ops unless f, when it came first,
			// says it cannot be (an assign's keys, a nemesis value): a
			// failed try costs an error message.
			if d.peek() == '[' && !isOffsetsF(op.F) && (op.F == "" || isMopF(op.F) || d.mopsAhead()) {
				var mops []Mop
				mops, mopErr = d.mopList()
				if mopErr == nil {
					op.Value.Mops, valueDone = mops, true
				} else {
					d.i = valueStart
					err = d.skipValue(0)
				}
			} else {
				err = d.skipValue(0)
			}
			valueEnd = d.i
		case seenNode:
			op.Node, err = d.optString("node")
		case seenError:
			op.Error, err = d.optString("error")
		case seenRebalance:
			op.RebalanceLog, err = d.rebalanceLog()
		case seenGroup:
			op.Group, err = d.optString("group")
		default:
			err = d.skipValue(0) // unknown fields are allowed and ignored
		}
		if err != nil {
			if bit == 0 {
				return err
			}
			return fmt.Errorf("field %q: %w", fieldNames[bitIndex(bit)], err)
		}
		if more, err = d.next('}', "after a field"); err != nil {
			return err
		}
	}
	d.ws()
	if d.i < len(d.b) {
		return d.errf("unexpected data after the object: %s", d.snippetAt(d.i))
	}
	for _, bit := range []int{seenIndex, seenTime, seenProcess, seenType, seenF} {
		if seen&uint(bit) == 0 {
			return fmt.Errorf("field %q is missing", fieldNames[bitIndex(bit)])
		}
	}
	if op.Index < 0 {
		return fmt.Errorf("field \"index\": want a non-negative integer, got %d", op.Index)
	}
	if seen&seenValue == 0 {
		return nil
	}
	if err := d.resolveValue(op, d.b[valueStart:valueEnd], valueDone, mopErr); err != nil {
		return fmt.Errorf("field \"value\": %w", err)
	}
	return nil
}

func bitIndex(bit int) int {
	n := 0
	for bit > 1 {
		bit >>= 1
		n++
	}
	return n
}

// mopsAhead reports whether the list at d.i may be micro-ops: empty, or
// its first element a list.
func (d *decoder) mopsAhead() bool {
	for i := d.i + 1; i < len(d.b); i++ {
		switch d.b[i] {
		case ' ', '\t', '\r', '\n':
			continue
		case '[', ']':
			return true
		}
		return false
	}
	return false
}

// isMopF reports whether f's value must be a list of micro-operations.
func isMopF(f string) bool { return f == FSend || f == FPoll || f == FTxn }

// isKeysF reports whether f's value is a list of keys.
func isKeysF(f string) bool { return f == FAssign || f == FSubscribe }

// isOffsetsF reports whether f's value is a group's offsets (a committed's
// invocation: the keys it asks for).
func isOffsetsF(f string) bool { return f == FCommit || f == FCommitted }

// decodeValue decodes a value alone (json, for op.F) into op.Value, by the
// rules of a history line's value. The EDN importer uses it.
func (d *decoder) decodeValue(op *Op, json []byte) error {
	d.b, d.i = json, 0
	done, mopErr := false, error(nil)
	if d.peek() == '[' && !isOffsetsF(op.F) {
		var mops []Mop
		if mops, mopErr = d.mopList(); mopErr == nil {
			op.Value.Mops, done = mops, true
		}
	}
	if !done {
		d.i = 0
		if err := d.skipValue(0); err != nil {
			return err
		}
	}
	if d.ws(); d.i != len(d.b) {
		return d.errf("unexpected data after the value: %s", d.snippetAt(d.i))
	}
	return d.resolveValue(op, json, done, mopErr)
}

// resolveValue decides the form of a value once f is known (f may follow
// value on the line). The rules, by content:
//   - null is the empty Value;
//   - a list of micro-operations (each a list starting with "send" or
//     "poll") is Mops, whatever f is;
//   - for send, poll and txn anything else is an error, and [] is an empty
//     Mops;
//   - for assign and subscribe a list of strings or integers is Keys;
//   - for commit an object of keys to offsets (integers >= 0) is Offsets,
//     and anything else an error; for committed, a list of keys is Keys
//     and an object of keys to offsets or null is Offsets, anything else
//     an error (see offsetsValue);
//   - everything else is Raw, compacted.
func (d *decoder) resolveValue(op *Op, span []byte, mopsDone bool, mopErr error) error {
	if isOffsetsF(op.F) {
		op.Value = Value{}
		return d.offsetsValue(op, span)
	}
	if mopsDone {
		if len(op.Value.Mops) > 0 || isMopF(op.F) {
			return nil
		}
		op.Value.Mops = nil // [] is not a mop list unless f says so
	} else if bytes.Equal(span, []byte("null")) {
		return nil
	}
	if isMopF(op.F) {
		if mopErr != nil {
			return mopErr
		}
		return fmt.Errorf("a %s's value must be a list of micro-operations or null, got %s", op.F, snippet(span))
	}
	if isKeysF(op.F) && len(span) > 0 && span[0] == '[' {
		if keys, ok := d.keyList(span); ok {
			op.Value.Keys = keys
			return nil
		}
	}
	var buf bytes.Buffer
	buf.Grow(len(span))
	if err := json.Compact(&buf, span); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	op.Value.Raw = buf.Bytes()
	return nil
}

// offsetsValue decodes the value of a commit or committed, span: null;
// for committed a list of keys (the invocation); an object {"3": 89}
// whose keys are distinct and whose offsets are integers >= 0, or, for a
// committed, null (no committed offset).
func (d *decoder) offsetsValue(op *Op, span []byte) error {
	if bytes.Equal(span, []byte("null")) {
		return nil
	}
	if op.F == FCommitted && span[0] == '[' {
		keys, ok := d.keyList(span)
		if !ok {
			return fmt.Errorf("a committed's value must be a list of keys, an object of offsets or null, got %s", snippet(span))
		}
		op.Value.Keys = keys
		return nil
	}
	if span[0] != '{' {
		if op.F == FCommitted {
			return fmt.Errorf("a committed's value must be a list of keys, an object of offsets or null, got %s", snippet(span))
		}
		return fmt.Errorf("a commit's value must be an object of offsets {\"key\": offset, ...}, got %s", snippet(span))
	}
	saveB, saveI := d.b, d.i
	defer func() { d.b, d.i = saveB, saveI }()
	d.b, d.i = span, 1
	out := []KeyOffset{}
	for more := d.open('}'); more; {
		if d.peek() != '"' {
			return d.errf("want a key in quotes, got %s", d.snippetAt(d.i))
		}
		kb, err := d.str()
		if err != nil {
			return err
		}
		k := d.internBytes(kb)
		for _, e := range out {
			if e.Key == k {
				return fmt.Errorf("offsets have key %q twice", k)
			}
		}
		if err := d.expect(':', "after a key"); err != nil {
			return err
		}
		ko := KeyOffset{Key: k}
		switch {
		case d.lit("null"):
			if op.F == FCommit {
				return fmt.Errorf("offset of key %q: a commit's offsets are integers >= 0, got null", k)
			}
			ko.Offset = OffsetUnknown
		default:
			if ko.Offset, err = d.integer("offset"); err != nil {
				return fmt.Errorf("offset of key %q: %w", k, err)
			}
			if ko.Offset < 0 {
				return fmt.Errorf("offset of key %q: want an integer >= 0 or null, got %d", k, ko.Offset)
			}
		}
		out = append(out, ko)
		if more, err = d.next('}', "in the offsets"); err != nil {
			return err
		}
	}
	op.Value.Offsets = out
	return nil
}

// keyList parses span as a list of keys: strings, or integers taken as
// their decimal text (Jepsen's keys are integers).
func (d *decoder) keyList(span []byte) ([]string, bool) {
	saveB, saveI := d.b, d.i
	defer func() { d.b, d.i = saveB, saveI }()
	d.b, d.i = span, 1
	keys := []string{}
	for more := d.open(']'); more; {
		k, err := d.key()
		if err != nil {
			return nil, false // not keys: the caller keeps the value as Raw
		}
		keys = append(keys, k)
		if more, err = d.next(']', "in a list"); err != nil {
			return nil, false
		}
	}
	return keys, true
}

// key parses a key: a string, or an integer taken verbatim as its decimal
// text.
func (d *decoder) key() (string, error) {
	switch c := d.peek(); {
	case c == '"':
		s, err := d.str()
		if err != nil {
			return "", err
		}
		return d.internBytes(s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.i
		if err := d.intText(); err != nil {
			return "", err
		}
		return d.internBytes(d.b[start:d.i]), nil
	}
	return "", d.errf("want a key (a string or an integer), got %s", d.snippetAt(d.i))
}

func (d *decoder) opType(op *Op) error {
	if d.peek() != '"' {
		return d.errf("want invoke, ok, fail or info, got %s", d.snippetAt(d.i))
	}
	s, err := d.str()
	if err != nil {
		return err
	}
	switch string(s) {
	case "invoke":
		op.Type = Invoke
	case "ok":
		op.Type = OK
	case "fail":
		op.Type = Fail
	case "info":
		op.Type = Info
	default:
		return fmt.Errorf("want invoke, ok, fail or info, got %q", s)
	}
	return nil
}

func (d *decoder) opF(op *Op) error {
	if d.peek() != '"' {
		return d.errf("want a string, got %s", d.snippetAt(d.i))
	}
	s, err := d.str()
	if err != nil {
		return err
	}
	if len(s) == 0 {
		return errors.New("want a function name, got \"\"")
	}
	op.F = d.internBytes(s)
	return nil
}

// optString parses an optional string field: a string, or null for none.
func (d *decoder) optString(field string) (string, error) {
	if d.lit("null") {
		return "", nil
	}
	if d.peek() != '"' {
		return "", d.errf("want a string or null, got %s", d.snippetAt(d.i))
	}
	s, err := d.str()
	if err != nil {
		return "", err
	}
	return d.internBytes(s), nil
}

// mopList parses a list of micro-operations. It fails on anything else,
// after which the caller rescans the value generically.
func (d *decoder) mopList() ([]Mop, error) {
	d.i++ // '['
	d.mopTmp = d.mopTmp[:0]
	for more := d.open(']'); more; {
		m, err := d.mop()
		if err != nil {
			return nil, fmt.Errorf("micro-op %d: %w", len(d.mopTmp), err)
		}
		d.mopTmp = append(d.mopTmp, m)
		if more, err = d.next(']', "after a micro-op"); err != nil {
			return nil, err
		}
	}
	if len(d.mopTmp) == 0 {
		// Not a slab copy, which may be nil: [] must stay an empty,
		// non-nil list, which encodes as [] and not as null.
		return []Mop{}, nil
	}
	return d.mem().mops.copyOf(d.mopTmp, slabMops, d.ar.reuse), nil
}

func (d *decoder) mop() (Mop, error) {
	var m Mop
	if d.peek() != '[' {
		return m, d.errf("want a micro-op like [\"send\", key, value] or [\"poll\"], got %s", d.snippetAt(d.i))
	}
	d.i++
	d.ws()
	if d.peek() != '"' {
		return m, d.errf("want \"send\" or \"poll\" first, got %s", d.snippetAt(d.i))
	}
	f, err := d.str()
	if err != nil {
		return m, err
	}
	switch string(f) {
	case "send":
		m.F = MopSend
		if err := d.expect(',', "before the send's key"); err != nil {
			return m, err
		}
		if m.Key, err = d.key(); err != nil {
			return m, fmt.Errorf("send key: %w", err)
		}
		if err := d.expect(',', "before the send's value"); err != nil {
			return m, err
		}
		if d.peek() == '[' {
			d.i++
			d.ws()
			if d.lit("null") {
				m.Offset = OffsetUnknown
			} else {
				if m.Offset, err = d.integer("offset"); err != nil {
					return m, fmt.Errorf("send offset: %w", err)
				}
				if m.Offset < 0 {
					return m, fmt.Errorf("send offset: want null or a non-negative integer, got %d", m.Offset)
				}
			}
			if err := d.expect(',', "before the send's value"); err != nil {
				return m, err
			}
			if m.Value, m.Text, err = d.message(); err != nil {
				return m, fmt.Errorf("send value: %w", err)
			}
			if err := d.expect(']', "after [offset, value]"); err != nil {
				return m, err
			}
		} else {
			m.Offset = OffsetPending
			if m.Value, m.Text, err = d.message(); err != nil {
				return m, fmt.Errorf("send value: %w", err)
			}
		}
	case "poll":
		m.F = MopPoll
		d.ws()
		if d.peek() == ']' {
			break
		}
		if err := d.expect(',', "before the poll's result"); err != nil {
			return m, err
		}
		if m.Polls, err = d.pollMap(); err != nil {
			return m, err
		}
	default:
		return m, fmt.Errorf("want \"send\" or \"poll\" first, got %q", f)
	}
	if err := d.expect(']', "at the end of the micro-op"); err != nil {
		return m, err
	}
	return m, nil
}

// pollMap parses a poll's result: {"key": [[offset, value], ...], ...}.
func (d *decoder) pollMap() (map[string][]Record, error) {
	if d.peek() != '{' {
		return nil, d.errf("want the poll's result {key: [[offset, value], ...]}, got %s", d.snippetAt(d.i))
	}
	d.i++
	polls := d.mem().pollMap()
	for more := d.open('}'); more; {
		if d.peek() != '"' {
			return nil, d.errf("want a key in quotes, got %s", d.snippetAt(d.i))
		}
		kb, err := d.str()
		if err != nil {
			return nil, err
		}
		k := d.internBytes(kb)
		if _, dup := polls[k]; dup {
			return nil, fmt.Errorf("poll result has key %q twice", k)
		}
		if err := d.expect(':', "after a key"); err != nil {
			return nil, err
		}
		recs, err := d.records()
		if err != nil {
			return nil, fmt.Errorf("poll of key %q: %w", k, err)
		}
		polls[k] = recs
		if more, err = d.next('}', "in the poll's result"); err != nil {
			return nil, err
		}
	}
	return polls, nil
}

// records parses [[offset, value], ...].
func (d *decoder) records() ([]Record, error) {
	if d.peek() != '[' {
		return nil, d.errf("want a list of [offset, value], got %s", d.snippetAt(d.i))
	}
	d.i++
	d.recTmp = d.recTmp[:0]
	for more := d.open(']'); more; {
		if d.peek() != '[' {
			return nil, d.errf("want [offset, value], got %s", d.snippetAt(d.i))
		}
		d.i++
		d.ws()
		var r Record
		var err error
		if d.lit("null") {
			r.Offset = OffsetUnknown
		} else if r.Offset, err = d.integer("offset"); err != nil {
			return nil, fmt.Errorf("record %d offset: %w", len(d.recTmp), err)
		} else if r.Offset < 0 {
			return nil, fmt.Errorf("record %d: offset %d is negative", len(d.recTmp), r.Offset)
		}
		if err := d.expect(',', "before the record's value"); err != nil {
			return nil, err
		}
		if r.Value, r.Text, err = d.message(); err != nil {
			return nil, fmt.Errorf("record %d value: %w", len(d.recTmp), err)
		}
		if err := d.expect(']', "after [offset, value]"); err != nil {
			return nil, err
		}
		d.recTmp = append(d.recTmp, r)
		if more, err = d.next(']', "between records"); err != nil {
			return nil, err
		}
	}
	if len(d.recTmp) == 0 {
		return nil, nil // an empty list is no records: nil
	}
	return d.mem().recs.copyOf(d.recTmp, slabRecords, d.ar.reuse), nil
}

// message parses a message value: an integer into n, or any other scalar
// (a string, null, true, false, a number that is not an int64) into text,
// as its canonical JSON text. Values are compared for equality only, so a
// string is re-escaped the one way appendJSONString writes it.
func (d *decoder) message() (n int64, text string, err error) {
	switch c := d.peek(); {
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.i
		if n, err = d.integer("value"); err == nil {
			return n, "", nil
		}
		d.i = start
		if err := d.number(); err != nil {
			return 0, "", err
		}
		return 0, d.internBytes(d.b[start:d.i]), nil
	case c == '"':
		s, err := d.str()
		if err != nil {
			return 0, "", err
		}
		d.textTmp = appendJSONString(d.textTmp[:0], string(s))
		return 0, d.internBytes(d.textTmp), nil
	case d.lit("null"):
		return 0, "null", nil
	case d.lit("true"):
		return 0, "true", nil
	case d.lit("false"):
		return 0, "false", nil
	}
	return 0, "", d.errf("want a value (an integer, a string or null), got %s", d.snippetAt(d.i))
}

// rebalanceLog parses Jepsen's :rebalance-log: null, or a list of objects
// whose "keys" field lists the keys the rebalance moved and whose "type"
// (a string or null) says how (other fields are skipped).
func (d *decoder) rebalanceLog() ([]Rebalance, error) {
	if d.lit("null") {
		return nil, nil
	}
	if d.peek() != '[' {
		return nil, d.errf("want a list of {\"keys\": [...]}, got %s", d.snippetAt(d.i))
	}
	d.i++
	log := []Rebalance{}
	for more := d.open(']'); more; {
		if d.peek() != '{' {
			return nil, d.errf("want a rebalance {\"keys\": [...]}, got %s", d.snippetAt(d.i))
		}
		d.i++
		rb := Rebalance{Keys: []string{}} // an entry without keys holds none
		for more := d.open('}'); more; {
			if d.peek() != '"' {
				return nil, d.errf("want a field name in quotes, got %s", d.snippetAt(d.i))
			}
			name, err := d.str()
			if err != nil {
				return nil, err
			}
			isKeys, isType := string(name) == "keys", string(name) == "type"
			if err := d.expect(':', "after a field name"); err != nil {
				return nil, err
			}
			if isType {
				if rb.Type, err = d.optString("type"); err != nil {
					return nil, fmt.Errorf("rebalance %d: \"type\": %w", len(log), err)
				}
			} else if isKeys {
				start := d.i
				if err := d.skipValue(0); err != nil {
					return nil, err
				}
				keys, ok := d.keyList(d.b[start:d.i])
				if !ok {
					return nil, fmt.Errorf("rebalance %d: \"keys\": want a list of keys, got %s", len(log), snippet(d.b[start:d.i]))
				}
				rb.Keys = keys
			} else if err := d.skipValue(0); err != nil {
				return nil, err
			}
			if more, err = d.next('}', "in a rebalance"); err != nil {
				return nil, err
			}
		}
		log = append(log, rb)
		var err error
		if more, err = d.next(']', "in the rebalance log"); err != nil {
			return nil, err
		}
	}
	return log, nil
}

// slab hands out copies of short slices carved from shared chunks, so that
// a million one-mop ops cost a few hundred allocations rather than a
// million.
type slab[T any] struct {
	free  []T // what is left of the current chunk
	chunk int // the next chunk's size
	// chunks are the chunks handed out since the last reset, and next the
	// one to use after the current, when the slab is reused.
	chunks [][]T
	next   int
}

// copyOf returns a copy of s from the slab; chunks grow to at most
// maxChunk elements. The copy's capacity is len(s): appending to it never
// scribbles on a neighbour. With reuse, chunks handed out before the last
// reset are filled again.
func (sl *slab[T]) copyOf(s []T, maxChunk int, reuse bool) []T {
	n := len(s)
	if n > len(sl.free) {
		switch {
		case reuse && sl.next < len(sl.chunks) && len(sl.chunks[sl.next]) >= n:
			sl.free = sl.chunks[sl.next]
			sl.next++
		default:
			// Chunks start small and double, so that decoding one op (as
			// Op.UnmarshalJSON does) costs little.
			sl.chunk = min(max(2*sl.chunk, 8), maxChunk)
			sl.free = make([]T, max(sl.chunk, n))
			if reuse {
				if sl.next < len(sl.chunks) {
					sl.chunks[sl.next] = sl.free // a bigger one in its place
				} else {
					sl.chunks = append(sl.chunks, sl.free)
				}
				sl.next++
			}
		}
	}
	c := sl.free[:n:n]
	sl.free = sl.free[n:]
	copy(c, s)
	return c
}

// reset makes every chunk free for reuse.
func (sl *slab[T]) reset() {
	sl.free, sl.next = nil, 0
}

// internBytes returns b as a string, sharing one copy of short strings that
// repeat (f, keys, nodes, common errors).
func (d *decoder) internBytes(b []byte) string {
	if len(b) > internLenMax {
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.intern != nil && len(d.intern) < internMax {
		d.intern[s] = s
	}
	return s
}

// --- scanner primitives ---

// open and next are the one loop over the elements of every list and
// object of the schema, so that all take whitespace alike and report a
// missing separator alike:
//
//	for more := d.open(']'); more; {
//		// parse an element, which starts at d.i
//		if more, err = d.next(']', "in a list"); err != nil {
//			return err
//		}
//	}
//
// (A helper taking the element as a func would read better, but costs the
// decoder's hot loops a closure call per field and per micro-op.)

// open starts a list or object whose opening bracket has been consumed: it
// reports whether an element follows, and consumes closer if none does.
func (d *decoder) open(closer byte) bool {
	d.ws()
	if d.peek() == closer {
		d.i++
		return false
	}
	return true
}

// next consumes what follows an element: ',' before another (true) or
// closer at the end (false). where says, in the error for anything else,
// where that was ("in a list").
func (d *decoder) next(closer byte, where string) (bool, error) {
	d.ws()
	switch d.peek() {
	case ',':
		d.i++
		d.ws()
		return true, nil
	case closer:
		d.i++
		return false, nil
	}
	return false, d.errf("want ',' or '%c' %s, got %s", closer, where, d.snippetAt(d.i))
}

// expect consumes c and the whitespace around it, or fails saying where c
// should have been ("before the send's value").
func (d *decoder) expect(c byte, where string) error {
	d.ws()
	if d.peek() != c {
		return d.errf("want '%c' %s, got %s", c, where, d.snippetAt(d.i))
	}
	d.i++
	d.ws()
	return nil
}

func (d *decoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
		default:
			return
		}
	}
}

// lit consumes the literal word s (null, true, false) if it is next.
func (d *decoder) lit(s string) bool {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

func (d *decoder) errf(format string, args ...any) error {
	if d.noColumns {
		return fmt.Errorf(format, args...)
	}
	return fmt.Errorf("column %d: %s", d.i+1, fmt.Sprintf(format, args...))
}

// snippetAt quotes the text at position i for an error message, or says the
// line ended.
func (d *decoder) snippetAt(i int) string {
	if i >= len(d.b) {
		return "end of line"
	}
	return snippet(d.b[i:])
}

func snippet(b []byte) string {
	if len(b) > snippetLenMax {
		return fmt.Sprintf("%q…", b[:snippetLenMax])
	}
	return fmt.Sprintf("%q", b)
}

// integer parses a JSON integer that fits in an int64. what names it in
// errors.
func (d *decoder) integer(what string) (int64, error) {
	start := d.i
	neg := false
	if d.peek() == '-' {
		neg = true
		d.i++
	}
	digits := d.i
	var n uint64
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
		d.i++
	}
	nd := d.i - digits
	if nd == 0 {
		d.i = start
		return 0, d.errf("want an integer, got %s", d.snippetAt(start))
	}
	if c := d.peek(); c == '.' || c == 'e' || c == 'E' {
		d.i = start
		return 0, d.errf("want an integer, got %s", d.numberText(start))
	}
	if nd > 1 && d.b[digits] == '0' {
		d.i = start
		return 0, d.errf("invalid number %s: leading zero", d.numberText(start))
	}
	// 19 digits always fit in a uint64; more may not, and do not fit an
	// int64 anyway.
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	if nd > 19 || n > limit {
		d.i = start
		return 0, d.errf("integer %s does not fit in 64 bits", d.numberText(start))
	}
	if neg {
		return -int64(n), nil
	}
	return int64(n), nil
}

// numberText returns the number-like text at start for an error message.
func (d *decoder) numberText(start int) string {
	end := start
	for end < len(d.b) && end-start < snippetLenMax {
		c := d.b[end]
		if !(c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' || (c >= '0' && c <= '9')) {
			break
		}
		end++
	}
	return string(d.b[start:end])
}

// intText consumes a JSON integer of any size, for keys.
func (d *decoder) intText() error {
	start := d.i
	if d.peek() == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == digits {
		d.i = start
		return d.errf("want an integer, got %s", d.snippetAt(start))
	}
	if d.i-digits > 1 && d.b[digits] == '0' {
		d.i = start
		return d.errf("invalid number %s: leading zero", d.numberText(start))
	}
	if c := d.peek(); c == '.' || c == 'e' || c == 'E' {
		d.i = start
		return d.errf("want an integer, got %s", d.numberText(start))
	}
	return nil
}

// number consumes any JSON number, checking its grammar.
func (d *decoder) number() error {
	start := d.i
	if d.peek() == '-' {
		d.i++
	}
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
		}
	default:
		d.i = start
		return d.errf("invalid number %s", d.snippetAt(start))
	}
	if d.peek() == '.' {
		d.i++
		n := d.i
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			d.i = start
			return d.errf("invalid number %s: no digits after '.'", d.numberText(start))
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		n := d.i
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			d.i = start
			return d.errf("invalid number %s: no digits in the exponent", d.numberText(start))
		}
	}
	return nil
}

// skipValue consumes any JSON value, checking that it is well formed.
func (d *decoder) skipValue(depth int) error {
	if depth > maxDepth {
		return d.errf("value nests deeper than %d levels", maxDepth)
	}
	switch c := d.peek(); {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{':
		d.i++
		for more := d.open('}'); more; {
			if d.peek() != '"' {
				return d.errf("want an object key in quotes, got %s", d.snippetAt(d.i))
			}
			if _, err := d.str(); err != nil {
				return err
			}
			if err := d.expect(':', "after an object key"); err != nil {
				return err
			}
			if err := d.skipValue(depth + 1); err != nil {
				return err
			}
			var err error
			if more, err = d.next('}', "in an object"); err != nil {
				return err
			}
		}
		return nil
	case c == '[':
		d.i++
		for more := d.open(']'); more; {
			if err := d.skipValue(depth + 1); err != nil {
				return err
			}
			var err error
			if more, err = d.next(']', "in a list"); err != nil {
				return err
			}
		}
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case d.lit("true"), d.lit("false"), d.lit("null"):
		return nil
	}
	return d.errf("want a JSON value, got %s", d.snippetAt(d.i))
}

// str consumes a JSON string and returns its contents. The result aliases
// the line when the string has no escapes and d.scratch otherwise; either
// way it is valid only until the next call. Invalid UTF-8 is an error: two
// keys that differ only in bytes that are not text must not be read as one
// (encoding/json would turn both into U+FFFD). Unpaired surrogates in \u
// escapes, which are valid JSON, become U+FFFD as in encoding/json.
func (d *decoder) str() ([]byte, error) {
	d.i++ // '"'
	start := d.i
	ascii := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if ascii || utf8.Valid(s) {
				return s, nil
			}
			d.i = start
			return d.strSlow()
		case c == '\\':
			d.i = start
			return d.strSlow()
		case c < 0x20:
			return nil, d.errf("control character %q in a string must be escaped", c)
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.i++
	}
	return nil, d.errf("string is not terminated before the end of the line")
}

// strSlow decodes a string with escapes or invalid UTF-8 into d.scratch.
func (d *decoder) strSlow() ([]byte, error) {
	out := d.scratch[:0]
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			d.scratch = out
			return out, nil
		case c < 0x20:
			return nil, d.errf("control character %q in a string must be escaped", c)
		case c == '\\':
			d.i++
			if d.i >= len(d.b) {
				return nil, d.errf("string is not terminated before the end of the line")
			}
			e := d.b[d.i]
			d.i++
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(d.b[d.i:])
				if !ok {
					return nil, d.errf("invalid \\u escape in a string")
				}
				d.i += 4
				if utf16.IsSurrogate(r) {
					var n int
					r, n = pairSurrogate(r, d.b[d.i:])
					d.i += n
				}
				out = utf8.AppendRune(out, r)
			default:
				return nil, d.errf("invalid escape '\\%c' in a string", e)
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			d.i++
		default:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, d.errf("invalid UTF-8 in a string: byte %#02x is not text", d.b[d.i])
			}
			out = append(out, d.b[d.i:d.i+size]...)
			d.i += size
		}
	}
	d.scratch = out
	return nil, d.errf("string is not terminated before the end of the line")
}

// hex4 decodes the four hex digits that start b, as in a \u escape (of
// JSON or EDN).
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// pairSurrogate completes the UTF-16 surrogate r, just read from a \u
// escape, with the \u escape that starts rest, if that escape is its other
// half. It returns the rune and the bytes of rest it used. An unpaired
// surrogate is U+FFFD and uses nothing: the next escape stands alone. JSON
// and EDN strings both take surrogates this way.
func pairSurrogate(r rune, rest []byte) (rune, int) {
	if len(rest) >= 2 && rest[0] == '\\' && rest[1] == 'u' {
		if lo, ok := hex4(rest[2:]); ok {
			if r2 := utf16.DecodeRune(r, lo); r2 != utf8.RuneError {
				return r2, 6
			}
		}
	}
	return utf8.RuneError, 0
}

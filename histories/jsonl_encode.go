package histories

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// AppendOp appends op as one JSON line of history.jsonl, without the
// trailing newline, to dst and returns the extended slice.
//
// It writes the fields in the documented order (index, time, process, type,
// f, group, value, node, error, rebalance-log) and leaves out group, node,
// error and rebalance-log when they are empty. It refuses ops that a
// [Reader] would refuse, so that whatever a [Writer] wrote can always be
// read back: an unknown type, an empty f, more than one field of the value
// set, a value of the wrong form for f (see [CheckValueForm]), a
// micro-op that is neither send nor poll, a negative send offset other than
// [OffsetPending] or [OffsetUnknown], and a Raw value that is not valid
// JSON. On error dst is returned unchanged in length.
//
// AppendOp uses no reflection: a harness records every operation through it.
func AppendOp(dst []byte, op *Op) ([]byte, error) {
	mark := len(dst)
	if err := checkOp(op); err != nil {
		return dst, err
	}
	dst = append(dst, `{"index":`...)
	dst = strconv.AppendInt(dst, op.Index, 10)
	dst = append(dst, `,"time":`...)
	dst = strconv.AppendInt(dst, op.Time, 10)
	dst = append(dst, `,"process":`...)
	dst = strconv.AppendInt(dst, op.Process, 10)
	dst = append(dst, `,"type":"`...)
	dst = append(dst, op.Type...) // valid types need no escaping
	dst = append(dst, `","f":`...)
	dst = appendJSONString(dst, op.F)
	if op.Group != "" {
		dst = append(dst, `,"group":`...)
		dst = appendJSONString(dst, op.Group)
	}
	dst = append(dst, `,"value":`...)
	var err error
	dst, err = appendValue(dst, &op.Value, &jsonNotation)
	if err != nil {
		return dst[:mark], fmt.Errorf("histories: op index %d: value: %w", op.Index, err)
	}
	if op.Node != "" {
		dst = append(dst, `,"node":`...)
		dst = appendJSONString(dst, op.Node)
	}
	if op.Error != "" {
		dst = append(dst, `,"error":`...)
		dst = appendJSONString(dst, op.Error)
	}
	if op.RebalanceLog != nil {
		dst = append(dst, `,"rebalance-log":`...)
		dst = appendRebalanceLog(dst, op.RebalanceLog, &jsonNotation)
	}
	dst = append(dst, '}')
	return dst, nil
}

// appendRebalanceLog appends a rebalance log: [{"type": "assigned",
// "keys": [...]}, ...], the type left out when it is "".
func appendRebalanceLog(dst []byte, log []Rebalance, n *notation) []byte {
	dst = append(dst, '[')
	for i, rb := range log {
		if i > 0 {
			dst = append(dst, n.sep)
		}
		if rb.Type != "" {
			dst = append(dst, n.rebalanceType...)
			dst = n.name(dst, rb.Type)
			dst = append(dst, n.entrySep...)
			dst = append(dst, n.rebalanceKeysAfterType...)
		} else {
			dst = append(dst, n.rebalanceKeys...)
		}
		for j, k := range rb.Keys {
			if j > 0 {
				dst = append(dst, n.sep)
			}
			dst = n.key(dst, k)
		}
		dst = append(dst, "]}"...)
	}
	return append(dst, ']')
}

// checkOp refuses an op that no reader, of JSONL or of EDN, would take
// back: one of unknown type or with an empty f. The value is checked as it
// is written.
func checkOp(op *Op) error {
	if !op.Type.Valid() {
		return fmt.Errorf("histories: op index %d: type %q is not invoke, ok, fail or info", op.Index, op.Type)
	}
	if op.F == "" {
		return fmt.Errorf("histories: op index %d: f is empty", op.Index)
	}
	if err := CheckValueForm(op.F, &op.Value); err != nil {
		return fmt.Errorf("histories: op index %d: %w", op.Index, err)
	}
	return nil
}

// CheckValueForm says whether a value of f has a form a reader takes back
// as the same form: Offsets only for commit and committed, which take
// nothing else but Keys (committed) and null; a commit's offsets all
// integers >= 0, a committed's integers >= 0 or OffsetUnknown, each key
// once. It is the rule the decoder applies to a line, for values made in
// memory.
func CheckValueForm(f string, v *Value) error {
	if !isOffsetsF(f) {
		if v.Offsets != nil {
			return fmt.Errorf("a %s's value cannot be offsets: only commit and committed have them", f)
		}
		return nil
	}
	if v.Mops != nil || v.Raw != nil || (v.Keys != nil && f == FCommit) {
		return fmt.Errorf("a %s's value must be offsets (or, for committed, keys) or null", f)
	}
	for i, e := range v.Offsets {
		switch {
		case e.Offset < 0 && f == FCommit:
			return fmt.Errorf("a commit's offset of key %q is %d: want an integer >= 0", e.Key, e.Offset)
		case e.Offset < 0 && e.Offset != OffsetUnknown:
			return fmt.Errorf("a committed's offset of key %q is %d: want an integer >= 0 or OffsetUnknown", e.Key, e.Offset)
		}
		for _, o := range v.Offsets[:i] {
			if o.Key == e.Key {
				return fmt.Errorf("a %s's offsets have key %q twice", f, e.Key)
			}
		}
	}
	return nil
}

// errValueAmbiguous says a Value had more than one of its fields set.
var errValueAmbiguous = errors.New("more than one of Mops, Keys, Offsets and Raw is set")

// notation is what differs between a value written in history.jsonl and
// one written in Jepsen's history.edn: the words and punctuation. The
// structure, the order (poll keys sorted) and the checks are the same, so
// one walk, appendValue, writes both, and the two formats can never come to
// refuse different values.
type notation struct {
	null      string                                // the empty value, and a send's unknown offset
	sep       byte                                  // between the items of a list
	entrySep  string                                // between the entries of a poll's map
	keySep    byte                                  // between a poll's key and its records
	send      string                                // a send micro-op up to its key
	poll      string                                // a poll micro-op up to its first key
	pollEmpty string                                // a whole poll micro-op without a result
	key       func(dst []byte, k string) []byte     // a key, in Keys, a send or a poll
	raw       func(dst, raw []byte) ([]byte, error) // a Raw value, which is JSON
	// rebalanceKeys opens one entry of a rebalance log, up to its keys;
	// rebalanceType one with a type, up to the type, and
	// rebalanceKeysAfterType goes from after the type to the keys.
	rebalanceKeys, rebalanceType, rebalanceKeysAfterType string
	// name writes a word such as a rebalance's type (a keyword in EDN).
	name func(dst []byte, s string) []byte
	// offsetsOpen and offsetsClose enclose a group's offsets, keySep
	// between a key and its offset, entrySep between entries.
	offsetsOpen, offsetsClose string
}

// jsonNotation writes history.jsonl. Keys are always strings.
var jsonNotation = notation{
	null:      "null",
	sep:       ',',
	entrySep:  ",",
	keySep:    ':',
	send:      `["send",`,
	poll:      `["poll",{`,
	pollEmpty: `["poll"]`,
	key:       appendJSONString,
	raw:       appendRaw,

	rebalanceKeys:          `{"keys":[`,
	rebalanceType:          `{"type":`,
	rebalanceKeysAfterType: `"keys":[`,
	name:                   appendJSONString,
	offsetsOpen:            "{",
	offsetsClose:           "}",
}

// appendValue appends v in notation n: Mops, Keys or Raw, or null when all
// are empty.
func appendValue(dst []byte, v *Value, n *notation) ([]byte, error) {
	set := 0
	if v.Mops != nil {
		set++
	}
	if v.Keys != nil {
		set++
	}
	if v.Raw != nil {
		set++
	}
	if v.Offsets != nil {
		set++
	}
	if set > 1 {
		return dst, errValueAmbiguous
	}
	switch {
	case v.Mops != nil:
		return appendMops(dst, v.Mops, n)
	case v.Keys != nil:
		dst = append(dst, '[')
		for i, k := range v.Keys {
			if i > 0 {
				dst = append(dst, n.sep)
			}
			dst = n.key(dst, k)
		}
		return append(dst, ']'), nil
	case v.Offsets != nil:
		dst = append(dst, n.offsetsOpen...)
		for i, e := range v.Offsets {
			if i > 0 {
				dst = append(dst, n.entrySep...)
			}
			dst = n.key(dst, e.Key)
			dst = append(dst, n.keySep)
			if e.Offset == OffsetUnknown {
				dst = append(dst, n.null...)
			} else {
				dst = strconv.AppendInt(dst, e.Offset, 10)
			}
		}
		return append(dst, n.offsetsClose...), nil
	case v.Raw != nil:
		return n.raw(dst, v.Raw)
	}
	return append(dst, n.null...), nil
}

// appendRaw appends raw JSON compacted onto one line, after checking that it
// is valid: a history line must never be split or corrupted by a value
// somebody built by hand (say with json.MarshalIndent).
func appendRaw(dst []byte, raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return dst, errors.New("raw value is empty: use a nil Value for null")
	}
	mark := len(dst)
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, raw); err != nil {
		return dst, fmt.Errorf("raw value is not valid JSON: %w", err)
	}
	dst = buf.Bytes()
	if !utf8.Valid(dst[mark:]) {
		fixed := bytes.ToValidUTF8(dst[mark:], []byte("\uFFFD"))
		dst = append(dst[:mark], fixed...)
	}
	return dst, nil
}

func appendMops(dst []byte, mops []Mop, n *notation) ([]byte, error) {
	dst = append(dst, '[')
	for i := range mops {
		if i > 0 {
			dst = append(dst, n.sep)
		}
		var err error
		dst, err = appendMop(dst, &mops[i], n)
		if err != nil {
			return dst, fmt.Errorf("micro-op %d: %w", i, err)
		}
	}
	return append(dst, ']'), nil
}

func appendMop(dst []byte, m *Mop, n *notation) ([]byte, error) {
	switch m.F {
	case MopSend:
		dst = append(dst, n.send...)
		dst = n.key(dst, m.Key)
		dst = append(dst, n.sep)
		var err error
		switch {
		case m.Offset == OffsetPending:
			dst, err = appendMessage(dst, m.Value, m.Text, n)
		case m.Offset == OffsetUnknown || m.Offset >= 0:
			dst, err = appendPair(dst, m.Offset, m.Value, m.Text, n)
		default:
			return dst, fmt.Errorf("send offset %d is negative and neither OffsetPending nor OffsetUnknown", m.Offset)
		}
		if err != nil {
			return dst, fmt.Errorf("send value: %w", err)
		}
		return append(dst, ']'), nil
	case MopPoll:
		if m.Polls == nil {
			return append(dst, n.pollEmpty...), nil
		}
		dst = append(dst, n.poll...)
		// Sorted so that the same poll always encodes to the same bytes.
		for i, k := range sortedPollKeys(m.Polls) {
			if i > 0 {
				dst = append(dst, n.entrySep...)
			}
			dst = n.key(dst, k)
			dst = append(dst, n.keySep, '[')
			for j, r := range m.Polls[k] {
				if r.Offset < 0 && r.Offset != OffsetUnknown {
					return dst, fmt.Errorf("poll of key %q: record %d has negative offset %d", k, j, r.Offset)
				}
				if j > 0 {
					dst = append(dst, n.sep)
				}
				var err error
				if dst, err = appendPair(dst, r.Offset, r.Value, r.Text, n); err != nil {
					return dst, fmt.Errorf("poll of key %q: record %d: %w", k, j, err)
				}
			}
			dst = append(dst, ']')
		}
		return append(dst, "}]"...), nil
	}
	return dst, fmt.Errorf("f %q is neither send nor poll", m.F)
}

// appendPair appends [offset value], a send's result or a polled record;
// OffsetUnknown is null.
func appendPair(dst []byte, offset, value int64, text string, n *notation) ([]byte, error) {
	dst = append(dst, '[')
	if offset == OffsetUnknown {
		dst = append(dst, n.null...)
	} else {
		dst = strconv.AppendInt(dst, offset, 10)
	}
	dst = append(dst, n.sep)
	dst, err := appendMessage(dst, value, text, n)
	if err != nil {
		return dst, err
	}
	return append(dst, ']'), nil
}

// appendMessage appends a message value: the integer, or text, which must
// be the JSON text of a scalar (checked: a reader must take it back).
func appendMessage(dst []byte, value int64, text string, n *notation) ([]byte, error) {
	if text == "" {
		return strconv.AppendInt(dst, value, 10), nil
	}
	d := decoder{b: []byte(text), noColumns: true}
	if _, canon, err := d.message(); err != nil || d.i != len(text) || canon != text {
		return dst, fmt.Errorf("value text %q is not the canonical JSON of a string, null, true, false or a number", text)
	}
	return n.raw(dst, []byte(text))
}

// CompareKeys orders keys the way people expect partitions to be ordered:
// decimal numbers first, in numeric order ("9" before "10"), then every
// other key in string order. It is the order encoders write poll maps in.
func CompareKeys(a, b string) int {
	da, db := isDecimal(a), isDecimal(b)
	switch {
	case da && !db:
		return -1
	case !da && db:
		return 1
	case da && db && len(a) != len(b):
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// isDecimal reports whether s is a canonical non-negative decimal integer:
// digits only, no leading zero unless it is "0".
func isDecimal(s string) bool {
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does, so the output is always valid JSON.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript readers of
		// the history (the HTML report); escape them as encoding/json does.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// sortedPollKeys returns a poll's keys in [CompareKeys] order.
func sortedPollKeys(polls map[string][]Record) []string {
	keys := make([]string, 0, len(polls))
	for k := range polls {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, CompareKeys)
	return keys
}

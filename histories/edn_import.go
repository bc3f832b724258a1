package histories

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"unicode/utf8"
)

// ReadEDNFile reads a Jepsen history in EDN (history.edn) from path. See
// [ReadEDN].
func ReadEDNFile(path string) (ops []Op, warnings []string, err error) {
	l, warnings, err := readEDNFileInto(path)
	if err != nil {
		return nil, warnings, err
	}
	return l.ops, warnings, nil
}

func readEDNFileInto(path string) (*opList, []string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("histories: %w", err)
	}
	return parseEDNHistory(src, path)
}

// ReadEDN reads a Jepsen history in EDN from r; name is used in errors.
//
// The input is either one op map per line, as Jepsen writes history.edn, or
// one vector (or list) of op maps, as Jepsen prints a history; record
// literals (#jepsen.history.Op{...}) are read as maps. Each map becomes an
// [Op]:
//
//   - :type is :invoke, :ok, :fail or :info;
//   - :f is a keyword (or string), kept as its name: :send is "send";
//   - :process is an integer, or :nemesis, which becomes [NemesisProcess];
//   - :time is an integer; :index too, and an op without one gets the
//     previous op's index plus one (older Jepsen histories have none).
//     Indexes must increase strictly, as in JSONL;
//   - :value is converted to JSON and then read by the rules of the JSONL
//     format, so both formats judge values alike: a vector of
//     [:send k v], [:send k [offset v]], [:send k [nil v]], [:poll] and
//     [:poll {k [[offset v] ...]}] micro-ops is Mops; an :assign's or
//     :subscribe's vector of keys is Keys; a :commit's or :committed's map
//     {k offset} is Offsets (and a :committed's vector of keys Keys);
//     anything else (a nemesis description) is Raw. In the conversion keywords and symbols become
//     strings without the colon, maps objects with their keys printed as
//     strings, sets and lists arrays, tagged literals their value, and
//     numbers JSON cannot hold as written (ratios, hex, ##Inf) strings;
//   - keys (Jepsen's are integers) become their decimal text;
//   - :node and :error are kept as strings, or as their printed EDN when
//     they are not strings (an :error [:timeout "..."] stays readable);
//   - :rebalance-log, a vector of maps, keeps each map's :type and :keys;
//   - :group is kept as a string (a keyword by its name);
//   - any other key (Jepsen's :poll-ms, :debug, ...) is ignored.
//
// A last line without a newline that ends inside a form (a history cut off
// mid-write) is skipped with a warning, as for JSONL.
func ReadEDN(r io.Reader, name string) (ops []Op, warnings []string, err error) {
	src, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("histories: reading %s: %w", name, err)
	}
	l, warnings, err := parseEDNHistory(src, name)
	if err != nil {
		return nil, warnings, err
	}
	return l.ops, warnings, nil
}

type ednImporter struct {
	name      string
	ops       opList
	prevIndex int64
	prevTime  int64
	hint      int      // the ops' likely number
	d         *decoder // decodes values, converted to JSON
	json      []byte   // scratch for that conversion
}

func parseEDNHistory(src []byte, name string) (*opList, []string, error) {
	if i := firstInvalidUTF8(src); i >= 0 && !tornRune(src, i) {
		line := 1 + bytes.Count(src[:i], []byte{'\n'})
		return nil, nil, &ParseError{File: name, Line: line, Err: fmt.Errorf("invalid UTF-8: byte %#02x is not text", src[i])}
	}
	p := &ednParser{src: src, line: 1}
	d := newDecoder()
	d.noColumns = true // columns of the converted JSON would only confuse
	im := &ednImporter{name: name, prevIndex: -1, d: d, hint: len(src) / ednOpBytesGuess}
	var warnings []string
	fail := func(err error) (*opList, []string, error) {
		var ee *ednError
		if errors.As(err, &ee) {
			return nil, warnings, &ParseError{File: name, Line: ee.line, Err: ee.err}
		}
		return nil, warnings, &ParseError{File: name, Line: p.line, Err: err}
	}
	truncated := func(err error, startLine int) bool {
		// Only a form that starts on the last line and runs into the end of
		// a file with no final newline is a cut-off write.
		return errors.Is(err, errEDNEOF) && !bytes.HasSuffix(src, []byte("\n")) && startLine == p.line
	}
	for {
		end, err := p.atEnd()
		if err != nil {
			return fail(err)
		}
		if end {
			break
		}
		startLine := p.line
		if c := p.src[p.i]; c == '[' || c == '(' {
			// A whole history printed as one sequence of op maps.
			closer := byte(']')
			if c == '(' {
				closer = ')'
			}
			p.i++
			for {
				if err := p.skip(1); err != nil {
					return fail(err)
				}
				if p.i >= len(p.src) {
					return fail(p.eof("the history's sequence of ops"))
				}
				if p.src[p.i] == closer {
					p.i++
					break
				}
				if err := im.addForm(p, 1); err != nil {
					return fail(err)
				}
			}
			continue
		}
		if err := im.addForm(p, 0); err != nil {
			if truncated(err, startLine) {
				warnings = append(warnings, fmt.Sprintf(
					"%s:%d: skipped the last line: it has no newline at its end, as when the writer died mid-write, and it does not parse: %v",
					name, startLine, err))
				break
			}
			return fail(err)
		}
	}
	return &im.ops, warnings, nil
}

// ednOpBytesGuess is a typical op map's length in history.edn, to size the
// op slice.
const ednOpBytesGuess = 128

// Bits of the op map's fields seen so far.
var ednFields = map[string]int{
	"index": seenIndex, "time": seenTime, "process": seenProcess, "type": seenType,
	"f": seenF, "value": seenValue, "node": seenNode, "error": seenError,
	"rebalance-log": seenRebalance, "group": seenGroup,
}

// addForm reads the next form, which must be an op map, and adds its op.
func (im *ednImporter) addForm(p *ednParser, depth int) error {
	line := p.line
	if p.i < len(p.src) && p.src[p.i] == '{' {
		// The usual case, a plain map: convert it straight from the
		// parser's stack, without building the map node.
		items, err := p.readMapItems(depth)
		if err != nil {
			return err
		}
		return im.add(items, line)
	}
	n, err := p.read(depth)
	if err != nil {
		return err
	}
	if n.kind == ednTagged && len(n.items) == 1 { // #jepsen.history.Op{...}
		n = n.items[0]
	}
	if n.kind != ednMap {
		return &ednError{line: n.line, err: fmt.Errorf("want an op map like {:type :invoke, :f :send, ...}, got %s", n.short())}
	}
	return im.add(n.items, n.line)
}

func (im *ednImporter) add(items []ednNode, line int) error {
	op, err := im.op(items)
	if err != nil {
		return &ednError{line: line, err: err}
	}
	if im.ops.ops == nil {
		im.ops.ops = make([]Op, 0, im.hint)
	}
	im.ops.lines.note(len(im.ops.ops), line)
	im.ops.ops = append(im.ops.ops, op)
	return nil
}

// op converts the keys and values of one op map.
func (im *ednImporter) op(items []ednNode) (Op, error) {
	var op Op
	var seen int
	var value *ednNode
	for i := 0; i+1 < len(items); i += 2 {
		k, v := &items[i], &items[i+1]
		if k.kind != ednKeyword {
			continue // not a field of ours
		}
		bit, known := ednFields[k.text]
		if !known {
			continue // Jepsen's :poll-ms, :debug, ...: tolerated and dropped
		}
		if seen&bit != 0 {
			return op, fmt.Errorf("key :%s appears twice", k.text)
		}
		seen |= bit
		var err error
		switch bit {
		case seenIndex:
			op.Index, err = v.int64()
			if err == nil && op.Index < 0 {
				err = fmt.Errorf("want a non-negative integer, got %d", op.Index)
			}
		case seenTime:
			op.Time, err = v.int64()
		case seenProcess:
			if v.kind == ednKeyword && v.text == "nemesis" {
				op.Process = NemesisProcess
			} else if op.Process, err = v.int64(); err != nil {
				err = fmt.Errorf("want an integer or :nemesis, got %s", v.short())
			}
		case seenType:
			switch t := Type(v.text); {
			case (v.kind == ednKeyword || v.kind == ednString) && t.Valid():
				op.Type = t
			default:
				err = fmt.Errorf("want :invoke, :ok, :fail or :info, got %s", v.short())
			}
		case seenF:
			switch v.kind {
			case ednKeyword, ednString, ednSymbol:
				op.F = v.text
			}
			if op.F == "" {
				err = fmt.Errorf("want a keyword naming the function, like :send, got %s", v.short())
			}
		case seenValue:
			value = v
		case seenNode:
			op.Node = ednText(v)
		case seenError:
			op.Error = ednText(v)
		case seenGroup:
			switch v.kind {
			case ednKeyword, ednSymbol: // a group named like :jepsen-group
				op.Group = v.text
			default:
				op.Group = ednText(v)
			}
		case seenRebalance:
			// Through JSON and the JSONL decoder's rules, as values are.
			im.json, err = appendEDNAsJSON(im.json[:0], v, 0)
			if err == nil {
				im.d.b, im.d.i = im.json, 0
				op.RebalanceLog, err = im.d.rebalanceLog()
			}
		}
		if err != nil {
			return op, fmt.Errorf("key :%s: %w", k.text, err)
		}
	}
	for _, f := range []string{"time", "process", "type", "f"} {
		if seen&ednFields[f] == 0 {
			return op, fmt.Errorf("key :%s is missing", f)
		}
	}
	if seen&seenIndex == 0 {
		op.Index = im.prevIndex + 1
	} else if op.Index <= im.prevIndex {
		return op, fmt.Errorf("key :index: want more than the previous op's index %d, got %d: indexes must increase strictly", im.prevIndex, op.Index)
	}
	if len(im.ops.ops) > 0 && op.Time < im.prevTime {
		return op, fmt.Errorf("key :time: %d is before the previous op's time %d: events must be recorded in the order they happened, on a clock that never goes backwards", op.Time, im.prevTime)
	}
	im.prevIndex, im.prevTime = op.Index, op.Time
	if value != nil {
		// The value goes through JSON and the JSONL decoder's rules, so
		// that both formats judge every value alike: what imports as Mops,
		// Keys or Raw from EDN decodes the same from its JSONL.
		var err error
		im.json, err = appendEDNAsJSON(im.json[:0], value, 0)
		if err == nil {
			err = im.d.decodeValue(&op, im.json)
		}
		if err != nil {
			return op, fmt.Errorf("key :value %s: %w", value.short(), err)
		}
	}
	return op, nil
}

// ednText turns a :node or :error into a string: strings as they are,
// keywords by name for nodes, nil as "", anything else as printed EDN.
func ednText(v *ednNode) string {
	switch v.kind {
	case ednNil:
		return ""
	case ednString:
		return v.text
	}
	return string(appendEDNNode(nil, v))
}

// appendEDNAsJSON converts an EDN form to JSON for Value.Raw.
func appendEDNAsJSON(dst []byte, v *ednNode, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, fmt.Errorf("value nests deeper than %d levels", maxDepth)
	}
	var err error
	switch v.kind {
	case ednNil:
		return append(dst, "null"...), nil
	case ednBool:
		return strconv.AppendBool(dst, v.b), nil
	case ednInt:
		return append(dst, v.text...), nil
	case ednFloat:
		if isJSONNumber(v.text) {
			return append(dst, v.text...), nil
		}
		return appendJSONString(dst, v.text), nil
	case ednNumber, ednString, ednChar, ednKeyword, ednSymbol:
		return appendJSONString(dst, v.text), nil
	case ednList, ednVector, ednSet:
		dst = append(dst, '[')
		for i := range v.items {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendEDNAsJSON(dst, &v.items[i], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case ednMap:
		dst = append(dst, '{')
		var keys map[string]bool
		for i := 0; i+1 < len(v.items); i += 2 {
			k := ednMapKey(&v.items[i])
			if keys == nil {
				keys = make(map[string]bool, len(v.items)/2)
			}
			if keys[k] {
				return dst, fmt.Errorf("map has two keys that both become %q in JSON", k)
			}
			keys[k] = true
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			if dst, err = appendEDNAsJSON(dst, &v.items[i+1], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case ednTagged:
		return appendEDNAsJSON(dst, &v.items[0], depth+1)
	}
	return dst, fmt.Errorf("cannot convert %s to JSON", v.short())
}

// ednMapKey turns a map key into a JSON object key: the text of strings,
// keywords, symbols, characters and numbers, the printed EDN of the rest.
func ednMapKey(k *ednNode) string {
	switch k.kind {
	case ednString, ednKeyword, ednSymbol, ednChar, ednInt, ednFloat, ednNumber:
		return k.text
	case ednTagged:
		return ednMapKey(&k.items[0])
	}
	return string(appendEDNNode(nil, k))
}

// isJSONNumber reports whether s is a number in JSON's grammar.
func isJSONNumber(s string) bool {
	d := decoder{b: []byte(s)}
	return d.number() == nil && d.i == len(s)
}

// firstInvalidUTF8 returns the position of the first byte of b that is not
// UTF-8, or -1.
func firstInvalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// tornRune reports whether the invalid byte at i is the start of a
// character cut off by the end of a file that ends without a newline: the
// torn last line of a writer that died, which the reader skips.
func tornRune(src []byte, i int) bool {
	return !bytes.HasSuffix(src, []byte("\n")) && len(src)-i < utf8.UTFMax && !utf8.FullRune(src[i:])
}

package histories

import (
	"fmt"
	"io"
	"strconv"
)

// WriteEDN writes ops to w as a Jepsen history: one op map per line, as in
// Jepsen's history.edn, so that Jepsen's tools and Elle can read what
// Garantia recorded.
//
// Keys that are canonical decimal numbers (all digits, no leading zero) are
// written as integers, as Jepsen's Kafka workload has them, and other keys
// as strings; [NemesisProcess] is written as :nemesis; f and type as
// keywords (f as a string when it cannot be a keyword); node and error as
// strings. A Raw value is converted from JSON: objects become maps whose
// keys are keywords when they can be and strings otherwise, arrays
// vectors, strings strings. Reading the result with [ReadEDN] gives back
// the same ops.
func WriteEDN(w io.Writer, ops []Op) error {
	buf := make([]byte, 0, flushBytes+4096)
	for i := range ops {
		var err error
		if buf, err = AppendEDN(buf, &ops[i]); err != nil {
			return err
		}
		buf = append(buf, '\n')
		if len(buf) >= flushBytes {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("histories: writing EDN: %w", err)
			}
			buf = buf[:0]
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("histories: writing EDN: %w", err)
	}
	return nil
}

// AppendEDN appends op as one Jepsen op map, without a newline. See
// [WriteEDN].
func AppendEDN(dst []byte, op *Op) ([]byte, error) {
	mark := len(dst)
	if !op.Type.Valid() {
		return dst, fmt.Errorf("histories: op index %d: type %q is not invoke, ok, fail or info", op.Index, op.Type)
	}
	if op.F == "" {
		return dst, fmt.Errorf("histories: op index %d: f is empty", op.Index)
	}
	dst = append(dst, "{:index "...)
	dst = strconv.AppendInt(dst, op.Index, 10)
	dst = append(dst, ", :time "...)
	dst = strconv.AppendInt(dst, op.Time, 10)
	dst = append(dst, ", :type :"...)
	dst = append(dst, op.Type...)
	dst = append(dst, ", :process "...)
	if op.Process == NemesisProcess {
		dst = append(dst, ":nemesis"...)
	} else {
		dst = strconv.AppendInt(dst, op.Process, 10)
	}
	dst = append(dst, ", :f "...)
	dst = appendEDNName(dst, op.F)
	dst = append(dst, ", :value "...)
	var err error
	if dst, err = appendValueEDN(dst, &op.Value); err != nil {
		return dst[:mark], fmt.Errorf("histories: op index %d: value: %w", op.Index, err)
	}
	if op.Node != "" {
		dst = append(dst, ", :node "...)
		dst = appendEDNString(dst, op.Node)
	}
	if op.Error != "" {
		dst = append(dst, ", :error "...)
		dst = appendEDNString(dst, op.Error)
	}
	return append(dst, '}'), nil
}

// appendEDNName appends s as a keyword when it can be one, else as a
// string.
func appendEDNName(dst []byte, s string) []byte {
	if isKeywordSafe(s) {
		return append(append(dst, ':'), s...)
	}
	return appendEDNString(dst, s)
}

// isKeywordSafe reports whether :s reads back as a keyword named s: a
// letter, then letters, digits and the punctuation EDN allows in symbols
// (but no '/', ':' or '#', which would change its meaning).
func isKeywordSafe(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9'):
		case i > 0 && (c == '-' || c == '_' || c == '.' || c == '*' || c == '+' || c == '!' || c == '?' || c == '<' || c == '>' || c == '=' || c == '$' || c == '%' || c == '&'):
		case i == 0 && (c == '_' || c == '*' || c == '!' || c == '?' || c == '<' || c == '>' || c == '=' || c == '$' || c == '%' || c == '&'):
		default:
			return false
		}
	}
	return true
}

// appendEDNKey appends a key: canonical decimals as integers, the rest as
// strings.
func appendEDNKey(dst []byte, k string) []byte {
	if isDecimal(k) {
		return append(dst, k...)
	}
	return appendEDNString(dst, k)
}

func appendValueEDN(dst []byte, v *Value) ([]byte, error) {
	if (v.Mops != nil && (v.Keys != nil || v.Raw != nil)) || (v.Keys != nil && v.Raw != nil) {
		return dst, errValueAmbiguous
	}
	switch {
	case v.Mops != nil:
		dst = append(dst, '[')
		for i := range v.Mops {
			if i > 0 {
				dst = append(dst, ' ')
			}
			var err error
			if dst, err = appendMopEDN(dst, &v.Mops[i]); err != nil {
				return dst, fmt.Errorf("micro-op %d: %w", i, err)
			}
		}
		return append(dst, ']'), nil
	case v.Keys != nil:
		dst = append(dst, '[')
		for i, k := range v.Keys {
			if i > 0 {
				dst = append(dst, ' ')
			}
			dst = appendEDNKey(dst, k)
		}
		return append(dst, ']'), nil
	case v.Raw != nil:
		d := decoder{b: v.Raw}
		d.ws()
		var err error
		if dst, err = d.appendJSONAsEDN(dst, 0); err != nil {
			return dst, fmt.Errorf("Raw: %w", err)
		}
		if d.ws(); d.i != len(d.b) {
			return dst, fmt.Errorf("Raw: unexpected data after the value: %s", d.snippetAt(d.i))
		}
		return dst, nil
	}
	return append(dst, "nil"...), nil
}

func appendMopEDN(dst []byte, m *Mop) ([]byte, error) {
	switch m.F {
	case MopSend:
		dst = append(dst, "[:send "...)
		dst = appendEDNKey(dst, m.Key)
		dst = append(dst, ' ')
		switch {
		case m.Offset == OffsetPending:
			dst = strconv.AppendInt(dst, m.Value, 10)
		case m.Offset == OffsetUnknown:
			dst = append(dst, "[nil "...)
			dst = strconv.AppendInt(dst, m.Value, 10)
			dst = append(dst, ']')
		case m.Offset >= 0:
			dst = append(dst, '[')
			dst = strconv.AppendInt(dst, m.Offset, 10)
			dst = append(dst, ' ')
			dst = strconv.AppendInt(dst, m.Value, 10)
			dst = append(dst, ']')
		default:
			return dst, fmt.Errorf("send offset %d is negative and neither OffsetPending nor OffsetUnknown", m.Offset)
		}
		return append(dst, ']'), nil
	case MopPoll:
		if m.Polls == nil {
			return append(dst, "[:poll]"...), nil
		}
		dst = append(dst, "[:poll {"...)
		for i, k := range sortedPollKeys(m.Polls) {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendEDNKey(dst, k)
			dst = append(dst, " ["...)
			for j, r := range m.Polls[k] {
				if r.Offset < 0 {
					return dst, fmt.Errorf("poll of key %q: record %d has negative offset %d", k, j, r.Offset)
				}
				if j > 0 {
					dst = append(dst, ' ')
				}
				dst = append(dst, '[')
				dst = strconv.AppendInt(dst, r.Offset, 10)
				dst = append(dst, ' ')
				dst = strconv.AppendInt(dst, r.Value, 10)
				dst = append(dst, ']')
			}
			dst = append(dst, ']')
		}
		return append(dst, "}]"...), nil
	}
	return dst, fmt.Errorf("f %q is neither send nor poll", m.F)
}

// appendJSONAsEDN converts the JSON value at d's position to EDN.
func (d *decoder) appendJSONAsEDN(dst []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, d.errf("value nests deeper than %d levels", maxDepth)
	}
	var err error
	switch c := d.peek(); {
	case c == '"':
		s, err := d.str()
		if err != nil {
			return dst, err
		}
		return appendEDNString(dst, string(s)), nil
	case c == '{':
		d.i++
		dst = append(dst, '{')
		for n := 0; ; n++ {
			d.ws()
			if n == 0 && d.peek() == '}' {
				d.i++
				break
			}
			if d.peek() != '"' {
				return dst, d.errf("want an object key in quotes, got %s", d.snippetAt(d.i))
			}
			k, err := d.str()
			if err != nil {
				return dst, err
			}
			if n > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendEDNName(dst, string(k))
			dst = append(dst, ' ')
			d.ws()
			if d.peek() != ':' {
				return dst, d.errf("want ':' after an object key, got %s", d.snippetAt(d.i))
			}
			d.i++
			d.ws()
			if dst, err = d.appendJSONAsEDN(dst, depth+1); err != nil {
				return dst, err
			}
			d.ws()
			c := d.peek()
			d.i++
			if c == '}' {
				break
			}
			if c != ',' {
				d.i--
				return dst, d.errf("want ',' or '}' in an object, got %s", d.snippetAt(d.i))
			}
		}
		return append(dst, '}'), nil
	case c == '[':
		d.i++
		dst = append(dst, '[')
		for n := 0; ; n++ {
			d.ws()
			if n == 0 && d.peek() == ']' {
				d.i++
				break
			}
			if n > 0 {
				dst = append(dst, ' ')
			}
			if dst, err = d.appendJSONAsEDN(dst, depth+1); err != nil {
				return dst, err
			}
			d.ws()
			c := d.peek()
			d.i++
			if c == ']' {
				break
			}
			if c != ',' {
				d.i--
				return dst, d.errf("want ',' or ']' in a list, got %s", d.snippetAt(d.i))
			}
		}
		return append(dst, ']'), nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.i
		if err := d.number(); err != nil {
			return dst, err
		}
		return append(dst, d.b[start:d.i]...), nil
	case d.lit("true"):
		return append(dst, "true"...), nil
	case d.lit("false"):
		return append(dst, "false"...), nil
	case d.lit("null"):
		return append(dst, "nil"...), nil
	}
	return dst, d.errf("want a JSON value, got %s", d.snippetAt(d.i))
}

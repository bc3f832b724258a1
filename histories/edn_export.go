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
// keywords (f as a string when it cannot be a keyword); node, error and
// group as strings; offsets as a map {3 89, 5 nil}; a rebalance log as
// Jepsen's [{:type :revoked, :keys [3]}]. A Raw value is converted from
// JSON: objects become maps whose
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
	if err := checkOp(op); err != nil {
		return dst, err
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
	if op.Group != "" {
		dst = append(dst, ", :group "...)
		dst = appendEDNString(dst, op.Group)
	}
	dst = append(dst, ", :value "...)
	var err error
	if dst, err = appendValue(dst, &op.Value, &ednNotation); err != nil {
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
	if op.RebalanceLog != nil {
		dst = append(dst, ", :rebalance-log "...)
		dst = appendRebalanceLog(dst, op.RebalanceLog, &ednNotation)
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

// ednNotation writes Jepsen's history.edn: keys that are canonical
// decimals as integers, as Jepsen has them, and Raw converted from JSON.
var ednNotation = notation{
	null:      "nil",
	sep:       ' ',
	entrySep:  ", ",
	keySep:    ' ',
	send:      "[:send ",
	poll:      "[:poll {",
	pollEmpty: "[:poll]",
	key:       appendEDNKey,
	raw:       appendRawEDN,

	rebalanceKeys:          "{:keys [",
	rebalanceType:          "{:type ",
	rebalanceKeysAfterType: ":keys [",
	name:                   appendEDNName,
	offsetsOpen:            "{",
	offsetsClose:           "}",
}

// appendRawEDN appends a Raw value, JSON, converted to EDN.
func appendRawEDN(dst, raw []byte) ([]byte, error) {
	d := decoder{b: raw}
	d.ws()
	var err error
	if dst, err = d.appendJSONAsEDN(dst, 0); err != nil {
		return dst, fmt.Errorf("raw value: %w", err)
	}
	if d.ws(); d.i != len(d.b) {
		return dst, fmt.Errorf("raw value: unexpected data after the value: %s", d.snippetAt(d.i))
	}
	return dst, nil
}

// appendJSONAsEDN converts the JSON value at d's position to EDN.
func (d *decoder) appendJSONAsEDN(dst []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, d.errf("value nests deeper than %d levels", maxDepth)
	}
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
		for n, more := 0, d.open('}'); more; n++ {
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
			if err := d.expect(':', "after an object key"); err != nil {
				return dst, err
			}
			if dst, err = d.appendJSONAsEDN(dst, depth+1); err != nil {
				return dst, err
			}
			if more, err = d.next('}', "in an object"); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case c == '[':
		d.i++
		dst = append(dst, '[')
		for n, more := 0, d.open(']'); more; n++ {
			if n > 0 {
				dst = append(dst, ' ')
			}
			var err error
			if dst, err = d.appendJSONAsEDN(dst, depth+1); err != nil {
				return dst, err
			}
			if more, err = d.next(']', "in a list"); err != nil {
				return dst, err
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

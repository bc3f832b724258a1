package histories

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is a small EDN reader and printer, enough for Jepsen histories:
// nil, booleans, numbers, strings, characters, keywords, symbols, lists,
// vectors, maps, sets, tagged literals (#inst, #uuid, record literals such
// as #jepsen.history.Op{...}), comments, discards (#_) and metadata (^). It
// builds a small tree per form; histories are read one op map at a time,
// so memory stays bounded by the largest op.

type ednKind uint8

const (
	ednNil ednKind = iota
	ednBool
	ednInt     // text: decimal, canonical ('+' and the N suffix dropped)
	ednFloat   // text: as written, the M suffix and a leading '+' dropped
	ednNumber  // other numbers (hex, octal, ratio, radix): text as written
	ednString  // text: the string's contents
	ednChar    // text: the character
	ednKeyword // text: the name without ':' (with its namespace, "ns/name")
	ednSymbol
	ednList
	ednVector
	ednMap    // items: key, value, key, value, ...
	ednSet    // items: the elements
	ednTagged // text: the tag; items[0]: the tagged value
)

type ednNode struct {
	kind  ednKind
	b     bool
	text  string
	items []ednNode
	line  int // where the form starts, 1-based
}

// errEDNEOF marks an error caused by the input ending inside a form, which
// is what a truncated last line looks like.
var errEDNEOF = errors.New("unexpected end of input")

type ednError struct {
	line int
	err  error
}

func (e *ednError) Error() string { return e.err.Error() }
func (e *ednError) Unwrap() error { return e.err }

type ednParser struct {
	src  []byte
	i    int
	line int

	// stack holds the children of the collections being read, so that each
	// collection costs one exactly sized allocation.
	stack  []ednNode
	intern map[string]string // repeated tokens: keywords, small numbers
}

func (p *ednParser) errf(format string, args ...any) error {
	return &ednError{line: p.line, err: fmt.Errorf(format, args...)}
}

func (p *ednParser) eof(inside string) error {
	return &ednError{line: p.line, err: fmt.Errorf("%w inside %s", errEDNEOF, inside)}
}

// skip consumes whitespace (commas included), comments and discarded forms.
func (p *ednParser) skip(depth int) error {
	for p.i < len(p.src) {
		switch c := p.src[p.i]; c {
		case '\n':
			p.line++
			p.i++
		case ' ', '\t', '\r', ',', '\f', '\v':
			p.i++
		case ';':
			for p.i < len(p.src) && p.src[p.i] != '\n' {
				p.i++
			}
		case '#':
			if p.i+1 < len(p.src) && p.src[p.i+1] == '_' {
				p.i += 2
				if _, err := p.read(depth + 1); err != nil {
					return err
				}
				continue
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}

// atEnd skips to the next form and reports whether there is none.
func (p *ednParser) atEnd() (bool, error) {
	if err := p.skip(0); err != nil {
		return false, err
	}
	return p.i >= len(p.src), nil
}

// isDelim reports whether c ends a token (a symbol, number or keyword).
func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\f', '\v', ',', '"', ';', '(', ')', '[', ']', '{', '}', '\\', '^', '@', '`', '~':
		return true
	}
	return false
}

func (p *ednParser) token() string {
	start := p.i
	for p.i < len(p.src) && !isDelim(p.src[p.i]) {
		p.i++
	}
	t := p.src[start:p.i]
	if !utf8.Valid(t) {
		// Every string this package produces is valid UTF-8, so that it
		// converts between JSON and EDN unchanged.
		return string(bytes.ToValidUTF8(t, []byte("\uFFFD")))
	}
	if len(t) > internLenMax {
		return string(t)
	}
	if s, ok := p.intern[string(t)]; ok {
		return s
	}
	s := string(t)
	if p.intern == nil {
		p.intern = make(map[string]string, 64)
	}
	if len(p.intern) < internMax {
		p.intern[s] = s
	}
	return s
}

// read reads one form.
func (p *ednParser) read(depth int) (ednNode, error) {
	if depth > maxDepth {
		return ednNode{}, p.errf("forms nest deeper than %d levels", maxDepth)
	}
	if err := p.skip(depth); err != nil {
		return ednNode{}, err
	}
	if p.i >= len(p.src) {
		return ednNode{}, p.eof("a form")
	}
	line := p.line
	c := p.src[p.i]
	switch c {
	case '(':
		p.i++
		items, err := p.readSeq(')', "a list", depth)
		return ednNode{kind: ednList, items: items, line: line}, err
	case '[':
		p.i++
		items, err := p.readSeq(']', "a vector", depth)
		return ednNode{kind: ednVector, items: items, line: line}, err
	case '{':
		p.i++
		items, err := p.readSeq('}', "a map", depth)
		if err == nil && len(items)%2 != 0 {
			err = &ednError{line: line, err: errors.New("map has an odd number of forms: a key without a value")}
		}
		return ednNode{kind: ednMap, items: items, line: line}, err
	case ')', ']', '}':
		return ednNode{}, p.errf("unexpected %q", c)
	case '"':
		s, err := p.readString()
		return ednNode{kind: ednString, text: s, line: line}, err
	case '\\':
		s, err := p.readChar()
		return ednNode{kind: ednChar, text: s, line: line}, err
	case ':':
		p.i++
		t := p.token()
		if t == "" || t[0] == ':' {
			return ednNode{}, p.errf("invalid keyword %q", ":"+t)
		}
		return ednNode{kind: ednKeyword, text: t, line: line}, nil
	case '^':
		p.i++ // metadata: read it and drop it
		if _, err := p.read(depth + 1); err != nil {
			return ednNode{}, err
		}
		return p.read(depth + 1)
	case '#':
		return p.readDispatch(depth, line)
	}
	if c == '\'' || c == '`' || c == '~' || c == '@' {
		return ednNode{}, p.errf("%q is Clojure reader syntax, not EDN", c)
	}
	t := p.token()
	if t == "" {
		return ednNode{}, p.errf("unexpected %q", c)
	}
	n, err := classifyToken(t)
	if err != nil {
		return ednNode{}, p.errf("%v", err)
	}
	n.line = line
	return n, nil
}

func (p *ednParser) readDispatch(depth, line int) (ednNode, error) {
	p.i++ // '#'
	if p.i >= len(p.src) {
		return ednNode{}, p.eof("a # form")
	}
	switch c := p.src[p.i]; {
	case c == '{':
		p.i++
		items, err := p.readSeq('}', "a set", depth)
		return ednNode{kind: ednSet, items: items, line: line}, err
	case c == '#':
		p.i++
		t := p.token()
		switch t {
		case "Inf", "-Inf", "NaN":
			return ednNode{kind: ednFloat, text: "##" + t, line: line}, nil
		}
		return ednNode{}, p.errf("invalid symbolic value %q", "##"+t)
	case c == '"': // a regex, in Clojure's printing; keep its text
		s, err := p.readString()
		return ednNode{kind: ednString, text: s, line: line}, err
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		tag := p.token()
		v, err := p.read(depth + 1)
		if err != nil {
			return ednNode{}, err
		}
		return ednNode{kind: ednTagged, text: tag, items: []ednNode{v}, line: line}, nil
	default:
		return ednNode{}, p.errf("unsupported dispatch %q", "#"+string(c))
	}
}

// readMapItems reads a map and returns its keys and values in a view of
// the parser's stack, valid until the next read: the caller converts them
// at once, and the map costs no allocation of its own.
func (p *ednParser) readMapItems(depth int) ([]ednNode, error) {
	line := p.line
	p.i++ // '{'
	mark := len(p.stack)
	defer func() { p.stack = p.stack[:mark] }()
	if err := p.readItems('}', "a map", depth); err != nil {
		return nil, err
	}
	items := p.stack[mark:]
	if len(items)%2 != 0 {
		return nil, &ednError{line: line, err: errors.New("map has an odd number of forms: a key without a value")}
	}
	return items, nil
}

// readSeq reads the forms of a collection, its opening bracket consumed, up
// to closer, into a slice of their own.
func (p *ednParser) readSeq(closer byte, what string, depth int) ([]ednNode, error) {
	mark := len(p.stack)
	defer func() { p.stack = p.stack[:mark] }()
	if err := p.readItems(closer, what, depth); err != nil {
		return nil, err
	}
	if len(p.stack) == mark {
		return nil, nil
	}
	items := make([]ednNode, len(p.stack)-mark)
	copy(items, p.stack[mark:])
	return items, nil
}

// readItems reads forms up to and including closer and pushes them onto
// p.stack; what names the collection should the input end first. The
// caller cuts the stack back to where it was once done with the forms.
func (p *ednParser) readItems(closer byte, what string, depth int) error {
	for {
		if err := p.skip(depth); err != nil {
			return err
		}
		if p.i >= len(p.src) {
			return p.eof(what)
		}
		if p.src[p.i] == closer {
			p.i++
			return nil
		}
		n, err := p.read(depth + 1)
		if err != nil {
			return err
		}
		p.stack = append(p.stack, n)
	}
}

func (p *ednParser) readString() (string, error) {
	p.i++ // '"'
	start := p.i
	// Fast path: no escapes, valid UTF-8.
	for p.i < len(p.src) {
		c := p.src[p.i]
		if c == '"' {
			s := p.src[start:p.i]
			if utf8.Valid(s) {
				p.i++
				return string(s), nil
			}
			break
		}
		if c == '\\' {
			break
		}
		if c == '\n' {
			p.line++
		}
		p.i++
	}
	// Slow path: redo from the start, counting lines again.
	for _, c := range p.src[start:p.i] {
		if c == '\n' {
			p.line--
		}
	}
	p.i = start
	var sb strings.Builder
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch {
		case c == '"':
			p.i++
			return sb.String(), nil
		case c == '\\':
			p.i++
			if p.i >= len(p.src) {
				return "", p.eof("a string")
			}
			e := p.src[p.i]
			p.i++
			switch e {
			case '"', '\\':
				sb.WriteByte(e)
			case 'n':
				sb.WriteByte('\n')
			case 't':
				sb.WriteByte('\t')
			case 'r':
				sb.WriteByte('\r')
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'u':
				r, ok := hex4(p.src[p.i:])
				if !ok {
					return "", p.errf("invalid \\u escape in a string")
				}
				p.i += 4
				if utf16.IsSurrogate(r) {
					var n int
					r, n = pairSurrogate(r, p.src[p.i:])
					p.i += n
				}
				sb.WriteRune(r)
			default:
				if e >= '0' && e <= '7' { // octal, as Clojure allows: \0 to \377
					v := int(e - '0')
					for k := 0; k < 2 && p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '7'; k++ {
						v = v*8 + int(p.src[p.i]-'0')
						p.i++
					}
					if v > 0377 {
						return "", p.errf("octal escape out of range in a string")
					}
					sb.WriteRune(rune(v))
					continue
				}
				return "", p.errf("invalid escape '\\%c' in a string", e)
			}
		default:
			if c == '\n' {
				p.line++
			}
			if c < utf8.RuneSelf {
				sb.WriteByte(c)
				p.i++
				continue
			}
			r, size := utf8.DecodeRune(p.src[p.i:])
			sb.WriteRune(r) // invalid bytes become U+FFFD
			p.i += size
		}
	}
	return "", p.eof("a string")
}

var ednCharNames = map[string]string{
	"newline": "\n", "space": " ", "tab": "\t", "return": "\r",
	"formfeed": "\f", "backspace": "\b",
}

func (p *ednParser) readChar() (string, error) {
	p.i++ // '\\'
	if p.i >= len(p.src) {
		return "", p.eof("a character")
	}
	_, size := utf8.DecodeRune(p.src[p.i:])
	if p.src[p.i] == '\n' {
		p.line++
	}
	start := p.i
	p.i += size
	for p.i < len(p.src) && !isDelim(p.src[p.i]) {
		p.i++
	}
	t := string(p.src[start:p.i])
	if utf8.RuneCountInString(t) == 1 {
		return strings.ToValidUTF8(t, "\uFFFD"), nil
	}
	if s, ok := ednCharNames[t]; ok {
		return s, nil
	}
	if len(t) == 5 && t[0] == 'u' {
		if v, err := strconv.ParseUint(t[1:], 16, 32); err == nil && !utf16.IsSurrogate(rune(v)) {
			return string(rune(v)), nil
		}
	}
	if len(t) >= 2 && len(t) <= 4 && t[0] == 'o' {
		if v, err := strconv.ParseUint(t[1:], 8, 32); err == nil && v <= 0377 {
			return string(rune(v)), nil
		}
	}
	return "", p.errf("invalid character literal %q", `\`+t)
}

var (
	ednFloatRE = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?M?$`)
	// Numbers Clojure reads but JSON cannot hold as they are written.
	ednOtherNumberRE = regexp.MustCompile(`^[+-]?(0[xX][0-9a-fA-F]+|[0-9]+/[0-9]+|[0-9]+[rR][0-9a-zA-Z]+|0[0-7]+)N?$`)
)

// classifyToken turns a bare token into nil, a boolean, a number or a
// symbol.
func classifyToken(t string) (ednNode, error) {
	switch t {
	case "nil":
		return ednNode{kind: ednNil}, nil
	case "true":
		return ednNode{kind: ednBool, b: true}, nil
	case "false":
		return ednNode{kind: ednBool}, nil
	}
	c := t[0]
	if c >= '0' && c <= '9' || (c == '+' || c == '-') && len(t) > 1 && t[1] >= '0' && t[1] <= '9' {
		if s, ok := ednIntText(t); ok {
			return ednNode{kind: ednInt, text: s}, nil
		}
		if ednFloatRE.MatchString(t) {
			s := strings.TrimPrefix(strings.TrimSuffix(t, "M"), "+")
			return ednNode{kind: ednFloat, text: s}, nil
		}
		if ednOtherNumberRE.MatchString(t) {
			return ednNode{kind: ednNumber, text: t}, nil
		}
		return ednNode{}, fmt.Errorf("invalid number %q", t)
	}
	return ednNode{kind: ednSymbol, text: t}, nil
}

// ednIntText returns the canonical decimal text of an EDN integer token:
// [+-]?(0|[1-9][0-9]*)N?.
func ednIntText(t string) (string, bool) {
	s := strings.TrimSuffix(t, "N")
	neg := false
	switch {
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	case strings.HasPrefix(s, "-"):
		s, neg = s[1:], true
	}
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	if neg {
		return "-" + s, true
	}
	return s, true
}

// int64 returns an integer node's value.
func (n *ednNode) int64() (int64, error) {
	if n.kind != ednInt {
		return 0, fmt.Errorf("want an integer, got %s", n.short())
	}
	v, err := strconv.ParseInt(n.text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("integer %s does not fit in 64 bits", n.text)
	}
	return v, nil
}

// short prints n for an error message, cut to a readable length.
func (n *ednNode) short() string {
	s := string(appendEDNNode(nil, n))
	if len(s) > snippetLenMax {
		return s[:snippetLenMax] + "…"
	}
	return s
}

// appendEDNNode prints n as EDN, the way Clojure would.
func appendEDNNode(dst []byte, n *ednNode) []byte {
	switch n.kind {
	case ednNil:
		return append(dst, "nil"...)
	case ednBool:
		return strconv.AppendBool(dst, n.b)
	case ednInt, ednFloat, ednNumber, ednSymbol:
		return append(dst, n.text...)
	case ednString:
		return appendEDNString(dst, n.text)
	case ednChar:
		for name, s := range ednCharNames {
			if s == n.text {
				return append(append(dst, '\\'), name...)
			}
		}
		if r, _ := utf8.DecodeRuneInString(n.text); r < 0x20 || r == 0x7f {
			return fmt.Appendf(dst, `\u%04x`, r)
		}
		return append(append(dst, '\\'), n.text...)
	case ednKeyword:
		return append(append(dst, ':'), n.text...)
	case ednList:
		return appendEDNItems(append(dst, '('), n.items, " ", ')')
	case ednVector:
		return appendEDNItems(append(dst, '['), n.items, " ", ']')
	case ednSet:
		return appendEDNItems(append(dst, '#', '{'), n.items, " ", '}')
	case ednMap:
		dst = append(dst, '{')
		for i := 0; i+1 < len(n.items); i += 2 {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendEDNNode(dst, &n.items[i])
			dst = append(dst, ' ')
			dst = appendEDNNode(dst, &n.items[i+1])
		}
		return append(dst, '}')
	case ednTagged:
		dst = append(append(dst, '#'), n.text...)
		if len(n.items) > 0 {
			if n.items[0].kind != ednMap {
				dst = append(dst, ' ')
			}
			dst = appendEDNNode(dst, &n.items[0])
		}
		return dst
	}
	return dst
}

func appendEDNItems(dst []byte, items []ednNode, sep string, closer byte) []byte {
	for i := range items {
		if i > 0 {
			dst = append(dst, sep...)
		}
		dst = appendEDNNode(dst, &items[i])
	}
	return append(dst, closer)
}

// appendEDNString appends s as an EDN string literal. Invalid UTF-8 becomes
// U+FFFD.
func appendEDNString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

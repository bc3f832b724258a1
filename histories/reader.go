package histories

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
)

// MaxLineBytes is the longest history line a [Reader] accepts. Lines are
// long when a poll returns many records; a line past this limit is far more
// likely a corrupt file than a real poll, and reading it would take
// unbounded memory.
const MaxLineBytes = 64 << 20

// readBufferBytes is the reader's buffer: lines shorter than this are parsed
// in place, without copying.
const readBufferBytes = 1 << 20

// ErrLineTooLong says a line is longer than [MaxLineBytes].
var ErrLineTooLong = fmt.Errorf("line is longer than the %d MiB limit", MaxLineBytes>>20)

// ParseError says which line of which file broke the format, and how.
type ParseError struct {
	File string // the name given to the reader, usually the file's path
	Line int    // 1-based
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// Reader reads a JSON Lines history one op at a time.
//
// Besides each line's schema it checks that the file is in the order
// events happened: indexes increase strictly (they need not be dense, so a
// history filtered with grep, say a few processes or a time window, still
// reads, but no two ops share an index) and times never decrease. Blank
// lines are skipped. A last line that has no newline at its end and is not
// a whole JSON value is what a harness that died mid-write leaves behind
// (or the zeros a power loss leaves after the last write); it is skipped
// with a warning (see [Reader.Warnings]) rather than failing the whole
// history. A last line that is whole JSON is held to the schema like any
// other, newline or not.
type Reader struct {
	br       *bufio.Reader
	name     string
	line     int
	d        *decoder
	order    order
	warnings []string
	err      error  // sticky: io.EOF or the error that stopped reading
	long     []byte // a line that did not fit in br's buffer
}

// NewReader returns a Reader of r; name (usually the file's path) is used
// in errors and warnings.
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{
		br:   bufio.NewReaderSize(r, readBufferBytes),
		name: name,
		d:    newDecoder(),
	}
}

// Next returns the next op, or io.EOF after the last one. Any other error
// is a *ParseError naming the line (or a read error), and every later call
// returns it again. An op's slices are carved from blocks shared with
// other ops, with capacity equal to length: appending to one copies it and
// never touches a neighbour.
func (r *Reader) Next() (Op, error) {
	var op Op
	err := r.next(&op)
	return op, err
}

// next decodes the next op into op, which the caller has zeroed.
func (r *Reader) next(op *Op) error {
	if r.err != nil {
		return r.err
	}
	for {
		line, complete, err := r.readLine()
		if err == io.EOF {
			r.err = io.EOF
			return io.EOF
		}
		r.line++
		if err != nil {
			if errors.Is(err, ErrLineTooLong) {
				r.err = &ParseError{File: r.name, Line: r.line, Err: err}
			} else {
				r.err = fmt.Errorf("%s:%d: reading the history: %w", r.name, r.line, err)
			}
			return r.err
		}
		switch res, err := decodeLine(r.d, line, complete, op); res {
		case lineBlank:
			continue
		case lineTruncated:
			r.warnings = append(r.warnings, truncatedWarning(r.name, r.line, err))
			r.err = io.EOF
			return io.EOF
		case lineBad:
			r.err = &ParseError{File: r.name, Line: r.line, Err: err}
			return r.err
		}
		if err := r.order.check(op); err != nil {
			r.err = &ParseError{File: r.name, Line: r.line, Err: err}
			return r.err
		}
		return nil
	}
}

// order checks that ops come in the order they happened: indexes increase
// strictly (they need not be dense) and times never decrease.
type order struct {
	prevIndex, prevTime int64
	started             bool
}

func (o *order) check(op *Op) error {
	if o.started {
		if op.Index <= o.prevIndex {
			return indexOrderError(o.prevIndex, op.Index)
		}
		if op.Time < o.prevTime {
			return fmt.Errorf("field \"time\": %d is before the previous op's time %d: events must be recorded in the order they happened, on a clock that never goes backwards", op.Time, o.prevTime)
		}
	}
	o.prevIndex, o.prevTime, o.started = op.Index, op.Time, true
	return nil
}

// What decodeLine made of a line.
const (
	lineOp        = iota // an op
	lineBlank            // nothing: skip it
	lineTruncated        // the cut-off last line of a file: warn and stop
	lineBad              // an error
)

// decodeLine decodes one line (with or without its newline) into op;
// complete says whether it ended with a newline. The sequential Reader and
// the parallel ReadAll both judge lines through it, so they agree.
func decodeLine(d *decoder, line []byte, complete bool, op *Op) (int, error) {
	line = trimEOL(line)
	if isBlank(line) {
		return lineBlank, nil
	}
	if err := d.decodeOp(line, op); err != nil {
		if !complete && !json.Valid(line) {
			return lineTruncated, err
		}
		return lineBad, err
	}
	return lineOp, nil
}

func truncatedWarning(name string, line int, err error) string {
	return fmt.Sprintf("%s:%d: skipped the last line: it has no newline at its end and is not whole JSON, as when the writer died mid-write: %v",
		name, line, err)
}

func indexOrderError(prev, got int64) error {
	return fmt.Errorf("field \"index\": want more than the previous op's index %d, got %d: indexes must increase strictly", prev, got)
}

// Warnings returns what the reader skipped and why (so far: a truncated
// last line).
func (r *Reader) Warnings() []string { return r.warnings }

// Line returns the number of the line last read, 1-based.
func (r *Reader) Line() int { return r.line }

// readLine returns the next line including its newline; complete says
// whether it had one (only the last line of a file may lack it). The line
// is valid until the next call.
func (r *Reader) readLine() (line []byte, complete bool, err error) {
	if cap(r.long) > 4*readBufferBytes {
		r.long = nil // let one huge line's memory go
	}
	r.long = r.long[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		switch err {
		case nil:
			if len(r.long) == 0 {
				return chunk, true, nil
			}
			r.long = append(r.long, chunk...)
			if len(r.long)-1 > MaxLineBytes {
				return nil, false, ErrLineTooLong
			}
			return r.long, true, nil
		case bufio.ErrBufferFull:
			r.long = append(r.long, chunk...)
			if len(r.long) > MaxLineBytes {
				return nil, false, ErrLineTooLong
			}
		case io.EOF:
			if len(r.long) == 0 {
				if len(chunk) == 0 {
					return nil, false, io.EOF
				}
				return chunk, false, nil
			}
			r.long = append(r.long, chunk...)
			if len(r.long) > MaxLineBytes {
				return nil, false, ErrLineTooLong
			}
			return r.long, false, nil
		default:
			return nil, false, err
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	return b
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// ReadAll reads a whole JSON Lines history from r; name is used in errors
// and warnings. It returns the ops, the warnings about what it skipped, and
// the first error. It checks and skips exactly what a [Reader] does, but
// decodes on all CPUs. It checks each line and the order of the lines, not
// that invocations and completions pair up: [Load] does that too.
func ReadAll(r io.Reader, name string) (ops []Op, warnings []string, err error) {
	hint := 0
	if l, ok := r.(interface{ Len() int }); ok { // bytes.Reader, strings.Reader, bytes.Buffer
		hint = l.Len() / opBytesGuess
	}
	l := &opList{ops: make([]Op, 0, hint)}
	warnings, err = readInto(r, name, l, runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, warnings, err
	}
	return l.ops, warnings, nil
}

// opBytesGuess is a typical history line's length, to size the op slice
// from a file's size (real lines run 100 to 200 bytes).
const opBytesGuess = 128

// ReadFile reads the JSON Lines history at path. See [ReadAll].
func ReadFile(path string) (ops []Op, warnings []string, err error) {
	l, warnings, err := readFileInto(path, func(hint int) *opList { return &opList{ops: make([]Op, 0, hint)} })
	if err != nil {
		return nil, warnings, err
	}
	return l.ops, warnings, nil
}

// readFileInto reads the JSON Lines history at path into the sink that
// newSink makes, given the number of ops the file's size suggests.
func readFileInto[S opSink](path string, newSink func(hint int) S) (S, []string, error) {
	var s S
	f, err := os.Open(path)
	if err != nil {
		return s, nil, fmt.Errorf("histories: %w", err)
	}
	defer f.Close()
	hint := 0
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		hint = int(min(fi.Size()/opBytesGuess, 1<<26))
	}
	s = newSink(hint)
	size := int64(0)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	warnings, err := readInto(sized{f, size}, path, s, runtime.GOMAXPROCS(0))
	return s, warnings, err
}

// sized is a reader whose total size is known (a regular file), so that a
// sink can reserve its memory once rather than grow it step by step.
type sized struct {
	io.Reader
	size int64
}

// reserver is a sink that can size its storage for the whole history
// once it has seen part of it: scale is the history's size over the size
// of what it has seen.
type reserver interface {
	reserve(scale float64)
}

// opSink takes the ops of a history as a reader decodes them: in history
// order, in batches, each op with the line it was read from.
type opSink interface {
	// add takes the next ops; lines[i] is the line ops[i] was read from.
	// Both slices are reused after the call, and so are the ops' own
	// slices and maps unless keeps says they are kept.
	add(ops []Op, lines []int32) error
	// keeps reports whether the sink keeps the ops (and their memory).
	keeps() bool
}

// opList is the sink that keeps the ops as they are, with what it takes to
// find each op's line again.
type opList struct {
	ops   []Op
	lines lineMap
}

func (l *opList) keeps() bool { return true }

func (l *opList) add(ops []Op, lines []int32) error {
	for i := range ops {
		l.lines.note(len(l.ops)+i, int(lines[i]))
	}
	l.ops = append(l.ops, ops...)
	return nil
}

// lineMap finds the line an op was read from, given its position in the
// history. Lines and positions move together (one op per line) except
// where blank lines, or ops sharing or spanning lines in EDN, shift them;
// only those shifts are stored.
type lineMap struct {
	pos, line []int32 // from pos[i] on, op p is on line line[i] + (p - pos[i])
}

// note records that the op at position p is on line l; ops must be noted
// in order.
func (m *lineMap) note(p, l int) {
	if n := len(m.pos); n > 0 && int(m.line[n-1])+(p-int(m.pos[n-1])) == l {
		return
	}
	m.pos = append(m.pos, int32(p))
	m.line = append(m.line, int32(l))
}

// of returns the line of the op at position p, or 0 if unknown.
func (m *lineMap) of(p int) int {
	i := sort.Search(len(m.pos), func(i int) bool { return int(m.pos[i]) > p }) - 1
	if i < 0 {
		return 0
	}
	return int(m.line[i]) + p - int(m.pos[i])
}

// readInto reads a JSON Lines history from r into s, checking each line
// and the order of the lines, on workers goroutines.
func readInto(r io.Reader, name string, s opSink, workers int) ([]string, error) {
	if workers > 1 {
		return readParallelInto(r, name, s, workers, parallelBlockBytes)
	}
	return readSequentialInto(NewReader(r, name), s)
}

func readSequentialInto(r *Reader, s opSink) ([]string, error) {
	ops := make([]Op, 1)
	lines := make([]int32, 1)
	for {
		ops[0] = Op{}
		if err := r.next(&ops[0]); err != nil {
			if err == io.EOF {
				return r.Warnings(), nil
			}
			return r.Warnings(), err
		}
		lines[0] = int32(r.line)
		if err := s.add(ops, lines); err != nil {
			return r.Warnings(), err
		}
	}
}

// readSequential and readParallel read into an opList: the two readers
// must agree, and tests compare them.
func readSequential(r *Reader, hint int) ([]Op, []string, error) {
	l := &opList{ops: make([]Op, 0, hint)}
	warnings, err := readSequentialInto(r, l)
	if err != nil {
		return nil, warnings, err
	}
	return l.ops, warnings, nil
}

func readParallel(r io.Reader, name string, hint, workers, blockBytes int) ([]Op, []string, error) {
	l := &opList{ops: make([]Op, 0, hint)}
	warnings, err := readParallelInto(r, name, l, workers, blockBytes)
	if err != nil {
		return nil, warnings, err
	}
	return l.ops, warnings, nil
}

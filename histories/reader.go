package histories

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
// Besides each line's schema it checks that indexes increase strictly: they
// need not be dense, so a history filtered with grep (a few processes, a
// time window) still reads, but no two ops share an index and the file's
// order is the index order. Blank lines are skipped. A last line that has
// no newline at its end and does not parse is what a harness that died
// mid-write leaves behind; it is skipped with a warning (see
// [Reader.Warnings]) rather than failing the whole history.
type Reader struct {
	br        *bufio.Reader
	name      string
	line      int
	d         *decoder
	prevIndex int64
	warnings  []string
	err       error  // sticky: io.EOF or the error that stopped reading
	long      []byte // a line that did not fit in br's buffer
}

// NewReader returns a Reader of r; name (usually the file's path) is used
// in errors and warnings.
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{
		br:        bufio.NewReaderSize(r, readBufferBytes),
		name:      name,
		d:         newDecoder(),
		prevIndex: -1,
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
		if op.Index <= r.prevIndex {
			r.err = &ParseError{File: r.name, Line: r.line, Err: indexOrderError(r.prevIndex, op.Index)}
			return r.err
		}
		r.prevIndex = op.Index
		return nil
	}
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
		if !complete {
			return lineTruncated, err
		}
		return lineBad, err
	}
	return lineOp, nil
}

func truncatedWarning(name string, line int, err error) string {
	return fmt.Sprintf("%s:%d: skipped the last line: it has no newline at its end, as when the writer died mid-write, and it does not parse: %v",
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
// decodes on all CPUs.
func ReadAll(r io.Reader, name string) (ops []Op, warnings []string, err error) {
	hint := 0
	if l, ok := r.(interface{ Len() int }); ok { // bytes.Reader, strings.Reader, bytes.Buffer
		hint = l.Len() / opBytesGuess
	}
	return readAll(r, name, hint)
}

// opBytesGuess is a typical history line's length, to size the op slice
// from a file's size (real lines run 100 to 200 bytes).
const opBytesGuess = 128

// ReadFile reads the JSON Lines history at path. See [ReadAll].
func ReadFile(path string) (ops []Op, warnings []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("histories: %w", err)
	}
	defer f.Close()
	hint := 0
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		hint = int(min(fi.Size()/opBytesGuess, 1<<26))
	}
	return readAll(f, path, hint)
}

func readAll(r io.Reader, name string, hint int) ([]Op, []string, error) {
	if workers := runtime.GOMAXPROCS(0); workers > 1 {
		return readParallel(r, name, hint, workers, parallelBlockBytes)
	}
	return readSequential(NewReader(r, name), hint)
}

func readSequential(r *Reader, hint int) ([]Op, []string, error) {
	ops := make([]Op, 0, hint)
	for {
		ops = append(ops, Op{})
		if err := r.next(&ops[len(ops)-1]); err != nil {
			ops = ops[:len(ops)-1]
			if err == io.EOF {
				return ops, r.Warnings(), nil
			}
			return nil, r.Warnings(), err
		}
	}
}

// Load reads a history file of either format: Jepsen EDN when the name ends
// in .edn, JSON Lines otherwise. Use [ResolveHistory] first to accept run
// folders and store links too.
func Load(path string) (ops []Op, warnings []string, err error) {
	if strings.EqualFold(filepath.Ext(path), ".edn") {
		return ReadEDNFile(path)
	}
	return ReadFile(path)
}

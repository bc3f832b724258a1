package histories

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// FlushInterval is the longest an op recorded by a [Writer] waits in its
// buffer before it is written out: the design promises that a harness that
// dies mid-run loses at most about a second of history.
const FlushInterval = time.Second

// flushBytes is how full the buffer may get before Write flushes it itself.
const flushBytes = 256 << 10

// ErrClosed is returned by writes to a closed Writer.
var ErrClosed = errors.New("histories: writer is closed")

// ErrIndexOrder is returned by Write for an op whose index is not above the
// last one written: the file would not read back (see [Reader]).
var ErrIndexOrder = errors.New("histories: op index does not increase")

// ErrTimeOrder is returned by Write for an op whose time is before the last
// one written: events are recorded in the order they happened, and the
// file would not read back.
var ErrTimeOrder = errors.New("histories: op time goes backwards")

// Writer appends ops to a JSON Lines history. It buffers lines and writes
// them out when the buffer fills, at least every [FlushInterval] from a
// background goroutine, and on Flush and Close. All methods are safe for
// concurrent use.
type Writer struct {
	mu       sync.Mutex
	dst      io.Writer
	file     *os.File // set by Create: synced and closed by Close
	buf      []byte
	next     int64 // the lowest index the next op may have
	lastTime int64 // the time of the last op a Recorder recorded
	// lastWritten is the time of the last op written (when next > 0).
	lastWritten int64
	err         error // sticky: the first write error
	closed      bool
	stop        chan struct{}
	done        chan struct{}
}

// NewWriter returns a Writer to w and starts its flushing goroutine; Close
// stops it. Close does not close w.
func NewWriter(w io.Writer) *Writer {
	hw := &Writer{
		dst:  w,
		buf:  make([]byte, 0, flushBytes+4096),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go hw.flushLoop()
	return hw
}

// Create creates (or truncates) the history file at path and returns a
// Writer to it. Close flushes, fsyncs and closes the file.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("histories: creating history: %w", err)
	}
	w := NewWriter(f)
	w.file = f
	return w, nil
}

func (w *Writer) flushLoop() {
	defer close(w.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			_ = w.flushLocked() // a failure is sticky: the next Write reports it
			w.mu.Unlock()
		}
	}
}

// Write appends op as one line. The caller sets Index and Time; Index must
// be above the last op's (use a [Recorder] to have them assigned).
func (w *Writer) Write(op Op) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeLocked(&op)
}

func (w *Writer) writeLocked(op *Op) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if op.Index < w.next {
		return fmt.Errorf("%w: got %d after %d", ErrIndexOrder, op.Index, w.next-1)
	}
	if w.next > 0 && op.Time < w.lastWritten {
		return fmt.Errorf("%w: got %d after %d", ErrTimeOrder, op.Time, w.lastWritten)
	}
	var err error
	if w.buf, err = AppendOp(w.buf, op); err != nil {
		return err
	}
	w.buf = append(w.buf, '\n')
	w.next, w.lastWritten = op.Index+1, op.Time
	if len(w.buf) >= flushBytes {
		return w.flushLocked()
	}
	return nil
}

func (w *Writer) flushLocked() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.dst.Write(w.buf)
	w.buf = w.buf[:0]
	if err != nil {
		w.err = fmt.Errorf("histories: writing history: %w", err)
	}
	return w.err
}

// Flush writes out everything buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	return w.flushLocked()
}

// Sync flushes and, for a file made by Create, fsyncs it, so that what was
// written survives a power loss.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if err := w.flushLocked(); err != nil {
		return err
	}
	if w.file != nil {
		if err := w.file.Sync(); err != nil {
			return fmt.Errorf("histories: syncing history: %w", err)
		}
	}
	return nil
}

// Close flushes, stops the flushing goroutine and, for a file made by
// Create, fsyncs and closes the file. It returns the first error the Writer
// met. Closing twice returns ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed = true
	err := w.flushLocked()
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	if w.file != nil {
		if serr := w.file.Sync(); serr != nil && err == nil {
			err = fmt.Errorf("histories: syncing history: %w", serr)
		}
		if cerr := w.file.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("histories: closing history: %w", cerr)
		}
	}
	return err
}

// WriteAll writes ops to w as JSON Lines, unbuffered by goroutines: for
// converting and saving whole histories at once.
func WriteAll(w io.Writer, ops []Op) error {
	buf := make([]byte, 0, flushBytes+4096)
	next := int64(0)
	for i := range ops {
		if ops[i].Index < next {
			return fmt.Errorf("%w: got %d after %d", ErrIndexOrder, ops[i].Index, next-1)
		}
		if i > 0 && ops[i].Time < ops[i-1].Time {
			return fmt.Errorf("%w: got %d after %d", ErrTimeOrder, ops[i].Time, ops[i-1].Time)
		}
		var err error
		if buf, err = AppendOp(buf, &ops[i]); err != nil {
			return err
		}
		buf = append(buf, '\n')
		next = ops[i].Index + 1
		if len(buf) >= flushBytes {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("histories: writing history: %w", err)
			}
			buf = buf[:0]
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("histories: writing history: %w", err)
	}
	return nil
}

// Recorder records ops as they happen, from many goroutines at once: it
// assigns each op the next index and its time (nanoseconds since start, on
// the monotonic clock) under the Writer's lock, so that the file's order,
// the index order and the time order all agree.
type Recorder struct {
	w     *Writer
	start time.Time
}

// NewRecorder returns a Recorder writing to w. start is the test's start,
// normally time.Now() taken as the test began; it must carry a monotonic
// clock reading (time.Now does) so that wall-clock jumps do not skew times.
// Indexes continue after whatever w has already written.
func NewRecorder(w *Writer, start time.Time) *Recorder {
	return &Recorder{w: w, start: start}
}

// Record sets op's Index and Time, writes it, and returns it as recorded.
// Times never go backwards, even if the clock does.
func (r *Recorder) Record(op Op) (Op, error) {
	w := r.w
	w.mu.Lock()
	defer w.mu.Unlock()
	t := time.Since(r.start).Nanoseconds()
	if t < w.lastTime {
		t = w.lastTime
	}
	op.Index, op.Time = w.next, t
	if err := w.writeLocked(&op); err != nil {
		return op, err
	}
	w.lastTime = t
	return op, nil
}

// Writer returns the Writer the Recorder writes to.
func (r *Recorder) Writer() *Writer { return r.w }

// Flush flushes the Writer.
func (r *Recorder) Flush() error { return r.w.Flush() }

// Close closes the Writer.
func (r *Recorder) Close() error { return r.w.Close() }

package histories

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestRecorderConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), HistoryFile)
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(w, time.Now())
	const clients, each = 16, 500
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				inv, err := rec.Record(Op{Process: int64(c), Type: Invoke, F: FSend, Value: Value{Mops: []Mop{
					{F: MopSend, Key: fmt.Sprint(c), Value: int64(c*each + i), Offset: OffsetPending}}}})
				if err != nil {
					errs <- err
					return
				}
				done := inv
				done.Type = OK
				done.Value.Mops = []Mop{{F: MopSend, Key: fmt.Sprint(c), Value: int64(c*each + i), Offset: int64(i)}}
				got, err := rec.Record(done)
				if err != nil {
					errs <- err
					return
				}
				if got.Index <= inv.Index || got.Time < inv.Time {
					errs <- fmt.Errorf("completion %d at %d recorded before its invocation %d at %d", got.Index, got.Time, inv.Index, inv.Time)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	ops, warnings, err := ReadFile(path)
	if err != nil || len(warnings) > 0 {
		t.Fatal(warnings, err)
	}
	if len(ops) != 2*clients*each {
		t.Fatalf("read %d ops, want %d", len(ops), 2*clients*each)
	}
	for i, op := range ops {
		if op.Index != int64(i) {
			t.Fatalf("op %d has index %d: the recorder must number ops densely in file order", i, op.Index)
		}
		if i > 0 && op.Time < ops[i-1].Time {
			t.Fatalf("op %d's time %d is before op %d's %d", i, op.Time, i-1, ops[i-1].Time)
		}
	}
	if _, err := Pair(ops); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while the writer's goroutine
// writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func TestWriterFlushesInTheBackground(t *testing.T) {
	var dst syncBuffer
	w := NewWriter(&dst)
	t.Cleanup(func() { w.Close() })
	if err := w.Write(Op{Type: Invoke, F: FPoll, Value: Value{Mops: []Mop{{F: MopPoll}}}}); err != nil {
		t.Fatal(err)
	}
	// Nobody calls Flush: the background goroutine must write the op out.
	// (The deadline is generous; how fast it happens is not the point.)
	deadline := time.Now().Add(20 * FlushInterval)
	for dst.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing written %v after the op was recorded", 20*FlushInterval)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWriterClose(t *testing.T) {
	var dst syncBuffer
	w := NewWriter(&dst)
	if err := w.Write(Op{Index: 3, Type: Invoke, F: FCrash}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	default:
		t.Fatal("Close returned before the flushing goroutine stopped")
	}
	if dst.Len() == 0 {
		t.Fatal("Close did not flush")
	}
	if err := w.Write(Op{Index: 4, Type: Invoke, F: FCrash}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
}

func TestWriterRefusesBadOps(t *testing.T) {
	var dst bytes.Buffer
	w := NewWriter(&dst)
	if err := w.Write(Op{Index: 5, Type: Invoke, F: FCrash}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(Op{Index: 5, Type: OK, F: FCrash}); !errors.Is(err, ErrIndexOrder) {
		t.Fatalf("repeated index: %v, want ErrIndexOrder", err)
	}
	if err := w.Write(Op{Index: 6, Time: -1, Type: OK, F: FCrash}); !errors.Is(err, ErrTimeOrder) {
		t.Fatalf("time going back: %v, want ErrTimeOrder", err)
	}
	if err := WriteAll(io.Discard, []Op{{Index: 0, Time: 5, Type: OK, F: FCrash}, {Index: 1, Time: 4, Type: OK, F: FCrash}}); !errors.Is(err, ErrTimeOrder) {
		t.Fatalf("WriteAll with time going back: %v, want ErrTimeOrder", err)
	}
	if err := w.Write(Op{Index: 6, Type: "okk", F: FCrash}); err == nil {
		t.Fatal("bad type accepted")
	}
	if err := w.Write(Op{Index: 6, Type: OK, F: FCrash}); err != nil {
		t.Fatalf("a good op after refused ones: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := `{"index":5,"time":0,"process":0,"type":"invoke","f":"crash","value":null}` + "\n" +
		`{"index":6,"time":0,"process":0,"type":"ok","f":"crash","value":null}` + "\n"
	if dst.String() != want {
		t.Fatalf("file holds\n%s\nwant\n%s", dst.String(), want)
	}
	// The recorder continues after the last index written.
	var dst2 bytes.Buffer
	w2 := NewWriter(&dst2)
	t.Cleanup(func() { w2.Close() })
	w2.Write(Op{Index: 41, Type: Invoke, F: FCrash})
	op, err := NewRecorder(w2, time.Now()).Record(Op{Type: Info, F: FCrash})
	if err != nil || op.Index != 42 {
		t.Fatalf("Record after index 41 gave index %d, %v", op.Index, err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestWriterErrorsAreSticky(t *testing.T) {
	boom := errors.New("disk full")
	w := NewWriter(failingWriter{boom})
	if err := w.Write(Op{Type: Invoke, F: FCrash}); err != nil {
		t.Fatal(err) // buffered: nothing written yet
	}
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v, want the write error", err)
	}
	if err := w.Write(Op{Index: 1, Type: Invoke, F: FCrash}); !errors.Is(err, boom) {
		t.Fatalf("Write after a failed flush = %v, want the write error", err)
	}
	if err := w.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close = %v, want the write error", err)
	}
}

func TestCreateSyncAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), HistoryFile)
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	ops := genHistory(11, 300)
	for _, op := range ops {
		if err := w.Write(op); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	// Readable while the writer is still open: what a crashed harness
	// leaves behind.
	got, _, err := ReadFile(path)
	if err != nil || len(got) != len(ops) {
		t.Fatalf("read %d of %d ops before Close: %v", len(got), len(ops), err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(filepath.Join(t.TempDir(), "no", "such", "dir", HistoryFile)); err == nil {
		t.Fatal("Create in a missing folder succeeded")
	}
}

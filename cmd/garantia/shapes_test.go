package main

import (
	"bufio"
	"context"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/synth"
)

// Histories of the shapes that blew the checker's memory or time before:
// live processes times keys, many single-use processes, big assigns,
// never-completed sends, records without end, and the like. Each is
// written to a file of about the size asked for. BenchmarkShapes checks
// each in-process and reports time and the Go heap's peak; for the peak
// of the whole process, write them out and time `garantia check`:
//
//	go test ./cmd/garantia -run TestWriteShapes -shapes.dir /tmp/shapes -shapes.mb 200
//	for f in /tmp/shapes/*.jsonl; do /usr/bin/time -f "%e s %M KB $f" garantia check --out /tmp/r.json $f; done
var (
	shapesDir = flag.String("shapes.dir", "", "TestWriteShapes writes the shape histories here")
	shapesMB  = flag.Int("shapes.mb", 200, "size of each shape history, in MB")
)

// shape writes a history of about size bytes to w.
type shape struct {
	name  string
	write func(w *shapeWriter, size int64)
}

// shapeWriter writes history lines, numbering them.
type shapeWriter struct {
	w     *bufio.Writer
	n     int64 // bytes written
	index int64
	buf   []byte
}

func (s *shapeWriter) op(op histories.Op) {
	op.Index, op.Time = s.index, s.index
	s.index++
	var err error
	if s.buf, err = histories.AppendOp(s.buf[:0], &op); err != nil {
		panic(err)
	}
	s.buf = append(s.buf, '\n')
	s.w.Write(s.buf)
	s.n += int64(len(s.buf))
}

func send(k string, off, v int64) histories.Mop {
	return histories.Mop{F: histories.MopSend, Key: k, Value: v, Offset: off}
}

var pollInv = []histories.Mop{{F: histories.MopPoll}}

var shapes = []shape{
	{"synth", nil}, // garantia synth's realistic history, sized to match
	{"tiny-ops", func(w *shapeWriter, size int64) {
		// Short lines: each process polls once and crashes.
		for p := int64(0); w.n < size; p++ {
			w.op(histories.Op{Process: p, Type: histories.Invoke, F: histories.FCrash})
			w.op(histories.Op{Process: p, Type: histories.Info, F: histories.FCrash})
		}
	}},
	{"single-use-processes-many-keys", func(w *shapeWriter, size int64) {
		// 100,000s of processes, each sending once to one of 10,000 keys
		// and retired, and polls by others of the same keys.
		for p, v := int64(0), int64(0); w.n < size; p, v = p+2, v+1 {
			k := strconv.FormatInt(v%10_000, 10)
			off := v / 10_000
			w.op(histories.Op{Process: p, Type: histories.Invoke, F: histories.FSend, Value: histories.Value{Mops: []histories.Mop{send(k, histories.OffsetPending, v)}}})
			w.op(histories.Op{Process: p, Type: histories.Info, F: histories.FSend, Value: histories.Value{Mops: []histories.Mop{send(k, off, v)}}})
			w.op(histories.Op{Process: p + 1, Type: histories.Invoke, F: histories.FPoll, Value: histories.Value{Mops: pollInv}})
			w.op(histories.Op{Process: p + 1, Type: histories.OK, F: histories.FPoll, Value: histories.Value{Mops: []histories.Mop{{F: histories.MopPoll, Polls: map[string][]histories.Record{k: {{Offset: off, Value: v}}}}}}})
		}
	}},
	{"processes-times-keys", func(w *shapeWriter, size int64) {
		// 8,000 live processes each send to 8,000 keys in turn.
		for v := int64(0); w.n < size; v++ {
			p := v % 8_000
			k := strconv.FormatInt((v/8_000+p)%8_000, 10)
			w.op(histories.Op{Process: p, Type: histories.Invoke, F: histories.FSend, Value: histories.Value{Mops: []histories.Mop{send(k, histories.OffsetPending, v)}}})
			w.op(histories.Op{Process: p, Type: histories.OK, F: histories.FSend, Value: histories.Value{Mops: []histories.Mop{send(k, v, v)}}})
		}
	}},
	{"big-assigns", func(w *shapeWriter, size int64) {
		// Assigns of 5,000 keys, each followed by a poll of a few.
		keys := make([]string, 5_000)
		for i := range keys {
			keys[i] = strconv.Itoa(i)
		}
		for p := int64(0); w.n < size; p = (p + 1) % 50 {
			w.op(histories.Op{Process: p, Type: histories.Invoke, F: histories.FAssign, Value: histories.Value{Keys: keys}})
			w.op(histories.Op{Process: p, Type: histories.OK, F: histories.FAssign, Value: histories.Value{Keys: keys}})
			w.op(histories.Op{Process: p, Type: histories.Invoke, F: histories.FPoll, Value: histories.Value{Mops: pollInv}})
			w.op(histories.Op{Process: p, Type: histories.OK, F: histories.FPoll, Value: histories.Value{Mops: []histories.Mop{{F: histories.MopPoll, Polls: map[string][]histories.Record{}}}}})
		}
	}},
	{"never-completed-sends", func(w *shapeWriter, size int64) {
		// A read of a value before its write, then sends by processes that
		// never complete: the linearizability search once ran a minute.
		w.op(histories.Op{Process: -2, Type: histories.Invoke, F: histories.FPoll, Value: histories.Value{Mops: pollInv}})
		w.op(histories.Op{Process: -2, Type: histories.OK, F: histories.FPoll, Value: histories.Value{Mops: []histories.Mop{{F: histories.MopPoll, Polls: map[string][]histories.Record{"k": {{Offset: 0, Value: 0}}}}}}})
		w.op(histories.Op{Process: -3, Type: histories.Invoke, F: histories.FSend, Value: histories.Value{Mops: []histories.Mop{send("k", histories.OffsetPending, 0)}}})
		w.op(histories.Op{Process: -3, Type: histories.OK, F: histories.FSend, Value: histories.Value{Mops: []histories.Mop{send("k", 0, 0)}}})
		for p := int64(0); w.n < size; p++ {
			w.op(histories.Op{Process: p, Type: histories.Invoke, F: histories.FSend, Value: histories.Value{Mops: []histories.Mop{send("k", histories.OffsetPending, p+1)}}})
		}
	}},
	{"long-polls", func(w *shapeWriter, size int64) {
		// Polls of 100,000 records each, every value a distinct one nobody
		// sent: records without end, and garbage.
		recs := make([]histories.Record, 100_000)
		for p, base := int64(0), int64(0); w.n < size; p, base = p+1, base+int64(len(recs)) {
			for i := range recs {
				recs[i] = histories.Record{Offset: base + int64(i), Value: base + int64(i)}
			}
			w.op(histories.Op{Process: p, Type: histories.Invoke, F: histories.FPoll, Value: histories.Value{Mops: pollInv}})
			w.op(histories.Op{Process: p, Type: histories.OK, F: histories.FPoll, Value: histories.Value{Mops: []histories.Mop{{F: histories.MopPoll, Polls: map[string][]histories.Record{"k": recs}}}}})
		}
	}},
	{"duplicates", func(w *shapeWriter, size int64) {
		// One value read at every offset: a duplicate with no end, in
		// short records.
		recs := make([]histories.Record, 10_000)
		w.op(histories.Op{Process: -2, Type: histories.Invoke, F: histories.FSend, Value: histories.Value{Mops: []histories.Mop{send("k", histories.OffsetPending, 7)}}})
		w.op(histories.Op{Process: -2, Type: histories.OK, F: histories.FSend, Value: histories.Value{Mops: []histories.Mop{send("k", 0, 7)}}})
		for p, base := int64(0), int64(1); w.n < size; p, base = p+1, base+int64(len(recs)) {
			for i := range recs {
				recs[i] = histories.Record{Offset: base + int64(i), Value: 7}
			}
			w.op(histories.Op{Process: p, Type: histories.Invoke, F: histories.FPoll, Value: histories.Value{Mops: pollInv}})
			w.op(histories.Op{Process: p, Type: histories.OK, F: histories.FPoll, Value: histories.Value{Mops: []histories.Mop{{F: histories.MopPoll, Polls: map[string][]histories.Record{"k": recs}}}}})
		}
	}},
	{"acks0-many-keys", func(w *shapeWriter, size int64) {
		// Sends with no offset to a million keys, read back by one poll
		// each: no key has much, there are very many.
		for p, v := int64(0), int64(0); w.n < size; p, v = (p+1)%100, v+1 {
			k := "topic-" + strconv.FormatInt(v, 10)
			w.op(histories.Op{Process: p, Type: histories.Invoke, F: histories.FSend, Value: histories.Value{Mops: []histories.Mop{send(k, histories.OffsetPending, v)}}})
			w.op(histories.Op{Process: p, Type: histories.OK, F: histories.FSend, Value: histories.Value{Mops: []histories.Mop{send(k, histories.OffsetUnknown, v)}}})
			w.op(histories.Op{Process: p + 100, Type: histories.Invoke, F: histories.FPoll, Value: histories.Value{Mops: pollInv}})
			w.op(histories.Op{Process: p + 100, Type: histories.OK, F: histories.FPoll, Value: histories.Value{Mops: []histories.Mop{{F: histories.MopPoll, Polls: map[string][]histories.Record{k: {{Offset: 0, Value: v}}}}}}})
		}
	}},
}

// writeShape writes the shape's history of about mb MB into dir.
func writeShape(t testing.TB, s shape, dir string, mb int) string {
	path := filepath.Join(dir, s.name+".jsonl")
	size := int64(mb) << 20
	if s.write == nil {
		// The realistic history: synth writes about 178 bytes per event.
		cfg := synth.DefaultConfig()
		cfg.Ops = int(size / 178)
		if code, _, errOut := runCLI(t.(*testing.T), "synth", "--ops", strconv.Itoa(cfg.Ops), "--seed", "1", "--out", path); code != 0 {
			t.Fatal(errOut)
		}
		return path
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := &shapeWriter{w: bufio.NewWriterSize(f, 1<<20)}
	s.write(w, size)
	if err := w.w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestWriteShapes writes every shape to -shapes.dir, for timing garantia
// check on them as a separate process (see above). Without the flag it
// checks each shape at 2 MB: they must all check, whatever their verdict.
func TestWriteShapes(t *testing.T) {
	dir, mb := *shapesDir, *shapesMB
	if dir == "" {
		dir, mb = t.TempDir(), 2
	}
	for _, s := range shapes {
		path := writeShape(t, s, dir, mb)
		if *shapesDir != "" {
			t.Logf("wrote %s", path)
			continue
		}
		code, out, errOut := runCLI(t, "check", "--out", filepath.Join(dir, s.name+".results.json"), path)
		if code != 0 && code != 1 && code != 2 {
			t.Errorf("%s: exit %d\n%s\n%s", s.name, code, out, errOut)
		}
	}
}

// BenchmarkShapes loads and checks each shape (20 MB; -shapes.mb to
// change) in-process: the time, and the Go heap's peak, sampled.
func BenchmarkShapes(b *testing.B) {
	dir := b.TempDir()
	mb := min(*shapesMB, 20)
	for _, s := range shapes {
		if s.write == nil {
			continue // its time is BenchmarkQueueCheck's and linear's
		}
		b.Run(s.name, func(b *testing.B) {
			path := writeShape(b, s, dir, mb)
			var peak atomic.Uint64
			stop := make(chan struct{})
			go func() {
				var ms runtime.MemStats
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
					}
				}
			}()
			for b.Loop() {
				h, err := histories.LoadHistory(path, histories.LoadOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := checker.CheckHistory(context.Background(), h, checker.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			close(stop)
			b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(mb), "history-MB")
		})
	}
}

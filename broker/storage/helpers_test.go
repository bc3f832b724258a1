package storage

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/storage/storagetest"
)

// values returns n record values of size bytes, derived from tag, so that
// every batch of a test is distinguishable.
func values(tag string, n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		v := bytes.Repeat([]byte{'.'}, size)
		copy(v, fmt.Sprintf("%s/%d|", tag, i))
		out[i] = v
	}
	return out
}

// batch builds a producer batch of n records of size bytes.
func batch(tag string, n, size int) []byte { return storagetest.Batch(values(tag, n, size)...) }

// stamped is b as the log stores it at baseOffset with epoch.
func stamped(b []byte, baseOffset int64, epoch int32) []byte {
	c := append([]byte(nil), b...)
	stampBatch(c, baseOffset, epoch)
	return c
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLogger returns a logger that keeps its output for assertions and
// prints it if the test fails.
func testLogger(t testing.TB) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() && buf.String() != "" {
			t.Logf("log output:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// openLog opens a disk log that the test closes at its end if the test did
// not.
func openLog(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger, _ = testLogger(t)
	}
	l, err := OpenLog(dir, opts)
	if err != nil {
		t.Fatalf("OpenLog(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// mustAppend appends as leader and fails the test on error.
func mustAppend(t testing.TB, l PartitionLog, b []byte, epoch int32) int64 {
	t.Helper()
	off, err := l.AppendAsLeader(b, epoch)
	if err != nil {
		t.Fatalf("AppendAsLeader at end offset %d: %v", l.EndOffset(), err)
	}
	return off
}

// storedBatch is one batch as read back.
type storedBatch struct {
	base, next int64
	epoch      int32
	data       []byte
}

// readAll reads every batch in [from, EndOffset) through Read in chunks of
// maxBytes, checking each with kmsg (an independent parser) as well as the
// log's own checks.
func readAll(t testing.TB, l PartitionLog, maxBytes int) []storedBatch {
	t.Helper()
	var out []storedBatch
	end := l.EndOffset()
	for off := l.StartOffset(); off < end; {
		b, err := l.Read(off, maxBytes, end)
		if err != nil {
			t.Fatalf("Read(%d, %d, %d): %v", off, maxBytes, end, err)
		}
		if len(b) == 0 {
			t.Fatalf("Read(%d, %d, %d) returned nothing below the end offset", off, maxBytes, end)
		}
		for len(b) > 0 {
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(b); err != nil {
				t.Fatalf("kmsg cannot parse the batch read at offset %d: %v", off, err)
			}
			h, err := checkBatch(b)
			if err != nil {
				t.Fatalf("batch read at offset %d fails its check: %v", off, err)
			}
			if rb.FirstOffset != h.baseOffset || int(rb.Length) != int(h.length) {
				t.Fatalf("kmsg and the log disagree on the batch at %d: %+v vs %+v", off, rb, h)
			}
			if len(out) > 0 && out[len(out)-1].next != h.baseOffset {
				t.Fatalf("batch at %d follows one ending at %d: offsets not contiguous", h.baseOffset, out[len(out)-1].next)
			}
			out = append(out, storedBatch{h.baseOffset, h.next(), h.epoch, append([]byte(nil), b[:h.size()]...)})
			off = h.next()
			b = b[h.size():]
		}
	}
	return out
}

// segmentFiles lists the .log files of a log directory.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+logSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// seededRand returns a generator whose seed the test prints on failure.
func seededRand(t testing.TB) *rand.Rand {
	seed := rand.Uint64()
	if s := os.Getenv("STORAGE_TEST_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random seed %d (rerun with STORAGE_TEST_SEED=%d)", seed, seed)
		}
	})
	return rand.New(rand.NewPCG(seed, 0x5eed))
}

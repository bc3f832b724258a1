package storage

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/garantia/garantia/broker/storage/storagetest"
)

// logKinds are the PartitionLog implementations that must behave alike.
var logKinds = []struct {
	name string
	open func(t *testing.T) PartitionLog
}{
	{"mem", func(t *testing.T) PartitionLog { return NewMemLog("t-0") }},
	{"disk", func(t *testing.T) PartitionLog { return openLog(t, t.TempDir(), Options{}) }},
	// Every read from the files, none from the in-memory tail.
	{"disk-no-tail-cache", func(t *testing.T) PartitionLog {
		return openLog(t, t.TempDir(), Options{TailCacheBytes: -1})
	}},
	// A tail cache of a few batches: reads start below it, inside it and
	// at its edge.
	{"disk-tiny-tail-cache", func(t *testing.T) PartitionLog {
		return openLog(t, t.TempDir(), Options{TailCacheBytes: 200, IndexIntervalBytes: 100})
	}},
	// Tiny segments and index intervals: nearly every append rolls, every
	// batch is indexed.
	{"disk-tiny-segments", func(t *testing.T) PartitionLog {
		return openLog(t, t.TempDir(), Options{SegmentBytes: 300, IndexIntervalBytes: 1})
	}},
	{"disk-fsync-always", func(t *testing.T) PartitionLog {
		return openLog(t, t.TempDir(), Options{Fsync: FsyncAlways, SegmentBytes: 1000, IndexIntervalBytes: 200})
	}},
}

func forEachKind(t *testing.T, f func(t *testing.T, l PartitionLog)) {
	for _, k := range logKinds {
		t.Run(k.name, func(t *testing.T) { f(t, k.open(t)) })
	}
}

func TestAppendReadRoundTrip(t *testing.T) {
	forEachKind(t, func(t *testing.T, l PartitionLog) {
		one := batch("one", 1, 100)
		five := batch("five", 5, 100)
		pairA, pairB := batch("a", 2, 10), batch("b", 3, 10)
		set := append(append([]byte(nil), pairA...), pairB...)
		setCopy := append([]byte(nil), set...)

		want := []storedBatch{
			{0, 1, 0, stamped(one, 0, 0)},
			{1, 6, 0, stamped(five, 1, 0)},
			{6, 8, 1, stamped(pairA, 6, 1)},
			{8, 11, 1, stamped(pairB, 8, 1)},
		}
		for _, c := range []struct {
			b     []byte
			epoch int32
			base  int64
		}{{one, 0, 0}, {five, 0, 1}, {set, 1, 6}} {
			if got := mustAppend(t, l, c.b, c.epoch); got != c.base {
				t.Fatalf("AppendAsLeader returned base offset %d, want %d", got, c.base)
			}
		}
		if !bytes.Equal(set, setCopy) {
			t.Fatal("AppendAsLeader modified the caller's slice")
		}
		if l.EndOffset() != 11 || l.StartOffset() != 0 || l.LatestEpoch() != 1 {
			t.Fatalf("start %d end %d epoch %d, want 0 11 1", l.StartOffset(), l.EndOffset(), l.LatestEpoch())
		}
		for _, maxBytes := range []int{0, 150, 1 << 20} {
			got := readAll(t, l, maxBytes)
			if len(got) != len(want) {
				t.Fatalf("maxBytes %d: read %d batches, want %d", maxBytes, len(got), len(want))
			}
			for i := range want {
				if got[i].base != want[i].base || got[i].next != want[i].next || got[i].epoch != want[i].epoch || !bytes.Equal(got[i].data, want[i].data) {
					t.Fatalf("maxBytes %d: batch %d is [%d,%d) epoch %d, want [%d,%d) epoch %d (or bytes differ)", maxBytes, i, got[i].base, got[i].next, got[i].epoch, want[i].base, want[i].next, want[i].epoch)
				}
			}
		}
		// Every offset finds the batch that holds it.
		for off := int64(0); off < 11; off++ {
			b, err := l.Read(off, 0, 11)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := parseHeader(b)
			if off < h.baseOffset || off >= h.next() || len(b) != h.size() {
				t.Fatalf("Read(%d, 0) returned the batch [%d,%d) of %d bytes (read %d)", off, h.baseOffset, h.next(), h.size(), len(b))
			}
		}
		if vs := storagetest.Values(want[1].data); len(vs) != 5 || !bytes.HasPrefix(vs[4], []byte("five/4|")) {
			t.Fatalf("record values did not survive: %q", vs)
		}
	})
}

func TestReadLimits(t *testing.T) {
	forEachKind(t, func(t *testing.T, l PartitionLog) {
		// Five batches of three records: offsets 0-2, 3-5, 6-8, 9-11, 12-14.
		var sizes []int
		for i := range 5 {
			b := batch(fmt.Sprint("b", i), 3, 20)
			sizes = append(sizes, len(b))
			mustAppend(t, l, b, 0)
		}
		s := sizes[0]
		for i := range sizes {
			if sizes[i] != s {
				t.Fatalf("test batches differ in size: %v", sizes)
			}
		}
		cases := []struct {
			name     string
			offset   int64
			maxBytes int
			limit    int64
			bases    []int64 // the base offsets returned
			err      error
		}{
			{"everything", 0, 1 << 20, 15, []int64{0, 3, 6, 9, 12}, nil},
			{"maxBytes 0 still gives one batch", 0, 0, 15, []int64{0}, nil},
			{"maxBytes below one batch gives one", 3, s - 1, 15, []int64{3}, nil},
			{"maxBytes two batches", 0, 2 * s, 15, []int64{0, 3}, nil},
			{"maxBytes two and a half", 0, 2*s + s/2, 15, []int64{0, 3}, nil},
			{"offset inside a batch starts with it", 4, 1 << 20, 15, []int64{3, 6, 9, 12}, nil},
			{"last record", 14, 1 << 20, 15, []int64{12}, nil},
			{"limit at a batch start excludes it", 0, 1 << 20, 6, []int64{0, 3}, nil},
			{"limit inside a batch includes it", 0, 1 << 20, 7, []int64{0, 3, 6}, nil},
			{"offset at limit is empty", 6, 1 << 20, 6, nil, nil},
			{"offset above limit is empty", 7, 1 << 20, 6, nil, nil},
			{"limit above end is the end", 9, 1 << 20, 1000, []int64{9, 12}, nil},
			{"end offset is empty", 15, 1 << 20, 15, nil, nil},
			{"past the end", 16, 1 << 20, 100, nil, ErrOffsetOutOfRange},
			{"negative", -1, 1 << 20, 15, nil, ErrOffsetOutOfRange},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				b, err := l.Read(c.offset, c.maxBytes, c.limit)
				if !errors.Is(err, c.err) {
					t.Fatalf("Read(%d, %d, %d) error %v, want %v", c.offset, c.maxBytes, c.limit, err, c.err)
				}
				var bases []int64
				for len(b) > 0 {
					h, err := checkBatch(b)
					if err != nil {
						t.Fatalf("returned bytes are not whole batches: %v", err)
					}
					bases = append(bases, h.baseOffset)
					b = b[h.size():]
				}
				if fmt.Sprint(bases) != fmt.Sprint(c.bases) {
					t.Fatalf("Read(%d, %d, %d) returned batches at %v, want %v", c.offset, c.maxBytes, c.limit, bases, c.bases)
				}
			})
		}
	})
}

func TestAppendRefusesBadBatches(t *testing.T) {
	good := batch("g", 3, 50)
	flip := func(pos int) []byte {
		b := append([]byte(nil), good...)
		b[pos] ^= 0x40
		return b
	}
	withCount := func(n int32) []byte {
		b := append([]byte(nil), good...)
		b[posRecordCount+3] = byte(n) // the CRC covers recordCount: fix it up
		return fixCRC(b)
	}
	cases := []struct {
		name string
		set  []byte
	}{
		{"empty", nil},
		{"flipped record byte", flip(len(good) - 3)},
		{"flipped attributes", flip(posAttributes + 1)},
		{"flipped CRC", flip(posCRC)},
		{"magic 1", func() []byte { b := append([]byte(nil), good...); b[posMagic] = 1; return b }()},
		{"torn", good[:len(good)-1]},
		{"header only", good[:batchHeaderBytes-1]},
		{"length too small", func() []byte { b := append([]byte(nil), good...); b[posBatchLength+3] = 10; return b }()},
		{"trailing garbage", append(append([]byte(nil), good...), 1, 2, 3)},
		{"second batch corrupt", append(append([]byte(nil), good...), flip(len(good)-1)...)},
		{"recordCount mismatch", withCount(2)},
	}
	forEachKind(t, func(t *testing.T, l PartitionLog) {
		mustAppend(t, l, batch("first", 1, 10), 0)
		for _, c := range cases {
			if _, err := l.AppendAsLeader(c.set, 0); !errors.Is(err, ErrCorruptBatch) {
				t.Errorf("%s: AppendAsLeader error %v, want ErrCorruptBatch", c.name, err)
			}
			if c.name != "recordCount mismatch" && len(c.set) > 0 {
				if err := l.AppendAsFollower(stamped(c.set, 1, 0)); !errors.Is(err, ErrCorruptBatch) {
					t.Errorf("%s: AppendAsFollower error %v, want ErrCorruptBatch", c.name, err)
				}
			}
		}
		if l.EndOffset() != 1 {
			t.Fatalf("refused appends moved the end offset to %d", l.EndOffset())
		}
		if got := readAll(t, l, 1<<20); len(got) != 1 {
			t.Fatalf("log holds %d batches after refused appends, want 1", len(got))
		}
	})
}

// fixCRC recomputes a batch's CRC after a test edited covered bytes.
func fixCRC(b []byte) []byte {
	h, _ := parseHeader(b)
	c := crc32c(b[posAttributes:h.size()])
	b[posCRC], b[posCRC+1], b[posCRC+2], b[posCRC+3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	return b
}

func TestAppendEpochRules(t *testing.T) {
	forEachKind(t, func(t *testing.T, l PartitionLog) {
		if _, err := l.AppendAsLeader(batch("x", 1, 1), -1); !errors.Is(err, ErrInvalidEpoch) {
			t.Fatalf("epoch -1: %v, want ErrInvalidEpoch", err)
		}
		mustAppend(t, l, batch("x", 1, 1), 5)
		if _, err := l.AppendAsLeader(batch("x", 1, 1), 4); !errors.Is(err, ErrInvalidEpoch) {
			t.Fatalf("epoch 4 after 5: %v, want ErrInvalidEpoch", err)
		}
		if err := l.AppendAsFollower(storagetest.BatchAt(1, 4, []byte("v"))); !errors.Is(err, ErrInvalidEpoch) {
			t.Fatalf("follower epoch 4 after 5: %v, want ErrInvalidEpoch", err)
		}
		mustAppend(t, l, batch("x", 1, 1), 5)
		if l.EndOffset() != 2 || l.LatestEpoch() != 5 {
			t.Fatalf("end %d epoch %d, want 2 5", l.EndOffset(), l.LatestEpoch())
		}
	})
}

func TestAppendAsFollower(t *testing.T) {
	forEachKind(t, func(t *testing.T, l PartitionLog) {
		b0 := storagetest.BatchAt(0, 1, []byte("a"), []byte("b"))
		b2 := storagetest.BatchAt(2, 1, []byte("c"))
		b3 := storagetest.BatchAt(3, 4, []byte("d"), []byte("e"), []byte("f"))
		if err := l.AppendAsFollower(nil); err != nil {
			t.Fatalf("empty follower append: %v", err)
		}
		if err := l.AppendAsFollower(b2); !errors.Is(err, ErrNonContiguous) {
			t.Fatalf("append at 2 to an empty log: %v, want ErrNonContiguous", err)
		}
		if err := l.AppendAsFollower(append(append([]byte(nil), b0...), b3...)); !errors.Is(err, ErrNonContiguous) {
			t.Fatalf("set with a gap: %v, want ErrNonContiguous", err)
		}
		if l.EndOffset() != 0 {
			t.Fatalf("refused follower appends moved the end to %d", l.EndOffset())
		}
		if err := l.AppendAsFollower(append(append(append([]byte(nil), b0...), b2...), b3...)); err != nil {
			t.Fatal(err)
		}
		if l.EndOffset() != 6 || l.LatestEpoch() != 4 {
			t.Fatalf("end %d epoch %d, want 6 4", l.EndOffset(), l.LatestEpoch())
		}
		got := readAll(t, l, 1<<20)
		for i, want := range [][]byte{b0, b2, b3} {
			if !bytes.Equal(got[i].data, want) {
				t.Fatalf("follower batch %d changed on the way through the log", i)
			}
		}
		if e, off := l.EndOffsetForEpoch(1); e != 1 || off != 3 {
			t.Fatalf("EndOffsetForEpoch(1) = %d, %d, want 1, 3", e, off)
		}
		// A leader continues where the follower stopped.
		if base := mustAppend(t, l, batch("l", 1, 1), 4); base != 6 {
			t.Fatalf("leader append after follower appends at %d, want 6", base)
		}
	})
}

// epochLog builds: epoch 1 at offsets 0-4 (batches 0-2, 3-4), epoch 3 at
// 5-8, epoch 4 at 9-11.
func epochLog(t *testing.T, l PartitionLog) {
	mustAppend(t, l, batch("e1a", 3, 30), 1)
	mustAppend(t, l, batch("e1b", 2, 30), 1)
	mustAppend(t, l, batch("e3", 4, 30), 3)
	mustAppend(t, l, batch("e4", 3, 30), 4)
}

func TestEndOffsetForEpoch(t *testing.T) {
	forEachKind(t, func(t *testing.T, l PartitionLog) {
		if e, off := l.EndOffsetForEpoch(0); e != -1 || off != -1 {
			t.Fatalf("empty log: EndOffsetForEpoch(0) = %d, %d, want -1, -1", e, off)
		}
		if l.LatestEpoch() != -1 {
			t.Fatalf("empty log: LatestEpoch %d, want -1", l.LatestEpoch())
		}
		epochLog(t, l)
		for _, c := range []struct {
			epoch, wantEpoch int32
			wantEnd          int64
		}{
			{-1, -1, -1}, {0, -1, -1}, {1, 1, 5}, {2, 1, 5}, {3, 3, 9}, {4, 4, 12}, {7, 4, 12},
		} {
			if e, off := l.EndOffsetForEpoch(c.epoch); e != c.wantEpoch || off != c.wantEnd {
				t.Errorf("EndOffsetForEpoch(%d) = %d, %d, want %d, %d", c.epoch, e, off, c.wantEpoch, c.wantEnd)
			}
		}
	})
}

func TestTruncateTo(t *testing.T) {
	cases := []struct {
		name        string
		offset      int64
		wantEnd     int64
		wantEpoch   int32
		err         error
		epochAnswer [3]int64 // EndOffsetForEpoch(4) -> epoch, end; then next append base
	}{
		{"at the end: no-op", 12, 12, 4, nil, [3]int64{4, 12, 12}},
		{"inside the last batch", 10, 9, 3, nil, [3]int64{3, 9, 9}},
		{"at a batch and epoch boundary", 9, 9, 3, nil, [3]int64{3, 9, 9}},
		{"inside an epoch's only batch", 6, 5, 1, nil, [3]int64{1, 5, 5}},
		{"between two batches of an epoch", 3, 3, 1, nil, [3]int64{1, 3, 3}},
		{"inside the first batch", 1, 0, -1, nil, [3]int64{-1, -1, 0}},
		{"to zero", 0, 0, -1, nil, [3]int64{-1, -1, 0}},
		{"past the end", 13, 12, 4, ErrOffsetOutOfRange, [3]int64{4, 12, 12}},
		{"negative", -1, 12, 4, ErrOffsetOutOfRange, [3]int64{4, 12, 12}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			forEachKind(t, func(t *testing.T, l PartitionLog) {
				epochLog(t, l)
				before := readAll(t, l, 1<<20)
				if err := l.TruncateTo(c.offset); !errors.Is(err, c.err) {
					t.Fatalf("TruncateTo(%d): %v, want %v", c.offset, err, c.err)
				}
				if l.EndOffset() != c.wantEnd || l.LatestEpoch() != c.wantEpoch {
					t.Fatalf("after TruncateTo(%d): end %d epoch %d, want %d %d", c.offset, l.EndOffset(), l.LatestEpoch(), c.wantEnd, c.wantEpoch)
				}
				if e, off := l.EndOffsetForEpoch(4); int64(e) != c.epochAnswer[0] || off != c.epochAnswer[1] {
					t.Fatalf("EndOffsetForEpoch(4) = %d, %d, want %d, %d", e, off, c.epochAnswer[0], c.epochAnswer[1])
				}
				after := readAll(t, l, 1<<20)
				for i, b := range after {
					if !bytes.Equal(b.data, before[i].data) {
						t.Fatalf("batch %d changed by the truncation", i)
					}
				}
				if len(after) > 0 && after[len(after)-1].next != c.wantEnd {
					t.Fatalf("last batch ends at %d, end offset is %d", after[len(after)-1].next, c.wantEnd)
				}
				// Appends continue at the new end, with a new epoch.
				if base := mustAppend(t, l, batch("new", 2, 30), 6); base != c.epochAnswer[2] {
					t.Fatalf("append after truncation at %d, want %d", base, c.epochAnswer[2])
				}
				if e, off := l.EndOffsetForEpoch(5); e != max(int32(c.wantEpoch), -1) || (e >= 0 && off != c.wantEnd) {
					t.Fatalf("EndOffsetForEpoch(5) after re-append = %d, %d, want %d, %d", e, off, c.wantEpoch, c.wantEnd)
				}
				readAll(t, l, 1<<20)
			})
		})
	}
}

func TestNotify(t *testing.T) {
	forEachKind(t, func(t *testing.T, l PartitionLog) {
		ch := l.Notify()
		if l.Notify() != ch {
			t.Fatal("Notify returned a different channel before any change")
		}
		select {
		case <-ch:
			t.Fatal("Notify channel closed before any append")
		default:
		}
		done := make(chan int64)
		go func() {
			<-ch
			done <- l.EndOffset()
		}()
		mustAppend(t, l, batch("n", 2, 5), 0)
		select {
		case end := <-done:
			if end != 2 {
				t.Fatalf("woken waiter saw end offset %d, want 2", end)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Notify channel not closed by an append")
		}
		ch = l.Notify()
		if err := l.TruncateTo(0); err != nil {
			t.Fatal(err)
		}
		if !closedNow(ch) {
			t.Fatal("Notify channel not closed by a truncation")
		}
		ch = l.Notify()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if !closedNow(ch) || !closedNow(l.Notify()) {
			t.Fatal("Notify channels not closed by Close")
		}
	})
}

func closedNow(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestUseAfterClose(t *testing.T) {
	forEachKind(t, func(t *testing.T, l PartitionLog) {
		mustAppend(t, l, batch("c", 1, 5), 0)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		checks := map[string]error{
			"Close":            l.Close(),
			"Sync":             l.Sync(),
			"TruncateTo":       l.TruncateTo(0),
			"AppendAsFollower": l.AppendAsFollower(storagetest.BatchAt(1, 0, []byte("x"))),
		}
		_, checks["AppendAsLeader"] = l.AppendAsLeader(batch("c", 1, 5), 0)
		_, checks["Read"] = l.Read(0, 100, 1)
		for name, err := range checks {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
	})
}

// TestConcurrentAppendsAndReads has producers append while readers follow
// the log; every acknowledged batch must be read back exactly once, whole,
// at the offset its append returned. Run with -race.
func TestConcurrentAppendsAndReads(t *testing.T) {
	const producers = 6
	forEachKind(t, func(t *testing.T, l PartitionLog) {
		perProducer := 40
		if strings.HasSuffix(t.Name(), "tiny-segments") || strings.HasSuffix(t.Name(), "fsync-always") {
			perProducer = 20 // a roll or an fsync per append: slow on a busy disk
		}
		type ack struct {
			base int64
			tag  string
		}
		acks := make(chan ack, producers*perProducer)
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perProducer {
					tag := fmt.Sprintf("p%d-%d", p, i)
					base, err := l.AppendAsLeader(batch(tag, 1+i%4, 40), 0)
					if err != nil {
						t.Error(err)
						return
					}
					acks <- ack{base, tag}
				}
			}()
		}
		stop := make(chan struct{})
		var readers sync.WaitGroup
		for range 3 {
			readers.Add(1)
			go func() {
				defer readers.Done()
				off := int64(0)
				for {
					select {
					case <-stop:
						return
					default:
					}
					ch := l.Notify()
					end := l.EndOffset()
					if off == end {
						select {
						case <-ch:
						case <-stop:
							return
						}
						continue
					}
					b, err := l.Read(off, 500, end)
					if err != nil {
						t.Error(err)
						return
					}
					for len(b) > 0 {
						h, err := checkBatch(b)
						if err != nil || h.baseOffset > off {
							t.Errorf("reader at %d got a bad or non-contiguous batch: %v (base %d)", off, err, h.baseOffset)
							return
						}
						off = h.next()
						b = b[h.size():]
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		readers.Wait()
		close(acks)
		got := map[int64]string{}
		for _, b := range readAll(t, l, 1<<20) {
			vs := storagetest.Values(b.data)
			got[b.base] = string(bytes.SplitN(vs[0], []byte("/"), 2)[0])
		}
		n := 0
		for a := range acks {
			n++
			if got[a.base] != a.tag {
				t.Errorf("acknowledged batch %s at offset %d; the log has %q there", a.tag, a.base, got[a.base])
			}
		}
		if n != producers*perProducer || len(got) != n {
			t.Fatalf("%d acknowledgements, %d batches in the log, want %d", n, len(got), producers*perProducer)
		}
	})
}

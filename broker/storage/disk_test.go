package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fillLog appends n producer batches of 1-3 records of 100 bytes each, the
// epoch growing every 7 batches, and returns what the log must hold.
func fillLog(t *testing.T, l PartitionLog, n int) []storedBatch {
	t.Helper()
	var want []storedBatch
	for i := range n {
		b := batch(fmt.Sprint("f", i), 1+i%3, 100)
		epoch := int32(i / 7)
		base := mustAppend(t, l, b, epoch)
		want = append(want, storedBatch{base, base + int64(1+i%3), epoch, stamped(b, base, epoch)})
	}
	return want
}

func assertHolds(t *testing.T, l PartitionLog, want []storedBatch) {
	t.Helper()
	got := readAll(t, l, 1<<20)
	if len(got) != len(want) {
		t.Fatalf("log holds %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].base != want[i].base || !bytes.Equal(got[i].data, want[i].data) {
			t.Fatalf("batch %d: at offset %d, want %d (or its bytes differ)", i, got[i].base, want[i].base)
		}
	}
	if n := len(want); n > 0 && l.EndOffset() != want[n-1].next {
		t.Fatalf("end offset %d, want %d", l.EndOffset(), want[n-1].next)
	}
}

func TestSegmentsRollAtSegmentBytes(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1000, IndexIntervalBytes: 300}
	l := openLog(t, dir, opts)
	want := fillLog(t, l, 60)
	files := segmentFiles(t, dir)
	if len(files) < 10 {
		t.Fatalf("%d segment files for %d bytes in 1000-byte segments", len(files), 60*250)
	}
	for _, f := range files {
		base, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(f), logSuffix), 10, 64)
		if err != nil || len(filepath.Base(f)) != 24 {
			t.Fatalf("segment file %s is not named by a 20-digit base offset", f)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h, err := checkBatch(data)
		if err != nil || h.baseOffset != base {
			t.Fatalf("%s starts with the batch at offset %d (%v), want %d", f, h.baseOffset, err, base)
		}
		if len(data) > 1000 && len(data) != h.size() {
			t.Fatalf("%s has %d bytes: past SegmentBytes with more than one batch", f, len(data))
		}
	}
	assertHolds(t, l, want)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		idx := strings.TrimSuffix(f, logSuffix) + indexSuffix
		if _, err := os.Stat(idx); err != nil {
			t.Fatalf("after Close, %s has no index: %v", f, err)
		}
	}

	l = openLog(t, dir, opts)
	rep := l.Recovery()
	if !rep.Clean || rep.Truncated || rep.SegmentsScanned != 1 || rep.IndexesRebuilt != 0 {
		t.Fatalf("reopen after a clean close: %+v", rep)
	}
	assertHolds(t, l, want)
	for e := int32(0); e < 9; e++ {
		wantEnd := want[len(want)-1].next
		if int(e+1)*7 < len(want) {
			wantEnd = want[(e+1)*7].base
		}
		if got, end := l.EndOffsetForEpoch(e); got != e || end != wantEnd {
			t.Fatalf("after reopen, EndOffsetForEpoch(%d) = %d, %d, want %d, %d", e, got, end, e, wantEnd)
		}
	}
	// Appending goes on at the end, into the active segment.
	if base := mustAppend(t, l, batch("more", 1, 10), 9); base != want[len(want)-1].next {
		t.Fatalf("append after reopen at %d, want %d", base, want[len(want)-1].next)
	}
}

func TestCleanCloseScansOnlyTheTail(t *testing.T) {
	dir := t.TempDir()
	opts := Options{IndexIntervalBytes: 1000}
	l := openLog(t, dir, opts)
	want := fillLog(t, l, 200)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	size := fileSize(t, segmentPath(dir, 0))
	l = openLog(t, dir, opts)
	rep := l.Recovery()
	if !rep.Clean || rep.BytesScanned <= 0 || rep.BytesScanned > 1500 {
		t.Fatalf("clean reopen scanned %d of %d bytes (report %+v); want only the bytes after the last index entry", rep.BytesScanned, size, rep)
	}
	assertHolds(t, l, want)
}

func TestCrashRecoveryScansFromTheRecoveryPoint(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 2000}
	l := openLog(t, dir, opts)
	want := fillLog(t, l, 60)
	if err := l.Sync(); err != nil { // the recovery point moves to the active segment
		t.Fatal(err)
	}
	segs := len(segmentFiles(t, dir))
	b := batch("unsynced", 1, 10)
	base := mustAppend(t, l, b, 20)
	want = append(want, storedBatch{base, base + 1, 20, stamped(b, base, 20)})
	if n := len(segmentFiles(t, dir)); n != segs {
		t.Fatalf("the unsynced append rolled a segment (%d -> %d); the test needs it in the active one", segs, n)
	}
	l.crash()

	l = openLog(t, dir, opts)
	rep := l.Recovery()
	if rep.Clean || rep.Truncated || rep.SegmentsScanned != 1 {
		t.Fatalf("after a crash with %d segments, recovery scanned %d (want only the active one): %+v", segs, rep.SegmentsScanned, rep)
	}
	assertHolds(t, l, want)
	if e, end := l.EndOffsetForEpoch(8); e != 8 || end != base {
		t.Fatalf("EndOffsetForEpoch(8) = %d, %d, want 8, %d", e, end, base)
	}
}

func TestCrashWithoutRecoveryPointScansEverything(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 2000}
	l := openLog(t, dir, opts)
	want := fillLog(t, l, 40)
	l.crash()
	if err := os.Remove(filepath.Join(dir, recoveryPointFile)); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	if rep := l.Recovery(); rep.SegmentsScanned != len(segmentFiles(t, dir)) {
		t.Fatalf("without a recovery point, scanned %d of %d segments", rep.SegmentsScanned, len(segmentFiles(t, dir)))
	}
	assertHolds(t, l, want)
}

func TestTruncationSurvivesCrash(t *testing.T) {
	for _, policy := range []FsyncPolicy{FsyncNever, FsyncAlways} {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: 1500, Fsync: policy}
			l := openLog(t, dir, opts)
			want := fillLog(t, l, 50)
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			// Truncate into an early, sealed segment, below the recovery point.
			cut := want[12]
			if err := l.TruncateTo(cut.next - 1); err != nil { // its last record: the whole batch goes
				t.Fatal(err)
			}
			want = want[:12]
			if n := len(segmentFiles(t, dir)); n > 4 {
				t.Fatalf("%d segment files remain after truncating to offset %d", n, cut.base)
			}
			// A divergent history grows from there, then the node dies.
			for i := range 20 {
				b := batch(fmt.Sprint("new", i), 2, 100)
				base := mustAppend(t, l, b, 9)
				want = append(want, storedBatch{base, base + 2, 9, stamped(b, base, 9)})
			}
			l.crash()

			l = openLog(t, dir, opts)
			if rep := l.Recovery(); rep.Truncated {
				t.Fatalf("recovery truncated after a clean history: %+v", rep)
			}
			assertHolds(t, l, want)
			if e, end := l.EndOffsetForEpoch(1); e != 1 || end != cut.base {
				t.Fatalf("EndOffsetForEpoch(1) = %d, %d, want 1, %d (epoch 9 starts where the truncation cut)", e, end, cut.base)
			}
			if e, end := l.EndOffsetForEpoch(8); e != 1 || end != cut.base {
				t.Fatalf("EndOffsetForEpoch(8) = %d, %d, want 1, %d (epochs 2-8 were truncated away)", e, end, cut.base)
			}
		})
	}
}

func TestFsyncIntervalSyncsInTheBackground(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{Fsync: FsyncInterval, FsyncInterval: 5 * time.Millisecond})
	fillLog(t, l, 10)
	deadline := time.Now().Add(30 * time.Second)
	for {
		l.syncMu.Lock()
		synced := l.syncedEnd
		l.syncMu.Unlock()
		if synced == l.EndOffset() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("interval fsync never covered the log: synced to %d of %d", synced, l.EndOffset())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFsyncAlwaysSyncsBeforeReturning(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{Fsync: FsyncAlways})
	for i := range 5 {
		mustAppend(t, l, batch(fmt.Sprint(i), 1, 10), 0)
		l.syncMu.Lock()
		synced := l.syncedEnd
		l.syncMu.Unlock()
		if synced != l.EndOffset() {
			t.Fatalf("append %d returned with the log synced to %d of %d", i, synced, l.EndOffset())
		}
	}
}

func TestOpenRejectsBadOptionsAndFiles(t *testing.T) {
	for _, o := range []Options{{Fsync: "sometimes"}, {SegmentBytes: -1}, {SegmentBytes: MaxSegmentBytes + 1}, {IndexIntervalBytes: -1}, {FsyncInterval: -time.Second}} {
		if _, err := OpenLog(t.TempDir(), o); err == nil {
			t.Errorf("OpenLog accepted options %+v", o)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "7.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLog(dir, Options{}); err == nil || !strings.Contains(err.Error(), "7.log") {
		t.Fatalf("OpenLog with a misnamed segment: %v, want an error naming 7.log", err)
	}
}

func TestOneWriterPerDirectory(t *testing.T) {
	dir := t.TempDir()
	openLog(t, dir, Options{})
	if l, err := OpenLog(dir, Options{}); err == nil {
		l.Close()
		t.Fatal("a second OpenLog of an open log directory succeeded")
	}
}

func TestParseFsyncPolicy(t *testing.T) {
	for _, s := range []string{"always", "interval", "never"} {
		var p FsyncPolicy
		if err := p.Set(s); err != nil || p.String() != s {
			t.Errorf("Set(%q): %v, %q", s, err, p)
		}
	}
	if _, err := ParseFsyncPolicy("Always"); err == nil {
		t.Error("ParseFsyncPolicy accepted \"Always\"")
	}
}

func TestStaleRecoveryPointIsNotTrusted(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 2000}
	l := openLog(t, dir, opts)
	want := fillLog(t, l, 40)
	l.crash()
	if err := os.WriteFile(filepath.Join(dir, recoveryPointFile), []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	if rep := l.Recovery(); rep.SegmentsScanned != len(segmentFiles(t, dir)) {
		t.Fatalf("with a recovery point that names no segment, scanned %d of %d segments", rep.SegmentsScanned, len(segmentFiles(t, dir)))
	}
	assertHolds(t, l, want)
}

func TestReadRefusesBytesCorruptedAfterOpen(t *testing.T) {
	dir := t.TempDir()
	// Without a tail cache every read goes to the file.
	l := openLog(t, dir, Options{TailCacheBytes: -1})
	want := fillLog(t, l, 5)
	// Bit rot under a running broker: the log must not serve the batch.
	flipByte(func([]int64) int64 { return int64(len(want[0].data)) + 70 })(t, segmentPath(dir, 0), nil)
	if _, err := l.Read(want[1].base, 1<<20, l.EndOffset()); !errors.Is(err, ErrCorruptBatch) || !strings.Contains(err.Error(), segmentPath(dir, 0)) {
		t.Fatalf("Read of a corrupted batch: %v, want ErrCorruptBatch naming the segment", err)
	}
	if b, err := l.Read(0, 0, l.EndOffset()); err != nil || !bytes.Equal(b, want[0].data) {
		t.Fatalf("Read of the intact batch before it: %v", err)
	}
}

func TestTailCacheServesWhatWasAppendedNotTheFile(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	want := fillLog(t, l, 5)
	// The same bit rot: the tail cache answers with the bytes that were
	// appended (checked then), never the corrupt ones.
	flipByte(func([]int64) int64 { return int64(len(want[0].data)) + 70 })(t, segmentPath(dir, 0), nil)
	b, err := l.Read(want[1].base, 1<<20, l.EndOffset())
	if err != nil {
		t.Fatalf("Read from the tail cache: %v", err)
	}
	var all []byte
	for _, w := range want[1:] {
		all = append(all, w.data...)
	}
	if !bytes.Equal(b, all) {
		t.Fatalf("Read from the tail cache returned %d bytes that differ from the %d appended", len(b), len(all))
	}
}

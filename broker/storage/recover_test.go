package storage

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// damagedLog writes n batches (3 records each, so batch i holds offsets
// 3i..3i+2) into one segment, abandons the log as a crash would, applies
// damage to the segment file and reopens it. It returns the reopened log,
// the batches written, their byte positions and the log output.
func damagedLog(t *testing.T, n int, clean bool, damage func(t *testing.T, path string, pos []int64)) (*Log, []storedBatch, []int64, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	var want []storedBatch
	var pos []int64
	var p int64
	for i := range n {
		b := batch(fmt.Sprint("d", i), 3, 60)
		base := mustAppend(t, l, b, int32(i/2))
		want = append(want, storedBatch{base, base + 3, int32(i / 2), stamped(b, base, int32(i/2))})
		pos = append(pos, p)
		p += int64(len(b))
	}
	if clean {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	} else {
		l.crash()
	}
	damage(t, segmentPath(dir, 0), pos)
	logger, out := testLogger(t)
	return openLog(t, dir, Options{Logger: logger}), want, pos, out
}

func truncateFile(size int64) func(t *testing.T, path string, pos []int64) {
	return func(t *testing.T, path string, pos []int64) {
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
}

func flipByte(at func(pos []int64) int64) func(t *testing.T, path string, pos []int64) {
	return flipBits(at, 0x10)
}

func flipBits(at func(pos []int64) int64, mask byte) func(t *testing.T, path string, pos []int64) {
	return func(t *testing.T, path string, pos []int64) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := []byte{0}
		if _, err := f.ReadAt(b, at(pos)); err != nil {
			t.Fatal(err)
		}
		b[0] ^= mask
		if _, err := f.WriteAt(b, at(pos)); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRecovered asserts the log kept exactly the first keep batches, and
// that the report and the log line say what was dropped.
func checkRecovered(t *testing.T, l *Log, want []storedBatch, pos []int64, out *syncBuffer, keep int, fileSize, lastDropped int64) {
	t.Helper()
	assertHolds(t, l, want[:keep])
	rep := l.Recovery()
	if keep == len(want) {
		if rep.Truncated || strings.Contains(out.String(), "truncated") {
			t.Fatalf("nothing was damaged, yet recovery truncated: %+v", rep)
		}
		return
	}
	wantFirst := want[keep].base
	dropped := fileSize - pos[keep]
	if !rep.Truncated || rep.Position != pos[keep] || rep.BytesDropped != dropped || rep.FirstDroppedOffset != wantFirst || rep.LastDroppedOffset != lastDropped || rep.EndOffset != wantFirst {
		t.Fatalf("report %+v; want truncation at byte %d, %d bytes and offsets %d..%d dropped", rep, pos[keep], dropped, wantFirst, lastDropped)
	}
	line := out.String()
	for _, s := range []string{
		`msg="truncated torn/corrupt tail"`, "partition=" + filepath.Base(l.Dir()), segmentPath(l.Dir(), 0),
		fmt.Sprintf("bytes_dropped=%d", dropped), fmt.Sprintf("first_offset_dropped=%d", wantFirst), fmt.Sprintf("last_offset_dropped=%d", lastDropped),
	} {
		if !strings.Contains(line, s) {
			t.Fatalf("log output lacks %q:\n%s", s, line)
		}
	}
	// The epoch cache holds no epoch of the dropped batches.
	if want[keep-1].epoch != l.LatestEpoch() {
		t.Fatalf("latest epoch %d after recovery, want %d", l.LatestEpoch(), want[keep-1].epoch)
	}
	// The log takes appends at its new end.
	if base := mustAppend(t, l, batch("after", 1, 5), 50); base != wantFirst {
		t.Fatalf("append after recovery at %d, want %d", base, wantFirst)
	}
}

func TestRecoverTornTail(t *testing.T) {
	const n = 5
	size := func(pos []int64) int64 { return pos[1] * n } // all batches have one size
	cases := []struct {
		name        string
		cutFromEnd  func(batch int64) int64 // bytes cut off the end, given the batch size
		keep        int
		lastDropped int64
	}{
		{"whole batches: nothing to do", func(int64) int64 { return 0 }, n, -1},
		{"one byte short", func(int64) int64 { return 1 }, n - 1, 14},
		{"mid records", func(b int64) int64 { return b / 2 }, n - 1, 14},
		{"header whole, records gone", func(b int64) int64 { return b - batchHeaderBytes }, n - 1, 14},
		{"mid header, lastOffsetDelta readable", func(b int64) int64 { return b - 30 }, n - 1, 14},
		{"mid header, lastOffsetDelta cut", func(b int64) int64 { return b - 20 }, n - 1, -1},
		{"one byte of the last batch", func(b int64) int64 { return b - 1 }, n - 1, -1},
		{"two batches torn away, one byte left", func(b int64) int64 { return 2*b - 1 }, n - 2, -1},
	}
	for _, clean := range []bool{false, true} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s clean=%v", c.name, clean), func(t *testing.T) {
				var cutSize int64
				l, want, pos, out := damagedLog(t, n, clean, func(t *testing.T, path string, pos []int64) {
					cutSize = size(pos) - c.cutFromEnd(pos[1])
					truncateFile(cutSize)(t, path, pos)
				})
				if clean && c.keep != n && !l.Recovery().Clean {
					// The marker's end offset no longer matches: that is
					// detected and the log recovered as after a crash.
					t.Logf("marker mismatch detected, recovered as unclean")
				}
				checkRecovered(t, l, want, pos, out, c.keep, cutSize, c.lastDropped)
			})
		}
	}
}

func TestRecoverFlippedBytes(t *testing.T) {
	const n = 5
	cases := []struct {
		name        string
		at          func(pos []int64) int64
		keep        int
		lastDropped int64
		mask        byte
	}{
		{"last batch, records", func(p []int64) int64 { return p[4] + 100 }, 4, 14, 0},
		{"last batch, last byte", func(p []int64) int64 { return p[1]*5 - 1 }, 4, 14, 0},
		{"last batch, CRC field", func(p []int64) int64 { return p[4] + posCRC + 2 }, 4, 14, 0},
		{"last batch, attributes", func(p []int64) int64 { return p[4] + posAttributes }, 4, 14, 0},
		{"last batch, magic", func(p []int64) int64 { return p[4] + posMagic }, 4, 14, 0},
		// baseOffset is outside the CRC; contiguity catches it.
		{"last batch, baseOffset", func(p []int64) int64 { return p[4] + 7 }, 4, -1, 0},
		// So is the epoch: only a negative (or decreasing) one is caught.
		{"last batch, epoch sign", func(p []int64) int64 { return p[4] + posLeaderEpoch }, 4, 14, 0x80},
		{"last batch, batchLength", func(p []int64) int64 { return p[4] + posBatchLength + 2 }, 4, 14, 0},
		{"middle batch, records: everything after goes", func(p []int64) int64 { return p[2] + 80 }, 2, 14, 0},
		{"first batch, header", func(p []int64) int64 { return p[0] + posLastOffsetDelta + 3 }, 0, -1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var size int64
			l, want, pos, out := damagedLog(t, n, false, func(t *testing.T, path string, pos []int64) {
				size = fileSize(t, path)
				flipBits(c.at, cmp.Or(c.mask, 0x10))(t, path, pos)
			})
			if c.keep == 0 {
				assertHolds(t, l, nil)
				if rep := l.Recovery(); !rep.Truncated || rep.BytesDropped != size || rep.EndOffset != 0 {
					t.Fatalf("report %+v, want everything dropped", rep)
				}
				return
			}
			checkRecovered(t, l, want, pos, out, c.keep, size, c.lastDropped)
		})
	}
}

func TestRecoverZeroFilledTail(t *testing.T) {
	// After power loss, ext4 can leave a file extended with zeros where the
	// data never reached the disk.
	var size int64
	l, want, pos, out := damagedLog(t, 4, false, func(t *testing.T, path string, pos []int64) {
		size = fileSize(t, path)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(make([]byte, 4096), size); err != nil {
			t.Fatal(err)
		}
	})
	pos = append(pos, size)
	want = append(want, storedBatch{base: 12})
	checkRecovered(t, l, want, pos, out, 4, size+4096, -1)
}

func TestRecoverDropsLaterSegments(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1200}
	l := openLog(t, dir, opts)
	want := fillLog(t, l, 40)
	l.crash()
	// Without a recovery point every segment is verified, so damage in an
	// early one is found; everything after it must go.
	if err := os.Remove(filepath.Join(dir, recoveryPointFile)); err != nil {
		t.Fatal(err)
	}
	files := segmentFiles(t, dir)
	victim := files[2]
	var dropped int64
	for _, f := range files[2:] {
		dropped += fileSize(t, f)
	}
	flipByte(func([]int64) int64 { return 100 })(t, victim, nil)
	logger, out := testLogger(t)
	l = openLog(t, dir, Options{SegmentBytes: 1200, Logger: logger})
	rep := l.Recovery()
	var keep int
	for keep < len(want) && segmentPath(dir, want[keep].base) != victim {
		keep++
	}
	if !rep.Truncated || rep.Segment != victim || rep.BytesDropped != dropped || rep.FirstDroppedOffset != want[keep].base || rep.LastDroppedOffset != want[len(want)-1].next-1 {
		t.Fatalf("report %+v; want %s and %d bytes after it dropped, offsets %d..%d", rep, victim, dropped, want[keep].base, want[len(want)-1].next-1)
	}
	if n := len(segmentFiles(t, dir)); n != 2 {
		t.Fatalf("%d segment files left, want 2: the damaged one and all later ones removed", n)
	}
	assertHolds(t, l, want[:keep])
	if !strings.Contains(out.String(), "segments_removed=") {
		t.Fatalf("log line lacks the removed segments:\n%s", out)
	}
	mustAppend(t, l, batch("x", 1, 1), 10)
}

func TestRecoverBadIndex(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"missing", func(t *testing.T, path string) { os.Remove(path) }},
		{"odd length", func(t *testing.T, path string) { appendTo(t, path, []byte{1, 2, 3}) }},
		{"garbage", func(t *testing.T, path string) {
			os.WriteFile(path, []byte("this is not an offset index at all"), 0o644)
		}},
		{"entry past the segment", func(t *testing.T, path string) { appendTo(t, path, []byte{0, 0, 0, 200, 0, 1, 0, 0}) }},
		{"entries decreasing", func(t *testing.T, path string) { appendTo(t, path, []byte{0, 0, 0, 0, 0, 0, 0, 0}) }},
		{"last entry points between batches", func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			data[len(data)-1]++
			os.WriteFile(path, data, 0o644)
		}},
		{"last entry names the wrong offset", func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			data[len(data)-5]++
			os.WriteFile(path, data, 0o644)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: 3000, IndexIntervalBytes: 400}
			l := openLog(t, dir, opts)
			want := fillLog(t, l, 40)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			files := segmentFiles(t, dir)
			idx := strings.TrimSuffix(files[1], logSuffix) + indexSuffix
			if data, err := os.ReadFile(idx); err != nil || len(data) < 2*indexEntryBytes {
				t.Fatalf("index %s has %d bytes (%v); the test needs entries", idx, len(data), err)
			}
			c.damage(t, idx)
			l = openLog(t, dir, opts)
			if rep := l.Recovery(); rep.IndexesRebuilt != 1 || rep.Truncated {
				t.Fatalf("report %+v, want one index rebuilt and nothing truncated", rep)
			}
			assertHolds(t, l, want)
			for _, b := range want {
				got, err := l.Read(b.next-1, 0, b.next)
				if err != nil || len(got) != len(b.data) {
					t.Fatalf("Read(%d) with a rebuilt index: %d bytes, %v", b.next-1, len(got), err)
				}
			}
			// The rebuilt index was written back and is trusted next time.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, dir, opts)
			if rep := l.Recovery(); rep.IndexesRebuilt != 0 {
				t.Fatalf("the rebuilt index was not written back: %+v", rep)
			}
		})
	}
}

func appendTo(t *testing.T, path string, b []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverEpochCheckpoint(t *testing.T) {
	cases := []struct {
		name   string
		damage func(path string)
	}{
		{"missing", func(path string) { os.Remove(path) }},
		{"garbage", func(path string) { os.WriteFile(path, []byte("0\n3\n1 0\n"), 0o644) }},
		{"decreasing", func(path string) { os.WriteFile(path, []byte("0\n2\n3 0\n1 5\n"), 0o644) }},
	}
	for _, clean := range []bool{true, false} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s clean=%v", c.name, clean), func(t *testing.T) {
				dir := t.TempDir()
				opts := Options{SegmentBytes: 1500}
				l := openLog(t, dir, opts)
				fillLog(t, l, 40)
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
				answers := map[int32][2]int64{}
				for e := int32(-1); e < 8; e++ {
					got, end := l.EndOffsetForEpoch(e)
					answers[e] = [2]int64{int64(got), end}
				}
				if clean {
					l.Close()
				} else {
					l.crash()
				}
				c.damage(filepath.Join(dir, epochCheckpoint))
				l = openLog(t, dir, opts)
				if !l.Recovery().EpochCacheRebuilt {
					t.Fatalf("report %+v, want the epoch cache rebuilt", l.Recovery())
				}
				for e := int32(-1); e < 8; e++ {
					got, end := l.EndOffsetForEpoch(e)
					if [2]int64{int64(got), end} != answers[e] {
						t.Fatalf("EndOffsetForEpoch(%d) = %d, %d after rebuilding, want %v", e, got, end, answers[e])
					}
				}
				data, err := os.ReadFile(filepath.Join(dir, epochCheckpoint))
				if err != nil || !strings.HasPrefix(string(data), "0\n6\n0 0\n") {
					t.Fatalf("rebuilt checkpoint not written back: %q, %v", data, err)
				}
			})
		}
	}
}

func TestRecoverMarkerMismatch(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	want := fillLog(t, l, 6)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Someone removes whole batches after the clean close: every batch
	// left is valid, but the marker's end offset no longer matches.
	if err := os.Truncate(segmentPath(dir, 0), int64(len(want[0].data)+len(want[1].data))); err != nil {
		t.Fatal(err)
	}
	logger, out := testLogger(t)
	l = openLog(t, dir, Options{Logger: logger})
	if rep := l.Recovery(); rep.Clean {
		t.Fatalf("report %+v: a marker that does not match must not count as clean", rep)
	}
	if !strings.Contains(out.String(), "clean-shutdown marker does not match") {
		t.Fatalf("no log line about the marker:\n%s", out)
	}
	assertHolds(t, l, want[:2])
}

func TestRecoverStrayFiles(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	want := fillLog(t, l, 3)
	l.crash()
	for _, name := range []string{"00000000000000000099.index", "recovery-point.tmp", "leader-epoch-checkpoint.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l = openLog(t, dir, Options{})
	assertHolds(t, l, want)
	for _, name := range []string{"00000000000000000099.index", "recovery-point.tmp", "leader-epoch-checkpoint.tmp"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("stray %s was not removed: %v", name, err)
		}
	}
}

package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/storage/storagetest"
)

func TestCheckBatchAgreesWithKmsg(t *testing.T) {
	for _, b := range [][]byte{
		storagetest.Batch([]byte("x")),
		storagetest.Batch(values("k", 20, 300)...),
		storagetest.BatchAt(12345, 7, []byte("a"), nil, []byte("c")),
	} {
		h, err := checkBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
		if h.baseOffset != rb.FirstOffset || h.length != rb.Length || h.epoch != rb.PartitionLeaderEpoch ||
			h.magic != rb.Magic || h.crc != uint32(rb.CRC) || h.lastOffsetDelta != rb.LastOffsetDelta ||
			h.recordCount != rb.NumRecords || h.size() != len(b) {
			t.Fatalf("hand parser %+v disagrees with kmsg %+v", h, rb)
		}
	}
}

func TestStampKeepsCRC(t *testing.T) {
	b := storagetest.Batch(values("s", 3, 10)...)
	stampBatch(b, 1<<40, 99)
	h, err := checkBatch(b)
	if err != nil || h.baseOffset != 1<<40 || h.epoch != 99 {
		t.Fatalf("after stamping: %+v, %v", h, err)
	}
	if vs := storagetest.Values(b); len(vs) != 3 || !bytes.HasPrefix(vs[2], []byte("s/2|")) {
		t.Fatalf("values after stamping: %q", vs)
	}
}

func TestBatchErrorsWrapErrCorruptBatch(t *testing.T) {
	b := storagetest.Batch([]byte("v"))
	b[len(b)-1] ^= 1
	_, err := checkRecordSet(b, true)
	if !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("%v does not wrap ErrCorruptBatch", err)
	}
}

// FuzzParseBatch: the batch checks never panic, and whatever they accept
// is a whole batch that kmsg parses to the same header, with a right CRC.
func FuzzParseBatch(f *testing.F) {
	good := storagetest.BatchAt(5, 2, values("z", 3, 20)...)
	f.Add(good)
	f.Add(good[:40])
	f.Add(append(append([]byte(nil), good...), good...))
	f.Add([]byte{})
	f.Add(make([]byte, 61))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := checkBatch(data)
		if err == nil {
			if h.size() > len(data) || h.magic != 2 || h.length < minBatchLength || h.lastOffsetDelta < 0 {
				t.Fatalf("accepted a malformed batch: %+v (%d bytes)", h, len(data))
			}
			if crc32c(data[posAttributes:h.size()]) != h.crc {
				t.Fatal("accepted a batch with a wrong CRC")
			}
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(data[:h.size()]); err != nil || rb.FirstOffset != h.baseOffset || rb.LastOffsetDelta != h.lastOffsetDelta {
				t.Fatalf("kmsg disagrees with an accepted batch: %v", err)
			}
		} else if !errors.Is(err, ErrCorruptBatch) {
			t.Fatalf("error %v does not wrap ErrCorruptBatch", err)
		}
		hs, err := checkRecordSet(data, false)
		if err == nil {
			n := 0
			for _, h := range hs {
				n += h.size()
			}
			if n != len(data) {
				t.Fatalf("record set of %d bytes accepted as %d", len(data), n)
			}
		}
	})
}

// FuzzRecover: any bytes as a segment file open without a panic, and what
// the log keeps is whole, valid, contiguous batches that a reopen keeps.
func FuzzRecover(f *testing.F) {
	var good []byte
	for i := range 4 {
		good = append(good, storagetest.BatchAt(int64(i*3), int32(i/2), values("r", 3, 30)...)...)
	}
	f.Add(good)
	f.Add(good[:len(good)-7])
	flipped := append([]byte(nil), good...)
	flipped[len(good)/2] ^= 0xff
	f.Add(flipped)
	f.Add(make([]byte, 200))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segmentName(0, logSuffix)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		logger, _ := testLogger(t)
		l, err := OpenLog(dir, Options{Logger: logger, IndexIntervalBytes: 64})
		if err != nil {
			t.Fatalf("OpenLog failed on a damaged segment instead of truncating it: %v", err)
		}
		got := readAll(t, l, 100)
		kept := 0
		for _, b := range got {
			kept += len(b.data)
		}
		if !bytes.Equal(data[:kept], concat(got)) || l.Recovery().BytesDropped != int64(len(data)-kept) {
			t.Fatalf("kept %d bytes that are not a prefix of the file, or the report (%+v) miscounts", kept, l.Recovery())
		}
		end := l.EndOffset()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err = OpenLog(dir, Options{Logger: logger})
		if err != nil || l.EndOffset() != end || l.Recovery().Truncated {
			t.Fatalf("reopen: end %d (want %d), %+v, %v", l.EndOffset(), end, l.Recovery(), err)
		}
		l.Close()
	})
}

func concat(bs []storedBatch) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b.data...)
	}
	return out
}

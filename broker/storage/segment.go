package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// indexEntryBytes is the on-disk size of one offset index entry: the
// offset relative to the segment's base (uint32) and the byte position
// (uint32), big-endian, as in Kafka's .index files.
const indexEntryBytes = 8

// indexEntry maps the base offset of a batch to its byte position.
type indexEntry struct {
	offset int64
	pos    int64
}

// segment is one file of a partition log, holding the batches from offset
// base up to next. Only the last segment of a log (the active one) grows;
// the others are sealed and change only by truncation.
type segment struct {
	base int64
	path string // the .log file
	f    *os.File

	// Guarded by Log.mu: written under Lock, read under RLock.
	size       int64        // bytes of whole batches in the file
	next       int64        // offset after the last batch (base when empty)
	index      []indexEntry // sparse: one entry per IndexIntervalBytes
	sinceIndex int64        // bytes written since the last index entry

	// Guarded by Log.syncMu.
	syncedSize   int64 // bytes known to be on stable storage
	indexFlushed bool  // the .index file matches index (sealed segments)
}

func (s *segment) indexPath() string {
	return s.path[:len(s.path)-len(logSuffix)] + indexSuffix
}

// noteBatch updates the segment's bounds and sparse index for a batch of
// size bytes written at pos. The rule (an entry for the first batch that
// starts at least interval bytes after the previous entry) is the same on
// append and on recovery, so a rebuilt index equals the written one.
func (s *segment) noteBatch(pos int64, h batchHeader, interval int) {
	rel := h.baseOffset - s.base
	if s.sinceIndex >= int64(interval) && rel <= math.MaxUint32 && pos <= math.MaxUint32 {
		s.index = append(s.index, indexEntry{offset: h.baseOffset, pos: pos})
		s.sinceIndex = 0
	}
	s.sinceIndex += int64(h.size())
	s.size = pos + int64(h.size())
	s.next = h.next()
}

// lookup returns the last index entry at or below offset, or the start of
// the segment.
func (s *segment) lookup(offset int64) indexEntry {
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].offset > offset })
	if i == 0 {
		return indexEntry{offset: s.base, pos: 0}
	}
	return s.index[i-1]
}

// truncateIndex drops the index entries at or after byte pos.
func (s *segment) truncateIndex(pos int64) {
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].pos >= pos })
	s.index = s.index[:i]
	last := int64(0)
	if i > 0 {
		last = s.index[i-1].pos
	}
	s.sinceIndex = pos - last
}

func (s *segment) marshalIndex() []byte {
	b := make([]byte, 0, len(s.index)*indexEntryBytes)
	for _, e := range s.index {
		b = binary.BigEndian.AppendUint32(b, uint32(e.offset-s.base))
		b = binary.BigEndian.AppendUint32(b, uint32(e.pos))
	}
	return b
}

// loadIndex reads the segment's .index file and checks that it can be
// trusted as a cache: whole entries, offsets and positions strictly
// increasing, inside the segment, and its last entry pointing at a batch
// that starts at that offset. nextBase is the next segment's base offset,
// or -1. A missing file returns an error wrapping os.ErrNotExist.
func (s *segment) loadIndex(nextBase int64) ([]indexEntry, error) {
	data, err := os.ReadFile(s.indexPath())
	if err != nil {
		return nil, err
	}
	if len(data)%indexEntryBytes != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of %d-byte entries", s.indexPath(), len(data), indexEntryBytes)
	}
	idx := make([]indexEntry, 0, len(data)/indexEntryBytes)
	for i := 0; i < len(data); i += indexEntryBytes {
		e := indexEntry{
			offset: s.base + int64(binary.BigEndian.Uint32(data[i:])),
			pos:    int64(binary.BigEndian.Uint32(data[i+4:])),
		}
		if n := len(idx); n > 0 && (e.offset <= idx[n-1].offset || e.pos <= idx[n-1].pos) {
			return nil, fmt.Errorf("%s: entry %d (offset %d, byte %d) does not increase on the previous one", s.indexPath(), n, e.offset, e.pos)
		}
		if e.pos+batchHeaderBytes > s.size || (nextBase >= 0 && e.offset >= nextBase) {
			return nil, fmt.Errorf("%s: entry %d (offset %d, byte %d) lies outside the segment (%d bytes, next segment at offset %d)", s.indexPath(), len(idx), e.offset, e.pos, s.size, nextBase)
		}
		idx = append(idx, e)
	}
	if n := len(idx); n > 0 {
		last := idx[n-1]
		r := fileReader{f: s.f, size: s.size}
		hb, err := r.at(last.pos, batchHeaderBytes)
		if err != nil {
			return nil, fmt.Errorf("%s: reading the batch its last entry points at: %w", s.indexPath(), err)
		}
		h, err := parseHeader(hb)
		if err != nil || h.baseOffset != last.offset || last.pos+int64(h.size()) > s.size {
			return nil, fmt.Errorf("%s: last entry says offset %d is at byte %d of %s, but no whole batch with that base offset starts there", s.indexPath(), last.offset, last.pos, s.path)
		}
	}
	return idx, nil
}

// readChunkBytes is how much a fileReader reads ahead when it walks batch
// headers for a Read; recovery reads larger chunks.
const (
	readChunkBytes    = 16 << 10
	recoverChunkBytes = 1 << 20
)

// fileReader reads a segment file through a buffer, so that walking many
// small batches costs few system calls. Reads beyond size fail.
type fileReader struct {
	f      *os.File
	size   int64 // bytes that may be read
	chunk  int   // read-ahead; 0 means readChunkBytes
	buf    []byte
	bufPos int64
}

// at returns the k bytes at pos; the slice is valid until the next call.
func (r *fileReader) at(pos int64, k int) ([]byte, error) {
	if pos < 0 || k < 0 || pos+int64(k) > r.size {
		return nil, fmt.Errorf("reading %d bytes at byte %d of %s: past its %d bytes: %w", k, pos, r.f.Name(), r.size, io.ErrUnexpectedEOF)
	}
	if pos >= r.bufPos && pos+int64(k) <= r.bufPos+int64(len(r.buf)) {
		off := pos - r.bufPos
		return r.buf[off : off+int64(k)], nil
	}
	chunk := r.chunk
	if chunk == 0 {
		chunk = readChunkBytes
	}
	want := int64(max(k, chunk))
	want = min(want, r.size-pos)
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	n, err := r.f.ReadAt(r.buf, pos)
	if int64(n) < want {
		r.buf = r.buf[:0]
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %d bytes at byte %d of %s: %w", want, pos, r.f.Name(), err)
	}
	r.bufPos = pos
	return r.buf[:k], nil
}

// scanState carries what a recovery scan expects of the next batch.
type scanState struct {
	expect      int64 // the base offset the next batch must have
	epoch       int32 // the latest leader epoch seen (-1 for none)
	checkEpochs bool  // reject negative or decreasing epochs
}

// badBatch says where and why a scan stopped.
type badBatch struct {
	pos    int64
	reason string
}

// scanSegment walks the batches of the reader's file from byte from to its
// end, checking framing, contiguous offsets, epochs when asked and, when
// verify is set, each batch's CRC-32C (else it reads headers only). It calls
// fn for every good batch and stops at the first bad one, which it
// returns. Only I/O failures return an error.
func scanSegment(r *fileReader, from int64, st *scanState, verify bool, fn func(pos int64, h batchHeader)) (*badBatch, error) {
	for pos := from; pos < r.size; {
		left := r.size - pos
		if left < batchHeaderBytes {
			return &badBatch{pos, fmt.Sprintf("torn batch header: %d bytes left in the file, a header needs %d", left, batchHeaderBytes)}, nil
		}
		hb, err := r.at(pos, batchHeaderBytes)
		if err != nil {
			return nil, err
		}
		h, err := parseHeader(hb)
		switch {
		case err != nil:
			return &badBatch{pos, reasonOf(err)}, nil
		case int64(h.size()) > left:
			return &badBatch{pos, fmt.Sprintf("torn batch: batchLength says %d bytes, %d left in the file", h.size(), left)}, nil
		case h.baseOffset != st.expect:
			return &badBatch{pos, fmt.Sprintf("base offset %d, want %d (offsets must continue the log)", h.baseOffset, st.expect)}, nil
		case st.checkEpochs && (h.epoch < 0 || h.epoch < st.epoch):
			return &badBatch{pos, fmt.Sprintf("leader epoch %d after epoch %d (epochs must be non-negative and never decrease)", h.epoch, st.epoch)}, nil
		}
		if verify {
			b, err := r.at(pos, h.size())
			if err != nil {
				return nil, err
			}
			if _, err := checkBatch(b); err != nil {
				return &badBatch{pos, reasonOf(err)}, nil
			}
		}
		fn(pos, h)
		st.expect = h.next()
		st.epoch = max(st.epoch, h.epoch)
		pos += int64(h.size())
	}
	return nil, nil
}

// lastReadableOffset walks the headers of a dropped tail (from byte pos of
// segs[0], then the later segments) for as long as they continue the
// offsets from first, and returns the last offset they claim, or -1. It is
// a best effort for the recovery report: the bytes are known to be bad.
func lastReadableOffset(segs []*segment, pos, first int64) int64 {
	last, expect := int64(-1), first
	for i, s := range segs {
		if i > 0 {
			pos = 0
		}
		r := fileReader{f: s.f, size: s.size, chunk: recoverChunkBytes}
		for pos+posLastOffsetDelta+4 <= s.size {
			hb, err := r.at(pos, posLastOffsetDelta+4)
			if err != nil {
				return last
			}
			base := int64(binary.BigEndian.Uint64(hb[posBaseOffset:]))
			length := int32(binary.BigEndian.Uint32(hb[posBatchLength:]))
			delta := int32(binary.BigEndian.Uint32(hb[posLastOffsetDelta:]))
			if base != expect || delta < 0 || length < minBatchLength {
				return last
			}
			last = base + int64(delta)
			expect = last + 1
			pos += batchFrameBytes + int64(length)
		}
	}
	return last
}

func segmentPath(dir string, base int64) string {
	return filepath.Join(dir, segmentName(base, logSuffix))
}

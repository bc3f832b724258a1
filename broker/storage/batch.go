package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// The fixed header of a Kafka RecordBatch, magic v2, as byte positions.
// baseOffset, batchLength and partitionLeaderEpoch precede the CRC, so the
// log can rewrite baseOffset and the epoch in place without recomputing it.
const (
	posBaseOffset      = 0  // int64
	posBatchLength     = 8  // int32: bytes after this field
	posLeaderEpoch     = 12 // int32
	posMagic           = 16 // int8
	posCRC             = 17 // uint32, CRC-32C of bytes [posAttributes, end)
	posAttributes      = 21 // int16
	posLastOffsetDelta = 23 // int32
	posRecordCount     = 57 // int32

	// batchFrameBytes is baseOffset+batchLength: enough to know a
	// batch's size.
	batchFrameBytes = 12
	// batchHeaderBytes is the whole fixed header.
	batchHeaderBytes = 61
	// minBatchLength is the smallest legal batchLength (a header with no
	// records).
	minBatchLength = batchHeaderBytes - batchFrameBytes
	// batchMagic is the only record format the log stores.
	batchMagic = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchHeader holds the header fields the log uses.
type batchHeader struct {
	baseOffset      int64
	length          int32 // batchLength: bytes after the length field
	epoch           int32
	magic           int8
	crc             uint32
	lastOffsetDelta int32
	recordCount     int32
}

// size is the batch's total size in bytes.
func (h batchHeader) size() int { return batchFrameBytes + int(h.length) }

// next is the offset after the batch's last record.
func (h batchHeader) next() int64 { return h.baseOffset + int64(h.lastOffsetDelta) + 1 }

// batchError is a failed batch check; it wraps ErrCorruptBatch.
type batchError struct{ reason string }

func (e *batchError) Error() string { return ErrCorruptBatch.Error() + ": " + e.reason }
func (e *batchError) Unwrap() error { return ErrCorruptBatch }

func corruptf(format string, args ...any) error {
	return &batchError{reason: fmt.Sprintf(format, args...)}
}

// reasonOf returns the bare reason of a batch check failure, for reports.
func reasonOf(err error) string {
	if be, ok := err.(*batchError); ok {
		return be.reason
	}
	return err.Error()
}

// parseHeader reads and checks the fixed header at the start of b: it is
// whole, batchLength is at least a header, magic is 2 and lastOffsetDelta is
// not negative. baseOffset is the caller's to check (a producer's means
// nothing; a stored one must continue the log). It does not need the
// records nor check the CRC. Parsing is by hand: this is the hot path of
// every append, read and recovery.
func parseHeader(b []byte) (batchHeader, error) {
	if len(b) < batchHeaderBytes {
		return batchHeader{}, corruptf("torn header: %d bytes, a batch header needs %d", len(b), batchHeaderBytes)
	}
	be := binary.BigEndian
	h := batchHeader{
		baseOffset:      int64(be.Uint64(b[posBaseOffset:])),
		length:          int32(be.Uint32(b[posBatchLength:])),
		epoch:           int32(be.Uint32(b[posLeaderEpoch:])),
		magic:           int8(b[posMagic]),
		crc:             be.Uint32(b[posCRC:]),
		lastOffsetDelta: int32(be.Uint32(b[posLastOffsetDelta:])),
		recordCount:     int32(be.Uint32(b[posRecordCount:])),
	}
	switch {
	case h.length < minBatchLength:
		return h, corruptf("batchLength %d is below the %d-byte minimum", h.length, minBatchLength)
	case h.magic != batchMagic:
		return h, corruptf("magic %d, want %d (only RecordBatch v2 is stored)", h.magic, batchMagic)
	case h.lastOffsetDelta < 0:
		return h, corruptf("lastOffsetDelta %d is negative", h.lastOffsetDelta)
	}
	return h, nil
}

// checkBatch checks the batch at the start of b: header (parseHeader), the
// whole batch present, and its CRC-32C.
func checkBatch(b []byte) (batchHeader, error) {
	h, err := parseHeader(b)
	if err != nil {
		return h, err
	}
	if len(b) < h.size() {
		return h, corruptf("torn batch: batchLength says %d bytes, only %d present", h.size(), len(b))
	}
	if got := crc32.Checksum(b[posAttributes:h.size()], castagnoli); got != h.crc {
		return h, corruptf("CRC-32C mismatch: stored %08x, computed %08x", h.crc, got)
	}
	return h, nil
}

// checkRecordSet checks every batch of a concatenated record set and
// returns their headers. A leader additionally requires recordCount =
// lastOffsetDelta+1 >= 1, as Kafka validates produced batches (a producer
// never leaves offset gaps). Errors say which batch (byte position) failed.
func checkRecordSet(set []byte, leader bool) ([]batchHeader, error) {
	if len(set) == 0 {
		return nil, corruptf("empty record set")
	}
	var hs []batchHeader
	for pos := 0; pos < len(set); {
		h, err := checkBatch(set[pos:])
		if err != nil {
			return nil, fmt.Errorf("batch %d at byte %d of the record set: %w", len(hs), pos, err)
		}
		if leader && (h.recordCount < 1 || int64(h.recordCount) != int64(h.lastOffsetDelta)+1) {
			return nil, fmt.Errorf("batch %d at byte %d of the record set: %w", len(hs), pos,
				corruptf("recordCount %d does not match lastOffsetDelta %d", h.recordCount, h.lastOffsetDelta))
		}
		hs = append(hs, h)
		pos += h.size()
	}
	return hs, nil
}

// stampBatch rewrites the batch's baseOffset and partitionLeaderEpoch,
// which lie outside the CRC.
func stampBatch(b []byte, baseOffset int64, epoch int32) {
	binary.BigEndian.PutUint64(b[posBaseOffset:], uint64(baseOffset))
	binary.BigEndian.PutUint32(b[posLeaderEpoch:], uint32(epoch))
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// BatchHeaderBytes is the size of a magic-v2 RecordBatch header, from
// baseOffset up to and including the record count.
const BatchHeaderBytes = 61

// batchLengthOffset etc. are the byte offsets of the header fields that the
// broker reads; the layout is Kafka's RecordBatch (magic 2).
const (
	batchLengthOffset     = 8  // int32, bytes after this field
	batchLogOverhead      = 12 // baseOffset + batchLength
	batchAttributesOffset = 21 // int16; the CRC-32C covers from here to the end
)

// ErrBadBatch: a produced RecordBatch failed framing, magic or CRC-32C
// checks; the broker refuses it so that no corrupt bytes reach the log.
var ErrBadBatch = errors.New("wire: invalid record batch")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the fixed header of a RecordBatch.
type BatchHeader struct {
	BaseOffset           int64
	Length               int32 // bytes after the Length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// TotalBytes is the batch's size on the wire, header included.
func (h BatchHeader) TotalBytes() int { return batchLogOverhead + int(h.Length) }

// LastOffset is the offset of the batch's last record.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// LastSequence is the producer sequence of the batch's last record, which
// wraps at math.MaxInt32 as Kafka's does.
func (h BatchHeader) LastSequence() int32 {
	if h.BaseSequence < 0 {
		return -1
	}
	return int32((int64(h.BaseSequence) + int64(h.LastOffsetDelta)) % (1 << 31))
}

// Transactional reports the batch's transactional attribute bit.
func (h BatchHeader) Transactional() bool { return h.Attributes&0x10 != 0 }

// Control reports the batch's control attribute bit.
func (h BatchHeader) Control() bool { return h.Attributes&0x20 != 0 }

// Compression is the codec in the low three attribute bits (0 none).
func (h BatchHeader) Compression() int8 { return int8(h.Attributes & 0x07) }

// ParseBatchHeader reads the header at the start of b without checking the
// CRC. It fails if b is shorter than a header.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < BatchHeaderBytes {
		return BatchHeader{}, fmt.Errorf("%w: %d bytes, a header needs %d", ErrBadBatch, len(b), BatchHeaderBytes)
	}
	be := binary.BigEndian
	return BatchHeader{
		BaseOffset:           int64(be.Uint64(b[0:])),
		Length:               int32(be.Uint32(b[8:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[12:])),
		Magic:                int8(b[16]),
		CRC:                  be.Uint32(b[17:]),
		Attributes:           int16(be.Uint16(b[21:])),
		LastOffsetDelta:      int32(be.Uint32(b[23:])),
		FirstTimestamp:       int64(be.Uint64(b[27:])),
		MaxTimestamp:         int64(be.Uint64(b[35:])),
		ProducerID:           int64(be.Uint64(b[43:])),
		ProducerEpoch:        int16(be.Uint16(b[51:])),
		BaseSequence:         int32(be.Uint32(b[53:])),
		NumRecords:           int32(be.Uint32(b[57:])),
	}, nil
}

// VerifyProducedBatch checks that b is exactly one magic-v2 RecordBatch
// whose length field matches, whose CRC-32C is right, and whose record
// count agrees with its offset delta, as Kafka's LogValidator requires of a
// produced batch. It returns the parsed header.
func VerifyProducedBatch(b []byte) (BatchHeader, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, err
	}
	if h.Magic != 2 {
		return h, fmt.Errorf("%w: magic %d, only magic 2 (v3+ produce) is accepted", ErrBadBatch, h.Magic)
	}
	if h.TotalBytes() < BatchHeaderBytes {
		return h, fmt.Errorf("%w: batch length field %d is shorter than a header", ErrBadBatch, h.Length)
	}
	if h.TotalBytes() != len(b) {
		return h, fmt.Errorf("%w: batch length field says %d bytes, the partition carries %d (exactly one batch is allowed)", ErrBadBatch, h.TotalBytes(), len(b))
	}
	if got := crc32.Checksum(b[batchAttributesOffset:], castagnoli); got != h.CRC {
		return h, fmt.Errorf("%w: CRC-32C %08x, header says %08x", ErrBadBatch, got, h.CRC)
	}
	if h.NumRecords <= 0 || h.LastOffsetDelta != h.NumRecords-1 {
		return h, fmt.Errorf("%w: %d records but last offset delta %d", ErrBadBatch, h.NumRecords, h.LastOffsetDelta)
	}
	return h, nil
}

// Batches walks concatenated batches (as a log read returns them), calling
// fn with each header and its bytes. A trailing partial batch, as a size
// limit may leave, ends the walk silently; a header that cannot be parsed
// returns an error.
func Batches(b []byte, fn func(h BatchHeader, batch []byte) bool) error {
	for len(b) >= batchLogOverhead {
		n := batchLogOverhead + int(int32(binary.BigEndian.Uint32(b[batchLengthOffset:])))
		if n < BatchHeaderBytes {
			return fmt.Errorf("%w: batch length field %d is shorter than a header", ErrBadBatch, n-batchLogOverhead)
		}
		if n > len(b) {
			return nil
		}
		h, err := ParseBatchHeader(b[:n])
		if err != nil {
			return err
		}
		if !fn(h, b[:n]) {
			return nil
		}
		b = b[n:]
	}
	return nil
}

package wire

import (
	"encoding/binary"
	"hash/crc32"
)

// Record is one uncompressed record for EncodeBatch.
type Record struct {
	Key, Value     []byte // nil is encoded as null
	TimestampDelta int64  // milliseconds after the batch's FirstTimestamp
}

// EncodeBatch builds an uncompressed magic-v2 RecordBatch holding records,
// taking BaseOffset, PartitionLeaderEpoch, Attributes, FirstTimestamp,
// ProducerID, ProducerEpoch and BaseSequence from h and computing the rest
// (length, magic, CRC-32C, record count, offset delta, max timestamp). The
// broker uses it for tests and tools; clients build their own batches.
func EncodeBatch(h BatchHeader, records []Record) []byte {
	b := make([]byte, BatchHeaderBytes, BatchHeaderBytes+len(records)*32)
	maxTS := h.FirstTimestamp
	for i, r := range records {
		var rec []byte
		rec = append(rec, 0) // attributes
		rec = binary.AppendVarint(rec, r.TimestampDelta)
		rec = binary.AppendVarint(rec, int64(i))
		rec = appendVarBytes(rec, r.Key)
		rec = appendVarBytes(rec, r.Value)
		rec = binary.AppendVarint(rec, 0) // no headers
		b = binary.AppendVarint(b, int64(len(rec)))
		b = append(b, rec...)
		maxTS = max(maxTS, h.FirstTimestamp+r.TimestampDelta)
	}
	be := binary.BigEndian
	be.PutUint64(b[0:], uint64(h.BaseOffset))
	be.PutUint32(b[8:], uint32(len(b)-batchLogOverhead))
	be.PutUint32(b[12:], uint32(h.PartitionLeaderEpoch))
	b[16] = 2
	be.PutUint16(b[21:], uint16(h.Attributes))
	be.PutUint32(b[23:], uint32(max(len(records)-1, 0)))
	be.PutUint64(b[27:], uint64(h.FirstTimestamp))
	be.PutUint64(b[35:], uint64(maxTS))
	be.PutUint64(b[43:], uint64(h.ProducerID))
	be.PutUint16(b[51:], uint16(h.ProducerEpoch))
	be.PutUint32(b[53:], uint32(h.BaseSequence))
	be.PutUint32(b[57:], uint32(len(records)))
	be.PutUint32(b[17:], crc32.Checksum(b[batchAttributesOffset:], castagnoli))
	return b
}

func appendVarBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}

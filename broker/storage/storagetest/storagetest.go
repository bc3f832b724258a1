// Package storagetest builds valid Kafka RecordBatch v2 bytes for tests of
// the storage package and its neighbours (with kmsg's encoders and a real
// CRC-32C), so tests need no client to produce appendable batches.
package storagetest

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// BaseTimestampMs is the first record timestamp of every built batch;
// fixed, so that equal inputs give equal bytes.
const BaseTimestampMs = 1_700_000_000_000

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Batch returns an uncompressed batch with one record (no key, no headers)
// per value, as a producer sends it: baseOffset 0, partitionLeaderEpoch -1,
// no producer id.
func Batch(values ...[]byte) []byte {
	return BatchAt(0, -1, values...)
}

// BatchAt is Batch with baseOffset and partitionLeaderEpoch already set, as
// a leader's log holds it (what a follower appends).
func BatchAt(baseOffset int64, epoch int32, values ...[]byte) []byte {
	var records []byte
	for i, v := range values {
		r := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i), Value: v}
		body := r.AppendTo(nil) // Length 0 encodes as the single varint byte 0
		r.Length = int32(len(body) - 1)
		records = r.AppendTo(records)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          baseOffset,
		PartitionLeaderEpoch: epoch,
		Magic:                2,
		LastOffsetDelta:      int32(len(values) - 1),
		FirstTimestamp:       BaseTimestampMs,
		MaxTimestamp:         BaseTimestampMs + int64(max(len(values)-1, 0)),
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(values)),
		Records:              records,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

// Values decodes the record values of an uncompressed batch built by
// Batch; it returns nil if the bytes do not parse.
func Values(batch []byte) [][]byte {
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(batch); err != nil {
		return nil
	}
	var out [][]byte
	rest := rb.Records
	for range rb.NumRecords {
		var r kmsg.Record
		n, used := binary.Varint(rest)
		if used <= 0 || int(n) < 0 || used+int(n) > len(rest) {
			return nil
		}
		if err := r.ReadFrom(rest[:used+int(n)]); err != nil {
			return nil
		}
		out = append(out, r.Value)
		rest = rest[used+int(n):]
	}
	return out
}

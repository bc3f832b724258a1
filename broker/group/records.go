package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/wire"
)

// The offsets topic holds Kafka's own record formats (kmsg's
// OffsetCommitKey/Value and GroupMetadataKey/Value), so that Kafka's
// tooling, and anyone reading the topic with a Kafka client, can decode
// it. The key's version tells the kinds apart: 0 and 1 are offset
// commits, 2 group metadata. A record with a null value is a tombstone:
// the offset or the group was deleted.
const (
	offsetKeyVersion    = 1
	groupKeyVersion     = 2
	offsetValueVersion  = 3 // leader epoch, no expiry (Kafka 2.1+)
	groupValueVersion   = 3 // instance ids (Kafka 2.3+)
	maxKeyVersionOffset = 1
)

// ErrBadRecord: a record of the offsets topic does not decode. Loading
// skips it (and says so), as Kafka does: a record the coordinator cannot
// read cannot be acted on either.
var ErrBadRecord = errors.New("group: undecodable record in the offsets topic")

// record is one decoded record of the offsets topic: exactly one of offset
// and group is set; a nil value (OffsetValue or GroupValue) is a
// tombstone.
type record struct {
	offset      *kmsg.OffsetCommitKey
	offsetValue *kmsg.OffsetCommitValue
	group       *kmsg.GroupMetadataKey
	groupValue  *kmsg.GroupMetadataValue
}

// offsetRecord encodes an offset commit (or, with c nil, its tombstone).
func offsetRecord(group, topic string, partition int32, c *committed) wire.Record {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: group, Topic: topic, Partition: partition}
	r := wire.Record{Key: k.AppendTo(nil)}
	if c != nil {
		v := kmsg.OffsetCommitValue{
			Version:         offsetValueVersion,
			Offset:          c.Offset,
			LeaderEpoch:     c.LeaderEpoch,
			Metadata:        c.Metadata,
			CommitTimestamp: c.CommitTime.UnixMilli(),
		}
		r.Value = v.AppendTo(nil)
	}
	return r
}

// groupRecord encodes a group's metadata (or, with v nil, its tombstone).
func groupRecord(group string, v *kmsg.GroupMetadataValue) wire.Record {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: group}
	r := wire.Record{Key: k.AppendTo(nil)}
	if v != nil {
		v.Version = groupValueVersion
		r.Value = v.AppendTo(nil)
	}
	return r
}

// encodeBatch makes one uncompressed, non-idempotent RecordBatch of rs.
func encodeBatch(rs []wire.Record, now time.Time) []byte {
	return wire.EncodeBatch(wire.BatchHeader{FirstTimestamp: now.UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, rs)
}

// decodeBatch decodes the records of one batch of the offsets topic,
// calling fn with each one's offset. A batch the coordinator did not write
// (compressed, transactional control) or a record that does not decode is
// an ErrBadRecord; the records before it were delivered.
func decodeBatch(batch []byte, fn func(offset int64, r record) error) error {
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(batch); err != nil {
		return fmt.Errorf("%w: batch header: %v", ErrBadRecord, err)
	}
	if rb.Attributes&0x0007 != 0 || rb.Attributes&0x0020 != 0 {
		return fmt.Errorf("%w: batch at offset %d has attributes %#x (compressed or control); the coordinator writes neither", ErrBadRecord, rb.FirstOffset, rb.Attributes)
	}
	src := rb.Records
	for i := int32(0); i < rb.NumRecords; i++ {
		length, n := binary.Varint(src)
		if n <= 0 || length < 0 || int64(len(src)-n) < length {
			return fmt.Errorf("%w: record %d of the batch at offset %d: bad length", ErrBadRecord, i, rb.FirstOffset)
		}
		var kr kmsg.Record
		if err := kr.ReadFrom(src[:n+int(length)]); err != nil {
			return fmt.Errorf("%w: record %d of the batch at offset %d: %v", ErrBadRecord, i, rb.FirstOffset, err)
		}
		src = src[n+int(length):]
		r, err := decodeRecord(kr.Key, kr.Value)
		if err != nil {
			return fmt.Errorf("record at offset %d: %w", rb.FirstOffset+int64(kr.OffsetDelta), err)
		}
		if err := fn(rb.FirstOffset+int64(kr.OffsetDelta), r); err != nil {
			return err
		}
	}
	return nil
}

// decodeRecord decodes one key and value of the offsets topic; an empty
// or null value is a tombstone.
func decodeRecord(key, value []byte) (record, error) {
	if len(key) < 2 {
		return record{}, fmt.Errorf("%w: key of %d bytes", ErrBadRecord, len(key))
	}
	switch v := int16(binary.BigEndian.Uint16(key)); {
	case v >= 0 && v <= maxKeyVersionOffset:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return record{}, fmt.Errorf("%w: offset commit key: %v", ErrBadRecord, err)
		}
		r := record{offset: &k}
		if len(value) > 0 {
			var val kmsg.OffsetCommitValue
			if err := val.ReadFrom(value); err != nil {
				return record{}, fmt.Errorf("%w: offset commit value of %s/%s-%d: %v", ErrBadRecord, k.Group, k.Topic, k.Partition, err)
			}
			r.offsetValue = &val
		}
		return r, nil
	case v == groupKeyVersion:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return record{}, fmt.Errorf("%w: group metadata key: %v", ErrBadRecord, err)
		}
		r := record{group: &k}
		if len(value) > 0 {
			var val kmsg.GroupMetadataValue
			if err := val.ReadFrom(value); err != nil {
				return record{}, fmt.Errorf("%w: group metadata value of %q: %v", ErrBadRecord, k.Group, err)
			}
			r.groupValue = &val
		}
		return r, nil
	default:
		return record{}, fmt.Errorf("%w: key version %d is neither an offset commit (0, 1) nor group metadata (2)", ErrBadRecord, v)
	}
}

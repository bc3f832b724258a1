package server

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/partition"
	"github.com/garantia/garantia/broker/wire"
)

// Special ListOffsets timestamps.
const (
	listLatest   = -1
	listEarliest = -2
)

// timestampScanBytes is the chunk size when searching a log by timestamp.
const timestampScanBytes = 1 << 20

// handleListOffsets answers earliest (-2), latest (-1, the high watermark:
// what a consumer can read; OFFSET_NOT_AVAILABLE while a new leader's high
// watermark is not yet established, KIP-207) and timestamp lookups.
func (s *Server) handleListOffsets(req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, rp := range t.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			if err := s.listOffset(t.Topic, rp, &sp); err != nil {
				sp.ErrorCode = errorCode(err)
				sp.Offset, sp.Timestamp = -1, -1
			}
			rt.Partitions = append(rt.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) listOffset(topic string, rp kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition) error {
	part, _, err := s.clientLeaderOf(topic, rp.Partition)
	if err != nil {
		return err
	}
	if err := part.CheckLeaderEpoch(rp.CurrentLeaderEpoch); err != nil {
		return err
	}
	log := part.Log()
	hw, established := part.EstablishedHighWatermark()
	sp.Timestamp = -1
	switch ts := rp.Timestamp; {
	case ts == listLatest:
		if !established {
			return fmt.Errorf("%w: %s-%d: the leader's high watermark %d has not yet reached the start of its epoch", kerr.OffsetNotAvailable, topic, rp.Partition, hw)
		}
		sp.Offset = hw
		sp.LeaderEpoch = log.LatestEpoch()
	case ts == listEarliest:
		sp.Offset = log.StartOffset()
		sp.LeaderEpoch = epochAt(part, sp.Offset, hw)
	case ts >= 0:
		off, when, epoch, err := offsetForTimestamp(part, ts, hw)
		if err != nil {
			return err
		}
		sp.Offset, sp.Timestamp, sp.LeaderEpoch = off, when, epoch
	default:
		return fmt.Errorf("%w: ListOffsets timestamp %d is not supported (only -1, -2 and times)", kerr.UnsupportedVersion, ts)
	}
	return nil
}

// epochAt is the leader epoch of the batch holding offset, or -1 if that
// batch is not committed.
func epochAt(part *partition.Partition, offset, hw int64) int32 {
	if offset >= hw {
		return -1
	}
	b, err := part.Log().Read(offset, wire.BatchHeaderBytes, hw)
	if err != nil {
		return -1
	}
	h, err := wire.ParseBatchHeader(b)
	if err != nil {
		return -1
	}
	return h.PartitionLeaderEpoch
}

// offsetForTimestamp finds the first committed record whose timestamp is
// at least ts, as Kafka's timestamp lookup does. It returns -1s when there
// is none. Inside a compressed batch it answers the batch's base offset:
// the first record at or after ts is in that batch or later.
func offsetForTimestamp(part *partition.Partition, ts, hw int64) (int64, int64, int32, error) {
	log := part.Log()
	for offset := log.StartOffset(); offset < hw; {
		b, err := log.Read(offset, timestampScanBytes, hw)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("%s-%d: timestamp lookup read at %d: %w", part.Topic(), part.Index(), offset, err)
		}
		if len(b) == 0 {
			break
		}
		var (
			found     bool
			fOff, fTS int64
			fEpoch    int32
			next      = offset
		)
		err = wire.Batches(b, func(h wire.BatchHeader, batch []byte) bool {
			next = h.LastOffset() + 1
			if h.MaxTimestamp < ts {
				return true
			}
			found, fEpoch = true, h.PartitionLeaderEpoch
			fOff, fTS = h.BaseOffset, h.MaxTimestamp
			if h.Compression() == 0 {
				if o, t, ok := firstRecordAtOrAfter(h, batch, ts); ok {
					fOff, fTS = o, t
				}
			}
			return false
		})
		if err != nil {
			return 0, 0, 0, fmt.Errorf("%s-%d: timestamp lookup at %d: %w", part.Topic(), part.Index(), offset, err)
		}
		if found {
			return fOff, fTS, fEpoch, nil
		}
		if next <= offset {
			break
		}
		offset = next
	}
	return -1, -1, -1, nil
}

// firstRecordAtOrAfter walks an uncompressed batch's records for the first
// whose timestamp is at least ts.
func firstRecordAtOrAfter(h wire.BatchHeader, batch []byte, ts int64) (int64, int64, bool) {
	b := batch[wire.BatchHeaderBytes:]
	for range h.NumRecords {
		length, n := binary.Varint(b)
		if n <= 0 || length < 0 || int64(len(b)-n) < length {
			return 0, 0, false
		}
		rec := b[n : n+int(length)]
		b = b[n+int(length):]
		if len(rec) < 1 {
			return 0, 0, false
		}
		tsDelta, m := binary.Varint(rec[1:]) // after the attributes byte
		if m <= 0 {
			return 0, 0, false
		}
		offDelta, k := binary.Varint(rec[1+m:])
		if k <= 0 {
			return 0, 0, false
		}
		if t := h.FirstTimestamp + tsDelta; t >= ts {
			return h.BaseOffset + offDelta, t, true
		}
	}
	return 0, 0, false
}

// handleOffsetForLeaderEpoch answers, per partition, where the requested
// epoch ended in this leader's log (KIP-101/279), which a follower or a
// consumer uses to find where its log diverged. Only the leader answers.
func (s *Server) handleOffsetForLeaderEpoch(req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, rp := range t.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			part, _, err := s.leaderOf(t.Topic, rp.Partition)
			switch {
			case err != nil:
				sp.ErrorCode = errorCode(err)
			default:
				if err := part.CheckLeaderEpoch(rp.CurrentLeaderEpoch); err != nil {
					sp.ErrorCode = errorCode(err)
					break
				}
				sp.LeaderEpoch, sp.EndOffset = part.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			rt.Partitions = append(rt.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/partition"
	"github.com/garantia/garantia/broker/storage"
)

// maxFetchResponseBytes bounds one fetch response whatever the client
// asks (Kafka's fetch.max.bytes is 55 MiB), so that a request cannot make
// the broker build a response of gigabytes.
const maxFetchResponseBytes = 64 << 20

// maxFetchWait bounds MaxWaitMillis so that a client cannot park a request
// (and the connection's later responses) for ever.
const maxFetchWait = 30 * time.Second

// handleFetch answers a consumer fetch: only records below the high
// watermark, at most PartitionMaxBytes per partition and MaxBytes in all
// (but at least one batch, KIP-74), waiting up to MaxWaitMillis for
// MinBytes to become available. It runs on the connection's writer, so
// waiting delays no other connection and no read on this one.
//
// Fetch sessions (KIP-227) are not kept: every response carries session id
// 0, which tells the client to keep sending full fetch requests.
func (s *Server) handleFetch(ctx context.Context, received time.Time, req *kmsg.FetchRequest) kmsg.Response {
	if req.Version >= 7 && req.SessionID != 0 && req.SessionEpoch != -1 {
		// We never hand out session ids, so any incremental fetch names a
		// session we do not have.
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return resp
	}

	wait := min(time.Duration(max(req.MaxWaitMillis, 0))*time.Millisecond, maxFetchWait)
	deadline := received.Add(wait)
	parts := s.fetchPartitions(req)

	// Watch before the first read so that an append between the read and
	// the wait still wakes us.
	wake := make(chan struct{}, 1)
	for _, p := range parts {
		if p != nil {
			defer p.Watch(wake)()
		}
	}

	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		resp, nbytes, failed := s.fetchOnce(req, parts)
		if failed || int64(nbytes) >= int64(req.MinBytes) || !time.Now().Before(deadline) {
			return resp
		}
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
			return resp
		}
	}
}

// fetchPartitions resolves the requested partitions, nil where unknown.
func (s *Server) fetchPartitions(req *kmsg.FetchRequest) []*partition.Partition {
	var parts []*partition.Partition
	for _, t := range req.Topics {
		for _, rp := range t.Partitions {
			parts = append(parts, s.partitionOf(t.Topic, rp.Partition))
		}
	}
	return parts
}

// fetchOnce builds the response from what is readable now. It returns the
// record bytes included and whether any partition errored (which makes
// Kafka answer at once instead of waiting).
func (s *Server) fetchOnce(req *kmsg.FetchRequest, parts []*partition.Partition) (*kmsg.FetchResponse, int, bool) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	budget := int64(req.MaxBytes)
	if req.Version < 3 || budget <= 0 || budget > maxFetchResponseBytes {
		budget = maxFetchResponseBytes
	}
	var nbytes int
	var failed bool
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = t.Topic
		for _, rp := range t.Partitions {
			part := parts[i]
			i++
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			// librdkafka takes a null record set (length -1) for a broken
			// MessageSet, so an empty answer is an empty, present one.
			sp.RecordBatches = []byte{}
			if err := s.fetchPartition(part, req, rp, &sp, budget, nbytes > 0); err != nil {
				failed = true
				sp.ErrorCode = errorCode(err)
				if sp.ErrorCode == kerr.UnknownServerError.Code {
					s.log.Error("fetch failed", "topic", t.Topic, "partition", rp.Partition, "err", err)
				}
			}
			budget -= int64(len(sp.RecordBatches))
			nbytes += len(sp.RecordBatches)
			rt.Partitions = append(rt.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nbytes, failed
}

func (s *Server) fetchPartition(part *partition.Partition, req *kmsg.FetchRequest, rp kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition, budget int64, haveData bool) error {
	if part == nil {
		return kerr.UnknownTopicOrPartition
	}
	log := part.Log()
	hw := part.HighWatermark()
	sp.HighWatermark = hw
	sp.LastStableOffset = hw // no transactions: everything committed is stable
	sp.LogStartOffset = log.StartOffset()
	if err := part.CheckLeaderEpoch(rp.CurrentLeaderEpoch); err != nil {
		return err
	}
	// KIP-320/595: a fetcher that names the epoch of its last fetched
	// batch learns where its log diverges from ours.
	if req.Version >= 12 && rp.LastFetchedEpoch >= 0 {
		epoch, end := part.EndOffsetForEpoch(rp.LastFetchedEpoch)
		if epoch < rp.LastFetchedEpoch || end < rp.FetchOffset {
			sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = epoch, end
			return nil
		}
	}
	if rp.FetchOffset < sp.LogStartOffset || rp.FetchOffset > log.EndOffset() {
		return fmt.Errorf("%w: %s-%d: fetch offset %d outside [%d, %d]", kerr.OffsetOutOfRange, part.Topic(), part.Index(), rp.FetchOffset, sp.LogStartOffset, log.EndOffset())
	}
	if budget <= 0 && haveData {
		return nil // the response is full; the client comes back for more
	}
	maxBytes := int64(rp.PartitionMaxBytes)
	if maxBytes <= 0 {
		return nil
	}
	maxBytes = min(maxBytes, max(budget, 1))
	b, err := log.Read(rp.FetchOffset, int(maxBytes), hw)
	if err != nil {
		if errors.Is(err, storage.ErrOffsetOutOfRange) {
			return fmt.Errorf("%w: %s-%d: %w", kerr.OffsetOutOfRange, part.Topic(), part.Index(), err)
		}
		return fmt.Errorf("%s-%d: read at %d: %w", part.Topic(), part.Index(), rp.FetchOffset, err)
	}
	// Only the first partition with data may exceed the response limit
	// (KIP-74), so that a batch larger than MaxBytes still gets through.
	if haveData && int64(len(b)) > budget {
		return nil
	}
	if len(b) > 0 {
		sp.RecordBatches = b // else it stays empty but present (never null)
	}
	return nil
}

package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/metadata"
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

// fetchTarget is one requested partition, resolved once per request.
type fetchTarget struct {
	part *partition.Partition
	err  error // why it cannot be served (in every response)
	// diverging, for a follower's fetch, is where its last epoch ended
	// here when its log diverges from this one.
	diverging *partition.EpochEnd
}

// handleFetch answers a fetch. A consumer's (ReplicaID -1) sees only
// records below the high watermark; a follower's (ReplicaID = its broker
// id) sees everything up to the log end and reports the follower's log end
// offset to the leader (which may advance the high watermark), or where
// its log diverges. Either gets at most PartitionMaxBytes per partition and
// MaxBytes in all (but at least one batch, KIP-74), waiting up to
// MaxWaitMillis for MinBytes to become available: a consumer until the
// high watermark moves, a follower until new records are appended. Only
// the leader serves fetches; others answer NOT_LEADER_OR_FOLLOWER with the
// current leader. It runs on the connection's writer, so waiting delays no
// other connection and no read on this one.
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
	replica := req.ReplicaID >= 0
	targets := s.fetchTargets(req, replica)

	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	if replica {
		return s.replicaFetchLoop(ctx, req, targets, deadline, timer)
	}

	// Watch before the first read so that a high watermark move between
	// the read and the wait still wakes us.
	wake := make(chan struct{}, 1)
	for _, t := range targets {
		if t.part != nil {
			defer t.part.Watch(wake)()
		}
	}
	for {
		resp, nbytes, stop := s.fetchOnce(req, targets, false)
		if stop || int64(nbytes) >= int64(req.MinBytes) || !time.Now().Before(deadline) {
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

// replicaFetchLoop long-polls a follower's fetch on the logs themselves
// (storage Notify): it returns as soon as any requested log grows, so that
// replication, and with it acks=all, waits on no timer.
func (s *Server) replicaFetchLoop(ctx context.Context, req *kmsg.FetchRequest, targets []fetchTarget, deadline time.Time, timer *time.Timer) kmsg.Response {
	cases := make([]reflect.SelectCase, 0, len(targets)+2)
	for {
		// Take the channels before reading, or an append in between is
		// missed.
		cases = cases[:0]
		for _, t := range targets {
			if t.part != nil && t.err == nil {
				cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(t.part.Log().Notify())})
			}
		}
		resp, nbytes, stop := s.fetchOnce(req, targets, true)
		if stop || int64(nbytes) >= int64(req.MinBytes) || !time.Now().Before(deadline) {
			return resp
		}
		cases = append(cases,
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
		// A log grew, or the timer fired (the next round answers with what
		// there is then), or the connection ended.
		if chosen, _, _ := reflect.Select(cases); chosen == len(cases)-1 {
			return resp
		}
	}
}

// fetchTargets resolves the requested partitions. For a follower's fetch
// it also records the follower's progress at the leader, once per request
// (see partition.ReplicaFetch).
func (s *Server) fetchTargets(req *kmsg.FetchRequest, replica bool) []fetchTarget {
	var out []fetchTarget
	now := time.Now()
	for _, t := range req.Topics {
		for _, rp := range t.Partitions {
			var ft fetchTarget
			if replica {
				ft.part, _, ft.err = s.leaderOf(t.Topic, rp.Partition)
			} else {
				ft.part, _, ft.err = s.clientLeaderOf(t.Topic, rp.Partition)
			}
			if ft.err == nil && replica {
				lastFetched := int32(-1)
				if req.Version >= 12 {
					lastFetched = rp.LastFetchedEpoch
				}
				ft.diverging, ft.err = ft.part.ReplicaFetch(req.ReplicaID, rp.FetchOffset, lastFetched, rp.CurrentLeaderEpoch, now)
			}
			out = append(out, ft)
		}
	}
	return out
}

// fetchOnce builds the response from what is readable now. It returns the
// record bytes included and whether to answer at once (a partition
// errored, which makes Kafka answer without waiting, or diverged).
func (s *Server) fetchOnce(req *kmsg.FetchRequest, targets []fetchTarget, replica bool) (*kmsg.FetchResponse, int, bool) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	budget := int64(req.MaxBytes)
	if req.Version < 3 || budget <= 0 || budget > maxFetchResponseBytes {
		budget = maxFetchResponseBytes
	}
	var nbytes int
	var stop bool
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = t.Topic
		for _, rp := range t.Partitions {
			target := &targets[i]
			i++
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			// librdkafka takes a null record set (length -1) for a broken
			// MessageSet, so an empty answer is an empty, present one.
			sp.RecordBatches = []byte{}
			if err := s.fetchPartition(target, req, rp, &sp, budget, nbytes > 0, replica); err != nil {
				stop = true
				sp.ErrorCode = errorCode(err)
				switch sp.ErrorCode {
				case kerr.UnknownServerError.Code:
					s.log.Error("fetch failed", "topic", t.Topic, "partition", rp.Partition, "err", err)
				case kerr.NotLeaderForPartition.Code, kerr.FencedLeaderEpoch.Code:
					// The newest metadata: the leader may have changed
					// during a long poll.
					st, ok := s.ctrl.Snapshot().Partition(t.Topic, rp.Partition)
					if ok && st.Leader != metadata.NoLeader && st.Leader != s.cfg.NodeID {
						sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = st.Leader, st.LeaderEpoch
					}
				}
			}
			if sp.DivergingEpoch.EndOffset >= 0 {
				stop = true
			}
			budget -= int64(len(sp.RecordBatches))
			nbytes += len(sp.RecordBatches)
			rt.Partitions = append(rt.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nbytes, stop
}

// setDiverging fills a response's diverging epoch. A leader with no epoch
// at or below the fetcher's last one answers its log start offset: all of
// the fetcher's records differ from the leader's (an end offset of -1
// would read as "no divergence").
func setDiverging(sp *kmsg.FetchResponseTopicPartition, d partition.EpochEnd, logStart int64) {
	sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = d.Epoch, d.EndOffset
	if d.Epoch < 0 || d.EndOffset < 0 {
		sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = -1, logStart
	}
}

func (s *Server) fetchPartition(t *fetchTarget, req *kmsg.FetchRequest, rp kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition, budget int64, haveData, replica bool) error {
	if t.err != nil {
		return t.err
	}
	part := t.part
	if !part.IsLeader() {
		// Deposed during the long poll: send the client on its way.
		return fmt.Errorf("%w: %s-%d: this node stopped leading", kerr.NotLeaderForPartition, part.Topic(), part.Index())
	}
	log := part.Log()
	hw := part.HighWatermark()
	sp.HighWatermark = hw
	sp.LastStableOffset = hw // no transactions: everything committed is stable
	sp.LogStartOffset = log.StartOffset()
	if t.diverging != nil {
		setDiverging(sp, *t.diverging, sp.LogStartOffset)
		return nil
	}
	limit := hw
	if replica {
		limit = log.EndOffset()
	} else {
		if err := part.CheckLeaderEpoch(rp.CurrentLeaderEpoch); err != nil {
			return err
		}
		// KIP-320/595: a fetcher that names the epoch of its last fetched
		// batch learns where its log diverged from ours.
		if req.Version >= 12 && rp.LastFetchedEpoch >= 0 {
			epoch, end := part.EndOffsetForEpoch(rp.LastFetchedEpoch)
			if epoch < rp.LastFetchedEpoch || end < rp.FetchOffset {
				setDiverging(sp, partition.EpochEnd{Epoch: epoch, EndOffset: end}, sp.LogStartOffset)
				return nil
			}
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
	b, err := log.Read(rp.FetchOffset, int(maxBytes), limit)
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

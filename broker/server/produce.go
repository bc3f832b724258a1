package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/partition"
)

// commitWait is one acks=all partition write waiting for the high
// watermark to pass it.
type commitWait struct {
	ti, pi int // indexes of its response partition
	part   *partition.Partition
	end    int64 // last offset + 1: the high watermark that commits it
	epoch  int32 // the leader epoch it was appended under
}

// handleProduce appends every partition's batch now (so later requests on
// this connection come after it) and sets p up to answer per acks: acks=0
// never answers, acks=1 answers once the leader's log has the batch,
// acks=-1 answers once the high watermark has passed it (every in-sync
// replica has it), with NOT_ENOUGH_REPLICAS when the ISR was below
// min.insync.replicas before the append, NOT_ENOUGH_REPLICAS_AFTER_APPEND
// when it shrank below it before the commit, and REQUEST_TIMED_OUT when
// the commit did not come in time. A partition this node does not lead
// gets NOT_LEADER_OR_FOLLOWER with the current leader (v10+), so clients
// move on without a metadata round trip.
func (s *Server) handleProduce(p *pending, req *kmsg.ProduceRequest) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	var (
		waits   []commitWait
		failed  bool
		leaders = map[int32]bool{} // brokers named in leader hints
	)
	for ti, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for _, rp := range t.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			res, part, st, err := s.produceOne(req, t.Topic, rp)
			if err != nil {
				failed = true
				sp.ErrorCode = errorCode(err)
				if req.Version >= 8 {
					msg := err.Error()
					sp.ErrorMessage = &msg
				}
				// A hint naming this node (whose metadata is behind) would send the
				// client straight back; then it refreshes its metadata instead.
				if sp.ErrorCode == kerr.NotLeaderForPartition.Code && req.Version >= 10 && st.Leader != metadata.NoLeader && st.Leader != s.cfg.NodeID {
					sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = st.Leader, st.LeaderEpoch
					leaders[st.Leader] = true
				}
				switch sp.ErrorCode {
				case kerr.UnknownTopicOrPartition.Code, kerr.NotLeaderForPartition.Code:
					s.log.Debug("produce refused", "topic", t.Topic, "partition", rp.Partition, "err", err)
				default:
					s.log.Info("produce refused", "topic", t.Topic, "partition", rp.Partition, "err", err)
				}
			} else {
				sp.BaseOffset = res.BaseOffset
				sp.LogAppendTime = -1
				sp.LogStartOffset = part.Log().StartOffset()
				if req.Acks == -1 && !s.cfg.EarlyAckBug {
					waits = append(waits, commitWait{ti: ti, pi: len(rt.Partitions), part: part, end: res.LastOffset + 1, epoch: res.LeaderEpoch})
				}
			}
			rt.Partitions = append(rt.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(leaders) > 0 {
		snap := s.ctrl.Snapshot()
		for id := range leaders {
			if b, ok := snap.Brokers[id]; ok {
				rb := kmsg.NewProduceResponseBroker()
				rb.NodeID, rb.Host, rb.Port = b.ID, b.Host, b.Port
				resp.Brokers = append(resp.Brokers, rb)
			}
		}
	}

	if req.Acks == 0 {
		p.noResponse = true
		// The client reads no response, so the only way to tell it that
		// something failed (and make it refresh metadata) is to close the
		// connection, as Kafka does.
		p.closeAfter = failed
		return
	}
	if len(waits) == 0 {
		p.resp = resp
		return
	}
	timeout := min(time.Duration(max(req.TimeoutMillis, 0))*time.Millisecond, s.cfg.RequestTimeout)
	deadline := p.received.Add(timeout)
	p.wait = func(ctx context.Context) kmsg.Response {
		ctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		for _, w := range waits {
			err := w.part.WaitCommitted(ctx, w.end, w.epoch)
			if err == nil {
				continue
			}
			// The write is in the leader's log but not known to be
			// committed as asked: the client must treat it as
			// indeterminate.
			sp := &resp.Topics[w.ti].Partitions[w.pi]
			switch {
			case errors.Is(err, context.Canceled):
				sp.ErrorCode = kerr.NotLeaderForPartition.Code // shutting down
			case errors.Is(err, context.DeadlineExceeded):
				sp.ErrorCode = kerr.RequestTimedOut.Code
			default:
				sp.ErrorCode = errorCode(err)
			}
			if req.Version >= 8 {
				msg := err.Error()
				sp.ErrorMessage = &msg
			}
			s.log.Info("acks=all produce not committed", "topic", resp.Topics[w.ti].Topic, "partition", sp.Partition, "offset", sp.BaseOffset, "err", err)
		}
		return resp
	}
}

func (s *Server) produceOne(req *kmsg.ProduceRequest, topic string, rp kmsg.ProduceRequestTopicPartition) (partition.AppendResult, *partition.Partition, metadata.Partition, error) {
	if req.TransactionID != nil {
		return partition.AppendResult{}, nil, metadata.Partition{}, kerr.TransactionalIDAuthorizationFailed
	}
	switch req.Acks {
	case -1, 0, 1:
	default:
		return partition.AppendResult{}, nil, metadata.Partition{}, kerr.InvalidRequiredAcks
	}
	if s.isInternal(topic) {
		return partition.AppendResult{}, nil, metadata.Partition{}, fmt.Errorf("%w: %q is the broker's internal offsets topic; only the group coordinator writes it", kerr.InvalidTopicException, topic)
	}
	part, st, err := s.clientLeaderOf(topic, rp.Partition)
	if err != nil {
		return partition.AppendResult{}, nil, st, err
	}
	res, err := part.AppendAsLeader(rp.Records, req.Acks)
	if errors.Is(err, kerr.NotLeaderForPartition) {
		// Deposed between the look-up and the append: hint the leader the
		// newest metadata names.
		st, _ = s.ctrl.Snapshot().Partition(topic, rp.Partition)
	}
	return res, part, st, err
}

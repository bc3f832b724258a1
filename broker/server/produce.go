package server

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/partition"
)

// commitWait is one acks=all partition write waiting for the high
// watermark to pass it.
type commitWait struct {
	ti, pi int // indexes of its response partition
	part   *partition.Partition
	end    int64 // last offset + 1: the high watermark that commits it
}

// handleProduce appends every partition's batch now (so later requests on
// this connection come after it) and sets p up to answer per acks: acks=0
// never answers, acks=1 answers once the leader's log has the batch,
// acks=-1 answers once the high watermark has passed it.
func (s *Server) handleProduce(p *pending, req *kmsg.ProduceRequest) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	var (
		waits  []commitWait
		failed bool
	)
	for ti, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for _, rp := range t.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			res, part, err := s.produceOne(req, t.Topic, rp)
			if err != nil {
				failed = true
				sp.ErrorCode = errorCode(err)
				if req.Version >= 8 {
					msg := err.Error()
					sp.ErrorMessage = &msg
				}
				if sp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
					s.log.Info("produce refused", "topic", t.Topic, "partition", rp.Partition, "err", err)
				}
			} else {
				sp.BaseOffset = res.BaseOffset
				sp.LogAppendTime = -1
				sp.LogStartOffset = part.Log().StartOffset()
				if req.Acks == -1 {
					waits = append(waits, commitWait{ti: ti, pi: len(rt.Partitions), part: part, end: res.LastOffset + 1})
				}
			}
			rt.Partitions = append(rt.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, rt)
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
	timeout := time.Duration(max(req.TimeoutMillis, 0)) * time.Millisecond
	deadline := p.received.Add(timeout)
	p.wait = func(ctx context.Context) kmsg.Response {
		ctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		for _, w := range waits {
			if err := w.part.WaitForHighWatermark(ctx, w.end); err != nil {
				// The write is in the leader's log but not known to be
				// committed: the client must treat it as indeterminate.
				sp := &resp.Topics[w.ti].Partitions[w.pi]
				sp.ErrorCode = kerr.RequestTimedOut.Code
				if errors.Is(err, context.Canceled) {
					sp.ErrorCode = kerr.NotLeaderForPartition.Code // shutting down
				}
			}
		}
		return resp
	}
}

func (s *Server) produceOne(req *kmsg.ProduceRequest, topic string, rp kmsg.ProduceRequestTopicPartition) (partition.AppendResult, *partition.Partition, error) {
	if req.TransactionID != nil {
		return partition.AppendResult{}, nil, kerr.TransactionalIDAuthorizationFailed
	}
	switch req.Acks {
	case -1, 0, 1:
	default:
		return partition.AppendResult{}, nil, kerr.InvalidRequiredAcks
	}
	part := s.partitionOf(topic, rp.Partition)
	if part == nil {
		return partition.AppendResult{}, nil, kerr.UnknownTopicOrPartition
	}
	res, err := part.AppendAsLeader(rp.Records)
	return res, part, err
}

package nemesis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/db"
)

// LeaderSource says which broker leads a partition of the test's topic,
// for the "leader" targets.
type LeaderSource interface {
	// Leader returns the partition that pick selects among the topic's
	// partitions (pick modulo their count) and the broker id that leads
	// it now.
	Leader(ctx context.Context, pick uint64) (partition int32, leader int32, err error)
}

// ErrNoLeader: no node named a leader for the partition.
var ErrNoLeader = errors.New("nemesis: no leader known")

// leaderQueryTimeout bounds one node's Metadata answer: a paused or
// partitioned node must not stall the fault.
const leaderQueryTimeout = time.Second

// MetadataLeaders asks the cluster itself, with a Kafka Metadata request
// (v9, which carries leader epochs) to every node at once. Nodes may
// disagree (an isolated old leader still thinks it leads); the answer
// with the highest leader epoch wins, ties going to the lowest broker id,
// so that the pick is the leader the controller elected last.
type MetadataLeaders struct {
	// Nodes lists the nodes to ask (db.DB.Nodes).
	Nodes func() []db.Node
	// Topic is the test's topic.
	Topic string
}

// Leader implements LeaderSource.
func (m MetadataLeaders) Leader(ctx context.Context, pick uint64) (int32, int32, error) {
	nodes := m.Nodes()
	type view struct {
		node, addr string
		parts      map[int32][2]int32 // partition -> leader, epoch
		err        error
	}
	views := make([]*view, len(nodes))
	for i, n := range nodes {
		views[i] = &view{node: n.Name, addr: n.Addr}
	}
	// Every node at once: a paused or partitioned one must not hold up
	// the others' answers.
	_ = db.ForEach(views, func(v *view) error {
		qctx, cancel := context.WithTimeout(ctx, leaderQueryTimeout)
		defer cancel()
		v.parts, v.err = m.ask(qctx, v.addr)
		return nil
	})

	count := 0
	var errs []error
	for _, v := range views {
		if v.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.node, v.err))
			continue
		}
		if len(v.parts) > count {
			count = len(v.parts)
		}
	}
	if count == 0 {
		return 0, 0, fmt.Errorf("%w: no node described topic %s: %w", ErrNoLeader, m.Topic, errors.Join(errs...))
	}
	partition := int32(pick % uint64(count))
	leader, epoch := int32(-1), int32(-1)
	for _, v := range views {
		le, ok := v.parts[partition]
		if !ok || le[0] < 0 {
			continue
		}
		if le[1] > epoch || (le[1] == epoch && le[0] < leader) {
			leader, epoch = le[0], le[1]
		}
	}
	if leader < 0 {
		return partition, 0, fmt.Errorf("%w for partition %d of %s", ErrNoLeader, partition, m.Topic)
	}
	return partition, leader, nil
}

// ask returns one node's view of the topic's partitions.
func (m MetadataLeaders) ask(ctx context.Context, addr string) (map[int32][2]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 9
	req.AllowAutoTopicCreation = false // a question must not create the topic
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(m.Topic)
	req.Topics = append(req.Topics, t)
	resp, err := db.RoundTrip(ctx, addr, req)
	if err != nil {
		return nil, err
	}
	mr := resp.(*kmsg.MetadataResponse)
	for _, rt := range mr.Topics {
		if rt.Topic == nil || *rt.Topic != m.Topic {
			continue
		}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			return nil, err
		}
		parts := make(map[int32][2]int32, len(rt.Partitions))
		for _, p := range rt.Partitions {
			leader := p.Leader
			if kerr.ErrorForCode(p.ErrorCode) != nil {
				leader = -1
			}
			parts[p.Partition] = [2]int32{leader, p.LeaderEpoch}
		}
		return parts, nil
	}
	return nil, fmt.Errorf("topic %s not in the metadata", m.Topic)
}

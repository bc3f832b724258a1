package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/partition"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
)

// loadReadBytes is the chunk size of reading the offsets log.
const loadReadBytes = 1 << 20

// shardState is where a shard is in its life.
type shardState int8

const (
	// loading: waiting for the high watermark to cover everything the
	// previous leaders wrote, then reading the log.
	loading shardState = iota
	// active: serving its groups.
	active
	// unloaded: this node stopped leading the partition (or shut down).
	unloaded
)

// shard is one partition of the offsets topic that this node leads, at
// one leader epoch, and the groups it holds. Its state is the committed
// part of the partition's log, read back: offsets are applied to the
// groups only once the high watermark passes their record (so a fetch
// never returns an offset that a failover could take back), and a new
// leader loads everything below the high watermark before it serves.
// The membership of live groups is kept in memory; what a failover must
// not lose of it (generation, leader, members and assignments) is written
// as group metadata records and read back by the next leader.
type shard struct {
	c     *Coordinator
	log   *slog.Logger
	index int32
	part  *partition.Partition
	epoch int32

	mu        sync.Mutex
	state     shardState
	groups    map[string]*group
	appliedTo int64 // the next offset of the log to apply
	done      chan struct{}
}

func newShard(c *Coordinator, index int32, part *partition.Partition, epoch int32) *shard {
	return &shard{
		c:      c,
		log:    c.log.With("offsets_partition", index, "leader_epoch", epoch),
		index:  index,
		part:   part,
		epoch:  epoch,
		groups: map[string]*group{},
		done:   make(chan struct{}),
	}
}

// stillLeads reports whether this node still leads the partition at the
// shard's epoch.
func (s *shard) stillLeads() bool {
	return s.part.IsLeader() && s.part.LeaderEpoch() == s.epoch && !s.part.State().Fenced
}

func (s *shard) isActive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == active
}

// run loads the shard and then keeps applying what commits, until it is
// unloaded.
func (s *shard) run() {
	wake := make(chan struct{}, 1)
	defer s.part.Watch(wake)()
	start := time.Now()
	// A new leader learns the high watermark from its followers; records
	// the previous leaders committed may lie above it until then.
	for {
		if _, ok := s.part.EstablishedHighWatermark(); ok {
			break
		}
		select {
		case <-wake:
		case <-s.done:
			return
		case <-time.After(s.c.cfg.pollInterval):
		}
		if !s.stillLeads() {
			return // the coordinator unloads it
		}
	}
	s.mu.Lock()
	if s.state != loading {
		s.mu.Unlock()
		return
	}
	s.appliedTo = s.part.Log().StartOffset()
	err := s.catchUpLocked(true)
	if err != nil {
		s.mu.Unlock()
		s.log.Error("loading the offsets partition failed; it stays unserved", "err", err)
		return
	}
	s.state = active
	now := time.Now()
	offsets := 0
	for _, g := range s.groups {
		g.activate(now)
		offsets += len(g.offsets)
	}
	groups, applied := len(s.groups), s.appliedTo
	s.mu.Unlock()
	s.log.Info("group coordinator loaded an offsets partition", "groups", groups, "offsets", offsets,
		"log_end", applied, "took", time.Since(start).Round(time.Millisecond))

	for {
		select {
		case <-wake:
		case <-s.done:
			return
		}
		s.mu.Lock()
		if s.state == active {
			if err := s.catchUpLocked(false); err != nil {
				s.log.Error("applying the offsets partition", "err", err)
			}
		}
		s.mu.Unlock()
	}
}

// catchUpLocked applies the log from appliedTo to the high watermark. On
// load it applies group metadata too; afterwards only offsets (the groups'
// membership in memory is newer than any record of it).
func (s *shard) catchUpLocked(load bool) error {
	return s.applyLocked(s.part.HighWatermark(), load)
}

// applyToLocked applies offsets up to end, committed or not: only the
// offsets-early-ack bug does.
func (s *shard) applyToLocked(end int64) error {
	return s.applyLocked(end, false)
}

// applyLocked applies the log from appliedTo up to hw.
func (s *shard) applyLocked(hw int64, load bool) error {
	log := s.part.Log()
	if s.appliedTo < log.StartOffset() {
		s.appliedTo = log.StartOffset()
	}
	for s.appliedTo < hw {
		b, err := log.Read(s.appliedTo, loadReadBytes, hw)
		if errors.Is(err, storage.ErrOffsetOutOfRange) {
			// Truncated under us: the leadership moved on.
			return fmt.Errorf("offsets partition %d: reading at %d: %w", s.index, s.appliedTo, err)
		}
		if err != nil {
			return fmt.Errorf("offsets partition %d: reading at %d: %w", s.index, s.appliedTo, err)
		}
		if len(b) == 0 {
			break
		}
		next := s.appliedTo
		err = wire.Batches(b, func(h wire.BatchHeader, batch []byte) bool {
			if h.LastOffset() < s.appliedTo {
				next = h.LastOffset() + 1
				return true
			}
			err := decodeBatch(batch, func(offset int64, r record) error {
				if offset >= s.appliedTo {
					s.apply(r, load)
				}
				return nil
			})
			if err != nil {
				s.log.Warn("skipping an undecodable batch of the offsets topic", "offset", h.BaseOffset, "err", err)
			}
			next = h.LastOffset() + 1
			return true
		})
		if err != nil {
			return fmt.Errorf("offsets partition %d at %d: %w", s.index, s.appliedTo, err)
		}
		if next <= s.appliedTo {
			break
		}
		s.appliedTo = next
	}
	return nil
}

// apply applies one committed record.
func (s *shard) apply(r record, load bool) {
	switch {
	case r.offset != nil:
		g := s.groups[r.offset.Group]
		k := topicPartition{r.offset.Topic, r.offset.Partition}
		if r.offsetValue == nil {
			if g != nil {
				delete(g.offsets, k)
			}
			return
		}
		if g == nil {
			g = s.newGroup(r.offset.Group)
		}
		v := r.offsetValue
		g.offsets[k] = committed{Offset: v.Offset, LeaderEpoch: v.LeaderEpoch, Metadata: v.Metadata, CommitTime: time.UnixMilli(v.CommitTimestamp)}
	case r.group != nil && load:
		if r.groupValue == nil {
			delete(s.groups, r.group.Group)
			return
		}
		g := s.groups[r.group.Group]
		if g == nil {
			g = s.newGroup(r.group.Group)
		}
		g.restore(r.groupValue)
	}
}

// unload stops serving: parked joins and syncs are answered
// NOT_COORDINATOR, every timer stops, the groups are dropped (the next
// leader loads them from the log).
func (s *shard) unload(why string) {
	s.mu.Lock()
	if s.state == unloaded {
		s.mu.Unlock()
		return
	}
	wasActive := s.state == active
	s.state = unloaded
	close(s.done)
	for _, g := range s.groups {
		g.shutdown()
	}
	n := len(s.groups)
	s.groups = nil
	s.mu.Unlock()
	if wasActive {
		s.log.Info("group coordinator unloaded an offsets partition", "groups", n, "reason", why)
	}
}

// append writes records to the partition as its leader (acks=all), in the
// order of the calls (s.mu is held), and returns a wait for their commit.
// A write refused before it was appended returns the error to answer at
// once; the wait returns nil once the high watermark passes the records
// and this shard has applied them, else the error the client should see
// (the records may still commit later: the outcome is unknown).
func (s *shard) appendLocked(records []wire.Record) (func(ctx context.Context) *kerr.Error, *kerr.Error) {
	if s.state != active || !s.stillLeads() {
		return nil, kerr.NotCoordinator
	}
	res, err := s.part.AppendAsLeader(encodeBatch(records, time.Now()), -1)
	if err != nil {
		s.log.Info("writing to the offsets topic refused", "err", err)
		return nil, writeError(err)
	}
	if res.LeaderEpoch != s.epoch {
		return nil, kerr.NotCoordinator
	}
	end := res.LastOffset + 1
	if s.c.cfg.OffsetsEarlyAckBug {
		// The bug: this leader's own log is taken for the committed one.
		// What it applied up to the log end is served, and a failover to a
		// replica that had not fetched it yet takes it back.
		if err := s.applyToLocked(end); err != nil {
			s.log.Error("applying the offsets partition", "err", err)
		}
		return func(context.Context) *kerr.Error { return nil }, nil
	}
	return func(ctx context.Context) *kerr.Error {
		ctx, cancel := context.WithTimeout(ctx, s.c.cfg.CommitTimeout)
		defer cancel()
		if err := s.part.WaitCommitted(ctx, end, s.epoch); err != nil {
			s.log.Info("a write to the offsets topic did not commit", "end_offset", end, "err", err)
			return writeError(err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.state != active {
			return kerr.NotCoordinator
		}
		if err := s.catchUpLocked(false); err != nil {
			s.log.Error("applying the offsets partition", "err", err)
		}
		if s.appliedTo < end {
			return kerr.CoordinatorNotAvailable
		}
		return nil
	}, nil
}

// writeError maps a failed write to the offsets topic to what the group
// API answers, as Kafka's GroupMetadataManager does: retry elsewhere when
// this node stopped leading, retry here when the ISR or the clock was
// short.
func writeError(err error) *kerr.Error {
	var ke *kerr.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return kerr.CoordinatorNotAvailable
	case !errors.As(err, &ke):
		return kerr.CoordinatorNotAvailable
	}
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut:
		return kerr.CoordinatorNotAvailable
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return kerr.NotCoordinator
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize, kerr.CorruptMessage:
		return kerr.InvalidCommitOffsetSize
	}
	return kerr.CoordinatorNotAvailable
}

// groupMetadata is what a group's metadata record says: generation,
// protocol, leader and every member with its assignment.
func (g *group) metadataValue() *kmsg.GroupMetadataValue {
	v := &kmsg.GroupMetadataValue{
		ProtocolType:          g.protocolType,
		Generation:            g.generation,
		CurrentStateTimestamp: g.stateSince.UnixMilli(),
	}
	if g.protocol != "" {
		p := g.protocol
		v.Protocol = &p
	}
	if g.leader != "" {
		l := g.leader
		v.Leader = &l
	}
	for _, id := range g.order {
		m := g.members[id]
		v.Members = append(v.Members, kmsg.GroupMetadataValueMember{
			MemberID:               m.id,
			InstanceID:             m.instanceID,
			ClientID:               m.clientID,
			ClientHost:             m.clientHost,
			RebalanceTimeoutMillis: int32(m.rebalanceTimeout.Milliseconds()),
			SessionTimeoutMillis:   int32(m.sessionTimeout.Milliseconds()),
			Subscription:           m.metadataFor(g.protocol),
			Assignment:             m.assignment,
		})
	}
	return v
}

package partition

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/broker/metadata"
)

// WaitCommitted blocks until the high watermark reaches end (the write
// ending there, appended at leaderEpoch, is on every in-sync replica) and
// returns nil, or one of:
//   - NOT_ENOUGH_REPLICAS_AFTER_APPEND: the high watermark passed the write
//     but the ISR had meanwhile shrunk below min.insync.replicas, so it is
//     on fewer replicas than the producer asked for (Kafka's rule);
//   - NOT_LEADER_OR_FOLLOWER: this node stopped leading at leaderEpoch
//     before the write was committed (deposed, or told by the controller
//     that its epoch is over); whether the write survives is unknown;
//   - ctx's error when it ends first (the caller answers
//     REQUEST_TIMED_OUT).
func (p *Partition) WaitCommitted(ctx context.Context, end int64, leaderEpoch int32) error {
	ch := make(chan struct{}, 1)
	defer p.Watch(ch)()
	for {
		if done, err := p.commitState(end, leaderEpoch); done {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s-%d: waiting for the high watermark to reach %d: %w", p.topic, p.index, end, ctx.Err())
		}
	}
}

func (p *Partition) commitState(end int64, leaderEpoch int32) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The high watermark first: a write it has passed is on every in-sync
	// replica, whatever happened to this node's role since.
	if p.hw >= end && p.leaderEpoch == leaderEpoch {
		if int32(len(p.isr)) < p.minISR {
			return true, fmt.Errorf("%w: %s-%d: committed at offset %d with %d in-sync replicas, min.insync.replicas is %d",
				kerr.NotEnoughReplicasAfterAppend, p.topic, p.index, end-1, len(p.isr), p.minISR)
		}
		return true, nil
	}
	switch {
	case p.role != Leader || p.leaderEpoch != leaderEpoch:
		return true, p.notLeader(fmt.Sprintf("leadership at epoch %d ended before offset %d was committed", leaderEpoch, end-1))
	case p.fenced && !p.staleLeaderBug:
		return true, p.notLeader(fmt.Sprintf("the controller said leader epoch %d is over before offset %d was committed", leaderEpoch, end-1))
	}
	return false, nil
}

// EpochEnd is a leader's answer to "where did my epoch end?": the largest
// epoch at most the asked one and the offset where it ended (-1, -1 when
// the leader has no such epoch).
type EpochEnd struct {
	Epoch     int32
	EndOffset int64
}

// ReplicaFetch is the leader's side of a follower's fetch: it checks that
// this node leads at the follower's idea of the epoch, checks the
// follower's log against this one (KIP-320: lastFetchedEpoch is the epoch
// of the follower's last batch, fetchOffset its log end offset) and, when
// they diverge, returns where the follower's epoch ended here instead of
// recording anything. Otherwise it records fetchOffset as the follower's
// log end offset, updates when it was last caught up (Kafka's
// lastCaughtUpTime: now if it asked for everything this leader had; else
// the time of its previous fetch if it has everything this leader had
// then), and advances the high watermark.
func (p *Partition) ReplicaFetch(replica int32, fetchOffset int64, lastFetchedEpoch, currentLeaderEpoch int32, now time.Time) (*EpochEnd, error) {
	p.mu.Lock()
	role, known := p.role, p.followers[replica] != nil
	p.mu.Unlock()
	if role != Leader {
		return nil, p.notLeader("this node is " + role.String())
	}
	if err := p.CheckLeaderEpoch(currentLeaderEpoch); err != nil {
		return nil, err
	}
	if !known {
		return nil, fmt.Errorf("%w: %s-%d: broker %d is not a replica", kerr.NotLeaderForPartition, p.topic, p.index, replica)
	}
	if lastFetchedEpoch >= 0 {
		epoch, end := p.EndOffsetForEpoch(lastFetchedEpoch)
		if epoch < lastFetchedEpoch || end < fetchOffset {
			return &EpochEnd{Epoch: epoch, EndOffset: end}, nil
		}
	}
	leo := p.log.EndOffset()
	if fetchOffset < p.log.StartOffset() || fetchOffset > leo {
		return nil, fmt.Errorf("%w: %s-%d: follower %d fetch offset %d outside [%d, %d]", kerr.OffsetOutOfRange, p.topic, p.index, replica, fetchOffset, p.log.StartOffset(), leo)
	}

	p.mu.Lock()
	f := p.followers[replica]
	if p.role != Leader || f == nil {
		p.mu.Unlock()
		return nil, p.notLeader("the role changed during the fetch")
	}
	switch {
	case fetchOffset >= leo:
		f.lastCaughtUp = now
	case fetchOffset >= f.lastFetchLeaderLEO && f.lastFetchLeaderLEO >= 0:
		f.lastCaughtUp = maxTime(f.lastCaughtUp, f.lastFetch)
	}
	f.leo, f.lastFetch, f.lastFetchLeaderLEO = fetchOffset, now, leo
	candidate := !slices.Contains(p.maximalISRLocked(), replica) && fetchOffset >= p.hw && fetchOffset >= p.epochStart
	p.mu.Unlock()
	p.maybeAdvanceHW()
	if candidate && p.isrHint != nil {
		p.isrHint()
	}
	return nil, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// ISRChange is an ISR change a leader proposes to the controller.
type ISRChange struct {
	Topic string
	Index int32
	// LeaderEpoch and PartitionEpoch are the state the change is based on
	// (the controller refuses it if either moved on).
	LeaderEpoch, PartitionEpoch int32
	ISR                         []int32
	// Shrink and Expand list the replicas leaving and joining.
	Shrink, Expand []int32
}

// ProposeISR works out whether the ISR should change: a follower in it
// whose last caught-up time is older than lagMax leaves it, and a follower
// outside it that has everything up to the high watermark (and everything
// this leader epoch wrote, so that it cannot hold a divergent tail) joins
// it, if mayJoin allows (the controller refuses fenced brokers). It
// returns false when nothing changes, this node does not lead, or a change
// is already in flight; otherwise the change is now in flight (the high
// watermark counts the maximal ISR) until CompleteISRChange.
func (p *Partition) ProposeISR(now time.Time, lagMax time.Duration, mayJoin func(int32) bool) (ISRChange, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != Leader || p.pendingISR != nil || (p.fenced && !p.staleLeaderBug) {
		return ISRChange{}, false
	}
	c := ISRChange{Topic: p.topic, Index: p.index, LeaderEpoch: p.leaderEpoch, PartitionEpoch: p.partitionEpoch}
	for _, r := range p.replicas {
		in := slices.Contains(p.isr, r)
		if r == p.self {
			c.ISR = append(c.ISR, r)
			continue
		}
		f := p.followers[r]
		switch {
		case f == nil:
			if in {
				c.ISR = append(c.ISR, r)
			}
		case in && now.Sub(f.lastCaughtUp) > lagMax:
			c.Shrink = append(c.Shrink, r)
		case in:
			c.ISR = append(c.ISR, r)
		case f.leo >= 0 && f.leo >= p.hw && f.leo >= p.epochStart && (mayJoin == nil || mayJoin(r)):
			c.ISR = append(c.ISR, r)
			c.Expand = append(c.Expand, r)
		}
	}
	if len(c.Shrink) == 0 && len(c.Expand) == 0 {
		return ISRChange{}, false
	}
	p.pendingISR = slices.Clone(c.ISR)
	return c, true
}

// CompleteISRChange applies the controller's answer to a change from
// ProposeISR: on success the committed state (the new ISR and partition
// epoch); ErrFencedLeaderEpoch means this leader was deposed, so it stops
// taking writes until the metadata gives it a new role; any other error
// leaves the committed ISR as it was, to be proposed again at the next
// check. Under --bug stale-leader a change the controller did not commit
// (fenced, unreachable, timed out) is applied locally anyway.
func (p *Partition) CompleteISRChange(c ISRChange, committed metadata.Partition, err error) {
	p.mu.Lock()
	if c.LeaderEpoch != p.leaderEpoch || p.role != Leader {
		p.mu.Unlock()
		return // an answer for a reign that is over
	}
	p.pendingISR = nil
	switch {
	case err == nil:
		if committed.LeaderEpoch == p.leaderEpoch && committed.PartitionEpoch >= p.partitionEpoch {
			p.isr, p.partitionEpoch = slices.Clone(committed.ISR), committed.PartitionEpoch
		}
	case p.staleLeaderBug && !errors.Is(err, metadata.ErrStalePartitionEpoch) && !errors.Is(err, metadata.ErrInvalidISR):
		p.isr = slices.Clone(c.ISR) // the bug: an uncommitted ISR counts
	case errors.Is(err, metadata.ErrFencedLeaderEpoch):
		p.fenced = true
	}
	p.signalLocked()
	p.mu.Unlock()
	p.maybeAdvanceHW()
}

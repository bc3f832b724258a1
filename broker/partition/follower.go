package partition

import (
	"fmt"

	"github.com/garantia/garantia/broker/wire"
)

// FollowerState is what a fetcher needs to fetch for a follower.
type FollowerState struct {
	// Leader and LeaderEpoch are whom and which epoch it follows.
	Leader, LeaderEpoch int32
	// Truncating: the log must be reconciled with the leader's
	// (OffsetForLeaderEpoch) before fetching.
	Truncating bool
}

// Following returns the follower state, or false when this node does not
// follow the partition.
func (p *Partition) Following() (FollowerState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != Follower {
		return FollowerState{}, false
	}
	return FollowerState{Leader: p.leader, LeaderEpoch: p.leaderEpoch, Truncating: p.truncating}, true
}

// followingLocked reports whether the partition still follows leader at
// epoch; callers hold mu.
func (p *Partition) followingLocked(leader, epoch int32) bool {
	return p.role == Follower && p.leader == leader && p.leaderEpoch == epoch
}

// AppendFetched appends what a fetch from leader at leaderEpoch returned
// for fetchOffset (batches the leader already gave offsets and epochs) and
// sets the follower's high watermark to the leader's, capped by its own
// log end offset. It returns ErrNotFollowing, and changes nothing, when the
// partition has since changed leader or epoch or its log no longer ends at
// fetchOffset (a truncation came in between). Batches arrive whole: a
// trailing partial batch is left for the next fetch.
func (p *Partition) AppendFetched(leader, leaderEpoch int32, fetchOffset int64, batches []byte, leaderHW int64) (int, error) {
	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	p.mu.Lock()
	ok := p.followingLocked(leader, leaderEpoch) && !p.truncating
	p.mu.Unlock()
	if !ok || p.log.EndOffset() != fetchOffset {
		return 0, fmt.Errorf("%s-%d: fetch at %d from %d at epoch %d: %w", p.topic, p.index, fetchOffset, leader, leaderEpoch, ErrNotFollowing)
	}
	whole := 0
	var maxPID int64 = -1
	var appended []wire.BatchHeader
	err := wire.Batches(batches, func(h wire.BatchHeader, b []byte) bool {
		whole += len(b)
		appended = append(appended, h)
		maxPID = max(maxPID, h.ProducerID)
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("%s-%d: fetched batches from %d: %w", p.topic, p.index, leader, err)
	}
	if err := p.log.AppendAsFollower(batches[:whole]); err != nil {
		return 0, fmt.Errorf("%s-%d: appending fetched batches at %d: %w", p.topic, p.index, fetchOffset, err)
	}
	// Producer state follows the log, so that this replica deduplicates
	// retries the moment it becomes leader.
	p.stateMu.Lock()
	for _, h := range appended {
		record(p.producers, h)
	}
	p.maxPID = max(p.maxPID, maxPID)
	p.stateMu.Unlock()
	p.mu.Lock()
	p.hw = min(max(leaderHW, 0), p.log.EndOffset())
	p.mu.Unlock()
	return len(appended), nil
}

// TruncateFollower drops this follower's records at offset and above (if
// it has any), because they diverge from leader's log at leaderEpoch, and
// lowers the high watermark with the log end if needed. done says the log
// is now reconciled with the leader's (Truncating ends). It returns
// ErrNotFollowing, changing nothing, when the partition has since changed
// leader or epoch.
func (p *Partition) TruncateFollower(leader, leaderEpoch int32, offset int64, done bool) error {
	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	p.mu.Lock()
	ok := p.followingLocked(leader, leaderEpoch)
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s-%d: truncation to %d for leader %d at epoch %d: %w", p.topic, p.index, offset, leader, leaderEpoch, ErrNotFollowing)
	}
	if offset < p.log.EndOffset() {
		if err := p.log.TruncateTo(max(offset, p.log.StartOffset())); err != nil {
			return fmt.Errorf("%s-%d: truncating to %d: %w", p.topic, p.index, offset, err)
		}
		// The dropped batches may have been some producer's latest.
		if err := p.rebuildProducers(); err != nil {
			return fmt.Errorf("%s-%d: rebuilding producer state after truncating to %d: %w", p.topic, p.index, offset, err)
		}
	}
	p.mu.Lock()
	p.hw = min(p.hw, p.log.EndOffset())
	if done {
		p.truncating = false
	}
	p.mu.Unlock()
	return nil
}

// MarkTruncating makes a follower of leader at leaderEpoch reconcile its
// log with the leader's again (OffsetForLeaderEpoch) before it fetches on,
// as when the leader said its fetch offset is out of range.
func (p *Partition) MarkTruncating(leader, leaderEpoch int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.followingLocked(leader, leaderEpoch) {
		p.truncating = true
	}
}

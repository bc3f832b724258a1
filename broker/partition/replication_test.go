package partition

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/storage"
)

// These tests drive one partition's leader and follower logic directly,
// with follower fetches simulated by ReplicaFetch calls; the multi-node
// behaviour over real sockets is tested in broker/e2e.

var t0 = time.Unix(1_000_000, 0)

// rf3 is the metadata of a 3-replica partition led by node 1.
func rf3(leaderEpoch, partitionEpoch int32, isr ...int32) metadata.Partition {
	if isr == nil {
		isr = []int32{1, 2, 3}
	}
	return metadata.Partition{Topic: "t", Replicas: []int32{1, 2, 3}, ISR: isr, Leader: 1, LeaderEpoch: leaderEpoch, PartitionEpoch: partitionEpoch}
}

func openRF3(t *testing.T, cfg Config, minISR int32) *Partition {
	t.Helper()
	cfg.Topic, cfg.Self = "t", 1
	if cfg.Log == nil {
		cfg.Log = storage.NewMemLog("t-0")
	}
	p, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !p.BecomeLeader(rf3(0, 0), minISR, t0) {
		t.Fatal("BecomeLeader reported no change on a stopped partition")
	}
	return p
}

func mustAppend(t *testing.T, p *Partition, acks int16, n int) AppendResult {
	t.Helper()
	res, err := p.AppendAsLeader(plain(n), acks)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func fetch(t *testing.T, p *Partition, replica int32, offset int64, at time.Time) {
	t.Helper()
	if d, err := p.ReplicaFetch(replica, offset, -1, p.LeaderEpoch(), at); err != nil || d != nil {
		t.Fatalf("fetch by %d at %d: diverging %v, err %v", replica, offset, d, err)
	}
}

func TestHighWatermarkIsMinimumOverISR(t *testing.T) {
	p := openRF3(t, Config{}, 2)
	mustAppend(t, p, -1, 5)
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d before any follower fetched, want 0", hw)
	}
	fetch(t, p, 2, 5, t0)
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d with follower 3 unheard of, want 0", hw)
	}
	fetch(t, p, 3, 3, t0)
	if hw := p.HighWatermark(); hw != 3 {
		t.Fatalf("high watermark %d with followers at 5 and 3, want 3", hw)
	}
	fetch(t, p, 3, 5, t0)
	if hw := p.HighWatermark(); hw != 5 {
		t.Fatalf("high watermark %d with every replica at 5, want 5", hw)
	}
	// The high watermark never goes back, even if a follower reports less
	// (it truncated, say).
	fetch(t, p, 2, 4, t0)
	if hw := p.HighWatermark(); hw != 5 {
		t.Fatalf("high watermark %d went back", hw)
	}
}

func TestShrinkCountsOnlyOnceCommitted(t *testing.T) {
	p := openRF3(t, Config{}, 1)
	mustAppend(t, p, -1, 4)
	fetch(t, p, 2, 4, t0)
	fetch(t, p, 3, 0, t0) // follower 3 stays behind
	lag := 10 * time.Second
	if _, ok := p.ProposeISR(t0.Add(lag/2), lag, nil); ok {
		t.Fatal("ISR change proposed before any follower lagged for the limit")
	}
	fetch(t, p, 2, 4, t0.Add(lag)) // follower 2 keeps up
	c, ok := p.ProposeISR(t0.Add(lag+time.Millisecond), lag, nil)
	if !ok || !slices.Equal(c.ISR, []int32{1, 2}) || !slices.Equal(c.Shrink, []int32{3}) {
		t.Fatalf("proposal %+v %v, want ISR [1 2] dropping 3", c, ok)
	}
	if _, ok := p.ProposeISR(t0.Add(2*lag), lag, nil); ok {
		t.Fatal("a second change proposed while one is in flight")
	}
	// In flight: the high watermark still waits for follower 3.
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d counted an uncommitted shrink", hw)
	}
	// Not committed (the controller was unreachable): nothing changes.
	p.CompleteISRChange(c, metadata.Partition{}, metadata.ErrNoController)
	if hw, isr := p.HighWatermark(), p.ISR(); hw != 0 || len(isr) != 3 {
		t.Fatalf("after a failed shrink: high watermark %d, ISR %v; want 0 and all three", hw, isr)
	}
	// Committed: now it counts.
	fetch(t, p, 2, 4, t0.Add(2*lag))
	c, _ = p.ProposeISR(t0.Add(2*lag), lag, nil)
	p.CompleteISRChange(c, rf3(0, 1, 1, 2), nil)
	if hw, isr := p.HighWatermark(), p.ISR(); hw != 4 || !slices.Equal(isr, []int32{1, 2}) {
		t.Fatalf("after the committed shrink: high watermark %d, ISR %v; want 4 and [1 2]", hw, isr)
	}
}

func TestExpandNeedsTheHighWatermarkAndTheEpochStart(t *testing.T) {
	p := openRF3(t, Config{}, 1)
	p.BecomeLeader(rf3(0, 1, 1, 2), 1, t0) // same epoch: the committed ISR [1 2]
	mustAppend(t, p, -1, 6)
	fetch(t, p, 2, 6, t0)
	fetch(t, p, 3, 2, t0)
	if _, ok := p.ProposeISR(t0, time.Minute, nil); ok {
		t.Fatal("follower 3 at offset 2 proposed to join below the high watermark 6")
	}
	fetch(t, p, 3, 6, t0)
	if _, ok := p.ProposeISR(t0, time.Minute, func(int32) bool { return false }); ok {
		t.Fatal("a follower the controller would refuse (fenced) was proposed")
	}
	c, ok := p.ProposeISR(t0, time.Minute, nil)
	if !ok || !slices.Equal(c.Expand, []int32{3}) || !slices.Equal(c.ISR, []int32{1, 2, 3}) {
		t.Fatalf("proposal %+v %v, want 3 to join", c, ok)
	}
}

func TestLastCaughtUpTime(t *testing.T) {
	p := openRF3(t, Config{}, 1)
	lag := 10 * time.Second
	mustAppend(t, p, 1, 2)
	fetch(t, p, 2, 2, t0.Add(1*time.Second)) // caught up at 1s
	fetch(t, p, 3, 2, t0.Add(1*time.Second))
	mustAppend(t, p, 1, 2) // the leader moves on to 4
	// At 9s follower 2 fetches from 2: not caught up now, but it has
	// everything the leader had at its previous fetch, so it counts as
	// caught up at that fetch (1s).
	fetch(t, p, 2, 2, t0.Add(9*time.Second))
	fetch(t, p, 3, 4, t0.Add(9*time.Second)) // caught up at 9s
	if _, ok := p.ProposeISR(t0.Add(10*time.Second), lag, nil); ok {
		t.Fatal("ISR shrunk within the lag limit")
	}
	c, ok := p.ProposeISR(t0.Add(11*time.Second+time.Millisecond), lag, nil)
	if !ok || !slices.Equal(c.Shrink, []int32{2}) {
		t.Fatalf("proposal %+v %v at 11s, want follower 2 (caught up last at 1s) dropped", c, ok)
	}
}

func TestAcksAllOutcomes(t *testing.T) {
	lag := 10 * time.Second
	ctx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	t.Run("committed", func(t *testing.T) {
		p := openRF3(t, Config{}, 2)
		res := mustAppend(t, p, -1, 1)
		done := make(chan error, 1)
		go func() { done <- p.WaitCommitted(ctx(t), res.LastOffset+1, res.LeaderEpoch) }()
		fetch(t, p, 2, 1, t0)
		fetch(t, p, 3, 1, t0)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("below min ISR before the append", func(t *testing.T) {
		p := openRF3(t, Config{}, 3)
		p.BecomeLeader(rf3(0, 1, 1, 2), 3, t0)
		if _, err := p.AppendAsLeader(plain(1), -1); !errors.Is(err, kerr.NotEnoughReplicas) {
			t.Fatalf("err %v, want NOT_ENOUGH_REPLICAS", err)
		}
		if _, err := p.AppendAsLeader(plain(1), 1); err != nil {
			t.Fatalf("acks=1 with a small ISR: %v", err)
		}
	})
	t.Run("ISR shrank below min ISR before the commit", func(t *testing.T) {
		p := openRF3(t, Config{}, 2)
		res := mustAppend(t, p, -1, 1)
		c, _ := p.ProposeISR(t0.Add(2*lag), lag, nil)
		p.CompleteISRChange(c, rf3(0, 1, 1), nil)
		if err := p.WaitCommitted(ctx(t), res.LastOffset+1, res.LeaderEpoch); !errors.Is(err, kerr.NotEnoughReplicasAfterAppend) {
			t.Fatalf("err %v, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", err)
		}
	})
	t.Run("deposed before the commit", func(t *testing.T) {
		p := openRF3(t, Config{}, 2)
		res := mustAppend(t, p, -1, 1)
		done := make(chan error, 1)
		go func() { done <- p.WaitCommitted(ctx(t), res.LastOffset+1, res.LeaderEpoch) }()
		st := rf3(1, 1, 2, 3)
		st.Leader = 2
		p.BecomeFollower(st)
		if err := <-done; !errors.Is(err, kerr.NotLeaderForPartition) {
			t.Fatalf("err %v, want NOT_LEADER_OR_FOLLOWER", err)
		}
		if _, err := p.AppendAsLeader(plain(1), 1); !errors.Is(err, kerr.NotLeaderForPartition) {
			t.Fatalf("append on a follower: err %v", err)
		}
	})
	t.Run("told by the controller its epoch is over", func(t *testing.T) {
		p := openRF3(t, Config{}, 1)
		res := mustAppend(t, p, -1, 1)
		c, _ := p.ProposeISR(t0.Add(2*lag), lag, nil)
		p.CompleteISRChange(c, metadata.Partition{}, metadata.ErrFencedLeaderEpoch)
		if err := p.WaitCommitted(ctx(t), res.LastOffset+1, res.LeaderEpoch); !errors.Is(err, kerr.NotLeaderForPartition) {
			t.Fatalf("err %v, want NOT_LEADER_OR_FOLLOWER", err)
		}
		if _, err := p.AppendAsLeader(plain(1), 1); !errors.Is(err, kerr.NotLeaderForPartition) {
			t.Fatalf("append after being fenced: err %v", err)
		}
	})
	t.Run("bug stale-leader commits on an uncommitted shrink", func(t *testing.T) {
		p := openRF3(t, Config{StaleLeaderBug: true}, 1)
		res := mustAppend(t, p, -1, 1)
		c, _ := p.ProposeISR(t0.Add(2*lag), lag, nil)
		p.CompleteISRChange(c, metadata.Partition{}, metadata.ErrFencedLeaderEpoch)
		if err := p.WaitCommitted(ctx(t), res.LastOffset+1, res.LeaderEpoch); err != nil {
			t.Fatalf("err %v; the bug must acknowledge from the leader's own log", err)
		}
	})
}

func TestReplicaFetchChecks(t *testing.T) {
	p := openRF3(t, Config{}, 1)
	mustAppend(t, p, 1, 3) // epoch 0, offsets 0-2
	p.BecomeLeader(rf3(4, 1), 1, t0)
	mustAppend(t, p, 1, 2) // epoch 4, offsets 3-4
	tests := []struct {
		name                string
		offset              int64
		lastEpoch, curEpoch int32
		wantErr             error
		wantDiverging       *EpochEnd
	}{
		{"consistent", 3, 0, 4, nil, nil},
		{"no last epoch", 2, -1, 4, nil, nil},
		{"follower has more of epoch 0", 4, 0, 4, nil, &EpochEnd{0, 3}},
		{"follower has an epoch the leader never had", 4, 2, 4, nil, &EpochEnd{0, 3}},
		{"follower's epoch is old", 3, 0, 3, kerr.FencedLeaderEpoch, nil},
		{"leader's epoch is old", 3, 0, 5, kerr.UnknownLeaderEpoch, nil},
		{"beyond the log end", 9, -1, 4, kerr.OffsetOutOfRange, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := p.ReplicaFetch(2, tt.offset, tt.lastEpoch, tt.curEpoch, t0)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if (d == nil) != (tt.wantDiverging == nil) || (d != nil && *d != *tt.wantDiverging) {
				t.Fatalf("diverging %v, want %v", d, tt.wantDiverging)
			}
		})
	}
	if _, err := p.ReplicaFetch(7, 0, -1, 4, t0); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("fetch by a non-replica: err %v", err)
	}
}

func TestFollowerAppendsAndTruncates(t *testing.T) {
	// The leader's log: an idempotent producer's two batches.
	leaderLog := storage.NewMemLog("t-0")
	if _, err := leaderLog.AppendAsLeader(batch(7, 0, 0, 2), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := leaderLog.AppendAsLeader(batch(7, 0, 2, 1), 0); err != nil {
		t.Fatal(err)
	}
	data, err := leaderLog.Read(0, 1<<20, leaderLog.EndOffset())
	if err != nil {
		t.Fatal(err)
	}
	p, err := Open(Config{Topic: "t", Self: 2, Log: storage.NewMemLog("t-0")})
	if err != nil {
		t.Fatal(err)
	}
	st := rf3(0, 0)
	if !p.BecomeFollower(st) {
		t.Fatal("BecomeFollower reported no change")
	}
	if _, err := p.AppendFetched(1, 1, 0, data, 3); !errors.Is(err, ErrNotFollowing) {
		t.Fatalf("append for another epoch: err %v, want ErrNotFollowing", err)
	}
	if n, err := p.AppendFetched(1, 0, 0, data, 2); err != nil || n != 2 {
		t.Fatalf("append: %d batches, %v", n, err)
	}
	if hw, leo := p.HighWatermark(), p.Log().EndOffset(); hw != 2 || leo != 3 {
		t.Fatalf("high watermark %d, log end %d; want the leader's 2 and 3", hw, leo)
	}
	if _, err := p.AppendFetched(1, 0, 0, data, 3); !errors.Is(err, ErrNotFollowing) {
		t.Fatalf("a fetch answer for an offset the log has moved past: err %v", err)
	}
	// Becoming leader now, it knows the producer: a retry is a duplicate.
	st.Leader, st.LeaderEpoch = 2, 1
	p.BecomeLeader(st, 1, t0)
	if res, err := p.AppendAsLeader(batch(7, 0, 2, 1), 1); err != nil || !res.Duplicate || res.BaseOffset != 2 {
		t.Fatalf("retry of a replicated batch on the new leader: %+v, %v; want a duplicate at 2", res, err)
	}
	// As follower again, truncating the last batch forgets it.
	st.Leader, st.LeaderEpoch = 3, 2
	p.BecomeFollower(st)
	if err := p.TruncateFollower(3, 2, 2, true); err != nil {
		t.Fatal(err)
	}
	if s := p.State(); s.LogEndOffset != 2 || s.HighWatermark != 2 || s.Truncating {
		t.Fatalf("after truncating to 2: %+v", s)
	}
	st.Leader, st.LeaderEpoch = 2, 3
	p.BecomeLeader(st, 1, t0)
	if res, err := p.AppendAsLeader(batch(7, 0, 2, 1), 1); err != nil || res.Duplicate || res.BaseOffset != 2 {
		t.Fatalf("the truncated batch again: %+v, %v; want it appended at 2", res, err)
	}
}

// TestEstablishedHighWatermark: a leader re-elected at a new epoch with
// records its followers have not yet fetched does not know how far the
// previous epoch committed, until its high watermark reaches its log end
// at the start of the epoch (KIP-207).
func TestEstablishedHighWatermark(t *testing.T) {
	p := openRF3(t, Config{}, 2)
	if _, ok := p.EstablishedHighWatermark(); !ok {
		t.Fatal("an empty leader's high watermark is not established")
	}
	mustAppend(t, p, 1, 6)
	if hw, ok := p.EstablishedHighWatermark(); !ok || hw != 0 {
		t.Fatalf("within its first epoch: high watermark %d established %v, want 0 and true", hw, ok)
	}
	p.BecomeLeader(rf3(1, 1), 2, t0)
	if hw, ok := p.EstablishedHighWatermark(); ok {
		t.Fatalf("at a new epoch with 6 records unfetched: high watermark %d counted as established", hw)
	}
	fetch(t, p, 2, 4, t0)
	fetch(t, p, 3, 4, t0)
	if hw, ok := p.EstablishedHighWatermark(); ok || hw != 4 {
		t.Fatalf("followers at 4 of the epoch start 6: high watermark %d established %v, want 4 and false", hw, ok)
	}
	fetch(t, p, 2, 6, t0)
	fetch(t, p, 3, 6, t0)
	if hw, ok := p.EstablishedHighWatermark(); !ok || hw != 6 {
		t.Fatalf("followers at the epoch start: high watermark %d established %v, want 6 and true", hw, ok)
	}
}

package controller

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/garantia/garantia/broker/metadata"
)

const settle = 10 * time.Second // bound on any wait in these tests

func TestClusterRegistersCreatesTopicsAndRefusesStaleISR(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, nil)
	leader := c.waitLeader(settle)
	c.waitRegistered(settle)
	follower := c.node(c.other(leader))

	changed := follower.Changed()
	if err := follower.CreateTopic(ctxFor(t, settle), "q", 3, 3, metadata.TopicConfig{MinInsyncReplicas: 2}); err != nil {
		t.Fatalf("create topic from follower: %v", err)
	}
	// The follower's own view shows the topic as soon as CreateTopic
	// returns: it waited for its node to apply the change.
	if _, ok := follower.Snapshot().Partition("q", 2); !ok {
		t.Fatalf("follower does not show the topic it created: %+v", follower.Snapshot().Topics)
	}
	select {
	case <-changed:
	default:
		t.Errorf("Changed not closed by the topic's creation")
	}
	c.waitAll(settle, "showing topic q", func(s *metadata.Snapshot) (bool, string) {
		t := s.Topics["q"]
		if t == nil || len(t.Partitions) != 3 || t.Config.MinInsyncReplicas != 2 {
			return false, fmt.Sprintf("topic q: %+v", t)
		}
		if s.ControllerID != leader {
			return false, fmt.Sprintf("controller id %d, want %d", s.ControllerID, leader)
		}
		return true, ""
	})

	p, _ := follower.Snapshot().Partition("q", 0)
	shrunk := slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r != p.Leader && r == p.Replicas[len(p.Replicas)-1] })
	for _, tc := range []struct {
		name        string
		node        *Controller
		topic       string
		le, pe      int32
		isr         []int32
		want        error
		wantVersion bool
	}{
		{"unknown topic", follower, "nope", 0, 0, p.ISR, metadata.ErrUnknownTopic, false},
		{"stale leader epoch", follower, "q", p.LeaderEpoch - 1, p.PartitionEpoch, shrunk, metadata.ErrFencedLeaderEpoch, false},
		{"ISR without its leader", follower, "q", p.LeaderEpoch, p.PartitionEpoch, []int32{p.Replicas[1]}, metadata.ErrInvalidISR, false},
		{"shrink from a follower node", follower, "q", p.LeaderEpoch, p.PartitionEpoch, shrunk, nil, true},
		{"same request again: stale partition epoch", follower, "q", p.LeaderEpoch, p.PartitionEpoch, shrunk, metadata.ErrStalePartitionEpoch, false},
		{"stale partition epoch at the leader", c.node(leader), "q", p.LeaderEpoch, p.PartitionEpoch, p.ISR, metadata.ErrStalePartitionEpoch, false},
	} {
		before := tc.node.Snapshot().Version
		got, err := tc.node.AlterISR(ctxFor(t, settle), tc.topic, 0, tc.le, tc.pe, tc.isr)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: got error %v, want %v", tc.name, err, tc.want)
			continue
		}
		after := tc.node.Snapshot()
		if tc.wantVersion != (after.Version > before) {
			t.Errorf("%s: version %d → %d", tc.name, before, after.Version)
		}
		if err == nil {
			local, _ := after.Partition("q", 0)
			if !slices.Equal(got.ISR, shrunk) || got.PartitionEpoch != p.PartitionEpoch+1 || !slices.Equal(local.ISR, got.ISR) {
				t.Errorf("%s: got %+v, local view %+v, want ISR %v at partition epoch %d", tc.name, got, local, shrunk, p.PartitionEpoch+1)
			}
		}
	}

	for _, n := range []*Controller{follower, c.node(leader)} {
		if err := n.CreateTopic(ctxFor(t, settle), "q", 1, 1, metadata.TopicConfig{}); !errors.Is(err, metadata.ErrTopicExists) {
			t.Errorf("re-creating q: %v, want ErrTopicExists", err)
		}
		if err := n.CreateTopic(ctxFor(t, settle), "r", 1, 4, metadata.TopicConfig{}); !errors.Is(err, metadata.ErrInvalidReplicationFactor) {
			t.Errorf("replication factor 4 over 3 brokers: %v, want ErrInvalidReplicationFactor", err)
		}
	}

	// Every node ends at the same metadata.
	want := c.node(leader).Snapshot().Version
	c.waitAll(settle, fmt.Sprintf("at metadata version %d", want), func(s *metadata.Snapshot) (bool, string) {
		return s.Version == want, fmt.Sprintf("version %d", s.Version)
	})
}

// partitionsLedBy returns the partitions of topic that broker id leads.
func partitionsLedBy(s *metadata.Snapshot, topic string, id int32) []metadata.Partition {
	var out []metadata.Partition
	for _, p := range s.Topics[topic].Partitions {
		if p.Leader == id {
			out = append(out, p)
		}
	}
	return out
}

// waitFailedOver waits until the live nodes show broker dead fenced and
// each partition it led (before) led by another member of its ISR, at the
// next leader epoch.
func waitFailedOver(c *cluster, dead int32, before []metadata.Partition) {
	c.t.Helper()
	c.waitAll(settle, fmt.Sprintf("showing broker %d fenced and its partitions failed over", dead), func(s *metadata.Snapshot) (bool, string) {
		if !s.Brokers[dead].Fenced {
			return false, fmt.Sprintf("broker %d not fenced", dead)
		}
		for _, old := range before {
			p, _ := s.Partition(old.Topic, old.Index)
			if p.Leader == dead || p.Leader == metadata.NoLeader || !old.InISR(p.Leader) ||
				p.LeaderEpoch != old.LeaderEpoch+1 || p.InISR(dead) {
				return false, fmt.Sprintf("%s-%d: %+v (was %+v)", p.Topic, p.Index, p, old)
			}
		}
		return true, ""
	})
}

func TestDeadBrokerIsFencedAndRejoinsAfterRestart(t *testing.T) {
	t.Parallel()
	// Snapshot often and keep few entries, so the restarted node catches
	// up from a snapshot (InstallSnapshot), not only from the log.
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotThreshold = 8
		cfg.TrailingLogs = 2
		cfg.snapshotInterval = 50 * time.Millisecond
	})
	leader := c.waitLeader(settle)
	c.waitRegistered(settle)
	victim := c.other(leader)
	survivor := c.node(leader)
	if err := survivor.CreateTopic(ctxFor(t, settle), "q", 3, 3, metadata.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	led := partitionsLedBy(survivor.Snapshot(), "q", victim)
	if len(led) != 1 {
		t.Fatalf("broker %d leads %d partitions of q, want 1", victim, len(led))
	}

	start := time.Now()
	c.stop(victim)
	waitFailedOver(c, victim, led)
	t.Logf("broker %d fenced and its partition failed over %s after it stopped (session timeout %s)",
		victim, time.Since(start).Round(time.Millisecond), time.Second)

	// The log moves on (and is snapshotted and truncated) while it is down.
	for i := range 12 {
		if err := survivor.CreateTopic(ctxFor(t, settle), fmt.Sprintf("while-down-%d", i), 1, 2, metadata.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range c.ids {
		if id != victim {
			waitFor(t, settle, "snapshotted", func() (bool, string) {
				n := c.node(id)
				st := n.raft.Stats()
				return st["last_snapshot_index"] != "0", fmt.Sprintf("node %d raft stats: %v", id, st)
			})
		}
	}

	restarted := c.start(victim, nil)
	select {
	case <-restarted.Registered():
	case <-time.After(settle):
		t.Fatalf("restarted broker %d not unfenced: %+v", victim, restarted.Snapshot().Brokers)
	}
	want := survivor.Snapshot()
	c.waitAll(settle, "converged", func(s *metadata.Snapshot) (bool, string) {
		if s.Version < want.Version || len(s.Topics) != len(want.Topics) || s.Brokers[victim].Fenced {
			return false, fmt.Sprintf("version %d (want ≥ %d), %d topics (want %d), broker %d %+v",
				s.Version, want.Version, len(s.Topics), len(want.Topics), victim, s.Brokers[victim])
		}
		return true, ""
	})
	// Unfencing gives it back no partition that has a live leader.
	if got := partitionsLedBy(restarted.Snapshot(), "q", victim); len(got) != 0 {
		t.Errorf("restarted broker leads %+v", got)
	}
}

func TestLeaderCrashFailsOverTransparently(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, nil)
	leader := c.waitLeader(settle)
	c.waitRegistered(settle)
	survivor := c.node(c.other(leader))
	if err := survivor.CreateTopic(ctxFor(t, settle), "before", 3, 3, metadata.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	led := partitionsLedBy(survivor.Snapshot(), "before", leader)

	start := time.Now()
	c.stop(leader)
	// The call is made right away: it retries across the election.
	if err := survivor.CreateTopic(ctxFor(t, settle), "after", 1, 2, metadata.TopicConfig{}); err != nil {
		t.Fatalf("create topic across the failover: %v", err)
	}
	t.Logf("controller failover: leader %d closed → a change applied on node %d in %s",
		leader, survivor.cfg.NodeID, time.Since(start).Round(time.Millisecond))
	next := c.waitLeader(settle)
	if next == leader {
		t.Fatalf("closed node %d still the leader", leader)
	}
	s := survivor.Snapshot()
	if s.Topics["before"] == nil || s.Topics["after"] == nil || s.ControllerID != next {
		t.Fatalf("after failover: controller %d, topics %v", s.ControllerID, slices.Sorted(maps.Keys(s.Topics)))
	}
	// The new controller fences the old one's broker, which never
	// heartbeats to it, one session after taking over.
	waitFailedOver(c, leader, led)
	t.Logf("old controller's broker fenced %s after it stopped", time.Since(start).Round(time.Millisecond))

	restarted := c.start(leader, nil)
	select {
	case <-restarted.Registered():
	case <-time.After(settle):
		t.Fatalf("restarted broker %d not unfenced", leader)
	}
}

func TestPartitionedControllerIsFencedAndRejoins(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, nil)
	cut := c.waitLeader(settle)
	c.waitRegistered(settle)
	isolated := c.node(cut)
	if err := isolated.CreateTopic(ctxFor(t, settle), "q", 3, 3, metadata.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	led := partitionsLedBy(isolated.Snapshot(), "q", cut)
	waitFor(t, settle, "session active", func() (bool, string) {
		return isolated.SessionActive(), "no acknowledged heartbeat within the session timeout"
	})

	start := time.Now()
	c.isolate(cut, true)
	majority := &cluster{t: t, ids: c.ids, nodes: map[int32]*Controller{}}
	for id, n := range c.live() {
		if id != cut {
			majority.nodes[id] = n
		}
	}
	next := majority.waitLeader(settle)
	t.Logf("majority elected %d %s after the cut", next, time.Since(start).Round(time.Millisecond))
	waitFailedOver(majority, cut, led)
	t.Logf("isolated broker %d fenced %s after the cut", cut, time.Since(start).Round(time.Millisecond))
	// The broker must know its session lapsed by the time the controller
	// has fenced it and moved its leaderships: its lease runs from the
	// sending of its last acknowledged heartbeat, the controller's from
	// the receipt, which is later.
	if isolated.SessionActive() {
		t.Errorf("broker %d was fenced and its partitions failed over, but it still reports an active session", cut)
	}
	for id, n := range majority.nodes {
		if !n.SessionActive() {
			t.Errorf("broker %d, in the majority, reports a lapsed session", id)
		}
	}

	// The cut-off node stops acting as controller (its lease expires) and
	// cannot change anything.
	waitFor(t, settle, "stepped down", func() (bool, string) {
		return !isolated.IsController(), "still leader"
	})
	err := isolated.CreateTopic(ctxFor(t, 500*time.Millisecond), "minority", 1, 1, metadata.TopicConfig{})
	if !errors.Is(err, metadata.ErrNoController) {
		t.Errorf("create topic on the isolated node: %v, want ErrNoController", err)
	}
	if err := c.node(next).CreateTopic(ctxFor(t, settle), "majority", 1, 2, metadata.TopicConfig{}); err != nil {
		t.Fatal(err)
	}

	c.isolate(cut, false)
	healed := time.Now()
	want := c.node(next).Snapshot().Version
	c.waitAll(settle, "rejoined", func(s *metadata.Snapshot) (bool, string) {
		if s.Version < want || s.Brokers[cut].Fenced || s.Topics["majority"] == nil || s.Topics["minority"] != nil {
			return false, fmt.Sprintf("version %d (want ≥ %d), broker %d %+v, topics %v",
				s.Version, want, cut, s.Brokers[cut], slices.Sorted(maps.Keys(s.Topics)))
		}
		return true, ""
	})
	t.Logf("isolated node caught up and unfenced %s after healing", time.Since(healed).Round(time.Millisecond))
	waitFor(t, settle, "session active again", func() (bool, string) {
		return isolated.SessionActive(), "still lapsed after healing"
	})
}

func TestUncleanLeaderElectionFollowsTopicConfig(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, nil)
	c.waitLeader(settle)
	c.waitRegistered(settle)
	const dead = 1 // replicas of partition 0 are [1 2]: broker 1 leads
	asker := c.node(c.other(dead))
	shrunk := map[string]metadata.Partition{}
	for _, topic := range []string{"clean", "unclean"} {
		err := asker.CreateTopic(ctxFor(t, settle), topic, 1, 2, metadata.TopicConfig{UncleanLeaderElection: topic == "unclean"})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := asker.Snapshot().Partition(topic, 0)
		if p.Leader != dead || !slices.Equal(p.Replicas, []int32{1, 2}) {
			t.Fatalf("%s-0: %+v", topic, p)
		}
		// Broker 2 falls out of sync: only the leader has everything.
		if shrunk[topic], err = asker.AlterISR(ctxFor(t, settle), topic, 0, p.LeaderEpoch, p.PartitionEpoch, []int32{dead}); err != nil {
			t.Fatal(err)
		}
	}

	c.stop(dead)
	c.waitAll(settle, "electing per topic config", func(s *metadata.Snapshot) (bool, string) {
		clean, _ := s.Partition("clean", 0)
		unclean, _ := s.Partition("unclean", 0)
		// Without unclean election the partition stays offline, keeping
		// the dead broker as its last in-sync replica; with it, the
		// out-of-sync replica leads alone.
		ok := s.Brokers[dead].Fenced &&
			clean.Leader == metadata.NoLeader && slices.Equal(clean.ISR, []int32{dead}) &&
			clean.LeaderEpoch == shrunk["clean"].LeaderEpoch+1 &&
			unclean.Leader == 2 && slices.Equal(unclean.ISR, []int32{2}) &&
			unclean.LeaderEpoch == shrunk["unclean"].LeaderEpoch+1
		return ok, fmt.Sprintf("clean %+v, unclean %+v", clean, unclean)
	})

	// When the last in-sync replica returns, the clean partition is back
	// under it; the unclean one keeps its new leader.
	restarted := c.start(dead, nil)
	select {
	case <-restarted.Registered():
	case <-time.After(settle):
		t.Fatalf("restarted broker %d not unfenced", dead)
	}
	c.waitAll(settle, "clean partition led by its returning in-sync replica", func(s *metadata.Snapshot) (bool, string) {
		clean, _ := s.Partition("clean", 0)
		unclean, _ := s.Partition("unclean", 0)
		ok := clean.Leader == dead && clean.LeaderEpoch == shrunk["clean"].LeaderEpoch+2 &&
			unclean.Leader == 2 && unclean.LeaderEpoch == shrunk["unclean"].LeaderEpoch+1
		return ok, fmt.Sprintf("clean %+v, unclean %+v", clean, unclean)
	})
}

// After the whole cluster restarts, every broker comes back as a new
// incarnation: each is fenced, then unfenced once caught up, and every
// partition ends up led from its ISR again; nothing is bootstrapped twice.
func TestWholeClusterRestart(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, nil)
	leader := c.waitLeader(settle)
	c.waitRegistered(settle)
	if err := c.node(leader).CreateTopic(ctxFor(t, settle), "q", 3, 3, metadata.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	before := c.node(leader).Snapshot()
	c.closeAll()
	for _, id := range c.ids {
		c.start(id, nil)
	}
	c.waitLeader(settle)
	c.waitRegistered(settle)
	c.waitAll(settle, "every partition led again", func(s *metadata.Snapshot) (bool, string) {
		if s.Version <= before.Version || len(s.Topics) != 1 {
			return false, fmt.Sprintf("version %d (before the restart %d), %d topics", s.Version, before.Version, len(s.Topics))
		}
		for _, p := range s.Topics["q"].Partitions {
			old, _ := before.Partition("q", p.Index)
			if p.Leader == metadata.NoLeader || !p.InISR(p.Leader) || p.LeaderEpoch <= old.LeaderEpoch {
				return false, fmt.Sprintf("q-%d: %+v (before %+v)", p.Index, p, old)
			}
		}
		return true, ""
	})
}

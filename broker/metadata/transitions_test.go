package metadata

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func threeBrokers() *Snapshot {
	s := Empty()
	for id := int32(1); id <= 3; id++ {
		s = RegisterBroker(s, Broker{ID: id, Host: "127.0.0.1", Port: 9000 + id})
	}
	return s
}

func mustCreate(t *testing.T, s *Snapshot, cfg TopicConfig) *Snapshot {
	t.Helper()
	n, err := CreateTopic(s, "q", 3, 3, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateTopicSpreadsLeaders(t *testing.T) {
	s := mustCreate(t, threeBrokers(), TopicConfig{MinInsyncReplicas: 2})
	leaders := map[int32]bool{}
	for i := int32(0); i < 3; i++ {
		p, ok := s.Partition("q", i)
		if !ok {
			t.Fatalf("partition %d missing", i)
		}
		if len(p.Replicas) != 3 || !slices.Equal(p.ISR, p.Replicas) || p.Leader != p.Replicas[0] {
			t.Errorf("partition %d: %+v", i, p)
		}
		leaders[p.Leader] = true
	}
	if len(leaders) != 3 {
		t.Errorf("leaders not spread over the brokers: %v", leaders)
	}
	if _, err := CreateTopic(s, "q", 1, 1, TopicConfig{}); !errors.Is(err, ErrTopicExists) {
		t.Errorf("recreate: %v", err)
	}
	if _, err := CreateTopic(s, "r", 1, 4, TopicConfig{}); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Errorf("rf 4 on 3 brokers: %v", err)
	}
	if _, err := CreateTopic(s, "r", 0, 1, TopicConfig{}); !errors.Is(err, ErrInvalidPartitions) {
		t.Errorf("0 partitions: %v", err)
	}
}

func TestFenceElectsFromISRAndBumpsEpoch(t *testing.T) {
	s := mustCreate(t, threeBrokers(), TopicConfig{})
	p0, _ := s.Partition("q", 0) // leader 1, replicas 1,2,3
	n, err := FenceBroker(s, p0.Leader)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := n.Partition("q", 0)
	if p.Leader != 2 || p.LeaderEpoch != p0.LeaderEpoch+1 || p.InISR(1) || p.PartitionEpoch <= p0.PartitionEpoch {
		t.Errorf("after fencing the leader: %+v", p)
	}
	// The original snapshot is untouched (transitions are pure).
	if q, _ := s.Partition("q", 0); q.Leader != 1 || !q.InISR(1) {
		t.Errorf("FenceBroker modified its input: %+v", q)
	}
}

func TestOutOfSyncReplicaNeverLeadsWhenClean(t *testing.T) {
	s := mustCreate(t, threeBrokers(), TopicConfig{})
	p, _ := s.Partition("q", 0)
	// Shrink the ISR to the leader alone, then fence the leader.
	s, err := AlterISR(s, "q", 0, p.LeaderEpoch, p.PartitionEpoch, []int32{1})
	if err != nil {
		t.Fatal(err)
	}
	s, err = FenceBroker(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, _ = s.Partition("q", 0)
	if p.Leader != NoLeader || !slices.Equal(p.ISR, []int32{1}) {
		t.Fatalf("clean election must leave the partition offline with ISR {1}: %+v", p)
	}
	// Broker 2 coming back does not lead; broker 1 coming back does.
	s, _ = UnfenceBroker(s, 2)
	if p, _ = s.Partition("q", 0); p.Leader != NoLeader {
		t.Fatalf("out-of-sync replica 2 became leader: %+v", p)
	}
	s, _ = UnfenceBroker(s, 1)
	if p, _ = s.Partition("q", 0); p.Leader != 1 {
		t.Fatalf("the last in-sync replica must lead again: %+v", p)
	}
}

func TestUncleanElection(t *testing.T) {
	s := mustCreate(t, threeBrokers(), TopicConfig{UncleanLeaderElection: true})
	p, _ := s.Partition("q", 0)
	s, _ = AlterISR(s, "q", 0, p.LeaderEpoch, p.PartitionEpoch, []int32{1})
	s, _ = FenceBroker(s, 1)
	p, _ = s.Partition("q", 0)
	if p.Leader != 2 || !slices.Equal(p.ISR, []int32{2}) {
		t.Fatalf("unclean election must pick live replica 2 with ISR {2}: %+v", p)
	}
}

func TestAlterISRFencing(t *testing.T) {
	s := mustCreate(t, threeBrokers(), TopicConfig{})
	p, _ := s.Partition("q", 0)
	cases := []struct {
		name        string
		leaderEpoch int32
		partEpoch   int32
		isr         []int32
		want        error
	}{
		{"deposed leader", p.LeaderEpoch - 1, p.PartitionEpoch, []int32{1, 2}, ErrFencedLeaderEpoch},
		{"stale partition epoch", p.LeaderEpoch, p.PartitionEpoch + 1, []int32{1, 2}, ErrStalePartitionEpoch},
		{"without the leader", p.LeaderEpoch, p.PartitionEpoch, []int32{2, 3}, ErrInvalidISR},
		{"not a replica", p.LeaderEpoch, p.PartitionEpoch, []int32{1, 4}, ErrInvalidISR},
		{"duplicate", p.LeaderEpoch, p.PartitionEpoch, []int32{1, 1}, ErrInvalidISR},
		{"ok", p.LeaderEpoch, p.PartitionEpoch, []int32{2, 1}, nil},
	}
	for _, c := range cases {
		n, err := AlterISR(s, "q", 0, c.leaderEpoch, c.partEpoch, c.isr)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
		if err == nil {
			q, _ := n.Partition("q", 0)
			if !slices.Equal(q.ISR, []int32{1, 2}) || q.PartitionEpoch != p.PartitionEpoch+1 {
				t.Errorf("%s: %+v", c.name, q)
			}
		}
	}
	// A fenced broker may not join the ISR.
	s, _ = AlterISR(s, "q", 0, p.LeaderEpoch, p.PartitionEpoch, []int32{1})
	s, _ = FenceBroker(s, 3)
	p, _ = s.Partition("q", 0)
	if _, err := AlterISR(s, "q", 0, p.LeaderEpoch, p.PartitionEpoch, []int32{1, 3}); !errors.Is(err, ErrInvalidISR) {
		t.Errorf("fenced broker joined the ISR: %v", err)
	}
}

func TestMemoryNotifies(t *testing.T) {
	m := NewMemory(Broker{ID: 1}, Broker{ID: 2})
	ch := m.Changed()
	if err := m.CreateTopic(context.Background(), "q", 1, 2, TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed after CreateTopic")
	}
	m.SetDown(true)
	if err := m.CreateTopic(context.Background(), "r", 1, 1, TopicConfig{}); !errors.Is(err, ErrNoController) {
		t.Errorf("down controller: %v", err)
	}
}

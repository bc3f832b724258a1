package metadata

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"strconv"
)

// The transitions below are the only way metadata changes. They are pure
// and deterministic (the same snapshot and arguments give the same result),
// which is what lets the Raft controller apply them on every node and reach
// the same state, and lets the in-memory controller share them exactly.
// Each takes a snapshot it does not modify and returns the next one.

// TopicID derives a stable topic id from its name, so every node and every
// restart agree on it without storing it separately. It is the id of the
// first topic of that name; one created again after a deletion gets
// TopicIDAfter(name, deletions).
func TopicID(name string) [16]byte { return TopicIDAfter(name, 0) }

// TopicIDAfter is the id of the topic called name created after deletions
// earlier topics of that name were deleted: every incarnation has its own,
// as Kafka gives each creation a fresh UUID.
func TopicIDAfter(name string, deletions int32) [16]byte {
	seed := "garantia-topic:" + name
	if deletions > 0 {
		seed += "#" + strconv.Itoa(int(deletions))
	}
	sum := sha256.Sum256([]byte(seed))
	var id [16]byte
	copy(id[:], sum[:16])
	return id
}

// Empty is the metadata of a cluster that has nothing yet.
func Empty() *Snapshot {
	return &Snapshot{ControllerID: -1, Brokers: map[int32]Broker{}, Topics: map[string]*Topic{}}
}

// RegisterBroker records a broker (or its new address after a restart) and
// unfences it; see UnfenceBroker for what that does to leaderless
// partitions.
func RegisterBroker(s *Snapshot, b Broker) *Snapshot {
	n := s.Clone()
	b.Fenced = false
	n.Brokers[b.ID] = b
	unfence(n, b.ID)
	n.Version++
	return n
}

// FenceBroker marks a broker dead. It leaves every ISR (unless it is the
// last member: Kafka keeps the last in-sync replica in the ISR so that it,
// and only it, may lead again when it returns), and every partition it led
// gets a new leader from the rest of the ISR; with none left the partition
// goes offline (NoLeader), or, with unclean leader election on, any live
// replica leads with an ISR of itself.
func FenceBroker(s *Snapshot, id int32) (*Snapshot, error) {
	b, ok := s.Brokers[id]
	if !ok {
		return nil, fmt.Errorf("fence broker %d: not registered", id)
	}
	n := s.Clone()
	b.Fenced = true
	n.Brokers[id] = b
	for _, name := range sortedTopics(n) {
		t := n.Topics[name]
		for i := range t.Partitions {
			p := &t.Partitions[i]
			changed := false
			if p.InISR(id) && len(p.ISR) > 1 {
				p.ISR = slices.DeleteFunc(p.ISR, func(r int32) bool { return r == id })
				changed = true
			}
			if p.Leader == id {
				electLeader(n, t, p)
				changed = true
			}
			if changed {
				p.PartitionEpoch++
			}
		}
	}
	n.Version++
	return n, nil
}

// UnfenceBroker marks a broker alive again (it heartbeats). A leaderless
// partition whose ISR holds it gets it as leader; with unclean leader
// election on, any leaderless partition it is a replica of does.
func UnfenceBroker(s *Snapshot, id int32) (*Snapshot, error) {
	b, ok := s.Brokers[id]
	if !ok {
		return nil, fmt.Errorf("unfence broker %d: not registered", id)
	}
	n := s.Clone()
	b.Fenced = false
	n.Brokers[id] = b
	unfence(n, id)
	n.Version++
	return n, nil
}

func unfence(n *Snapshot, id int32) {
	for _, name := range sortedTopics(n) {
		t := n.Topics[name]
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if p.Leader != NoLeader || !p.IsReplica(id) {
				continue
			}
			switch {
			case p.InISR(id):
				p.Leader = id
			case t.Config.UncleanLeaderElection:
				p.Leader = id
				p.ISR = []int32{id}
			default:
				continue
			}
			p.LeaderEpoch++
			p.PartitionEpoch++
		}
	}
}

// electLeader picks p's next leader: the first live ISR member in replica
// order, else (unclean election) the first live replica with an ISR of
// itself, else NoLeader. The leader epoch always grows: a deposed leader
// must be fenced even when the partition goes offline.
func electLeader(n *Snapshot, t *Topic, p *Partition) {
	alive := func(id int32) bool { b, ok := n.Brokers[id]; return ok && !b.Fenced }
	next := NoLeader
	for _, r := range p.Replicas {
		if p.InISR(r) && alive(r) {
			next = r
			break
		}
	}
	if next == NoLeader && t.Config.UncleanLeaderElection {
		for _, r := range p.Replicas {
			if alive(r) {
				next = r
				p.ISR = []int32{r}
				break
			}
		}
	}
	p.Leader = next
	p.LeaderEpoch++
}

// CreateTopic adds a topic with partitions partitions of replicationFactor
// replicas each, spread round-robin over the live brokers in id order; the
// first replica of each partition leads, and all replicas start in sync
// (the logs are empty).
func CreateTopic(s *Snapshot, name string, partitions int32, replicationFactor int16, cfg TopicConfig) (*Snapshot, error) {
	if _, ok := s.Topics[name]; ok {
		return nil, fmt.Errorf("create topic %q: %w", name, ErrTopicExists)
	}
	if partitions < 1 {
		return nil, fmt.Errorf("create topic %q with %d partitions: %w", name, partitions, ErrInvalidPartitions)
	}
	live := liveBrokers(s)
	if replicationFactor < 1 || int(replicationFactor) > len(live) {
		return nil, fmt.Errorf("create topic %q with replication factor %d over %d live brokers: %w",
			name, replicationFactor, len(live), ErrInvalidReplicationFactor)
	}
	if cfg.MinInsyncReplicas < 1 {
		cfg.MinInsyncReplicas = 1
	}
	n := s.Clone()
	t := &Topic{Name: name, ID: TopicIDAfter(name, s.Deletions[name]), Config: cfg, Partitions: make([]Partition, partitions)}
	for i := range t.Partitions {
		t.Partitions[i] = newPartition(name, int32(i), live, replicationFactor)
	}
	n.Topics[name] = t
	n.Version++
	return n, nil
}

// liveBrokers are the unfenced brokers in id order.
func liveBrokers(s *Snapshot) []int32 {
	var live []int32
	for id, b := range s.Brokers {
		if !b.Fenced {
			live = append(live, id)
		}
	}
	slices.Sort(live)
	return live
}

// newPartition places partition index of a topic: replicationFactor
// replicas round-robin over live (consecutive partitions start one broker
// further, spreading the leaders), the first leading, all in sync (the
// logs are empty).
func newPartition(topic string, index int32, live []int32, replicationFactor int16) Partition {
	replicas := make([]int32, replicationFactor)
	for r := range replicas {
		replicas[r] = live[(int(index)+r)%len(live)]
	}
	return Partition{Topic: topic, Index: index, Replicas: replicas, ISR: slices.Clone(replicas), Leader: replicas[0]}
}

// DeleteTopic removes a topic and its partitions. Every broker that
// replicated it stops serving it and deletes its log when it applies this;
// a topic created later under the same name is a new topic with its own id.
func DeleteTopic(s *Snapshot, name string) (*Snapshot, error) {
	if _, ok := s.Topics[name]; !ok {
		return nil, fmt.Errorf("delete topic %q: %w", name, ErrUnknownTopic)
	}
	n := s.Clone()
	delete(n.Topics, name)
	if n.Deletions == nil {
		n.Deletions = map[string]int32{}
	}
	n.Deletions[name]++
	n.Version++
	return n, nil
}

// CreatePartitions grows a topic to count partitions. The new ones get the
// topic's replication factor, placed round-robin over the live brokers as
// at creation; existing partitions are untouched. Kafka never shrinks a
// topic (keys would move between partitions), so count must exceed the
// current partition count.
func CreatePartitions(s *Snapshot, name string, count int32) (*Snapshot, error) {
	t, ok := s.Topics[name]
	if !ok {
		return nil, fmt.Errorf("create partitions of %q: %w", name, ErrUnknownTopic)
	}
	have := int32(len(t.Partitions))
	if count <= have {
		return nil, fmt.Errorf("create partitions of %q: %d requested, it has %d already (a topic only grows): %w", name, count, have, ErrInvalidPartitions)
	}
	rf := int16(len(t.Partitions[0].Replicas))
	live := liveBrokers(s)
	if int(rf) > len(live) {
		return nil, fmt.Errorf("create partitions of %q with replication factor %d over %d live brokers: %w", name, rf, len(live), ErrInvalidReplicationFactor)
	}
	n := s.Clone()
	nt := n.Topics[name]
	for i := have; i < count; i++ {
		nt.Partitions = append(nt.Partitions, newPartition(name, i, live, rf))
	}
	n.Version++
	return n, nil
}

// AlterISR sets a partition's ISR on behalf of its leader (KIP-497). The
// request must be based on the current leader epoch (else the requester was
// deposed: ErrFencedLeaderEpoch) and partition epoch (else
// ErrStalePartitionEpoch); the new ISR must hold the leader, only assigned
// replicas, and no fenced broker that is not already in it.
func AlterISR(s *Snapshot, topic string, index int32, leaderEpoch, partitionEpoch int32, isr []int32) (*Snapshot, error) {
	cur, ok := s.Partition(topic, index)
	if !ok {
		return nil, fmt.Errorf("alter ISR of %s-%d: %w", topic, index, ErrUnknownTopic)
	}
	if leaderEpoch != cur.LeaderEpoch {
		return nil, fmt.Errorf("alter ISR of %s-%d at leader epoch %d, current %d: %w",
			topic, index, leaderEpoch, cur.LeaderEpoch, ErrFencedLeaderEpoch)
	}
	if partitionEpoch != cur.PartitionEpoch {
		return nil, fmt.Errorf("alter ISR of %s-%d at partition epoch %d, current %d: %w",
			topic, index, partitionEpoch, cur.PartitionEpoch, ErrStalePartitionEpoch)
	}
	if cur.Leader == NoLeader || !slices.Contains(isr, cur.Leader) {
		return nil, fmt.Errorf("alter ISR of %s-%d to %v without its leader %d: %w", topic, index, isr, cur.Leader, ErrInvalidISR)
	}
	seen := map[int32]bool{}
	for _, r := range isr {
		switch {
		case seen[r]:
			return nil, fmt.Errorf("alter ISR of %s-%d to %v: replica %d twice: %w", topic, index, isr, r, ErrInvalidISR)
		case !cur.IsReplica(r):
			return nil, fmt.Errorf("alter ISR of %s-%d to %v: %d is not a replica: %w", topic, index, isr, r, ErrInvalidISR)
		case !cur.InISR(r) && s.Brokers[r].Fenced:
			return nil, fmt.Errorf("alter ISR of %s-%d to %v: fenced broker %d may not join: %w", topic, index, isr, r, ErrInvalidISR)
		}
		seen[r] = true
	}
	n := s.Clone()
	p := &n.Topics[topic].Partitions[index]
	// Keep replica order, so ISRs compare equal however they were listed.
	p.ISR = p.ISR[:0]
	for _, r := range p.Replicas {
		if seen[r] {
			p.ISR = append(p.ISR, r)
		}
	}
	p.PartitionEpoch++
	n.Version++
	return n, nil
}

func sortedTopics(s *Snapshot) []string {
	names := make([]string, 0, len(s.Topics))
	for name := range s.Topics {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

package metadata

import (
	"context"
	"errors"
	"maps"
	"slices"
)

// NoLeader is the leader id of a partition that has none (every in-sync
// replica is fenced and unclean election is off).
const NoLeader int32 = -1

// Errors of metadata changes, each naming the rule it enforces.
var (
	// ErrNotController: the request reached a node that is not the
	// controller (the Raft leader); retry against the current one.
	ErrNotController = errors.New("metadata: this node is not the controller")
	// ErrNoController: no controller is known right now (an election is
	// under way or this node is cut off from a quorum).
	ErrNoController = errors.New("metadata: no controller is reachable")
	// ErrTopicExists: CreateTopic named an existing topic.
	ErrTopicExists = errors.New("metadata: topic already exists")
	// ErrUnknownTopic: the topic or partition does not exist.
	ErrUnknownTopic = errors.New("metadata: unknown topic or partition")
	// ErrInvalidReplicationFactor: the replication factor is below 1 or
	// above the number of registered brokers.
	ErrInvalidReplicationFactor = errors.New("metadata: invalid replication factor")
	// ErrInvalidPartitions: the partition count is below 1, or a topic
	// would not grow by adding partitions.
	ErrInvalidPartitions = errors.New("metadata: invalid partition count")
	// ErrFencedLeaderEpoch: an ISR change came from a leader whose epoch is
	// no longer current: it was deposed and must not change the ISR.
	ErrFencedLeaderEpoch = errors.New("metadata: fenced leader epoch (the requester is no longer the leader)")
	// ErrStalePartitionEpoch: an ISR change was based on a partition state
	// that has changed since; the leader must re-read and retry.
	ErrStalePartitionEpoch = errors.New("metadata: stale partition epoch (the ISR changed concurrently)")
	// ErrInvalidISR: a proposed ISR is empty, has replicas that are not
	// assigned, lacks the leader, or has a fenced broker joining it.
	ErrInvalidISR = errors.New("metadata: invalid in-sync replica set")
)

// Broker is one registered broker.
type Broker struct {
	ID int32 `json:"id"`
	// Host and Port are what clients connect to (the advertised address).
	Host string `json:"host"`
	Port int32  `json:"port"`
	// Fenced brokers missed their session timeout: they lead nothing and
	// are in no ISR until they heartbeat again.
	Fenced bool `json:"fenced"`
}

// Partition is the replication state of one topic partition.
type Partition struct {
	Topic string `json:"topic"`
	Index int32  `json:"index"`
	// Replicas are the brokers assigned to hold the partition, preferred
	// leader first.
	Replicas []int32 `json:"replicas"`
	// ISR are the in-sync replicas: the leader and the followers that have
	// everything up to the high watermark. Only they may become leader
	// (unless unclean leader election is on).
	ISR []int32 `json:"isr"`
	// Leader is the broker that takes writes, or NoLeader.
	Leader int32 `json:"leader"`
	// LeaderEpoch grows by one at every leader change; it stamps every
	// batch the leader appends and fences deposed leaders.
	LeaderEpoch int32 `json:"leader_epoch"`
	// PartitionEpoch grows at every change of this partition's state
	// (leader or ISR): ISR changes name it to avoid lost updates.
	PartitionEpoch int32 `json:"partition_epoch"`
}

// Clone returns a deep copy.
func (p Partition) Clone() Partition {
	p.Replicas = slices.Clone(p.Replicas)
	p.ISR = slices.Clone(p.ISR)
	return p
}

// InISR reports whether broker id is in the ISR.
func (p *Partition) InISR(id int32) bool { return slices.Contains(p.ISR, id) }

// IsReplica reports whether broker id is assigned to the partition.
func (p *Partition) IsReplica(id int32) bool { return slices.Contains(p.Replicas, id) }

// TopicConfig are a topic's replication settings.
type TopicConfig struct {
	// MinInsyncReplicas is min.insync.replicas: acks=all writes are refused
	// when the ISR is smaller. Below 1 means 1.
	MinInsyncReplicas int32 `json:"min_insync_replicas"`
	// UncleanLeaderElection lets an out-of-sync replica become leader when
	// no in-sync one is alive, trading acknowledged writes for
	// availability.
	UncleanLeaderElection bool `json:"unclean_leader_election"`
}

// Topic is one topic: its settings and its partitions, indexed by number.
type Topic struct {
	Name       string      `json:"name"`
	ID         [16]byte    `json:"id"`
	Config     TopicConfig `json:"config"`
	Partitions []Partition `json:"partitions"`
}

// Snapshot is an immutable view of the whole metadata at one point of the
// metadata log. Callers must not modify it; methods that change metadata
// build a new Snapshot.
type Snapshot struct {
	// Version is the position in the metadata log this view reflects; it
	// only grows.
	Version uint64 `json:"version"`
	// ControllerID is the broker id of the current controller, or -1.
	ControllerID int32             `json:"controller_id"`
	Brokers      map[int32]Broker  `json:"brokers"`
	Topics       map[string]*Topic `json:"topics"`
	// Deletions counts, per topic name, how often a topic of that name was
	// deleted: a topic created again gets a topic id of its own, so that
	// clients tell it from the one they knew (and do not carry leader
	// epochs or offsets over).
	Deletions map[string]int32 `json:"deletions,omitempty"`
}

// Partition returns the state of topic/index and whether it exists.
func (s *Snapshot) Partition(topic string, index int32) (Partition, bool) {
	t, ok := s.Topics[topic]
	if !ok || index < 0 || int(index) >= len(t.Partitions) {
		return Partition{}, false
	}
	return t.Partitions[index], true
}

// Clone returns a deep copy, for building the next snapshot.
func (s *Snapshot) Clone() *Snapshot {
	c := &Snapshot{
		Version:      s.Version,
		ControllerID: s.ControllerID,
		Brokers:      maps.Clone(s.Brokers),
		Topics:       make(map[string]*Topic, len(s.Topics)),
		Deletions:    maps.Clone(s.Deletions),
	}
	if c.Brokers == nil {
		c.Brokers = map[int32]Broker{}
	}
	for name, t := range s.Topics {
		tc := *t
		tc.Partitions = make([]Partition, len(t.Partitions))
		for i, p := range t.Partitions {
			tc.Partitions[i] = p.Clone()
		}
		c.Topics[name] = &tc
	}
	return c
}

// Controller is a broker's window onto the cluster metadata. Every method
// is safe for concurrent use.
type Controller interface {
	// Snapshot returns the newest metadata this broker has applied.
	Snapshot() *Snapshot
	// Changed returns a channel that is closed when a newer snapshot is
	// applied. Take it before reading Snapshot so no change is missed.
	Changed() <-chan struct{}
	// CreateTopic creates a topic, assigning replicas over the registered
	// unfenced brokers, and returns once the change is committed and
	// applied locally. Errors: ErrTopicExists, ErrInvalidPartitions,
	// ErrInvalidReplicationFactor, ErrNoController.
	CreateTopic(ctx context.Context, name string, partitions int32, replicationFactor int16, cfg TopicConfig) error
	// AlterISR asks the controller to set a partition's ISR (KIP-497's
	// AlterPartition). The leader names the leader epoch and partition
	// epoch its request is based on; a deposed leader gets
	// ErrFencedLeaderEpoch, a stale one ErrStalePartitionEpoch. A replica
	// joins only if it is not fenced. Returns the committed state, once
	// applied locally, so the leader never acts on an ISR that is not yet
	// committed.
	AlterISR(ctx context.Context, topic string, index int32, leaderEpoch, partitionEpoch int32, isr []int32) (Partition, error)
	// DeleteTopic removes a topic and its partitions from the metadata and
	// returns once that is committed and applied locally; every replica
	// then stops serving it and deletes its log. Errors: ErrUnknownTopic,
	// ErrNoController.
	DeleteTopic(ctx context.Context, name string) error
	// CreatePartitions grows a topic to count partitions, placing the new
	// ones over the live brokers with the topic's replication factor, and
	// returns once that is committed and applied locally. Errors:
	// ErrUnknownTopic, ErrInvalidPartitions (count not above the current
	// one), ErrInvalidReplicationFactor, ErrNoController.
	CreatePartitions(ctx context.Context, name string, count int32) error
	// Close stops the broker's participation (heartbeats, metadata log).
	Close() error
}

// Propagation is implemented by a Controller whose brokers may apply the
// metadata at different moments (the Raft controller: each node applies the
// log as it reaches it). A broker that answers from its own copy must
// sometimes know it is not behind: when a client names a topic or a
// leadership this node has not applied yet, the client learned it from a
// broker that is further along, and answering "unknown" would lose an
// acks=0 write or send the client away for nothing.
type Propagation interface {
	// Sync waits until this node has applied every metadata change the
	// controller had applied when Sync was called (a read index).
	Sync(ctx context.Context) error
	// WaitApplied waits until each of brokers has applied the metadata log
	// up to version (a Snapshot's Version); this node answers for itself.
	WaitApplied(ctx context.Context, brokers []int32, version uint64) error
}

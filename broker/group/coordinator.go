package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/partition"
)

// OffsetsTopic is the internal topic holding committed offsets and group
// metadata, named as in Kafka.
const OffsetsTopic = "__consumer_offsets"

// Defaults of Config's zero fields (Kafka's broker settings of the same
// meaning in parentheses).
const (
	// DefaultMinSessionTimeout (group.min.session.timeout.ms).
	DefaultMinSessionTimeout = 6 * time.Second
	// DefaultMaxSessionTimeout (group.max.session.timeout.ms).
	DefaultMaxSessionTimeout = 30 * time.Minute
	// DefaultInitialRebalanceDelay (group.initial.rebalance.delay.ms):
	// how long the first rebalance of an empty group waits for more
	// members, so that consumers starting together join one generation.
	DefaultInitialRebalanceDelay = 3 * time.Second
	// DefaultCommitTimeout (offsets.commit.timeout.ms): how long a write
	// to the offsets topic waits for the high watermark before the
	// request fails with COORDINATOR_NOT_AVAILABLE.
	DefaultCommitTimeout = 5 * time.Second
	// DefaultMaxMetadataBytes (offset.metadata.max.bytes).
	DefaultMaxMetadataBytes = 4096
)

// Replicas gives the coordinator this node's replicas of the offsets
// topic's partitions (replication.Manager implements it).
type Replicas interface {
	// Partition returns this node's replica of topic/index, or nil.
	Partition(topic string, index int32) *partition.Partition
}

// Client is who sent a request: its client id and address, reported by
// DescribeGroups.
type Client struct {
	ID   string
	Host string
}

// Config configures a Coordinator.
type Config struct {
	// NodeID is this broker's id.
	NodeID int32
	// Metadata is the cluster metadata: which partitions of the offsets
	// topic this node leads. The coordinator follows its Changed.
	Metadata metadata.Controller
	// Replicas are this node's replicas; the coordinator reads and
	// appends to the offsets topic's partitions through them.
	Replicas Replicas
	// Topic is the offsets topic; "" means OffsetsTopic.
	Topic string
	// SessionActive, when set, reports whether this broker may act as a
	// leader (see server.SessionLease): a broker cut off from the
	// controller for a session timeout may have been deposed, so it
	// answers NOT_COORDINATOR rather than serve committed offsets that a
	// new coordinator may have moved past.
	SessionActive func() bool
	// MinSessionTimeout and MaxSessionTimeout bound a member's session
	// timeout (INVALID_SESSION_TIMEOUT outside); zero means the defaults.
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// InitialRebalanceDelay: the first rebalance of an empty group waits
	// this long (and again while new members keep coming, up to the
	// rebalance timeout); zero means DefaultInitialRebalanceDelay, a
	// negative value none.
	InitialRebalanceDelay time.Duration
	// CommitTimeout bounds the wait for a write to the offsets topic to
	// commit; zero means DefaultCommitTimeout.
	CommitTimeout time.Duration
	// MaxMetadataBytes bounds a commit's metadata string; zero means
	// DefaultMaxMetadataBytes.
	MaxMetadataBytes int
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// OffsetsEarlyAckBug is the offsets-early-ack bug switch: a write to
	// the offsets topic is acknowledged, and its offsets served, as soon
	// as this leader's own log has it (Kafka's offsets.commit.required.acks
	// set to 1), before the high watermark passes it; a failover then
	// loses acknowledged commits.
	OffsetsEarlyAckBug bool

	// pollInterval is how often leadership is re-checked besides metadata
	// changes (the replica manager takes a role a moment after the
	// metadata names it); zero means 50ms.
	pollInterval time.Duration
}

func (c *Config) setDefaults() error {
	switch {
	case c.Metadata == nil || c.Replicas == nil:
		return errors.New("group: Config.Metadata and Config.Replicas are required")
	case c.MinSessionTimeout < 0 || c.MaxSessionTimeout < 0 || c.CommitTimeout < 0 || c.MaxMetadataBytes < 0:
		return errors.New("group: negative timeouts or sizes in Config")
	}
	if c.Topic == "" {
		c.Topic = OffsetsTopic
	}
	if c.MinSessionTimeout == 0 {
		c.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if c.MaxSessionTimeout == 0 {
		c.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	if c.MinSessionTimeout > c.MaxSessionTimeout {
		return fmt.Errorf("group: min session timeout %v exceeds the max %v", c.MinSessionTimeout, c.MaxSessionTimeout)
	}
	if c.InitialRebalanceDelay == 0 {
		c.InitialRebalanceDelay = DefaultInitialRebalanceDelay
	}
	c.InitialRebalanceDelay = max(c.InitialRebalanceDelay, 0)
	if c.CommitTimeout == 0 {
		c.CommitTimeout = DefaultCommitTimeout
	}
	if c.MaxMetadataBytes == 0 {
		c.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.pollInterval == 0 {
		c.pollInterval = 50 * time.Millisecond
	}
	return nil
}

// Coordinator is this node's group coordinator: it runs a shard for every
// partition of the offsets topic this node leads, and answers the group
// APIs for the groups those partitions hold.
type Coordinator struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	shards map[int32]*shard
	closed bool
}

// New makes a Coordinator; Start makes it follow the leadership of the
// offsets topic's partitions.
func New(cfg Config) (*Coordinator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Coordinator{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "group"),
		ctx:    ctx,
		cancel: cancel,
		shards: map[int32]*shard{},
	}, nil
}

// Topic is the offsets topic's name.
func (c *Coordinator) Topic() string { return c.cfg.Topic }

// Start follows the metadata: every offsets partition this node comes to
// lead is loaded and served, every one it stops leading unloaded.
func (c *Coordinator) Start() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(c.cfg.pollInterval)
		defer t.Stop()
		for {
			ch := c.cfg.Metadata.Changed()
			c.reconcile()
			select {
			case <-c.ctx.Done():
				return
			case <-ch:
			case <-t.C:
			}
		}
	}()
}

// Close unloads every shard (parked requests are answered
// NOT_COORDINATOR) and stops the coordinator.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	shards := c.shards
	c.shards = map[int32]*shard{}
	c.mu.Unlock()
	c.cancel()
	for _, s := range shards {
		s.unload("the broker is shutting down")
	}
	c.wg.Wait()
}

// reconcile starts a shard for every offsets partition this node leads
// (at its current leader epoch) and unloads the others.
func (c *Coordinator) reconcile() {
	snap := c.cfg.Metadata.Snapshot()
	t := snap.Topics[c.cfg.Topic]
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for idx, s := range c.shards {
		if !s.stillLeads() {
			delete(c.shards, idx)
			go s.unload("this node no longer leads the partition")
		}
	}
	if t == nil {
		return
	}
	for _, st := range t.Partitions {
		if st.Leader != c.cfg.NodeID || c.shards[st.Index] != nil {
			continue
		}
		part := c.cfg.Replicas.Partition(c.cfg.Topic, st.Index)
		if part == nil || !part.IsLeader() || part.State().Fenced {
			continue // the replica manager has not taken the role yet
		}
		s := newShard(c, st.Index, part, part.LeaderEpoch())
		c.shards[st.Index] = s
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			s.run()
		}()
	}
}

// PartitionFor is the offsets partition holding group, out of partitions:
// Kafka's abs(groupId.hashCode) % partitions, with Java's String.hashCode,
// so that a group lives where Kafka would put it.
func PartitionFor(group string, partitions int32) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(group)) {
		h = 31*h + int32(u)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % max(partitions, 1)
}

// errNotCoordinator and friends are why a group request is refused
// before it reaches a group.
var (
	errNotCoordinator = kerr.NotCoordinator
	errLoading        = kerr.CoordinatorLoadInProgress
)

// shardFor finds the active shard holding group, or the error the client
// should see: NOT_COORDINATOR (ask FindCoordinator again) or
// COORDINATOR_LOAD_IN_PROGRESS (retry here).
func (c *Coordinator) shardFor(ctx context.Context, group string) (*shard, *kerr.Error) {
	if c.cfg.SessionActive != nil && !c.cfg.SessionActive() {
		return nil, errNotCoordinator
	}
	for attempt := 0; ; attempt++ {
		snap := c.cfg.Metadata.Snapshot()
		t := snap.Topics[c.cfg.Topic]
		if t != nil && len(t.Partitions) > 0 {
			idx := PartitionFor(group, int32(len(t.Partitions)))
			c.mu.Lock()
			s := c.shards[idx]
			c.mu.Unlock()
			if s != nil {
				if s.isActive() {
					return s, nil
				}
				return nil, errLoading
			}
			if t.Partitions[idx].Leader == c.cfg.NodeID {
				// The metadata names this node, the shard is not up yet:
				// the client should retry here, not look elsewhere.
				return nil, errLoading
			}
		}
		// The client was sent here by a broker whose metadata may be
		// ahead of ours: catch up once before sending it away.
		p, ok := c.cfg.Metadata.(metadata.Propagation)
		if attempt > 0 || !ok {
			return nil, errNotCoordinator
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		err := p.Sync(sctx)
		cancel()
		if err != nil {
			return nil, errNotCoordinator
		}
		c.reconcile()
	}
}

// groupIDs lists the groups of every active shard, for ListGroups.
func (c *Coordinator) activeShards() []*shard {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*shard, 0, len(c.shards))
	for _, s := range c.shards {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].index < out[j].index })
	return out
}

// newMemberID makes a member id as Kafka does: the client id and a random
// suffix (for static members the instance id).
func newMemberID(clientID string, instanceID *string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	prefix := clientID
	if instanceID != nil {
		prefix = *instanceID
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/partition"
	"github.com/garantia/garantia/broker/storage"
)

// Defaults of Config's zero fields.
const (
	// DefaultReplicaLagTimeMax is how long a follower may go without
	// catching up before the leader drops it from the ISR. Kafka's
	// replica.lag.time.max.ms is 30s; 10s makes a crashed or partitioned
	// follower leave the ISR (and acks=all writes move on) within a
	// typical fault interval of a test, while staying far above the fetch
	// wait so that an idle, healthy follower never looks lagging.
	DefaultReplicaLagTimeMax = 10 * time.Second
	// DefaultFetchMaxWait is how long a follower's fetch waits at the
	// leader for new data (Kafka's replica.fetch.wait.max.ms).
	DefaultFetchMaxWait = 500 * time.Millisecond
	// DefaultFetchMaxBytes and DefaultPartitionFetchMaxBytes bound a
	// follower fetch (Kafka's replica.fetch.response.max.bytes and
	// replica.fetch.max.bytes).
	DefaultFetchMaxBytes          = 10 << 20
	DefaultPartitionFetchMaxBytes = 1 << 20
	// DefaultControllerTimeout bounds one AlterISR call.
	DefaultControllerTimeout = 5 * time.Second
	// DefaultCheckpointInterval is how often the high watermarks are
	// checkpointed (Kafka's replica.high.watermark.checkpoint.interval.ms).
	DefaultCheckpointInterval = 5 * time.Second
	// DefaultDialTimeout bounds connecting to a leader.
	DefaultDialTimeout = 3 * time.Second
)

// Config configures a Manager.
type Config struct {
	// NodeID is this broker's id.
	NodeID int32
	// Store holds the partition logs; the Manager opens (creating) the log
	// of every partition the metadata makes this node a replica of.
	Store storage.Store
	// Controller is the cluster metadata this node follows and asks for
	// ISR changes.
	Controller metadata.Controller
	// PeerKafkaAddrs is how this node reaches other brokers' Kafka
	// listeners to fetch from them, by broker id (these may be proxies). A
	// broker missing here is reached at its advertised address from the
	// metadata.
	PeerKafkaAddrs map[int32]string
	// ReplicaLagTimeMax: a follower not caught up for longer leaves the
	// ISR. 0 means DefaultReplicaLagTimeMax; it must exceed FetchMaxWait.
	ReplicaLagTimeMax time.Duration
	// FetchMaxWait is a follower fetch's MaxWait; 0 means
	// DefaultFetchMaxWait.
	FetchMaxWait time.Duration
	// FetchMaxBytes and PartitionFetchMaxBytes bound a follower fetch; 0
	// means the defaults.
	FetchMaxBytes, PartitionFetchMaxBytes int32
	// ControllerTimeout bounds an AlterISR call; 0 means
	// DefaultControllerTimeout.
	ControllerTimeout time.Duration
	// CheckpointPath is where high watermarks are checkpointed ("" keeps
	// none, for in-memory stores); CheckpointInterval how often (0 means
	// DefaultCheckpointInterval). The checkpoint is also written on Close.
	CheckpointPath     string
	CheckpointInterval time.Duration
	// DialTimeout bounds connecting to a leader; 0 means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// Bugs are the enabled bug switches.
	Bugs Bugs
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	switch {
	case c.Store == nil:
		return errors.New("replication: Config.Store is nil")
	case c.Controller == nil:
		return errors.New("replication: Config.Controller is nil")
	case c.ReplicaLagTimeMax < 0, c.FetchMaxWait < 0, c.ControllerTimeout < 0, c.CheckpointInterval < 0, c.DialTimeout < 0:
		return errors.New("replication: negative durations in Config")
	case c.FetchMaxBytes < 0, c.PartitionFetchMaxBytes < 0:
		return errors.New("replication: negative fetch sizes in Config")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ReplicaLagTimeMax, DefaultReplicaLagTimeMax)
	def(&c.FetchMaxWait, DefaultFetchMaxWait)
	def(&c.ControllerTimeout, DefaultControllerTimeout)
	def(&c.CheckpointInterval, DefaultCheckpointInterval)
	def(&c.DialTimeout, DefaultDialTimeout)
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if c.PartitionFetchMaxBytes == 0 {
		c.PartitionFetchMaxBytes = DefaultPartitionFetchMaxBytes
	}
	if c.ReplicaLagTimeMax <= c.FetchMaxWait {
		return fmt.Errorf("replication: replica lag time max %v must exceed the follower fetch wait %v, or idle followers that are caught up would leave the ISR", c.ReplicaLagTimeMax, c.FetchMaxWait)
	}
	for id, addr := range c.PeerKafkaAddrs {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("replication: Kafka address %q of peer %d: %w", addr, id, err)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Manager is this node's replica manager (Kafka's ReplicaManager): it
// applies every metadata change to the local partitions (leader, follower
// or stopped, at the metadata's leader epoch), runs a fetcher per leader
// this node follows, asks the controller to shrink and expand the ISRs of
// the partitions it leads, and checkpoints high watermarks.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	ctrl metadata.Controller

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	reconcileMu sync.Mutex // one reconciliation at a time

	mu       sync.RWMutex // RLock for the look-ups every request makes
	parts    map[tp]*partition.Partition
	fetchers map[int32]*fetcher
	ckpt     map[tp]int64 // high watermarks read at start, for partitions not yet opened
	closed   bool
	// alterFailing marks partitions whose last ISR change failed.
	alterFailing map[tp]bool
	// topicIDs are the topics of the last reconciled metadata, by name:
	// a topic that leaves the metadata, or comes back with another id,
	// was deleted, and its local logs go (see deleteGone). Guarded by
	// reconcileMu; nil before the first reconciliation.
	topicIDs map[string][16]byte

	isrKick chan struct{}
}

// New makes a Manager and reads the high watermark checkpoint. It opens
// nothing until Reconcile; Start starts following the metadata.
func New(cfg Config) (*Manager, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ckpt := map[tp]int64{}
	if cfg.CheckpointPath != "" {
		var err error
		if ckpt, err = readCheckpoint(cfg.CheckpointPath); err != nil {
			return nil, fmt.Errorf("replication: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		cfg:          cfg,
		log:          cfg.Logger.With("component", "replication"),
		ctrl:         cfg.Controller,
		ctx:          ctx,
		cancel:       cancel,
		parts:        map[tp]*partition.Partition{},
		fetchers:     map[int32]*fetcher{},
		ckpt:         ckpt,
		alterFailing: map[tp]bool{},
		isrKick:      make(chan struct{}, 1),
	}, nil
}

// Start follows the metadata (reconciling at every change), checks the
// ISRs of led partitions and checkpoints high watermarks, until Close.
func (m *Manager) Start() {
	m.wg.Add(3)
	go func() { defer m.wg.Done(); m.watchMetadata() }()
	go func() { defer m.wg.Done(); m.isrLoop() }()
	go func() { defer m.wg.Done(); m.checkpointLoop() }()
}

// Close stops the fetchers and loops, waits for them, and writes a last
// high watermark checkpoint. The partitions stay open (their logs belong
// to the store); nothing more is applied to them.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	for _, f := range m.fetchers {
		f.stop()
	}
	m.fetchers = map[int32]*fetcher{}
	m.mu.Unlock()
	return m.checkpoint()
}

// Partition returns this node's replica of topic/index, or nil if it holds
// none. Its role says whether it may serve a request.
func (m *Manager) Partition(topic string, index int32) *partition.Partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.parts[tp{topic, index}]
}

// MaxProducerID is the largest producer id in any local log, or -1.
func (m *Manager) MaxProducerID() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := int64(-1)
	for _, p := range m.parts {
		out = max(out, p.MaxProducerID())
	}
	return out
}

func (m *Manager) watchMetadata() {
	for {
		ch := m.ctrl.Changed()
		m.Reconcile()
		select {
		case <-ch:
		case <-m.ctx.Done():
			return
		}
	}
}

// Reconcile applies the newest metadata to the local partitions now: for
// every partition this node is a replica of, it opens the log and becomes
// leader (at the metadata's leader epoch) or follower (of the metadata's
// leader, fetching from it); partitions it no longer replicates stop. The
// server calls it after creating a topic, so that the next request finds
// the partition without waiting for the metadata watcher.
func (m *Manager) Reconcile() {
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	snap := m.ctrl.Snapshot()
	m.deleteGone(snap)
	now := time.Now()
	self := m.cfg.NodeID
	seen := map[tp]bool{}
	follow := map[int32]map[tp]*partition.Partition{} // leader -> partitions fetched from it
	urgent := map[int32]bool{}                        // leaders with newly followed partitions

	names := make([]string, 0, len(snap.Topics))
	for name := range snap.Topics {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := snap.Topics[name]
		for _, st := range t.Partitions {
			if !st.IsReplica(self) {
				continue
			}
			k := tp{name, st.Index}
			part, err := m.open(k)
			if err != nil {
				m.log.Error("cannot open a partition this node replicates; it stays offline here until the next metadata change", "partition", k.String(), "err", err)
				continue
			}
			seen[k] = true
			if st.Leader == self {
				if latest := part.Log().LatestEpoch(); st.LeaderEpoch < latest {
					m.log.Error("the metadata makes this node leader at an epoch below its log's latest; appends will fail", "partition", k.String(), "leader_epoch", st.LeaderEpoch, "log_epoch", latest)
				}
				if part.BecomeLeader(st, t.Config.MinInsyncReplicas, now) {
					m.log.Info("became leader", "partition", k.String(), "leader_epoch", st.LeaderEpoch, "isr", st.ISR, "log_end", part.Log().EndOffset())
				}
				continue
			}
			if part.BecomeFollower(st) {
				m.log.Info("became follower", "partition", k.String(), "leader", st.Leader, "leader_epoch", st.LeaderEpoch, "log_end", part.Log().EndOffset(), "high_watermark", part.HighWatermark())
				if st.Leader != metadata.NoLeader {
					urgent[st.Leader] = true
				}
				if m.cfg.Bugs.HWTruncation {
					m.truncateToHW(k, part, st)
				}
			}
			if st.Leader != metadata.NoLeader {
				if follow[st.Leader] == nil {
					follow[st.Leader] = map[tp]*partition.Partition{}
				}
				follow[st.Leader][k] = part
			}
		}
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return // Close stops the fetchers; start none after it
	}
	for k, part := range m.parts {
		if !seen[k] && part.Role() != partition.Stopped {
			part.Stop()
			m.log.Info("stopped replicating", "partition", k.String())
		}
	}
	for leader, f := range m.fetchers {
		if len(follow[leader]) == 0 {
			f.stop()
			delete(m.fetchers, leader)
		}
	}
	for leader, parts := range follow {
		f := m.fetchers[leader]
		if f == nil {
			f = m.startFetcher(leader)
			m.fetchers[leader] = f
		}
		f.assign(parts, urgent[leader])
	}
	m.mu.Unlock()
}

// truncateToHW is --bug hw-truncation: on becoming follower, truncate to
// the local high watermark (the checkpointed one after a restart), as
// Kafka did before KIP-101, and fetch from there with no epoch check.
func (m *Manager) truncateToHW(k tp, part *partition.Partition, st metadata.Partition) {
	hw, leo := part.HighWatermark(), part.Log().EndOffset()
	if err := part.TruncateFollower(st.Leader, st.LeaderEpoch, hw, true); err != nil {
		m.log.Error("bug hw-truncation: truncating to the high watermark failed", "partition", k.String(), "err", err)
		return
	}
	if hw < leo {
		m.log.Warn("bug hw-truncation: truncated a follower to its own high watermark", "partition", k.String(), "high_watermark", hw, "dropped_from", hw, "dropped_to", leo-1)
	}
}

// open returns the partition, opening its log (and replica state) the
// first time.
func (m *Manager) open(k tp) (*partition.Partition, error) {
	m.mu.Lock()
	part := m.parts[k]
	hw := m.ckpt[k]
	m.mu.Unlock()
	if part != nil {
		return part, nil
	}
	log, err := m.cfg.Store.Partition(k.topic, k.index, true)
	if err != nil {
		return nil, err
	}
	part, err = partition.Open(partition.Config{
		Topic:          k.topic,
		Index:          k.index,
		Self:           m.cfg.NodeID,
		Log:            log,
		HighWatermark:  hw,
		StaleLeaderBug: m.cfg.Bugs.StaleLeader,
		ISRHint:        m.kickISR,
	})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.parts[k] = part
	delete(m.ckpt, k)
	m.mu.Unlock()
	return part, nil
}

// peerAddr is where this node reaches broker id's Kafka listener.
func (m *Manager) peerAddr(id int32) (string, error) {
	if a, ok := m.cfg.PeerKafkaAddrs[id]; ok {
		return a, nil
	}
	b, ok := m.ctrl.Snapshot().Brokers[id]
	if !ok {
		return "", fmt.Errorf("broker %d is not registered and has no peer address", id)
	}
	return net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))), nil
}

func (m *Manager) kickISR() {
	select {
	case m.isrKick <- struct{}{}:
	default:
	}
}

// isrInterval is how often led partitions are checked for lagging
// followers: half the lag limit, as Kafka does, but at least once a second
// so that expansions missed by a hint are not late either.
func (m *Manager) isrInterval() time.Duration {
	return min(max(m.cfg.ReplicaLagTimeMax/2, 10*time.Millisecond), time.Second)
}

// isrLoop proposes ISR changes for the partitions this node leads, on a
// ticker (shrinks) and when a follower fetch hints that one may join.
func (m *Manager) isrLoop() {
	t := time.NewTicker(m.isrInterval())
	defer t.Stop()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		case <-m.isrKick:
		}
		snap := m.ctrl.Snapshot()
		mayJoin := func(id int32) bool { b, ok := snap.Brokers[id]; return ok && !b.Fenced }
		m.mu.Lock()
		parts := make([]*partition.Partition, 0, len(m.parts))
		for _, p := range m.parts {
			parts = append(parts, p)
		}
		m.mu.Unlock()
		now := time.Now()
		for _, p := range parts {
			c, ok := p.ProposeISR(now, m.cfg.ReplicaLagTimeMax, mayJoin)
			if !ok {
				continue
			}
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				m.alterISR(p, c)
			}()
		}
	}
}

// alterISR sends one ISR change to the controller and applies the answer.
func (m *Manager) alterISR(p *partition.Partition, c partition.ISRChange) {
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.ControllerTimeout)
	defer cancel()
	k := tp{c.Topic, c.Index}
	committed, err := m.ctrl.AlterISR(ctx, c.Topic, c.Index, c.LeaderEpoch, c.PartitionEpoch, slices.Clone(c.ISR))
	p.CompleteISRChange(c, committed, err)
	// A leader cut off from the controller proposes the same change at
	// every check: say so once per outage, not every time.
	m.mu.Lock()
	first := !m.alterFailing[k]
	if err != nil {
		m.alterFailing[k] = true
	} else {
		delete(m.alterFailing, k)
	}
	m.mu.Unlock()
	level := slog.LevelWarn
	if !first {
		level = slog.LevelDebug
	}
	bug := ""
	if m.cfg.Bugs.StaleLeader && !errors.Is(err, metadata.ErrStalePartitionEpoch) && !errors.Is(err, metadata.ErrInvalidISR) {
		bug = "; bug stale-leader: applied it locally anyway"
	}
	switch {
	case err == nil:
		m.log.Info("ISR changed", "partition", k.String(), "isr", committed.ISR, "left", c.Shrink, "joined", c.Expand, "leader_epoch", c.LeaderEpoch, "partition_epoch", committed.PartitionEpoch)
	case errors.Is(err, metadata.ErrFencedLeaderEpoch):
		m.log.Log(m.ctx, level, "ISR change refused: this leader was deposed; it takes no more writes"+bug, "partition", k.String(), "proposed", c.ISR, "leader_epoch", c.LeaderEpoch, "err", err)
	default:
		m.log.Log(m.ctx, level, "ISR change not committed; the high watermark keeps counting the old ISR"+bug, "partition", k.String(), "proposed", c.ISR, "err", err)
	}
}

func (m *Manager) checkpointLoop() {
	if m.cfg.CheckpointPath == "" {
		return
	}
	t := time.NewTicker(m.cfg.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			if err := m.checkpoint(); err != nil {
				m.log.Error("writing the high watermark checkpoint failed", "err", err)
			}
		}
	}
}

// checkpoint writes every partition's high watermark (and keeps those read
// at start for partitions not opened since).
func (m *Manager) checkpoint() error {
	if m.cfg.CheckpointPath == "" {
		return nil
	}
	m.mu.Lock()
	hws := make(map[tp]int64, len(m.parts)+len(m.ckpt))
	for k, hw := range m.ckpt {
		hws[k] = hw
	}
	for k, p := range m.parts {
		hws[k] = p.HighWatermark()
	}
	m.mu.Unlock()
	return writeCheckpoint(m.cfg.CheckpointPath, hws)
}

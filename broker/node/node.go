package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/garantia/garantia/broker/group"
	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/partition"
	"github.com/garantia/garantia/broker/replication"
	"github.com/garantia/garantia/broker/server"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
)

// ErrConfig: the configuration is invalid; nothing was started.
var ErrConfig = errors.New("broker config")

// MaxNodeID is the largest node id: producer ids are spread over the
// cluster by node id (see producerIDStride).
const MaxNodeID = producerIDStride - 1

// Config is one node's configuration; the fields mirror the flags of
// `garantia broker`. Zero durations and counts mean the documented
// defaults.
type Config struct {
	// ID is the node id (--id), 0 to MaxNodeID.
	ID int32
	// Listen is the HOST:PORT to listen on (--listen); port 0 picks one,
	// and Addr tells which.
	Listen string
	// Advertise is the HOST:PORT Metadata gives clients (--advertise);
	// empty means the address actually listened on. It registers this
	// node in the single-node controller; an injected Controller has its
	// own record of the advertised address.
	Advertise string
	// DataDir holds the logs, the producer id state and the high
	// watermark checkpoint (--data-dir). Required unless Store is set.
	DataDir string
	// Fsync and FsyncInterval are the storage fsync policy (--fsync,
	// --fsync-interval); "" means never, Kafka's default.
	Fsync         storage.FsyncPolicy
	FsyncInterval time.Duration
	// SegmentBytes is the storage segment size; 0 is storage's default.
	SegmentBytes int64
	// AutoCreateTopics lets Metadata create topics (--auto-create-topics)
	// with Partitions partitions (--partitions, at least 1) and
	// DefaultReplicationFactor replicas.
	AutoCreateTopics bool
	Partitions       int32
	// MaxFrameBytes bounds a request frame; 0 means 100 MiB.
	MaxFrameBytes int
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Store, when set, is used instead of opening DataDir (tests run on
	// storage.NewMemStore). The node closes it on shutdown.
	Store storage.Store

	// Controller is the cluster metadata: brokers, and every partition's
	// replicas, leader, leader epoch and ISR (the Raft controller, or a
	// shared metadata.Memory in tests). The node follows it and asks it for
	// topic creation and ISR changes; its creator closes it after the node
	// stops. Nil makes the node a cluster of one: an in-memory controller
	// with this node as the only broker, in which the topics found in the
	// data directory are registered again at start.
	Controller metadata.Controller
	// PeerKafkaAddrs is how this node reaches the other brokers' Kafka
	// listeners, by node id, to fetch from them as a follower (may be
	// proxies). A broker missing here is reached at its advertised address
	// from the metadata.
	PeerKafkaAddrs map[int32]string
	// DefaultReplicationFactor is the replication factor of auto-created
	// topics and of CreateTopics asking for the default
	// (--default-replication-factor); 0 means 1.
	DefaultReplicationFactor int16
	// MinInsyncReplicas is the min.insync.replicas of topics created
	// without one (--min-insync-replicas); 0 means 1.
	MinInsyncReplicas int32
	// UncleanLeaderElection is the unclean.leader.election.enable of
	// topics created without one (--unclean-leader-election).
	UncleanLeaderElection bool
	// ReplicaLagTimeMax: a follower not caught up for longer leaves the
	// ISR (--replica-lag-time-max); 0 means 10s. It must exceed
	// ReplicaFetchMaxWait.
	ReplicaLagTimeMax time.Duration
	// ReplicaFetchMaxWait is how long a follower's fetch waits at the
	// leader for new records (--replica-fetch-max-wait); 0 means 500ms.
	ReplicaFetchMaxWait time.Duration
	// RequestTimeout bounds a request's wait on the broker: an acks=all
	// produce waits at most the smaller of it and the client's timeout, a
	// topic creation at most it (--request-timeout); 0 means 30s. (An ISR
	// change waits at most replication.DefaultControllerTimeout and is
	// proposed again at the next check.)
	RequestTimeout time.Duration
	// HWCheckpointInterval is how often high watermarks are checkpointed
	// to the data directory (--hw-checkpoint-interval); 0 means 5s.
	HWCheckpointInterval time.Duration
	// Bugs are the enabled bug switches (--bug).
	Bugs replication.Bugs

	// OffsetsTopicPartitions is the partition count of the offsets topic
	// (__consumer_offsets) when this node creates it
	// (--offsets-topic-partitions); 0 means
	// server.DefaultOffsetsTopicPartitions.
	OffsetsTopicPartitions int32
	// OffsetsTopicReplicationFactor is its replication factor
	// (--offsets-topic-replication-factor); 0 means 3, or the cluster's
	// size (this node and its peers) when smaller, as Kafka's
	// offsets.topic.replication.factor of 3 would be on a test cluster.
	OffsetsTopicReplicationFactor int16
	// GroupMinSessionTimeout and GroupMaxSessionTimeout bound a group
	// member's session timeout (--group-min-session-timeout,
	// --group-max-session-timeout); 0 means group's defaults (Kafka's 6s
	// and 30m).
	GroupMinSessionTimeout, GroupMaxSessionTimeout time.Duration
	// GroupInitialRebalanceDelay is how long the first rebalance of an
	// empty group waits for more members (--group-initial-rebalance-delay);
	// 0 means Kafka's 3s, a negative value none.
	GroupInitialRebalanceDelay time.Duration
	// OffsetsCommitTimeout bounds the wait of a write to the offsets topic
	// for its commit (--offsets-commit-timeout); 0 means Kafka's 5s.
	OffsetsCommitTimeout time.Duration
}

func (c Config) validate() error {
	switch {
	case c.ID < 0 || c.ID > MaxNodeID:
		return fmt.Errorf("node id %d: must be 0 to %d", c.ID, MaxNodeID)
	case c.Listen == "":
		return errors.New("listen address is empty")
	case c.DataDir == "" && c.Store == nil:
		return errors.New("data directory is empty")
	case c.Partitions < 1:
		return fmt.Errorf("partitions %d: auto-created topics need at least 1", c.Partitions)
	case c.MaxFrameBytes < 0:
		return fmt.Errorf("max frame bytes %d is negative", c.MaxFrameBytes)
	case c.DefaultReplicationFactor < 0:
		return fmt.Errorf("default replication factor %d is negative", c.DefaultReplicationFactor)
	case c.MinInsyncReplicas < 0:
		return fmt.Errorf("min insync replicas %d is negative", c.MinInsyncReplicas)
	case c.OffsetsTopicPartitions < 0 || c.OffsetsTopicReplicationFactor < 0:
		return fmt.Errorf("offsets topic partitions %d and replication factor %d: must not be negative", c.OffsetsTopicPartitions, c.OffsetsTopicReplicationFactor)
	case c.GroupMinSessionTimeout < 0, c.GroupMaxSessionTimeout < 0, c.OffsetsCommitTimeout < 0:
		return fmt.Errorf("negative group timeout (min session %v, max session %v, offsets commit %v)", c.GroupMinSessionTimeout, c.GroupMaxSessionTimeout, c.OffsetsCommitTimeout)
	case c.ReplicaLagTimeMax < 0, c.ReplicaFetchMaxWait < 0, c.RequestTimeout < 0, c.HWCheckpointInterval < 0:
		return fmt.Errorf("negative duration (replica lag time max %v, replica fetch max wait %v, request timeout %v, HW checkpoint interval %v)",
			c.ReplicaLagTimeMax, c.ReplicaFetchMaxWait, c.RequestTimeout, c.HWCheckpointInterval)
	}
	lag, wait := c.ReplicaLagTimeMax, c.ReplicaFetchMaxWait
	if lag == 0 {
		lag = replication.DefaultReplicaLagTimeMax
	}
	if wait == 0 {
		wait = replication.DefaultFetchMaxWait
	}
	if lag <= wait {
		return fmt.Errorf("replica lag time max %v must exceed the replica fetch max wait %v, or caught-up idle followers would leave the ISR", lag, wait)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen address %q: %w", c.Listen, err)
	}
	if c.Advertise != "" {
		if _, _, err := splitAdvertise(c.Advertise); err != nil {
			return err
		}
	}
	for id, addr := range c.PeerKafkaAddrs {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("peer %d: its Kafka address %q: %w", id, addr, err)
		}
	}
	return nil
}

func splitAdvertise(hostport string) (string, int32, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("advertise address %q: %w", hostport, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || host == "" {
		return "", 0, fmt.Errorf("advertise address %q: want HOST:PORT with a port in 1..65535", hostport)
	}
	return host, int32(p), nil
}

// Node is a running broker node.
type Node struct {
	addr     net.Addr
	replicas *replication.Manager
	groups   *group.Coordinator
	ctrl     metadata.Controller
	done     chan struct{}
	err      error
}

// Addr is the address the node listens on.
func (n *Node) Addr() net.Addr { return n.addr }

// Controller is the metadata the node follows (the injected one, or its
// single-node controller).
func (n *Node) Controller() metadata.Controller { return n.ctrl }

// Replica returns this node's replica of topic/index, or nil if it holds
// none: its log and replication state, for tests and tools that look
// inside a running node.
func (n *Node) Replica(topic string, index int32) *partition.Partition {
	return n.replicas.Partition(topic, index)
}

// Done is closed once the node has stopped: listener and connections
// closed, replication stopped, every goroutine exited, storage closed.
func (n *Node) Done() <-chan struct{} { return n.done }

// Err is why the node stopped (nil after a shutdown by its context); call
// it after Done is closed.
func (n *Node) Err() error { return n.err }

// Wait blocks until the node stops and returns Err.
func (n *Node) Wait() error {
	<-n.done
	return n.err
}

// Start opens storage, listens, applies the metadata (opening and taking
// the role of every partition this node replicates) and serves until ctx
// ends. It returns once the node is listening (the log line "broker
// listening" is written then); startup failures are returned and leave
// nothing running.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.ID)

	store := cfg.Store
	if store == nil {
		s, err := storage.Open(cfg.DataDir, storage.Options{
			Fsync:         cfg.Fsync,
			FsyncInterval: cfg.FsyncInterval,
			SegmentBytes:  cfg.SegmentBytes,
			AckBeforeSync: cfg.Bugs.FsyncAfterAck,
			Logger:        logger.With("component", "storage"),
		})
		if err != nil {
			return nil, fmt.Errorf("broker: opening storage in %s: %w", cfg.DataDir, err)
		}
		store = s
	}
	var rm *replication.Manager
	fail := func(err error) (*Node, error) {
		if rm != nil {
			if cerr := rm.Close(); cerr != nil {
				logger.Error("stopping replication after a failed start", "err", cerr)
			}
		}
		if cerr := store.Close(); cerr != nil {
			logger.Error("closing storage after a failed start", "err", cerr)
		}
		return nil, err
	}

	localPIDs, err := openProducerIDs(cfg.DataDir)
	if err != nil {
		return fail(fmt.Errorf("broker: %w", err))
	}
	pids := &clusterProducerIDs{local: localPIDs, node: int64(cfg.ID)}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fail(fmt.Errorf("broker: listening on %s: %w", cfg.Listen, err))
	}
	advertise := cfg.Advertise
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	host, port, err := splitAdvertise(advertise)
	if err != nil {
		ln.Close()
		return fail(fmt.Errorf("broker: %w", err))
	}
	topicDefaults := metadata.TopicConfig{MinInsyncReplicas: max(cfg.MinInsyncReplicas, 1), UncleanLeaderElection: cfg.UncleanLeaderElection}
	ctrl := cfg.Controller
	if ctrl == nil {
		ctrl, err = singleNodeController(metadata.Broker{ID: cfg.ID, Host: host, Port: port}, store, topicDefaults)
		if err != nil {
			ln.Close()
			return fail(fmt.Errorf("broker: %w", err))
		}
	}
	checkpoint := ""
	if cfg.DataDir != "" && cfg.Store == nil {
		checkpoint = filepath.Join(cfg.DataDir, replication.CheckpointFile)
	}
	rm, err = replication.New(replication.Config{
		NodeID:             cfg.ID,
		Store:              store,
		Controller:         ctrl,
		PeerKafkaAddrs:     cfg.PeerKafkaAddrs,
		ReplicaLagTimeMax:  cfg.ReplicaLagTimeMax,
		FetchMaxWait:       cfg.ReplicaFetchMaxWait,
		CheckpointPath:     checkpoint,
		CheckpointInterval: cfg.HWCheckpointInterval,
		Bugs:               cfg.Bugs,
		Logger:             logger,
	})
	if err != nil {
		ln.Close()
		return fail(fmt.Errorf("broker: %w", err))
	}
	// Take every role before serving, so that a restarted node answers
	// for its partitions at once.
	rm.Reconcile()
	pids.atLeast(rm.MaxProducerID())
	offsetsRF := cfg.OffsetsTopicReplicationFactor
	if offsetsRF == 0 {
		offsetsRF = int16(min(3, 1+len(cfg.PeerKafkaAddrs)))
	}
	var sessionActive func() bool
	if l, ok := ctrl.(server.SessionLease); ok && !cfg.Bugs.StaleLeader {
		sessionActive = l.SessionActive
	}
	groups, err := group.New(group.Config{
		NodeID:                cfg.ID,
		Metadata:              ctrl,
		Replicas:              rm,
		SessionActive:         sessionActive,
		MinSessionTimeout:     cfg.GroupMinSessionTimeout,
		MaxSessionTimeout:     cfg.GroupMaxSessionTimeout,
		InitialRebalanceDelay: cfg.GroupInitialRebalanceDelay,
		CommitTimeout:         cfg.OffsetsCommitTimeout,
		Logger:                logger,
		OffsetsEarlyAckBug:    cfg.Bugs.OffsetsEarlyAck,
	})
	if err != nil {
		ln.Close()
		return fail(fmt.Errorf("broker: %w", err))
	}
	srv, err := server.New(server.Config{
		NodeID:                        cfg.ID,
		AutoCreateTopics:              cfg.AutoCreateTopics,
		DefaultPartitions:             cfg.Partitions,
		DefaultReplicationFactor:      max(cfg.DefaultReplicationFactor, 1),
		DefaultTopicConfig:            topicDefaults,
		RequestTimeout:                cfg.RequestTimeout,
		EarlyAckBug:                   cfg.Bugs.EarlyAck,
		StaleLeaderBug:                cfg.Bugs.StaleLeader,
		MaxFrameBytes:                 cfg.MaxFrameBytes,
		Groups:                        groups,
		OffsetsTopicPartitions:        cfg.OffsetsTopicPartitions,
		OffsetsTopicReplicationFactor: offsetsRF,
		BrokerSettings:                brokerSettings(cfg, topicDefaults, offsetsRF),
		Logger:                        logger,
	}, ctrl, rm, pids)
	if err != nil {
		ln.Close()
		return fail(fmt.Errorf("broker: %w", err))
	}
	rm.Start()
	groups.Start()

	maxFrame := cfg.MaxFrameBytes
	if maxFrame == 0 {
		maxFrame = wire.DefaultMaxFrameBytes
	}
	logger.Info("broker listening", "listen", ln.Addr().String(), "advertise", advertise,
		"data_dir", cfg.DataDir, "fsync", string(cfg.Fsync), "auto_create_topics", cfg.AutoCreateTopics,
		"partitions", cfg.Partitions, "max_frame_bytes", maxFrame, "single_node", cfg.Controller == nil,
		"default_replication_factor", max(cfg.DefaultReplicationFactor, 1), "min_insync_replicas", topicDefaults.MinInsyncReplicas,
		"unclean_leader_election", cfg.UncleanLeaderElection, "replica_lag_time_max", orDefault(cfg.ReplicaLagTimeMax, replication.DefaultReplicaLagTimeMax).String(),
		"bugs", cfg.Bugs.Names())

	n := &Node{addr: ln.Addr(), replicas: rm, groups: groups, ctrl: ctrl, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		serveErr := srv.Serve(ctx, ln)
		groups.Close()
		rmErr := rm.Close()
		if rmErr != nil {
			rmErr = fmt.Errorf("broker: stopping replication: %w", rmErr)
		}
		if cfg.Controller == nil {
			ctrl.Close()
		}
		closeErr := store.Close()
		if closeErr != nil {
			closeErr = fmt.Errorf("broker: closing storage: %w", closeErr)
		}
		n.err = errors.Join(serveErr, rmErr, closeErr)
		if n.err != nil {
			logger.Error("broker stopped", "err", n.err)
		} else {
			logger.Info("broker stopped")
		}
	}()
	return n, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// brokerSettings are this node's settings under Kafka's names, for
// DescribeConfigs.
func brokerSettings(cfg Config, topic metadata.TopicConfig, offsetsRF int16) map[string]string {
	ms := func(d, def time.Duration) string { return strconv.FormatInt(orDefault(d, def).Milliseconds(), 10) }
	segment := cfg.SegmentBytes
	if segment == 0 {
		segment = storage.DefaultSegmentBytes
	}
	fsync := cfg.Fsync
	if fsync == "" {
		fsync = storage.FsyncNever
	}
	offsetsParts := cfg.OffsetsTopicPartitions
	if offsetsParts == 0 {
		offsetsParts = server.DefaultOffsetsTopicPartitions
	}
	delay := orDefault(cfg.GroupInitialRebalanceDelay, group.DefaultInitialRebalanceDelay)
	settings := map[string]string{
		"broker.id":                        strconv.Itoa(int(cfg.ID)),
		"auto.create.topics.enable":        strconv.FormatBool(cfg.AutoCreateTopics),
		"num.partitions":                   strconv.Itoa(int(cfg.Partitions)),
		"default.replication.factor":       strconv.Itoa(int(max(cfg.DefaultReplicationFactor, 1))),
		"min.insync.replicas":              strconv.Itoa(int(topic.MinInsyncReplicas)),
		"unclean.leader.election.enable":   strconv.FormatBool(topic.UncleanLeaderElection),
		"replica.lag.time.max.ms":          ms(cfg.ReplicaLagTimeMax, replication.DefaultReplicaLagTimeMax),
		"replica.fetch.wait.max.ms":        ms(cfg.ReplicaFetchMaxWait, replication.DefaultFetchMaxWait),
		"request.timeout.ms":               ms(cfg.RequestTimeout, server.DefaultRequestTimeout),
		"log.segment.bytes":                strconv.FormatInt(segment, 10),
		"log.retention.ms":                 "-1",
		"offsets.topic.num.partitions":     strconv.Itoa(int(offsetsParts)),
		"offsets.topic.replication.factor": strconv.Itoa(int(offsetsRF)),
		"offsets.commit.timeout.ms":        ms(cfg.OffsetsCommitTimeout, group.DefaultCommitTimeout),
		"group.min.session.timeout.ms":     ms(cfg.GroupMinSessionTimeout, group.DefaultMinSessionTimeout),
		"group.max.session.timeout.ms":     ms(cfg.GroupMaxSessionTimeout, group.DefaultMaxSessionTimeout),
		"group.initial.rebalance.delay.ms": strconv.FormatInt(max(delay, 0).Milliseconds(), 10),
		"socket.request.max.bytes":         strconv.Itoa(cmp.Or(cfg.MaxFrameBytes, wire.DefaultMaxFrameBytes)),
	}
	// The fsync policy under Kafka's names: every message, every
	// interval, or never (the kernel's business).
	switch fsync {
	case storage.FsyncAlways:
		settings["log.flush.interval.messages"] = "1"
	case storage.FsyncInterval:
		settings["log.flush.interval.ms"] = ms(cfg.FsyncInterval, storage.DefaultFsyncInterval)
		settings["log.flush.interval.messages"] = "9223372036854775807"
	default:
		settings["log.flush.interval.messages"] = "9223372036854775807"
	}
	return settings
}

// Run is Start followed by Wait.
func Run(ctx context.Context, cfg Config) error {
	n, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	return n.Wait()
}

// singleNodeController is the metadata of a cluster of one: this node is
// the only broker and the controller, and every topic in the store is
// registered again with its partition count, replication factor 1, and a
// leader epoch that continues its logs' (epochs never go back along a
// log).
func singleNodeController(self metadata.Broker, store storage.Store, topicDefaults metadata.TopicConfig) (*metadata.Memory, error) {
	m := metadata.NewMemory(self)
	for name, n := range store.Topics() {
		if err := m.CreateTopic(context.Background(), name, n, 1, topicDefaults); err != nil {
			return nil, fmt.Errorf("registering topic %q found in the data directory: %w", name, err)
		}
	}
	err := m.Update(func(s *metadata.Snapshot) (*metadata.Snapshot, error) {
		n := s.Clone()
		n.ControllerID = self.ID
		for name, t := range n.Topics {
			for i := range t.Partitions {
				log, err := store.Partition(name, int32(i), false)
				if errors.Is(err, storage.ErrUnknownPartition) {
					continue // a gap in the partition numbers: created empty
				}
				if err != nil {
					return nil, fmt.Errorf("opening %s-%d: %w", name, i, err)
				}
				t.Partitions[i].LeaderEpoch = max(log.LatestEpoch(), 0)
			}
		}
		n.Version++
		return n, nil
	})
	return m, err
}

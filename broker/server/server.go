package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/group"
	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/partition"
	"github.com/garantia/garantia/broker/wire"
)

// Config is what the server needs to know about its node.
type Config struct {
	// NodeID is this broker's id in Metadata and in every replica list.
	NodeID int32
	// ClusterID is reported in Metadata; empty means "garantia".
	ClusterID string
	// AutoCreateTopics lets Metadata create unknown topics that the client
	// allows to be auto-created, with DefaultPartitions partitions.
	AutoCreateTopics bool
	// DefaultPartitions is the partition count of auto-created topics and
	// of CreateTopics requests that say -1; below 1 means 1.
	DefaultPartitions int32
	// DefaultReplicationFactor is the replication factor of auto-created
	// topics and of CreateTopics requests that say -1; below 1 means 1.
	DefaultReplicationFactor int16
	// DefaultTopicConfig is the min.insync.replicas and
	// unclean.leader.election.enable of topics whose creation does not set
	// them.
	DefaultTopicConfig metadata.TopicConfig
	// RequestTimeout bounds how long a request waits on the broker's side:
	// an acks=all produce waits at most the smaller of it and the client's
	// timeout; a controller call (CreateTopic) at most it. 0 means 30s.
	RequestTimeout time.Duration
	// EarlyAckBug is `--bug early-ack`: acks=all produces are answered
	// right after the leader's own append.
	EarlyAckBug bool
	// StaleLeaderBug is `--bug stale-leader`: a leader whose controller
	// session has lapsed keeps serving clients (see SessionLease), so that
	// the bug can show what a deposed leader does with them.
	StaleLeaderBug bool
	// MaxFrameBytes bounds one request; 0 means wire.DefaultMaxFrameBytes.
	MaxFrameBytes int
	// MaxInflightPerConn bounds requests read but not yet answered on one
	// connection; 0 means 64.
	MaxInflightPerConn int
	// Groups is the group coordinator answering the group APIs
	// (FindCoordinator finds it, JoinGroup through OffsetFetch go to it);
	// nil serves none of them (ApiVersions does not list them).
	Groups *group.Coordinator
	// OffsetsTopicPartitions and OffsetsTopicReplicationFactor are the
	// offsets topic's partition count and replication factor when this
	// node creates it (the first FindCoordinator of the cluster); below 1
	// means DefaultOffsetsTopicPartitions and 1. Its min.insync.replicas
	// is DefaultTopicConfig's, at most the replication factor.
	OffsetsTopicPartitions        int32
	OffsetsTopicReplicationFactor int16
	// BrokerSettings are this broker's settings under Kafka's names, as
	// DescribeConfigs reports them for the broker (read-only: they are
	// flags of `garantia broker`).
	BrokerSettings map[string]string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// DefaultOffsetsTopicPartitions is the offsets topic's partition count
// when Config does not say (Kafka's default is 50; a test cluster of a few
// nodes on a small machine has no use for that many).
const DefaultOffsetsTopicPartitions = 10

// DefaultRequestTimeout is Config.RequestTimeout's default (Kafka's
// request.timeout.ms).
const DefaultRequestTimeout = 30 * time.Second

// ProducerIDs hands out idempotent producer ids that are never reused,
// not even across restarts.
type ProducerIDs interface {
	// NextProducerID returns a fresh producer id.
	NextProducerID() (int64, error)
}

// Replicas is the set of partition replicas this node holds
// (replication.Manager implements it).
type Replicas interface {
	// Partition returns this node's replica of topic/index, or nil when it
	// holds none; its role says whether it may serve a request.
	Partition(topic string, index int32) *partition.Partition
	// Reconcile applies the newest metadata to the local replicas now,
	// so that a topic just created here is served at once.
	Reconcile()
}

// Server serves the Kafka protocol for one node.
type Server struct {
	cfg      Config
	log      *slog.Logger
	ctrl     metadata.Controller
	replicas Replicas
	pids     ProducerIDs
	counts   requestCounts
	// sync catches this node's metadata up with the controller when a
	// client names a topic, partition or leader epoch it does not know
	// yet (nil: the metadata is shared and never behind).
	sync *metadata.SyncGate
}

// requestCounts counts the requests a server answered, by API key, with
// followers' fetches apart from consumers': the traffic mix of a run, logged
// when the server stops.
type requestCounts struct {
	byKey        [maxCountedKey + 1]atomic.Int64
	replicaFetch atomic.Int64
}

// maxCountedKey bounds the API keys counted; larger ones are not ours.
const maxCountedKey = 100

func (c *requestCounts) add(key int16, replicaFetch bool) {
	if key >= 0 && key <= maxCountedKey {
		c.byKey[key].Add(1)
	}
	if replicaFetch {
		c.replicaFetch.Add(1)
	}
}

// logAttrs are the non-zero counts as log attributes named after the APIs
// ("Fetch" counts consumers' fetches, "ReplicaFetch" followers').
func (c *requestCounts) logAttrs() []any {
	var out []any
	for k := range c.byKey {
		n := c.byKey[k].Load()
		if k == int(kmsg.Fetch) {
			n -= c.replicaFetch.Load()
		}
		if n > 0 {
			out = append(out, kmsg.NameForKey(int16(k)), n)
		}
	}
	if n := c.replicaFetch.Load(); n > 0 {
		out = append(out, "ReplicaFetch", n)
	}
	return out
}

// New makes a server that answers from the cluster metadata in ctrl and
// the local replicas.
func New(cfg Config, ctrl metadata.Controller, replicas Replicas, pids ProducerIDs) (*Server, error) {
	if ctrl == nil || replicas == nil {
		return nil, errors.New("server: a metadata controller and the replicas are required")
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = "garantia"
	}
	if cfg.DefaultPartitions < 1 {
		cfg.DefaultPartitions = 1
	}
	if cfg.DefaultReplicationFactor < 1 {
		cfg.DefaultReplicationFactor = 1
	}
	if cfg.DefaultTopicConfig.MinInsyncReplicas < 1 {
		cfg.DefaultTopicConfig.MinInsyncReplicas = 1
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = wire.DefaultMaxFrameBytes
	}
	if cfg.MaxInflightPerConn <= 0 {
		cfg.MaxInflightPerConn = 64
	}
	if cfg.OffsetsTopicPartitions < 1 {
		cfg.OffsetsTopicPartitions = DefaultOffsetsTopicPartitions
	}
	if cfg.OffsetsTopicReplicationFactor < 1 {
		cfg.OffsetsTopicReplicationFactor = 1
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: logger, ctrl: ctrl, replicas: replicas, pids: pids, sync: metadata.NewSyncGate(ctrl)}, nil
}

// Serve accepts connections on ln until ctx ends, then closes ln and every
// connection and returns once all of its goroutines have exited. It returns
// nil after a shutdown by ctx, or the accept error that stopped it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	stopListener := context.AfterFunc(ctx, func() { ln.Close() })
	defer stopListener()

	var err error
	var tempDelay time.Duration
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(aerr, net.ErrClosed) {
				err = fmt.Errorf("server: listener %s closed: %w", ln.Addr(), aerr)
				break
			}
			// Out of file descriptors and the like: back off and keep
			// serving the connections we have, as net/http does.
			tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", aerr, "delay", tempDelay)
			select {
			case <-time.After(tempDelay):
			case <-ctx.Done():
			}
			continue
		}
		tempDelay = 0
		cc := s.newConn(ctx, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc.serve()
		}()
	}
	cancel()
	ln.Close()
	wg.Wait()
	s.log.Info("served requests", s.counts.logAttrs()...)
	return err
}

// SessionLease is implemented by a metadata.Controller that knows whether
// this broker's session with the controller is surely alive. A controller
// fences a broker whose heartbeats stop for its session timeout and moves
// its leaderships elsewhere; a broker cut off from the controller for that
// long must assume it was deposed, even though no new metadata reached it.
type SessionLease interface {
	// SessionActive reports false once the last heartbeat the controller
	// acknowledged was sent a session timeout ago or longer.
	SessionActive() bool
}

// clientLeaderOf is leaderOf for clients' produces, fetches and offset
// look-ups: a leader whose controller session has lapsed refuses them
// with NOT_LEADER_OR_FOLLOWER. Serving them would let a deposed leader,
// which has not heard of its successor, answer a consumer at an offset
// past its own log end with OFFSET_OUT_OF_RANGE (the consumer then resets
// to the log's start: a non-monotonic poll), or take acks=0/1 writes the
// new leader never sees. Followers' fetches still use leaderOf: they learn
// of the new leader from the metadata, and the leader's log is unchanged.
func (s *Server) clientLeaderOf(topic string, index int32) (*partition.Partition, metadata.Partition, error) {
	part, st, err := s.leaderOf(topic, index)
	if err != nil {
		return part, st, err
	}
	if l, ok := s.ctrl.(SessionLease); ok && !s.cfg.StaleLeaderBug && !l.SessionActive() {
		return nil, st, fmt.Errorf("%w: %s-%d: this node's controller session lapsed, so it may have been deposed", kerr.NotLeaderForPartition, topic, index)
	}
	return part, st, nil
}

// leaderOf returns the partition if this node leads it. Otherwise it
// returns the error the client should see: UNKNOWN_TOPIC_OR_PARTITION if
// the metadata has no such partition, else NOT_LEADER_OR_FOLLOWER, with
// the metadata's view of the partition (for the client's leader hint).
//
// A client that names a partition this node does not know learned of it
// from a broker whose metadata is further along (a topic created a moment
// ago): this node first catches up with the controller, so that it serves
// what the metadata says rather than refuse it (an acks=0 produce refused
// is lost). Likewise when the metadata makes this node leader but the
// replica manager has not taken the role yet.
func (s *Server) leaderOf(topic string, index int32) (*partition.Partition, metadata.Partition, error) {
	part, st, err := s.localLeaderOf(topic, index)
	if errors.Is(err, kerr.UnknownTopicOrPartition) && s.sync != nil {
		ctx, cancel := context.WithTimeout(context.Background(), min(time.Second, s.cfg.RequestTimeout))
		serr := s.sync.Sync(ctx)
		cancel()
		if serr == nil {
			part, st, err = s.localLeaderOf(topic, index)
		}
	}
	return part, st, err
}

func (s *Server) localLeaderOf(topic string, index int32) (*partition.Partition, metadata.Partition, error) {
	snap := s.ctrl.Snapshot()
	st, ok := snap.Partition(topic, index)
	if !ok {
		return nil, st, fmt.Errorf("%w: %s-%d", kerr.UnknownTopicOrPartition, topic, index)
	}
	part := s.replicas.Partition(topic, index)
	if st.Leader == s.cfg.NodeID && (part == nil || !part.IsLeader()) {
		// Applied, but the replica manager is a moment behind.
		s.replicas.Reconcile()
		part = s.replicas.Partition(topic, index)
	}
	if part == nil || !part.IsLeader() {
		return nil, st, fmt.Errorf("%w: %s-%d: the leader is broker %d at epoch %d", kerr.NotLeaderForPartition, topic, index, st.Leader, st.LeaderEpoch)
	}
	return part, st, nil
}

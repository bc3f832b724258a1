package controller

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/internal/atomicfile"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Controller is one node's part of the Raft controller quorum and its
// broker's window onto the cluster metadata (metadata.Controller).
type Controller struct {
	cfg         Config
	log         *slog.Logger
	rlog        *raftLogger
	incarnation uint64

	fsm      *fsm
	mux      *mux
	pool     clientPool
	raft     *raft.Raft
	bolt     *raftboltdb.BoltStore
	observer *raft.Observer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // heartbeat, leadership and observer loops

	registered     chan struct{}
	registeredOnce sync.Once

	// leaseStart is when the last heartbeat the controller acknowledged
	// was sent, in nanoseconds since started (monotonic, so wall-clock
	// steps do not move it); it starts at 0. The controller fences this
	// broker a session timeout after the last heartbeat it received,
	// which is no earlier than this.
	started    time.Time
	leaseStart atomic.Int64

	leaderMu sync.Mutex
	leader   *leaderState // non-nil while this node is the Raft leader

	closeOnce sync.Once
	closeErr  error
}

var (
	_ metadata.Controller  = (*Controller)(nil)
	_ metadata.Propagation = (*Controller)(nil)
)

// SessionActive implements server.SessionLease: it reports whether the
// last heartbeat the controller acknowledged was sent less than a session
// timeout ago. Once it reports false the controller may have fenced this
// broker and elected other leaders for its partitions, whether or not the
// metadata saying so has reached this node.
func (c *Controller) SessionActive() bool {
	return time.Since(c.started)-time.Duration(c.leaseStart.Load()) < c.cfg.SessionTimeout
}

// addrProvider resolves Raft server ids (decimal broker ids) to the address
// this node dials for them: a peer's entry in Config.Peers. The addresses in
// the Raft configuration are never dialed.
type addrProvider struct {
	self     int32
	selfAddr string
	peers    map[int32]string
}

func (p addrProvider) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	n, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return "", fmt.Errorf("controller: raft server id %q is not a broker id", id)
	}
	if int32(n) == p.self {
		return raft.ServerAddress(p.selfAddr), nil
	}
	addr, ok := p.peers[int32(n)]
	if !ok {
		return "", fmt.Errorf("controller: raft server %s is not among this node's peers", id)
	}
	return raft.ServerAddress(addr), nil
}

func serverID(id int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

// placeholderAddr is a voter's address in the Raft configuration: the same
// on every node, never dialed (see addrProvider).
func placeholderAddr(id int32) raft.ServerAddress {
	return raft.ServerAddress("broker-" + strconv.Itoa(int(id)))
}

// Start opens the Raft stores in cfg.DataDir/controller (bootstrapping the
// cluster with the voters self+Peers when they hold no state), listens on
// the controller port and joins the quorum. It returns at once; the broker
// registers in the background (see Registered). Close stops everything.
func Start(cfg Config) (*Controller, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		if cfg.Listener != nil {
			cfg.Listener.Close()
		}
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	log := cfg.Logger.With("node", cfg.NodeID)
	c := &Controller{
		cfg:        cfg,
		log:        log,
		rlog:       newRaftLogger(log, hclog.Info),
		fsm:        newFSM(log),
		pool:       clientPool{idle: map[int32][]*rpcConn{}},
		registered: make(chan struct{}),
		started:    time.Now(),
	}
	var cleanup []func()
	fail := func(err error) (*Controller, error) {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
		return nil, err
	}
	ln := cfg.Listener
	if ln != nil {
		cleanup = append(cleanup, func() { ln.Close() })
	}
	var buf [8]byte
	_, _ = rand.Read(buf[:])
	c.incarnation = binary.BigEndian.Uint64(buf[:]) | 1 // never 0, which means none

	dir := filepath.Join(cfg.DataDir, "controller")
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil { // new folders' entries survive a power cut
		return fail(fmt.Errorf("controller: creating %s: %w", dir, err))
	}
	dbPath := filepath.Join(dir, "raft.db")
	c.bolt, err = raftboltdb.New(raftboltdb.Options{
		Path: dbPath,
		// bbolt waits forever for the file lock by default; another process
		// on the same data directory is a configuration error to report.
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		return fail(fmt.Errorf("controller: opening the raft log %s (is another broker using this data directory?): %w", dbPath, err))
	}
	cleanup = append(cleanup, func() { c.bolt.Close() })
	logs, err := raft.NewLogCache(256, c.bolt)
	if err != nil {
		return fail(fmt.Errorf("controller: %w", err))
	}
	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, c.rlog.Named("snapshots"))
	if err != nil {
		return fail(fmt.Errorf("controller: opening the snapshot store in %s: %w", dir, err))
	}
	snaps := durableSnapshots{fileSnaps, filepath.Join(dir, "snapshots")}
	// bbolt creates raft.db and the snapshot store its folder, and neither
	// syncs the folder holding the new name: without this a power cut can
	// take the whole Raft state (term, vote, log) with it.
	if err := atomicfile.SyncDir(dir); err != nil {
		return fail(fmt.Errorf("controller: %w", err))
	}

	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fail(fmt.Errorf("controller: listening on %s: %w", cfg.Listen, err))
		}
		cleanup = append(cleanup, func() { ln.Close() })
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	cleanup = append(cleanup, c.cancel)
	c.mux = newMux(ln, log, c.serveConn)
	cleanup = append(cleanup, func() { c.mux.Close(); c.mux.wait() })
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		ServerAddressProvider: addrProvider{self: cfg.NodeID, selfAddr: ln.Addr().String(), peers: cfg.Peers},
		Logger:                c.rlog.Named("net"),
		Stream:                raftStream{c.mux},
		MaxPool:               3,
		// The I/O deadline of one Raft RPC: on loopback anything slower
		// than this is a partition, and a blackholed link must not hold a
		// replication goroutine for long.
		Timeout: max(2*cfg.ElectionTimeout, time.Second),
	})
	cleanup = append(cleanup, func() { trans.Close() })

	notify := make(chan bool, 1)
	rc := raft.DefaultConfig()
	rc.LocalID = serverID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.ElectionTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.ElectionTimeout / 2
	// Followers learn the commit index from the next AppendEntries; callers
	// wait for their own node to apply a change, so do not make them wait
	// raft's default 50ms.
	rc.CommitTimeout = 10 * time.Millisecond
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	if cfg.snapshotInterval > 0 {
		rc.SnapshotInterval = cfg.snapshotInterval
	}
	rc.NotifyCh = notify
	rc.Logger = c.rlog

	has, err := raft.HasExistingState(logs, c.bolt, snaps)
	if err != nil {
		return fail(fmt.Errorf("controller: reading the raft state in %s: %w", dir, err))
	}
	if !has {
		// Every node bootstraps with the same configuration (same ids,
		// same placeholder addresses), so their first log entries agree.
		ids := append([]int32{cfg.NodeID}, mapsKeys(cfg.Peers)...)
		slices.Sort(ids)
		var conf raft.Configuration
		for _, id := range ids {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: serverID(id), Address: placeholderAddr(id)})
		}
		if err := raft.BootstrapCluster(rc, logs, c.bolt, snaps, trans, conf); err != nil {
			return fail(fmt.Errorf("controller: bootstrapping the raft cluster in %s: %w", dir, err))
		}
		log.Info("controller: bootstrapped a new metadata log", "voters", ids)
	}
	c.raft, err = raft.NewRaft(rc, c.fsm, logs, c.bolt, snaps, trans)
	if err != nil {
		return fail(fmt.Errorf("controller: starting raft: %w", err))
	}

	c.checkVoters()

	obs := make(chan raft.Observation, 16)
	c.observer = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	c.raft.RegisterObserver(c.observer)

	c.wg.Add(3)
	go c.runLeadership(notify)
	go c.runObserver(obs)
	go c.runHeartbeats()
	log.Info("controller started", "controller_listen", ln.Addr().String(), "peers", cfg.Peers,
		"data_dir", dir, "session_timeout", cfg.SessionTimeout, "heartbeat_interval", cfg.HeartbeatInterval,
		"election_timeout", cfg.ElectionTimeout, "incarnation", c.incarnation)
	return c, nil
}

// durableSnapshots is raft's file snapshot store with the one fsync it
// lacks: it syncs each snapshot's files and, after renaming the snapshot's
// folder into place, the parent folder, but never the snapshot's own
// folder, so a power cut can keep the snapshot's name and lose the names
// of the files inside it. Close syncs that folder before raft compacts
// the log entries the snapshot replaces.
type durableSnapshots struct {
	raft.SnapshotStore
	dir string // the store's "snapshots" folder
}

func (s durableSnapshots) Create(version raft.SnapshotVersion, index, term uint64, conf raft.Configuration, confIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, conf, confIndex, trans)
	if err != nil {
		return nil, err
	}
	return durableSink{sink, s.dir}, nil
}

type durableSink struct {
	raft.SnapshotSink
	dir string
}

func (s durableSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Join(s.dir, s.ID()))
}

// checkVoters warns when the stored Raft configuration's voters are not
// this node and its configured peers: the flags changed since the cluster
// was bootstrapped, and some voter is unreachable or unknown.
func (c *Controller) checkVoters() {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		c.log.Warn("controller: reading the raft configuration", "err", err)
		return
	}
	want := append([]int32{c.cfg.NodeID}, mapsKeys(c.cfg.Peers)...)
	slices.Sort(want)
	var got []int32
	for _, s := range f.Configuration().Servers {
		n, err := strconv.ParseInt(string(s.ID), 10, 32)
		if err != nil {
			n = -1
		}
		got = append(got, int32(n))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		c.log.Warn("controller: the stored raft configuration's voters differ from this node and its peers",
			"stored_voters", got, "configured_voters", want)
	}
}

func mapsKeys(m map[int32]string) []int32 {
	keys := make([]int32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// Addr is the controller port's address.
func (c *Controller) Addr() net.Addr { return c.mux.ln.Addr() }

// LeaderID is the current controller's broker id as this node knows it, or
// -1 when it knows none.
func (c *Controller) LeaderID() int32 {
	_, id := c.raft.LeaderWithID()
	if id == "" {
		return -1
	}
	n, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return -1
	}
	return int32(n)
}

// IsController reports whether this node is the Raft leader.
func (c *Controller) IsController() bool { return c.raft.State() == raft.Leader }

// Registered is closed once this incarnation of the broker is registered
// and unfenced in metadata this node has applied.
func (c *Controller) Registered() <-chan struct{} { return c.registered }

// AppliedIndex is the index of the last metadata log entry this node has
// applied (Snapshot().Version is that of the last one that changed the
// metadata).
func (c *Controller) AppliedIndex() uint64 { return c.fsm.appliedIndex() }

// Snapshot implements metadata.Controller: the metadata this node has
// applied, with ControllerID set to the current Raft leader (-1 if none).
func (c *Controller) Snapshot() *metadata.Snapshot {
	s := c.fsm.snapshot()
	id := c.LeaderID()
	if s.ControllerID == id {
		return s
	}
	// A shallow copy: the maps are shared but immutable.
	cp := *s
	cp.ControllerID = id
	return &cp
}

// Changed implements metadata.Controller. It is also closed when the known
// controller changes (Snapshot's ControllerID).
func (c *Controller) Changed() <-chan struct{} { return c.fsm.changedCh() }

// CreateTopic implements metadata.Controller.
func (c *Controller) CreateTopic(ctx context.Context, name string, partitions int32, replicationFactor int16, cfg metadata.TopicConfig) error {
	resp, err := c.call(ctx, &request{Op: opCreateTopic, CreateTopic: &createTopicParams{
		Name: name, Partitions: partitions, ReplicationFactor: replicationFactor, Config: cfg,
	}})
	if err != nil {
		return fmt.Errorf("controller: %w", withContext(err, fmt.Sprintf("create topic %q", name)))
	}
	if err := c.waitApplied(ctx, resp.Index); err != nil {
		return fmt.Errorf("controller: topic %q was created at metadata index %d, but this node has not applied it yet: %w",
			name, resp.Index, err)
	}
	return nil
}

// AlterISR implements metadata.Controller.
func (c *Controller) AlterISR(ctx context.Context, topic string, index int32, leaderEpoch, partitionEpoch int32, isr []int32) (metadata.Partition, error) {
	resp, err := c.call(ctx, &request{Op: opAlterISR, AlterISR: &alterISRParams{
		Topic: topic, Index: index, LeaderEpoch: leaderEpoch, PartitionEpoch: partitionEpoch, ISR: slices.Clone(isr),
	}})
	if err != nil {
		return metadata.Partition{}, fmt.Errorf("controller: %w", withContext(err, fmt.Sprintf("alter ISR of %s-%d", topic, index)))
	}
	if resp.Partition == nil {
		return metadata.Partition{}, fmt.Errorf("controller: alter ISR of %s-%d: the controller answered without the partition state", topic, index)
	}
	if err := c.waitApplied(ctx, resp.Index); err != nil {
		return metadata.Partition{}, fmt.Errorf("controller: ISR of %s-%d was changed at metadata index %d, but this node has not applied it yet: %w",
			topic, index, resp.Index, err)
	}
	return *resp.Partition, nil
}

// DeleteTopic implements metadata.Controller.
func (c *Controller) DeleteTopic(ctx context.Context, name string) error {
	return c.change(ctx, &request{Op: opDeleteTopic, Topic: &topicParams{Name: name}}, fmt.Sprintf("delete topic %q", name))
}

// CreatePartitions implements metadata.Controller.
func (c *Controller) CreatePartitions(ctx context.Context, name string, count int32) error {
	return c.change(ctx, &request{Op: opCreatePartitions, Topic: &topicParams{Name: name, Partitions: count}},
		fmt.Sprintf("grow topic %q to %d partitions", name, count))
}

// change sends a metadata change to the controller and waits until this
// node has applied it.
func (c *Controller) change(ctx context.Context, req *request, what string) error {
	resp, err := c.call(ctx, req)
	if err != nil {
		return fmt.Errorf("controller: %w", withContext(err, what))
	}
	if err := c.waitApplied(ctx, resp.Index); err != nil {
		return fmt.Errorf("controller: %s was committed at metadata index %d, but this node has not applied it yet: %w", what, resp.Index, err)
	}
	return nil
}

// Sync implements metadata.Propagation: it asks the controller for the
// last metadata log index it applied and waits until this node has
// applied as much. Everything a client may have learned from any broker
// before the call is then in this node's Snapshot.
func (c *Controller) Sync(ctx context.Context) error {
	resp, err := c.call(ctx, &request{Op: opReadIndex})
	if err != nil {
		return fmt.Errorf("controller: %w", withContext(err, "read index"))
	}
	if err := c.waitApplied(ctx, resp.Index); err != nil {
		return fmt.Errorf("controller: the controller has applied the metadata log to index %d, this node only to %d: %w", resp.Index, c.fsm.appliedIndex(), err)
	}
	return nil
}

// WaitApplied implements metadata.Propagation: it asks each broker's
// node (over its controller port, where this node reaches it) to answer
// once it has applied the metadata log up to version, retrying until ctx
// ends.
func (c *Controller) WaitApplied(ctx context.Context, brokers []int32, version uint64) error {
	var errs []error
	for _, id := range brokers {
		if err := c.waitBrokerApplied(ctx, id, version); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) waitBrokerApplied(ctx context.Context, id int32, version uint64) error {
	if id == c.cfg.NodeID {
		return c.waitApplied(ctx, version)
	}
	backoff := 5 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		resp, err := c.callPeer(actx, id, &request{Op: opWaitApplied, Index: version})
		cancel()
		if err == nil {
			if err = resp.err(); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("controller: broker %d has not confirmed applying metadata index %d: %w (last error: %v)", id, version, ctx.Err(), err)
		case <-c.ctx.Done():
			return fmt.Errorf("controller: waiting for broker %d to apply metadata index %d: this node's controller is closed", id, version)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// withContext prefixes what was asked to errors of the RPC itself; a
// controller's refusal already says it.
func withContext(err error, what string) error {
	var re *RemoteError
	if errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// waitApplied waits until this node has applied entry index, ctx ends or
// the controller closes.
func (c *Controller) waitApplied(ctx context.Context, index uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer context.AfterFunc(c.ctx, cancel)()
	defer cancel()
	return c.fsm.waitApplied(ctx, index)
}

// call sends req to the controller, following leader changes, until it
// gets an answer that is not "not the controller" or ctx ends (then the
// error wraps metadata.ErrNoController). Metadata errors come back as
// *RemoteError.
//
// A change whose commit was indeterminate (the controller lost its
// leadership after proposing it) is retried, so it may apply twice; the
// metadata transitions refuse the second (ErrTopicExists,
// ErrStalePartitionEpoch), as Kafka does.
func (c *Controller) call(ctx context.Context, req *request) (*response, error) {
	const backoffMax = 200 * time.Millisecond
	backoff := 10 * time.Millisecond
	hint := int32(-1)
	var lastErr error
	for {
		if c.ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %s request: this node's controller is closed", metadata.ErrNoController, req.Op)
		}
		if err := ctx.Err(); err != nil {
			if lastErr == nil {
				lastErr = err
			}
			return nil, fmt.Errorf("%w: %s request gave up: %w (last error: %v)", metadata.ErrNoController, req.Op, err, lastErr)
		}
		target := hint
		if target < 0 {
			target = c.LeaderID()
		}
		hinted := hint >= 0
		hint = -1
		// A change of the known controller ends the backoff early.
		changed := c.fsm.changedCh()
		var resp *response
		var err error
		if target < 0 {
			err = errors.New("no controller known: an election is under way or this node is cut off from a quorum")
		} else {
			actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
			if target == c.cfg.NodeID {
				resp = c.handle(actx, req)
			} else {
				resp, err = c.callPeer(actx, target, req)
			}
			cancel()
		}
		if err == nil {
			if !resp.retryable() {
				if rerr := resp.err(); rerr != nil {
					return nil, rerr
				}
				return resp, nil
			}
			err = resp.err()
			// Follow the answering node's hint at once, but not twice in a
			// row: two nodes naming each other would spin.
			if resp.LeaderID >= 0 && resp.LeaderID != target && !hinted {
				hint = resp.LeaderID
				lastErr = err
				continue
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
		case <-changed:
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// runHeartbeats registers this broker and then heartbeats every
// HeartbeatInterval, for as long as the controller runs.
func (c *Controller) runHeartbeats() {
	defer c.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	failingSince := time.Time{}
	everOK := false
	for {
		changed := c.fsm.changedCh()
		c.checkRegistered()
		select {
		case <-c.ctx.Done():
			return
		case <-changed:
			continue
		case <-timer.C:
		}
		start := time.Now()
		err := c.heartbeat()
		switch {
		case err != nil && failingSince.IsZero():
			failingSince = start
			c.log.Debug("controller: heartbeat failed", "err", err)
		case err != nil && time.Since(failingSince) > c.cfg.SessionTimeout/2:
			// Before the first success this is a cluster starting up.
			level := slog.LevelInfo
			if everOK {
				level = slog.LevelWarn
			}
			c.log.Log(c.ctx, level, "controller: no heartbeat reached the controller",
				"for", time.Since(failingSince).Round(time.Millisecond), "err", err)
			failingSince = time.Now() // say it once per half session
		case err == nil && !failingSince.IsZero():
			if everOK {
				c.log.Info("controller: heartbeats reach the controller again", "after", time.Since(failingSince).Round(time.Millisecond))
			}
			failingSince = time.Time{}
		}
		if err == nil {
			c.leaseStart.Store(int64(start.Sub(c.started)))
		}
		everOK = everOK || err == nil
		timer.Reset(max(0, c.cfg.HeartbeatInterval-time.Since(start)))
	}
}

// heartbeat sends one heartbeat (registering this incarnation if needed),
// following leader changes for up to a third of the session timeout.
func (c *Controller) heartbeat() error {
	ctx, cancel := context.WithTimeout(c.ctx, max(c.cfg.HeartbeatInterval, c.cfg.SessionTimeout/3))
	defer cancel()
	_, err := c.call(ctx, &request{Op: opHeartbeat, Heartbeat: &heartbeatRequest{
		Broker:       c.cfg.Advertised,
		Incarnation:  c.incarnation,
		AppliedIndex: c.fsm.appliedIndex(),
	}})
	return err
}

func (c *Controller) checkRegistered() {
	st := c.fsm.broker(c.cfg.NodeID)
	if st.known && !st.broker.Fenced && st.incarnation == c.incarnation &&
		st.broker.Host == c.cfg.Advertised.Host && st.broker.Port == c.cfg.Advertised.Port {
		c.registeredOnce.Do(func() {
			c.log.Info("controller: broker registered and unfenced", "metadata_index", c.fsm.appliedIndex())
			close(c.registered)
		})
	}
}

// runObserver wakes Changed's watchers when the known controller changes.
func (c *Controller) runObserver(obs <-chan raft.Observation) {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case o := <-obs:
			if lo, ok := o.Data.(raft.LeaderObservation); ok {
				leader := string(lo.LeaderID)
				if leader == "" {
					leader = "none"
				}
				c.log.Info("controller: the controller is now", "leader", leader, "term", c.raft.CurrentTerm())
			}
			c.fsm.notifyChanged()
		}
	}
}

// Close implements metadata.Controller: it stops heartbeats and the
// controller loops, shuts Raft down and closes the transport, the listener,
// every connection and the stores. It does not hand the leadership over:
// Close is a crash as far as the other nodes can tell.
func (c *Controller) Close() error {
	c.closeOnce.Do(func() {
		c.rlog.quiet.Store(true)
		c.cancel()
		// Network first: a Raft replication goroutine blocked on a
		// blackholed link would hold Shutdown for a whole RPC timeout.
		muxErr := c.mux.Close()
		if errors.Is(muxErr, net.ErrClosed) {
			muxErr = nil
		}
		shutErr := c.raft.Shutdown().Error() // closes the transport too
		c.raft.DeregisterObserver(c.observer)
		c.wg.Wait()
		c.mux.wait()
		boltErr := c.bolt.Close()
		c.closeErr = errors.Join(muxErr, shutErr, boltErr)
		if c.closeErr != nil {
			c.closeErr = fmt.Errorf("controller: closing: %w", c.closeErr)
		}
		c.log.Info("controller stopped")
	})
	return c.closeErr
}

package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/garantia/garantia/db"
)

// Ports inside every container.
const (
	// KafkaPort serves the Kafka protocol.
	KafkaPort = 9092
	// ControllerPort serves the controller (Raft) in cluster mode.
	ControllerPort = 9093
)

// Where the node's folder is mounted inside its container.
const containerDataDir = "/data"

// teardownTimeout bounds Teardown, which runs on a context of its own so
// that it also works after Ctrl-C cancelled the run's.
const teardownTimeout = 60 * time.Second

// followerWait bounds how long a node's log copier may take to finish
// after its container stopped.
const followerWait = 5 * time.Second

// Options configure a docker cluster.
type Options struct {
	// Binary is the garantia executable whose code the nodes run; ""
	// means this process's own. A static linux binary for the engine's
	// architecture goes into the image as it is; any other is rebuilt
	// with CGO_ENABLED=0 from SourceDir (see EnsureImage).
	Binary string
	// SourceDir is the garantia module to build a static binary from when
	// Binary is not one; "" means $GARANTIA_SOURCE_DIR, else the first
	// folder from the working directory up holding the module's go.mod.
	SourceDir string
	// Nodes is how many containers to run, 1 to 240.
	Nodes int
	// Dir is the run's store folder; node nK keeps Dir/nK/data (mounted
	// at /data in its container) and Dir/nK/broker.log. It must exist.
	Dir string
	// RunID names the run in labels and in the names of its network and
	// containers (garantia-<run>, garantia-<run>-n1); "" draws one.
	RunID string
	// Fsync is passed as --fsync when not "".
	Fsync string
	// Bugs are passed as one --bug NAME each.
	Bugs []string
	// AutoCreateTopics passes --auto-create-topics.
	AutoCreateTopics bool
	// Partitions, when above 0, is passed as --partitions.
	Partitions int
	// Cluster, when not nil, runs the nodes as one replicating cluster:
	// each gets --controller-listen IP:9093, one --peer
	// ID=IP:9092,IP:9093 for every other node and the flags of Cluster,
	// and its Node.Controller is set. nil runs independent single-node
	// brokers (all the broker served before the cluster issue).
	Cluster *Cluster
	// ExtraArgs, when set, returns more broker flags for a node (the
	// replication settings: --min-insync-replicas and the like).
	ExtraArgs func(n db.Node) []string
	// ReadyTimeout bounds the wait of Setup and WaitReady for a node to
	// answer Kafka requests; 0 means db.DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StartWait bounds how long Start and Restart wait for a restarted
	// node to answer before returning anyway (see db.DB.Start); 0 means
	// db.DefaultStartWait.
	StartWait time.Duration
	// StopGrace is how long Teardown and Restart wait after SIGTERM
	// before SIGKILL; 0 means db.DefaultStopGrace, 2s (the engine counts
	// whole seconds).
	StopGrace time.Duration
	// Engine is the Docker engine; nil connects with NewEngine.
	Engine Engine
	// Firewall sets the iptables rules of partitions and packet loss; nil
	// means IPTables (nsenter and iptables-restore on this host).
	Firewall Firewall
	// Logf receives progress notes (an image being built, leftovers of
	// crashed runs removed); nil discards them.
	Logf func(format string, args ...any)
}

// Cluster holds the flags of cluster mode (see db.Cluster).
type Cluster = db.Cluster

// DB is a cluster of broker containers. It implements db.DB,
// db.Partitioner and db.PacketShaper.
type DB struct {
	opts  Options
	eng   Engine
	fw    Firewall
	run   string
	nodes []*node
	base  map[string]string // the labels of everything of this run
	// probe is db.Probe; unit tests replace it.
	probe func(ctx context.Context, addr string) error

	// life ends when Teardown starts, cutting short a wait for a node.
	life     context.Context
	stopLife context.CancelFunc

	mu        sync.Mutex // guards the fields below
	tornDown  bool
	image     string
	networkID string
	subnet    netip.Prefix
	cuts      map[link]bool      // partitions in force (Partition)
	shapes    map[link]db.Packet // packet faults in force (Shape)
	fwChecked bool
	fwErr     error
}

var (
	_ db.DB           = (*DB)(nil)
	_ db.Partitioner  = (*DB)(nil)
	_ db.PacketShaper = (*DB)(nil)
)

// link is a directed link: traffic from one node to another.
type link struct{ from, to string }

type node struct {
	db.Node
	ip      netip.Addr
	dataDir string
	logPath string

	// op serializes the operations on this node (start, kill, pause,
	// teardown), which each take several engine calls.
	op sync.Mutex
	// The fields below change under op.
	container string        // the container's id, once created
	pid       int           // its main process while running, for nsenter
	logF      *os.File      // broker.log, open from Setup to Teardown
	followed  chan struct{} // closed when the current log copier ended; nil once finishLog ran
	// logCopied is how many bytes of the container's output (all its
	// runs: the engine keeps them until the container is removed) are in
	// broker.log, counted when a run's copy is finished (finishLog).
	logCopied int64
	// The current run's copier: how many bytes it wrote after skipping
	// logCopied, and how to stop it (see finishLog).
	followBytes  *atomic.Int64
	followCancel context.CancelFunc
	logStart     int64 // where the current run's output begins in logPath
}

// New checks opts and prepares a cluster; nothing runs until Setup.
func New(opts Options) (*DB, error) {
	if opts.Nodes < 1 || opts.Nodes > maxNodes {
		return nil, fmt.Errorf("docker db: nodes: want 1 to %d, got %d", maxNodes, opts.Nodes)
	}
	if err := db.CheckRunDir("docker db", opts.Dir); err != nil {
		return nil, err
	}
	// Bind mounts need absolute paths.
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("docker db: Dir: %w", err)
	}
	opts.Dir = dir
	if opts.RunID == "" {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("docker db: draw a run id: %w", err)
		}
		opts.RunID = hex.EncodeToString(b[:])
	} else if !validRunID(opts.RunID) {
		return nil, fmt.Errorf("docker db: RunID %q: want 1 to 32 of a-z, 0-9 and '-'", opts.RunID)
	}
	proc, err := db.Process{
		Binary:       opts.Binary,
		ReadyTimeout: opts.ReadyTimeout,
		StartWait:    opts.StartWait,
		StopGrace:    opts.StopGrace,
	}.WithDefaults("docker db")
	if err != nil {
		return nil, err
	}
	opts.Binary, opts.ReadyTimeout, opts.StartWait, opts.StopGrace = proc.Binary, proc.ReadyTimeout, proc.StartWait, proc.StopGrace
	d := &DB{
		opts:   opts,
		eng:    opts.Engine,
		fw:     opts.Firewall,
		run:    opts.RunID,
		probe:  db.Probe,
		cuts:   map[link]bool{},
		shapes: map[link]db.Packet{},
		base: map[string]string{
			LabelManaged: "true",
			LabelRun:     opts.RunID,
			LabelHarness: harnessID(),
			LabelDir:     opts.Dir,
		},
	}
	if d.eng == nil {
		if d.eng, err = NewEngine(); err != nil {
			return nil, fmt.Errorf("docker db: %w", err)
		}
	}
	if d.fw == nil {
		d.fw = &IPTables{}
	}
	d.life, d.stopLife = context.WithCancel(context.Background())
	for _, f := range db.LayOut(opts.Dir, opts.Nodes) {
		d.nodes = append(d.nodes, &node{Node: f.Node, dataDir: f.DataDir, logPath: f.LogPath})
	}
	return d, nil
}

func validRunID(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// RunID is the run's id, the value of LabelRun on its network and
// containers.
func (d *DB) RunID() string { return d.run }

// NetworkName is the name of the run's network.
func (d *DB) NetworkName() string { return "garantia-" + d.run }

// ContainerName is the name of node's container.
func (d *DB) ContainerName(n db.Node) string { return "garantia-" + d.run + "-" + n.Name }

// Image is the tag of the node image; "" before Setup.
func (d *DB) Image() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.image
}

// Subnet is the run network's subnet; invalid before Setup.
func (d *DB) Subnet() netip.Prefix {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.subnet
}

// Nodes lists the nodes; their addresses are set by Setup.
func (d *DB) Nodes() []db.Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]db.Node, len(d.nodes))
	for i, n := range d.nodes {
		out[i] = n.Node
	}
	return out
}

// LogFiles maps each node's name to its broker.log in the run folder.
func (d *DB) LogFiles() map[string]string {
	m := make(map[string]string, len(d.nodes))
	for _, n := range d.nodes {
		m[n.Name] = n.logPath
	}
	return m
}

// Pid returns the host pid of node's broker while its container runs (0
// otherwise): the process whose network namespace nsenter enters.
func (d *DB) Pid(node db.Node) (int, error) {
	n, err := d.lookup(node)
	if err != nil {
		return 0, err
	}
	n.op.Lock()
	defer n.op.Unlock()
	return n.pid, nil
}

func (d *DB) logf(format string, args ...any) {
	if d.opts.Logf != nil {
		d.opts.Logf(format, args...)
	}
}

func (d *DB) lookup(want db.Node) (*node, error) {
	for _, n := range d.nodes {
		if n.ID == want.ID && (want.Name == "" || want.Name == n.Name) {
			return n, nil
		}
	}
	return nil, fmt.Errorf("%w: %q (id %d)", db.ErrUnknownNode, want.Name, want.ID)
}

func (d *DB) byName(name string) (*node, error) {
	for _, n := range d.nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", db.ErrUnknownNode, name)
}

func (d *DB) isTornDown() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tornDown
}

// Setup builds (or finds) the node image, creates the run's network and
// starts every node, returning once each answers Kafka requests. First it
// removes what crashed harnesses on this host left on the engine.
func (d *DB) Setup(ctx context.Context) error {
	if d.isTornDown() {
		return fmt.Errorf("docker db: setup: %w", db.ErrTornDown)
	}
	if _, err := d.eng.Version(ctx); err != nil {
		return fmt.Errorf("docker db: %w (DOCKER_HOST=%q); start a Docker engine, or use --db local", err, os.Getenv("DOCKER_HOST"))
	}
	if res, err := Clean(ctx, d.eng, CleanOptions{DeadOnly: true}); err != nil {
		d.logf("docker: removing leftovers of crashed runs failed (garantia clean retries): %v", err)
	} else if len(res.Removed) > 0 {
		d.logf("docker: removed %d leftover(s) of crashed runs: %s", len(res.Removed), res.Names())
	}
	image, err := EnsureImage(ctx, d.eng, d.opts.Binary, d.opts.SourceDir, d.opts.Logf)
	if err != nil {
		return fmt.Errorf("docker db: node image: %w", err)
	}
	d.mu.Lock()
	d.image = image
	d.mu.Unlock()

	netID, subnet, err := createNetwork(ctx, d.eng, d.NetworkName(), d.run, d.base)
	if err != nil {
		return fmt.Errorf("docker db: %w", err)
	}
	d.mu.Lock()
	d.networkID, d.subnet = netID, subnet
	for _, n := range d.nodes {
		n.ip = nodeIP(subnet, n.ID)
		n.Addr = netip.AddrPortFrom(n.ip, KafkaPort).String()
		if d.opts.Cluster != nil {
			n.Controller = netip.AddrPortFrom(n.ip, ControllerPort).String()
		}
	}
	d.mu.Unlock()

	for _, n := range d.nodes {
		if err := os.MkdirAll(n.dataDir, 0o755); err != nil {
			return fmt.Errorf("docker db: %s: %w", n.Name, err)
		}
		f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("docker db: %s: open log: %w", n.Name, err)
		}
		n.op.Lock()
		n.logF = f
		n.op.Unlock()
	}
	errs := make([]error, len(d.nodes))
	var wg sync.WaitGroup
	for i, n := range d.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.op.Lock()
			defer n.op.Unlock()
			errs[i] = d.startLocked(ctx, n, true)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// args is the broker's command line in n's container.
func (d *DB) args(n *node) []string {
	a := []string{"broker",
		"--id", strconv.Itoa(int(n.ID)),
		"--listen", netip.AddrPortFrom(netip.IPv4Unspecified(), KafkaPort).String(),
		"--advertise", n.Addr,
		"--data-dir", containerDataDir,
	}
	if c := d.opts.Cluster; c != nil {
		a = append(a, "--controller-listen", n.Controller)
		for _, p := range d.nodes {
			if p != n {
				a = append(a, db.PeerArgs(p.ID, p.Addr, p.Controller)...)
			}
		}
		a = append(a, c.Args()...)
	}
	a = append(a, db.BrokerFlags{
		Fsync:            d.opts.Fsync,
		AutoCreateTopics: d.opts.AutoCreateTopics,
		Partitions:       d.opts.Partitions,
		Bugs:             d.opts.Bugs,
	}.Args()...)
	if d.opts.ExtraArgs != nil {
		a = append(a, d.opts.ExtraArgs(n.Node)...)
	}
	return a
}

// labels returns the labels of n's container.
func (d *DB) labels(n *node) map[string]string {
	m := make(map[string]string, len(d.base)+1)
	for k, v := range d.base {
		m[k] = v
	}
	m[LabelNode] = n.Name
	return m
}

// create makes n's container. It runs as the harness's own user, so the
// files it writes in the bind-mounted run folder belong to whoever ran
// the test.
func (d *DB) create(ctx context.Context, n *node) error {
	d.mu.Lock()
	image := d.image
	d.mu.Unlock()
	id, err := d.eng.CreateContainer(ctx, ContainerSpec{
		Name:     d.ContainerName(n.Node),
		Hostname: n.Name,
		Image:    image,
		Cmd:      d.args(n),
		Labels:   d.labels(n),
		User:     fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		Network:  d.NetworkName(),
		IP:       n.ip,
		Binds:    []string{n.dataDir + ":" + containerDataDir},
	})
	if err != nil {
		return fmt.Errorf("create container %s: %w", d.ContainerName(n.Node), err)
	}
	n.container = id
	n.logCopied = 0
	return nil
}

// startLocked starts n's container (creating it the first time) and waits
// until the broker answers; n.op is held. A running node is left alone.
// With strict (Setup) the broker must answer within the ready timeout;
// without (Start, Restart) it gets the start wait, and one still running
// but not answering by then is left running (see db.DB.Start). On failure
// the container is killed, so that a half-started node does not linger,
// and the error quotes the end of its log.
func (d *DB) startLocked(ctx context.Context, n *node, strict bool) error {
	if d.isTornDown() {
		return fmt.Errorf("docker db: start %s: %w", n.Name, db.ErrTornDown)
	}
	if n.logF == nil {
		return fmt.Errorf("docker db: start %s: the cluster is not set up (call Setup first)", n.Name)
	}
	if n.container == "" {
		if err := d.create(ctx, n); err != nil {
			return fmt.Errorf("docker db: %s: %w", n.Name, err)
		}
	} else {
		st, err := d.eng.InspectContainer(ctx, n.container)
		if err != nil {
			return fmt.Errorf("docker db: start %s: %w", n.Name, err)
		}
		if st.Running {
			return nil
		}
	}
	d.finishLog(n) // the previous run's, if it stopped by itself
	logStart, _ := n.logF.Seek(0, 2)
	n.logStart = logStart
	fmt.Fprintf(n.logF, "=== garantia harness: starting %s at %s: container %s (%s) at %s: /garantia %s\n",
		n.Name, time.Now().UTC().Format(time.RFC3339Nano), d.ContainerName(n.Node), shortID(n.container),
		n.ip, strings.Join(d.args(n), " "))
	if err := d.eng.StartContainer(ctx, n.container); err != nil {
		return fmt.Errorf("docker db: start %s: %w", n.Name, err)
	}
	st, err := d.eng.InspectContainer(ctx, n.container)
	if err != nil {
		return fmt.Errorf("docker db: start %s: %w", n.Name, err)
	}
	n.pid = st.Pid
	d.follow(n)
	// A restarted container has a new network namespace: put the node's
	// packet rules and delays back before it talks to anyone it must not
	// hear.
	if rules := d.rulesFor(n.Name); len(rules) > 0 && n.pid > 0 {
		if err := d.fw.Apply(ctx, n.pid, rules); err != nil {
			d.killLocked(context.WithoutCancel(ctx), n)
			return fmt.Errorf("docker db: start %s: restore its partition: %w", n.Name, err)
		}
	}
	if delays := d.delaysFor(n.Name); len(delays) > 0 && n.pid > 0 {
		if err := d.fw.Delay(ctx, n.pid, delays); err != nil {
			d.killLocked(context.WithoutCancel(ctx), n)
			return fmt.Errorf("docker db: start %s: restore its delays: %w", n.Name, err)
		}
	}
	wait := d.opts.ReadyTimeout
	if !strict {
		wait = d.opts.StartWait
	}
	err = d.waitReady(ctx, n, n.container, wait)
	if err != nil && !strict && errors.Is(err, db.ErrNotReady) {
		// Running but not serving: while faults are in force it may be
		// waiting for a controller quorum. The system's business; the
		// final heal waits for it (WaitReady).
		fmt.Fprintf(n.logF, "=== garantia harness: %s does not answer yet after %s; it keeps running (%s)\n",
			n.Name, wait, time.Now().UTC().Format(time.RFC3339Nano))
		return nil
	}
	if err != nil {
		d.killLocked(context.WithoutCancel(ctx), n)
		return d.readyError(n, logStart, err)
	}
	return nil
}

// WaitReady waits until node answers Kafka requests, up to the ready
// timeout. A node whose container is not running fails at once with
// db.ErrNotReady. It does not hold the node: a Kill meanwhile ends the
// wait with db.ErrExited.
func (d *DB) WaitReady(ctx context.Context, node db.Node) error {
	n, err := d.lookup(node)
	if err != nil {
		return err
	}
	n.op.Lock()
	id, logStart := n.container, n.logStart
	n.op.Unlock()
	if id == "" {
		return fmt.Errorf("docker db: %s: %w: %w", n.Name, db.ErrNotReady, errNotRunning)
	}
	if st, err := d.eng.InspectContainer(ctx, id); err != nil {
		return fmt.Errorf("docker db: wait for %s: %w", n.Name, err)
	} else if !st.Running {
		return fmt.Errorf("docker db: %s: %w: %w", n.Name, db.ErrNotReady, errNotRunning)
	}
	if err := d.waitReady(ctx, n, id, d.opts.ReadyTimeout); err != nil {
		if errors.Is(err, db.ErrExited) {
			n.op.Lock() // finishLog's fields are op's
			if n.container == id {
				d.finishLog(n)
			}
			n.op.Unlock()
		}
		return d.readyError(n, logStart, err)
	}
	return nil
}

// follow copies n's container output to its broker.log while the
// container runs, so that the log can be read live. The engine streams
// the container's output from its first run on; the bytes of earlier runs,
// already in broker.log, are skipped by count. Counting bytes rather than
// asking the engine for the output since the run's StartedAt keeps the
// first lines of a run whose process wrote them before the engine stamped
// StartedAt, and needs no clock.
func (d *DB) follow(n *node) {
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	written := new(atomic.Int64)
	n.followed, n.followBytes, n.followCancel = done, written, cancel
	id := n.container
	w := &skipWriter{skip: n.logCopied, w: countingWriter{w: n.logF, n: written}}
	go func() {
		defer close(done)
		// Not cancelled with the run: the copy ends when the container
		// stops, or when finishLog gives up waiting for that.
		if err := d.eng.Logs(ctx, id, time.Time{}, true, w); err != nil && ctx.Err() == nil {
			fmt.Fprintf(n.logF, "=== garantia harness: copying %s's output failed: %v\n", n.Name, err)
		}
	}()
}

// skipWriter drops the first skip bytes written through it.
type skipWriter struct {
	skip int64
	w    io.Writer
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := len(p)
	if s.skip > 0 {
		k := min(s.skip, int64(len(p)))
		s.skip -= k
		p = p[k:]
	}
	if len(p) > 0 {
		if _, err := s.w.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n.Add(int64(k))
	return k, err
}

// finishLog completes broker.log with the output of n's run that just
// ended; n.op is held and the container has stopped. A follow of the
// engine's log stream can end before it delivered the last lines of a
// stopped container (the engine's follow and the container's exit race),
// so after the copier ends (or is stopped) the container's whole output
// is read once more, without following, and whatever the copier missed
// is appended: the log is complete and in order whatever the timing.
func (d *DB) finishLog(n *node) {
	if n.followed == nil {
		return
	}
	select {
	case <-n.followed:
	case <-time.After(followerWait):
		n.followCancel()
		<-n.followed
	}
	n.followCancel()
	have := n.logCopied + n.followBytes.Load()
	ctx, cancel := context.WithTimeout(context.Background(), followerWait)
	defer cancel()
	var all bytes.Buffer
	if err := d.eng.Logs(ctx, n.container, time.Time{}, false, &all); err != nil {
		fmt.Fprintf(n.logF, "=== garantia harness: reading %s's output failed: %v\n", n.Name, err)
	} else if int64(all.Len()) > have {
		n.logF.Write(all.Bytes()[have:])
		have = int64(all.Len())
	}
	n.logCopied = have
	n.followed = nil
}

// waitReady polls n with Kafka ApiVersions requests until it answers, its
// container (id) stops, timeout or ctx runs out, or Teardown starts.
func (d *DB) waitReady(ctx context.Context, n *node, id string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(d.life, cancel)
	defer stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	for i := 0; ; i++ {
		probeCtx, probeCancel := context.WithTimeout(ctx, time.Second)
		last = d.probe(probeCtx, n.Addr)
		probeCancel()
		if last == nil {
			return nil
		}
		if i%8 == 0 { // every 200ms: did it exit?
			st, err := d.eng.InspectContainer(ctx, id)
			if err == nil && !st.Running {
				return fmt.Errorf("%w (exit code %d)", db.ErrExited, st.ExitCode)
			}
		}
		select {
		case <-ctx.Done():
			switch {
			case d.life.Err() != nil:
				return fmt.Errorf("docker db: %w", db.ErrTornDown)
			case ctx.Err() == context.DeadlineExceeded:
				return fmt.Errorf("%w within %s: last probe: %v (the harness reaches nodes at their bridge address, which needs the Docker engine on this Linux host, not in a VM)", db.ErrNotReady, timeout, last)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// readyError wraps a failed start with the tail of what the node wrote
// (complete when the container has stopped: see finishLog).
func (d *DB) readyError(n *node, logStart int64, err error) error {
	tail := db.LogTail(n.logPath, logStart, 2048)
	if tail != "" {
		return fmt.Errorf("docker db: %s at %s: %w; %s ends with:\n%s", n.Name, n.Addr, err, n.logPath, tail)
	}
	return fmt.Errorf("docker db: %s at %s: %w", n.Name, n.Addr, err)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// killLocked SIGKILLs n's container and waits until it has stopped and its
// output is copied; n.op is held.
func (d *DB) killLocked(ctx context.Context, n *node) error {
	if n.container == "" {
		return nil
	}
	st, err := d.eng.InspectContainer(ctx, n.container)
	if err != nil {
		return fmt.Errorf("docker db: kill %s: %w", n.Name, err)
	}
	if !st.Running {
		n.pid = 0
		d.finishLog(n) // it exited by itself
		return nil
	}
	// The engine kills a paused container too: SIGKILL needs no thaw.
	if err := d.eng.KillContainer(ctx, n.container, "SIGKILL"); err != nil {
		return fmt.Errorf("docker db: kill %s: %w", n.Name, err)
	}
	if err := d.eng.WaitStopped(ctx, n.container); err != nil {
		return fmt.Errorf("docker db: kill %s: wait for it to stop: %w", n.Name, err)
	}
	n.pid = 0
	d.finishLog(n)
	return nil
}

// Kill SIGKILLs node's container and returns once it has stopped. Its
// address, data and log stay for Start. Killing a stopped node is a no-op.
func (d *DB) Kill(ctx context.Context, node db.Node) error {
	n, err := d.lookup(node)
	if err != nil {
		return err
	}
	n.op.Lock()
	defer n.op.Unlock()
	return d.killLocked(ctx, n)
}

// Start starts a killed node's container again (same address, same data
// folder, its partitions put back) and waits up to the start wait for it
// to answer; one that runs without answering yet is not an error (see
// db.DB.Start). Starting a running node is a no-op.
func (d *DB) Start(ctx context.Context, node db.Node) error {
	n, err := d.lookup(node)
	if err != nil {
		return err
	}
	n.op.Lock()
	defer n.op.Unlock()
	return d.startLocked(ctx, n, false)
}

// Restart stops node gracefully (SIGTERM, SIGKILL after StopGrace) and
// starts it again, waiting for it to answer as Start does: the fault of an operator's
// rolling restart, where Kill then Start is a crash.
func (d *DB) Restart(ctx context.Context, node db.Node) error {
	n, err := d.lookup(node)
	if err != nil {
		return err
	}
	n.op.Lock()
	defer n.op.Unlock()
	if n.container != "" {
		if st, err := d.eng.InspectContainer(ctx, n.container); err == nil && st.Paused {
			if err := d.eng.UnpauseContainer(ctx, n.container); err != nil {
				return fmt.Errorf("docker db: restart %s: unpause: %w", n.Name, err)
			}
		}
		if err := d.eng.StopContainer(ctx, n.container, d.opts.StopGrace); err != nil {
			return fmt.Errorf("docker db: restart %s: stop: %w", n.Name, err)
		}
		n.pid = 0
	}
	return d.startLocked(ctx, n, false)
}

var errNotRunning = errors.New("node is not running")

// Pause freezes every process of node's container (the engine's cgroup
// freezer) and returns once they are frozen. Pausing a paused node is a
// no-op.
func (d *DB) Pause(ctx context.Context, node db.Node) error {
	return d.setPaused(ctx, node, true)
}

// Resume thaws node's container. Resuming a running node is a no-op.
func (d *DB) Resume(ctx context.Context, node db.Node) error {
	return d.setPaused(ctx, node, false)
}

// setPaused freezes (pause) or thaws node's container. Pause and Resume
// are one operation in two directions: the same checks, the engine call
// and the word in their errors ("pause", "resume") the only differences.
func (d *DB) setPaused(ctx context.Context, node db.Node, pause bool) error {
	verb, change := "resume", d.eng.UnpauseContainer
	if pause {
		verb, change = "pause", d.eng.PauseContainer
	}
	n, err := d.lookup(node)
	if err != nil {
		return err
	}
	n.op.Lock()
	defer n.op.Unlock()
	st, err := d.inspect(ctx, n)
	if err != nil {
		return fmt.Errorf("docker db: %s %s: %w", verb, n.Name, err)
	}
	switch {
	case !st.Running:
		return fmt.Errorf("docker db: %s %s: %w", verb, n.Name, errNotRunning)
	case st.Paused == pause:
		return nil // already as asked
	}
	if err := change(ctx, n.container); err != nil {
		return fmt.Errorf("docker db: %s %s: %w", verb, n.Name, err)
	}
	return nil
}

func (d *DB) inspect(ctx context.Context, n *node) (ContainerState, error) {
	if n.container == "" {
		return ContainerState{}, nil // never created: not running
	}
	return d.eng.InspectContainer(ctx, n.container)
}

// Teardown stops every node gracefully (so their logs end with the
// shutdown), copies the rest of their output to the run folder, and
// removes every container and the network of the run. It runs on a
// context of its own, bounded by a minute, so that it works after ctx was
// cancelled (Ctrl-C). Safe to call twice and after a failed Setup. The
// image stays for the next run (`garantia clean --images` removes it).
func (d *DB) Teardown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
	defer cancel()
	d.mu.Lock()
	d.tornDown = true
	d.mu.Unlock()
	d.stopLife()

	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range d.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.stopNode(ctx, n); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Then everything labelled with this run, which also catches a
	// container whose create failed half way.
	if _, err := Clean(ctx, d.eng, CleanOptions{Run: d.run, Force: true}); err != nil {
		errs = append(errs, fmt.Errorf("docker db: remove run %s: %w", d.run, err))
	}
	return errors.Join(errs...)
}

// stopNode stops and removes n's container and closes its log.
func (d *DB) stopNode(ctx context.Context, n *node) error {
	n.op.Lock()
	defer n.op.Unlock()
	var errs []error
	if n.container != "" {
		st, err := d.eng.InspectContainer(ctx, n.container)
		switch {
		case IsNotFound(err):
		case err != nil:
			errs = append(errs, fmt.Errorf("docker db: teardown %s: %w", n.Name, err))
		case st.Running:
			if st.Paused {
				// A frozen broker cannot act on SIGTERM.
				if err := d.eng.UnpauseContainer(ctx, n.container); err != nil {
					errs = append(errs, fmt.Errorf("docker db: teardown %s: unpause: %w", n.Name, err))
				}
			}
			if err := d.eng.StopContainer(ctx, n.container, d.opts.StopGrace); err != nil && !IsNotFound(err) {
				errs = append(errs, fmt.Errorf("docker db: teardown %s: stop: %w", n.Name, err))
			}
		}
		d.finishLog(n)
		if err := d.eng.RemoveContainer(ctx, n.container); err != nil && !IsNotFound(err) {
			errs = append(errs, fmt.Errorf("docker db: teardown %s: remove: %w", n.Name, err))
		}
		n.container, n.pid = "", 0
	}
	if n.logF != nil {
		if err := n.logF.Close(); err != nil {
			errs = append(errs, fmt.Errorf("docker db: teardown %s: close log: %w", n.Name, err))
		}
		n.logF = nil
	}
	return errors.Join(errs...)
}

// CheckNetworkFaults reports whether partitions and packet loss can work
// on this host: nsenter and iptables present, the harness root. The error
// names what is missing and how to install it. The nemesis can call it
// before a run that needs partitions.
func (d *DB) CheckNetworkFaults() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.fwChecked {
		d.fwErr = d.fw.Check()
		d.fwChecked = true
	}
	return d.fwErr
}

// rulesFor returns the rules node name's namespace needs now: a DROP for
// every node cut off from it, a statistic DROP for every lossy link into
// it; sorted, so that the same faults give the same rules.
func (d *DB) rulesFor(name string) []Rule {
	d.mu.Lock()
	defer d.mu.Unlock()
	var rules []Rule
	for l := range d.cuts {
		if l.to == name {
			if from, err := d.byName(l.from); err == nil {
				rules = append(rules, Rule{From: from.ip, Probability: 1})
			}
		}
	}
	for l, p := range d.shapes {
		if l.to == name && p.Loss > 0 && !d.cuts[l] {
			if from, err := d.byName(l.from); err == nil {
				rules = append(rules, Rule{From: from.ip, Probability: min(p.Loss, 1)})
			}
		}
	}
	sort.Slice(rules, func(i, j int) bool {
		if c := rules[i].From.Compare(rules[j].From); c != 0 {
			return c < 0
		}
		return rules[i].Probability < rules[j].Probability
	})
	return rules
}

// delaysFor returns the delays of what node name sends, by receiver
// address, sorted.
func (d *DB) delaysFor(name string) []Delay {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Delay
	for l, p := range d.shapes {
		if l.from == name && (p.Delay > 0 || p.Jitter > 0) {
			if to, err := d.byName(l.to); err == nil {
				out = append(out, Delay{To: to.ip, Delay: p.Delay, Jitter: p.Jitter})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].To.Less(out[j].To) })
	return out
}

// links validates a map of directed links by node name.
func (d *DB) links(m map[string][]string) ([]link, error) {
	var out []link
	for from, tos := range m {
		if _, err := d.byName(from); err != nil {
			return nil, err
		}
		for _, to := range tos {
			if _, err := d.byName(to); err != nil {
				return nil, err
			}
			if to != from {
				out = append(out, link{from, to})
			}
		}
	}
	return out, nil
}

// applyTo puts the current packet filter rules into the namespace of each
// node of rules, and the current delays into that of each node of delays.
// A stopped node gets both when it starts.
func (d *DB) applyTo(ctx context.Context, rules, delays map[string]bool) error {
	if err := d.CheckNetworkFaults(); err != nil {
		return err
	}
	var errs []error
	for _, n := range d.nodes {
		if !rules[n.Name] && !delays[n.Name] {
			continue
		}
		n.op.Lock()
		var err error
		if n.pid > 0 && rules[n.Name] {
			err = d.fw.Apply(ctx, n.pid, d.rulesFor(n.Name))
		}
		if n.pid > 0 && delays[n.Name] && err == nil {
			err = d.fw.Delay(ctx, n.pid, d.delaysFor(n.Name))
		}
		n.op.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("docker db: %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Partition drops every packet each key of drops sends to the nodes of
// its value: on the receiving node, `iptables -A INPUT -s SENDER -j DROP`.
// Cuts add up; Heal ends them. A node that restarts gets its rules back.
func (d *DB) Partition(ctx context.Context, drops map[string][]string) error {
	ls, err := d.links(drops)
	if err != nil {
		return fmt.Errorf("docker db: partition: %w", err)
	}
	if err := d.CheckNetworkFaults(); err != nil {
		return err
	}
	touched := map[string]bool{}
	d.mu.Lock()
	for _, l := range ls {
		d.cuts[l] = true
		touched[l.to] = true
	}
	d.mu.Unlock()
	return d.applyTo(ctx, touched, nil)
}

// Heal ends every partition, flushing the rules of every node that had
// one; packet loss (Shape) stays.
func (d *DB) Heal(ctx context.Context) error {
	touched := map[string]bool{}
	d.mu.Lock()
	for l := range d.cuts {
		touched[l.to] = true
	}
	d.cuts = map[link]bool{}
	d.mu.Unlock()
	if len(touched) == 0 {
		return nil
	}
	return d.applyTo(ctx, touched, nil)
}

// ErrUnsupportedPacketFault: the backend cannot model this packet fault.
var ErrUnsupportedPacketFault = errors.New("packet fault not supported")

// Shape applies p to each link of links, replacing the link's earlier
// packet fault; a zero p ends it. Loss is iptables' statistic match on the
// receiving node (per link, in every kernel); delay and jitter are netem
// queueing on the sending node's eth0, steered per receiver by u32
// filters, and need the kernel's sch_netem: without it Shape fails with
// ErrUnsupportedPacketFault and changes nothing.
func (d *DB) Shape(ctx context.Context, links map[string][]string, p db.Packet) error {
	if p.Loss < 0 || p.Loss > 1 {
		return fmt.Errorf("docker db: shape: loss %g is not a probability", p.Loss)
	}
	if p.Delay < 0 || p.Jitter < 0 {
		return fmt.Errorf("docker db: shape: negative delay %s or jitter %s", p.Delay, p.Jitter)
	}
	ls, err := d.links(links)
	if err != nil {
		return fmt.Errorf("docker db: shape: %w", err)
	}
	if err := d.CheckNetworkFaults(); err != nil {
		return err
	}
	receivers, senders := map[string]bool{}, map[string]bool{}
	old := map[link]db.Packet{}
	d.mu.Lock()
	for _, l := range ls {
		if prev, ok := d.shapes[l]; ok {
			old[l] = prev
		}
		if p.IsZero() {
			delete(d.shapes, l)
		} else {
			d.shapes[l] = p
		}
		receivers[l.to] = true
		senders[l.from] = true
	}
	d.mu.Unlock()
	err = d.applyTo(ctx, receivers, senders)
	if err != nil && errors.Is(err, ErrUnsupportedPacketFault) {
		// Put the links back as they were, so that a fault this host
		// cannot do does not stay in force half applied (or break the
		// next Start, which applies it again).
		d.mu.Lock()
		for _, l := range ls {
			if prev, ok := old[l]; ok {
				d.shapes[l] = prev
			} else {
				delete(d.shapes, l)
			}
		}
		d.mu.Unlock()
		_ = d.applyTo(context.WithoutCancel(ctx), receivers, senders)
	}
	return err
}

// Unshape ends every packet fault; partitions stay.
func (d *DB) Unshape(ctx context.Context) error {
	receivers, senders := map[string]bool{}, map[string]bool{}
	d.mu.Lock()
	for l, p := range d.shapes {
		if p.Loss > 0 {
			receivers[l.to] = true
		}
		if p.Delay > 0 || p.Jitter > 0 {
			senders[l.from] = true
		}
	}
	d.shapes = map[link]db.Packet{}
	d.mu.Unlock()
	if len(receivers)+len(senders) == 0 {
		return nil
	}
	return d.applyTo(ctx, receivers, senders)
}

// DialFrom opens a connection to addr from inside node's network
// namespace, as the node itself would: the way to see what a partition
// does to the node's own links. It needs what partitions need (Linux,
// root).
func (d *DB) DialFrom(ctx context.Context, node, network, addr string) (net.Conn, error) {
	n, err := d.byName(node)
	if err != nil {
		return nil, err
	}
	n.op.Lock()
	pid := n.pid
	n.op.Unlock()
	if pid <= 0 {
		return nil, fmt.Errorf("docker db: dial from %s: %w", node, errNotRunning)
	}
	var conn net.Conn
	err = inNetNS(pid, func() error {
		var dl net.Dialer
		var err error
		conn, err = dl.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
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

// Options configure a docker cluster.
type Options struct {
	// Config holds what every backend takes: the node count (1 to 240),
	// the run folder (node nK keeps Dir/nK/data, mounted at /data in its
	// container, and Dir/nK/broker.log), the broker flags, cluster mode
	// (each node gets --controller-listen IP:9093 and one --peer
	// ID=IP:9092,IP:9093 for every other node) and the waits. Binary is
	// the garantia executable whose code the nodes run: a static linux
	// binary for the engine's architecture goes into the image as it is;
	// any other is rebuilt with CGO_ENABLED=0 from SourceDir (see
	// EnsureImage). The engine counts StopGrace in whole seconds.
	db.Config
	// SourceDir is the garantia module to build a static binary from when
	// Binary is not one; "" means $GARANTIA_SOURCE_DIR, else the first
	// folder from the working directory up holding the module's go.mod.
	SourceDir string
	// RunID names the run in labels and in the names of its network and
	// containers (garantia-<run>, garantia-<run>-n1); "" draws one.
	RunID string
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
	nodes db.Table[*node]
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

type node struct {
	db.NodeFiles
	ip netip.Addr

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
	cfg, err := opts.Config.WithDefaults("docker db", maxNodes)
	if err != nil {
		return nil, err
	}
	opts.Config = cfg
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
	d.nodes = db.NewTable(&d.mu, opts.Dir, opts.Nodes, func(f db.NodeFiles) *node { return &node{NodeFiles: f} })
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
func (d *DB) Nodes() []db.Node { return d.nodes.Nodes() }

// LogFiles maps each node's name to its broker.log in the run folder.
func (d *DB) LogFiles() map[string]string { return d.nodes.LogFiles() }

// Pid returns the host pid of node's broker while its container runs (0
// otherwise): the process whose network namespace nsenter enters.
func (d *DB) Pid(node db.Node) (int, error) {
	n, err := d.nodes.Lookup(node)
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
	for _, n := range d.nodes.All() {
		n.ip = nodeIP(subnet, n.ID)
		n.Addr = netip.AddrPortFrom(n.ip, KafkaPort).String()
		if d.opts.Cluster != nil {
			n.Controller = netip.AddrPortFrom(n.ip, ControllerPort).String()
		}
	}
	d.mu.Unlock()

	for _, n := range d.nodes.All() {
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return fmt.Errorf("docker db: %s: %w", n.Name, err)
		}
		f, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("docker db: %s: open log: %w", n.Name, err)
		}
		n.op.Lock()
		n.logF = f
		n.op.Unlock()
	}
	return db.ForEach(d.nodes.All(), func(n *node) error {
		n.op.Lock()
		defer n.op.Unlock()
		return d.startLocked(ctx, n, true)
	})
}

// args is the broker's command line in n's container.
func (d *DB) args(n *node) []string {
	a := []string{"broker",
		"--id", strconv.Itoa(int(n.ID)),
		"--listen", netip.AddrPortFrom(netip.IPv4Unspecified(), KafkaPort).String(),
		"--advertise", n.Addr,
		"--data-dir", containerDataDir,
	}
	if d.opts.Cluster != nil {
		a = append(a, "--controller-listen", n.Controller)
		for _, p := range d.nodes.All() {
			if p != n {
				a = append(a, db.PeerArgs(p.ID, p.Addr, p.Controller)...)
			}
		}
	}
	a = append(a, d.opts.BrokerArgs()...)
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
		Binds:    []string{n.DataDir + ":" + containerDataDir},
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
	db.StartLine(n.logF, &n.NodeFiles, fmt.Sprintf("container %s (%s) at %s: /garantia %s",
		d.ContainerName(n.Node), shortID(n.container), n.ip, strings.Join(d.args(n), " ")))
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
	err = db.Started(d.waitReady(ctx, n, n.container, wait), strict, wait, &n.NodeFiles, func(msg string) { db.HarnessLine(n.logF, msg) })
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
	n, err := d.nodes.Lookup(node)
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

// waitReady polls n with Kafka ApiVersions requests until it answers, its
// container (id) stops, timeout or ctx runs out, or Teardown starts.
func (d *DB) waitReady(ctx context.Context, n *node, id string, timeout time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.life, cancel)
	defer stop()
	err := db.AwaitReady(ctx, n.Addr, timeout, d.probe, func(probes int) error {
		if probes%8 != 0 {
			return nil // ask the engine every 200ms, not every probe
		}
		if st, err := d.eng.InspectContainer(ctx, id); err == nil && !st.Running {
			return fmt.Errorf("%w (exit code %d)", db.ErrExited, st.ExitCode)
		}
		return nil
	})
	switch {
	case err == nil:
		return nil
	case d.life.Err() != nil:
		return fmt.Errorf("docker db: %w", db.ErrTornDown)
	case errors.Is(err, db.ErrNotReady):
		return fmt.Errorf("%w (the harness reaches nodes at their bridge address, which needs the Docker engine on this Linux host, not in a VM)", err)
	}
	return err
}

// readyError wraps a failed start with the tail of what the node wrote
// (complete when the container has stopped: see finishLog).
func (d *DB) readyError(n *node, logStart int64, err error) error {
	return db.StartError("docker db", &n.NodeFiles, logStart, err)
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
	n, err := d.nodes.Lookup(node)
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
	n, err := d.nodes.Lookup(node)
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
	n, err := d.nodes.Lookup(node)
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
	n, err := d.nodes.Lookup(node)
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

	errs := []error{db.ForEach(d.nodes.All(), func(n *node) error { return d.stopNode(ctx, n) })}
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

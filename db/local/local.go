package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/proxy"
)

// Options configure a local cluster.
type Options struct {
	// Config holds what every backend takes: the binary, the node count,
	// the run folder (node nK keeps Dir/nK/data and writes
	// Dir/nK/broker.log), the broker flags, cluster mode and the waits.
	db.Config
	// Host is the loopback address to listen on; "" means 127.0.0.1.
	Host string
	// Links puts a proxy (package db/proxy) on every directed link between
	// two nodes, for the Kafka port and, in cluster mode, the controller
	// port, so that the DB can cut and shape links (db.Partitioner,
	// db.PacketShaper). Node a reaches node b only through a's own proxies
	// to b: its --peer flags name them. Clients do not go through proxies.
	Links bool
	// Seed seeds the proxies' jitter and loss draws.
	Seed uint64
}

// Cluster holds the flags of cluster mode (see db.Cluster).
type Cluster = db.Cluster

// portAttempts bounds the retries of Setup when a chosen port was taken
// between our probe and the broker's bind (see freePort).
const portAttempts = 3

// DB is a local cluster. It implements db.DB.
type DB struct {
	opts  Options
	nodes db.Table[*node]
	// links[from][to] are the proxies of the directed link from node
	// index from to node index to; nil without Options.Links.
	links [][]*link

	mu       sync.Mutex // guards tornDown and every node's process fields
	tornDown bool

	spawnOnce sync.Once
	spawnCh   chan spawnReq
	spawnDone chan struct{}
}

var (
	_ db.DB           = (*DB)(nil)
	_ db.Partitioner  = (*DB)(nil)
	_ db.PacketShaper = (*DB)(nil)
)

// link is the pair of proxies of one directed link.
type link struct {
	kafka      *proxy.Proxy
	controller *proxy.Proxy // nil outside cluster mode
}

type node struct {
	db.NodeFiles
	port     int
	ctrlPort int // 0 outside cluster mode

	// The process fields below change under DB.mu.
	proc   *os.Process
	logF   *os.File
	exited chan struct{} // closed when proc has been reaped
	exit   error         // proc's exit status, valid once exited is closed
	paused bool
	// logStart is where the current run's output begins in logPath, so
	// that errors quote only the current run of the node.
	logStart int64
}

// New checks opts and prepares a cluster of opts.Nodes nodes; nothing runs
// until Setup.
func New(opts Options) (*DB, error) {
	cfg, err := opts.Config.WithDefaults("local db", 0)
	if err != nil {
		return nil, err
	}
	opts.Config = cfg
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if ip := net.ParseIP(opts.Host); ip == nil || !ip.IsLoopback() {
		// The project's rule: nothing but loopback, ever.
		return nil, fmt.Errorf("local db: Host: %q is not a loopback address", opts.Host)
	}
	d := &DB{opts: opts}
	d.nodes = db.NewTable(&d.mu, opts.Dir, opts.Nodes, func(f db.NodeFiles) *node { return &node{NodeFiles: f} })
	return d, nil
}

// Nodes lists the nodes; their addresses are set by Setup.
func (d *DB) Nodes() []db.Node { return d.nodes.Nodes() }

// LogFiles maps each node's name to its broker.log.
func (d *DB) LogFiles() map[string]string { return d.nodes.LogFiles() }

// Pids maps each running node's name to its process id (which is also its
// process group id). Tests use it to prove that nothing survives Teardown.
func (d *DB) Pids() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := map[string]int{}
	for _, n := range d.nodes.All() {
		if n.proc != nil {
			m[n.Name] = n.proc.Pid
		}
	}
	return m
}

// Setup picks every node's ports, starts the link proxies (with
// Options.Links), then starts every node concurrently and waits until each
// answers. On error whatever started keeps running until Teardown.
func (d *DB) Setup(ctx context.Context) error {
	d.mu.Lock()
	tornDown := d.tornDown
	d.mu.Unlock()
	if tornDown {
		return fmt.Errorf("local db: setup: %w", db.ErrTornDown)
	}
	for _, n := range d.nodes.All() {
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return fmt.Errorf("local db: %s: %w", n.Name, err)
		}
		if err := d.pickPorts(n); err != nil {
			return err
		}
	}
	if d.opts.Links {
		if err := d.startLinks(); err != nil {
			return err
		}
	}
	return db.ForEach(d.nodes.All(), func(n *node) error { return d.setupNode(ctx, n) })
}

// pickPorts gives n a Kafka port and, in cluster mode, a controller port,
// and points the proxies to n at them.
func (d *DB) pickPorts(n *node) error {
	port, err := pickPort(d.opts.Host)
	if err != nil {
		return fmt.Errorf("local db: %s: %w", n.Name, err)
	}
	ctrl := 0
	if d.opts.Cluster != nil {
		if ctrl, err = pickPort(d.opts.Host); err != nil {
			return fmt.Errorf("local db: %s: %w", n.Name, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n.port = port
	n.Addr = net.JoinHostPort(d.opts.Host, strconv.Itoa(port))
	n.ctrlPort = ctrl
	n.Controller = ""
	if ctrl != 0 {
		n.Controller = net.JoinHostPort(d.opts.Host, strconv.Itoa(ctrl))
	}
	for from := range d.links {
		if l := d.links[from][n.ID-1]; l != nil {
			l.kafka.SetUpstream(n.Addr)
			if l.controller != nil {
				l.controller.SetUpstream(n.Controller)
			}
		}
	}
	return nil
}

// startLinks starts a proxy for every directed link (and port).
func (d *DB) startLinks() error {
	listen := net.JoinHostPort(d.opts.Host, "0")
	nodes := d.nodes.All()
	links := make([][]*link, len(nodes))
	d.mu.Lock()
	d.links = links
	d.mu.Unlock()
	for i, from := range nodes {
		links[i] = make([]*link, len(nodes))
		for j, to := range nodes {
			if i == j {
				continue
			}
			name := from.Name + "->" + to.Name
			// Each proxy its own stream of draws, fixed by the seed.
			seed := d.opts.Seed ^ uint64(i*len(nodes)+j)<<32
			kp, err := proxy.New(proxy.Options{Name: name + " kafka", Listen: listen, Upstream: to.Addr, Seed: seed})
			if err != nil {
				return fmt.Errorf("local db: link %s: %w", name, err)
			}
			l := &link{kafka: kp}
			d.mu.Lock()
			links[i][j] = l
			d.mu.Unlock()
			if d.opts.Cluster != nil {
				cp, err := proxy.New(proxy.Options{Name: name + " controller", Listen: listen, Upstream: to.Controller, Seed: seed | 1<<31})
				if err != nil {
					return fmt.Errorf("local db: link %s: %w", name, err)
				}
				d.mu.Lock()
				l.controller = cp
				d.mu.Unlock()
			}
		}
	}
	return nil
}

// setupNode starts n, retrying with new ports when the broker could not
// bind the ones picked.
func (d *DB) setupNode(ctx context.Context, n *node) error {
	var err error
	for attempt := 1; attempt <= portAttempts; attempt++ {
		if attempt > 1 {
			if err := d.pickPorts(n); err != nil {
				return err
			}
		}
		err = d.startNode(ctx, n, true)
		if err == nil || !errors.Is(err, errAddrInUse) {
			return err
		}
	}
	return fmt.Errorf("local db: %s: gave up after %d ports: %w", n.Name, portAttempts, err)
}

// errAddrInUse marks a start that failed because the port was taken.
var errAddrInUse = errors.New("port already in use")

// pickPort is freePort; tests replace it to lose the port race on purpose.
var pickPort = freePort

// freePort returns a port that was free a moment ago: it binds port 0 on
// host, reads the port the kernel chose and releases it. Another process
// can take the port before the broker binds it (the race is inherent to
// handing a port to a child); the broker then exits with "address already
// in use" and Setup retries with a new port, up to portAttempts times.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

func (d *DB) args(n *node) []string {
	a := []string{"broker",
		"--id", strconv.Itoa(int(n.ID)),
		"--listen", n.Addr,
		"--advertise", n.Addr,
		"--data-dir", n.DataDir,
		"--log-file", n.LogPath,
	}
	if d.opts.Cluster != nil {
		a = append(a, "--controller-listen", n.Controller)
		for _, peer := range d.nodes.All() {
			if peer == n {
				continue
			}
			kafka, ctrl := peer.Addr, peer.Controller
			if d.links != nil {
				l := d.links[n.ID-1][peer.ID-1]
				kafka, ctrl = l.kafka.Addr(), l.controller.Addr()
			}
			a = append(a, db.PeerArgs(peer.ID, kafka, ctrl)...)
		}
	}
	a = append(a, d.opts.BrokerArgs()...)
	if d.opts.ExtraArgs != nil {
		a = append(a, d.opts.ExtraArgs(n.Node)...)
	}
	return a
}

// nodeEnv is a broker process's environment: the harness's, with
// GOMAXPROCS set to this machine's share per node unless the user set it.
// The nodes and the harness share the machine's cores; a Go runtime per
// node that believes it owns them all spins idle threads looking for work
// and wakes them with system calls, which on a small machine costs more
// than the brokers' own work.
func (d *DB) nodeEnv() []string {
	env := os.Environ()
	if os.Getenv("GOMAXPROCS") != "" {
		return env
	}
	procs := runtime.NumCPU() / d.opts.Nodes
	if procs < 1 {
		procs = 1
	}
	return append(env, "GOMAXPROCS="+strconv.Itoa(procs))
}

// startNode runs n's process and waits until it answers. The caller has
// set n.Addr. With strict (Setup) the node must answer within the ready
// timeout; without (Start) it gets the start wait, and a node still
// running but not answering by then is left running (see db.DB.Start).
// On failure the process is killed.
func (d *DB) startNode(ctx context.Context, n *node, strict bool) error {
	d.mu.Lock()
	if d.tornDown {
		d.mu.Unlock()
		return fmt.Errorf("local db: start %s: %w", n.Name, db.ErrTornDown)
	}
	if n.proc != nil {
		d.mu.Unlock()
		return nil // already running
	}
	logF, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.mu.Unlock()
		return fmt.Errorf("local db: %s: open log: %w", n.Name, err)
	}
	// Where this start begins in the log, so readyError quotes only the
	// current run of the node.
	logStart, _ := logF.Seek(0, 2)
	args := d.args(n)
	db.StartLine(logF, &n.NodeFiles, d.opts.Binary+" "+strings.Join(args, " "))
	cmd := exec.Command(d.opts.Binary, args...)
	cmd.Env = d.nodeEnv()
	cmd.Stdout = logF
	cmd.Stderr = logF
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: signals go to the broker and anything it
		// starts, and a terminal's Ctrl-C does not reach it directly.
		Setpgid: true,
		// If the forking thread (and so the harness) dies, the kernel
		// kills the broker: no orphans.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := d.spawn(cmd); err != nil {
		logF.Close()
		d.mu.Unlock()
		return fmt.Errorf("local db: start %s: %w", n.Name, err)
	}
	n.proc = cmd.Process
	n.logF = logF
	n.paused = false
	n.logStart = logStart
	exited := make(chan struct{})
	n.exited = exited
	d.mu.Unlock()

	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		n.exit = err
		if n.proc == cmd.Process {
			n.proc = nil
			n.logF.Close()
			n.logF = nil
		}
		d.mu.Unlock()
		close(exited)
	}()

	wait := d.opts.ReadyTimeout
	if !strict {
		wait = d.opts.StartWait
	}
	err = db.Started(d.waitReady(ctx, n, exited, wait), strict, wait, &n.NodeFiles, func(msg string) { d.harnessNote(n, msg) })
	if err != nil {
		_ = d.killNode(n)
		return d.readyError(n, logStart, err)
	}
	return nil
}

// harnessNote appends a line of the harness to n's log, if it runs.
func (d *DB) harnessNote(n *node, msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n.logF != nil {
		db.HarnessLine(n.logF, msg)
	}
}

// WaitReady waits until node answers Kafka requests, up to the ready
// timeout. A node that is not running fails at once with db.ErrNotReady.
func (d *DB) WaitReady(ctx context.Context, node db.Node) error {
	n, err := d.nodes.Lookup(node)
	if err != nil {
		return err
	}
	d.mu.Lock()
	running, exited, logStart := n.proc != nil, n.exited, n.logStart
	d.mu.Unlock()
	if !running {
		return fmt.Errorf("local db: %s: %w: %w", n.Name, db.ErrNotReady, errNotRunning)
	}
	if err := d.waitReady(ctx, n, exited, d.opts.ReadyTimeout); err != nil {
		return d.readyError(n, logStart, err)
	}
	return nil
}

// waitReady polls n with Kafka ApiVersions requests until it answers, it
// exits, or timeout or ctx runs out.
func (d *DB) waitReady(ctx context.Context, n *node, exited <-chan struct{}, timeout time.Duration) error {
	return db.AwaitReady(ctx, n.Addr, timeout, db.Probe, func(int) error {
		select {
		case <-exited:
			d.mu.Lock()
			exit := n.exit
			d.mu.Unlock()
			return fmt.Errorf("%w (%v)", db.ErrExited, exit)
		default:
			return nil
		}
	})
}

// readyError wraps a failed start with the tail of the node's log, which
// usually says why, and marks a lost port race with errAddrInUse.
func (d *DB) readyError(n *node, logStart int64, err error) error {
	if errors.Is(err, db.ErrExited) && strings.Contains(db.LogTail(n.LogPath, logStart, 2048), "address already in use") {
		err = fmt.Errorf("%w: %w", errAddrInUse, err)
	}
	return db.StartError("local db", &n.NodeFiles, logStart, err)
}

// signal sends sig to n's process group; it reports whether a process was
// running.
func (d *DB) signal(n *node, sig syscall.Signal) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n.proc == nil {
		return false, nil
	}
	if err := syscall.Kill(-n.proc.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return true, fmt.Errorf("local db: %s: send %v: %w", n.Name, sig, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return true, nil
}

// killNode SIGKILLs n's process group and waits until it is reaped.
func (d *DB) killNode(n *node) error {
	d.mu.Lock()
	exited := n.exited
	d.mu.Unlock()
	running, err := d.signal(n, syscall.SIGKILL)
	if err != nil || !running {
		return err
	}
	<-exited // SIGKILL cannot be caught, so this wait is short
	return nil
}

// Kill SIGKILLs node and returns once its process is gone.
func (d *DB) Kill(ctx context.Context, node db.Node) error {
	n, err := d.nodes.Lookup(node)
	if err != nil {
		return err
	}
	return d.killNode(n)
}

// Start runs a killed node again on its old port and data folder and waits
// up to the start wait for it to answer; one that runs without answering
// yet is not an error (see db.DB.Start). If another process took the port
// meanwhile, the broker exits and Start fails: clients and peers know the
// node by its address.
func (d *DB) Start(ctx context.Context, node db.Node) error {
	n, err := d.nodes.Lookup(node)
	if err != nil {
		return err
	}
	return d.startNode(ctx, n, false)
}

// Pause SIGSTOPs node.
func (d *DB) Pause(ctx context.Context, node db.Node) error {
	n, err := d.signalRunning(node, "pause", syscall.SIGSTOP)
	if err != nil {
		return err
	}
	// kill(2) only queues the stop: a thread running on another CPU
	// keeps serving for a moment. Pause returns once every thread is
	// stopped, so that "paused" in the history means paused.
	d.mu.Lock()
	pid := 0
	if n.proc != nil {
		pid = n.proc.Pid
	}
	d.mu.Unlock()
	if pid == 0 {
		return nil // it died meanwhile; nothing left to pause
	}
	if err := waitStopped(ctx, pid); err != nil {
		return fmt.Errorf("local db: pause %s: %w", n.Name, err)
	}
	return nil
}

// waitStopped waits until every thread of pid is in the stopped state (T
// in /proc/pid/task/*/stat), the process is gone, or a second passes.
func waitStopped(ctx context.Context, pid int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for {
		stopped, err := allStopped(pid)
		if err != nil || stopped {
			return nil // gone (nothing to wait for) or stopped
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("process %d not stopped after SIGSTOP: %w", pid, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

func allStopped(pid int) (bool, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			continue // the thread exited
		}
		// pid (comm) STATE ...; comm may hold ')' so cut at the last one.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return false, nil
		}
		switch b[i+2] {
		case 'T', 't', 'Z', 'X':
		default:
			return false, nil
		}
	}
	return true, nil
}

// Resume SIGCONTs node.
func (d *DB) Resume(ctx context.Context, node db.Node) error {
	_, err := d.signalRunning(node, "resume", syscall.SIGCONT)
	return err
}

// signalRunning sends sig to node's process group for the fault verb,
// failing when the node is not running: a pause or resume of a dead
// node is a nemesis that lost track, not a no-op.
func (d *DB) signalRunning(node db.Node, verb string, sig syscall.Signal) (*node, error) {
	n, err := d.nodes.Lookup(node)
	if err != nil {
		return nil, err
	}
	running, err := d.signal(n, sig)
	if err == nil && !running {
		err = fmt.Errorf("local db: %s %s: %w", verb, n.Name, errNotRunning)
	}
	return n, err
}

var errNotRunning = errors.New("node is not running")

// Teardown stops every node: SIGTERM, then SIGKILL after StopGrace (a
// paused node is resumed first so it can act on SIGTERM). It waits until
// every process is reaped. Safe to call twice and after a failed Setup.
func (d *DB) Teardown(ctx context.Context) error {
	d.mu.Lock()
	d.tornDown = true
	d.mu.Unlock()

	errs := []error{db.ForEach(d.nodes.All(), func(n *node) error { return d.stopNode(ctx, n) })}
	d.stopSpawner()
	// The proxies go last: a node being stopped may still be talking.
	d.mu.Lock()
	links := d.links
	d.mu.Unlock()
	for _, row := range links {
		for _, l := range row {
			if l == nil {
				continue
			}
			errs = append(errs, l.kafka.Close())
			if l.controller != nil {
				errs = append(errs, l.controller.Close())
			}
		}
	}
	return errors.Join(errs...)
}

func (d *DB) stopNode(ctx context.Context, n *node) error {
	d.mu.Lock()
	exited, running, paused := n.exited, n.proc != nil, n.paused
	d.mu.Unlock()
	if !running {
		return nil
	}
	if paused {
		if _, err := d.signal(n, syscall.SIGCONT); err != nil {
			return err
		}
	}
	if _, err := d.signal(n, syscall.SIGTERM); err != nil {
		return err
	}
	grace := time.NewTimer(d.opts.StopGrace)
	defer grace.Stop()
	select {
	case <-exited:
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	return d.killNode(n)
}

// spawnReq asks the spawner goroutine to start a command.
type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

// spawn starts cmd from the spawner goroutine, whose OS thread lives until
// Teardown: Pdeathsig is tied to the forking thread.
func (d *DB) spawn(cmd *exec.Cmd) error {
	d.spawnOnce.Do(func() {
		d.spawnCh = make(chan spawnReq)
		d.spawnDone = make(chan struct{})
		started := make(chan struct{})
		go func() {
			// Never unlocked: when this goroutine returns, the runtime
			// ends its thread, and Pdeathsig kills any child left.
			runtime.LockOSThread()
			close(started)
			defer close(d.spawnDone)
			for req := range d.spawnCh {
				req.reply <- req.cmd.Start()
			}
		}()
		<-started
	})
	reply := make(chan error, 1)
	d.spawnCh <- spawnReq{cmd: cmd, reply: reply}
	return <-reply
}

// stopSpawner ends the spawner goroutine (and its thread). Called with no
// process running, after Teardown has stopped them all.
func (d *DB) stopSpawner() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.spawnCh != nil {
		close(d.spawnCh)
		<-d.spawnDone
		d.spawnCh = nil
	}
}

// ErrNoLinks is returned by the network faults of a DB without
// Options.Links: its nodes talk directly, with nothing to cut.
var ErrNoLinks = errors.New("local db: the links between nodes are not proxied (Options.Links is off)")

// LinkAddrs returns the addresses of the proxies node from dials to reach
// node to: its Kafka port and, in cluster mode, its controller port.
func (d *DB) LinkAddrs(from, to string) (kafka, controller string, err error) {
	l, err := d.link(from, to)
	if err != nil {
		return "", "", err
	}
	kafka = l.kafka.Addr()
	if l.controller != nil {
		controller = l.controller.Addr()
	}
	return kafka, controller, nil
}

func (d *DB) link(from, to string) (*link, error) {
	f, err := d.nodes.ByName(from)
	if err != nil {
		return nil, err
	}
	t, err := d.nodes.ByName(to)
	if err != nil {
		return nil, err
	}
	if f == t {
		return nil, fmt.Errorf("local db: link %s->%s: a node has no link to itself", from, to)
	}
	d.mu.Lock()
	links := d.links
	d.mu.Unlock()
	if links == nil {
		return nil, ErrNoLinks
	}
	return links[f.ID-1][t.ID-1], nil
}

// directed calls fn for each proxy and direction that carries traffic
// from node from to node to: the Up direction of from's proxies to to
// (requests from sends) and the Down direction of to's proxies to from
// (replies from sends on connections to opened).
func (d *DB) directed(from, to string, fn func(p *proxy.Proxy, dir proxy.Direction)) error {
	out, err := d.link(from, to)
	if err != nil {
		return err
	}
	back, err := d.link(to, from)
	if err != nil {
		return err
	}
	for _, l := range []struct {
		l   *link
		dir proxy.Direction
	}{{out, proxy.Up}, {back, proxy.Down}} {
		fn(l.l.kafka, l.dir)
		if l.l.controller != nil {
			fn(l.l.controller, l.dir)
		}
	}
	return nil
}

// eachLink checks every pair of links first, so that a bad name changes
// nothing, then applies fn to them.
func (d *DB) eachLink(links map[string][]string, fn func(p *proxy.Proxy, dir proxy.Direction)) error {
	for from, tos := range links {
		for _, to := range tos {
			if err := d.directed(from, to, func(*proxy.Proxy, proxy.Direction) {}); err != nil {
				return err
			}
		}
	}
	for from, tos := range links {
		for _, to := range tos {
			_ = d.directed(from, to, fn)
		}
	}
	return nil
}

func (d *DB) eachProxy(fn func(p *proxy.Proxy)) error {
	d.mu.Lock()
	links := d.links
	d.mu.Unlock()
	if links == nil {
		return ErrNoLinks
	}
	for _, row := range links {
		for _, l := range row {
			if l == nil {
				continue
			}
			fn(l.kafka)
			if l.controller != nil {
				fn(l.controller)
			}
		}
	}
	return nil
}

// Partition cuts the traffic each key of drops sends to the nodes of its
// value, on the Kafka and controller links alike. Bytes in flight are
// held, not lost (see package db/proxy).
func (d *DB) Partition(ctx context.Context, drops map[string][]string) error {
	if err := d.eachLink(drops, func(p *proxy.Proxy, dir proxy.Direction) { p.Cut(dir, true) }); err != nil {
		return fmt.Errorf("local db: partition: %w", err)
	}
	return nil
}

// Heal ends every cut; packet faults stay.
func (d *DB) Heal(ctx context.Context) error {
	if err := d.eachProxy(func(p *proxy.Proxy) { p.Cut(proxy.Up, false); p.Cut(proxy.Down, false) }); err != nil {
		return fmt.Errorf("local db: heal: %w", err)
	}
	return nil
}

// Shape applies pk to the traffic each key of links sends to the nodes of
// its value. Loss is modelled as TCP shows it to applications: stalls of
// one retransmission timeout, never missing bytes (see package db/proxy).
func (d *DB) Shape(ctx context.Context, links map[string][]string, pk db.Packet) error {
	if pk.Loss < 0 || pk.Loss > 1 || pk.Delay < 0 || pk.Jitter < 0 {
		return fmt.Errorf("local db: shape: bad packet fault %+v", pk)
	}
	if err := d.eachLink(links, func(p *proxy.Proxy, dir proxy.Direction) { p.Shape(dir, pk) }); err != nil {
		return fmt.Errorf("local db: shape: %w", err)
	}
	return nil
}

// Unshape ends every packet fault; cuts stay.
func (d *DB) Unshape(ctx context.Context) error {
	if err := d.eachProxy(func(p *proxy.Proxy) { p.Shape(proxy.Up, db.Packet{}); p.Shape(proxy.Down, db.Packet{}) }); err != nil {
		return fmt.Errorf("local db: unshape: %w", err)
	}
	return nil
}

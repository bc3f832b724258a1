package docker

// Tests against the real Docker engine. They run when one is reachable
// and skip with a message otherwise, except in CI (CI set), where the
// machine has an engine and a skip would hide a broken backend: there they
// fail.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/dbtest"
	"github.com/garantia/garantia/db/local/buildtest"
	"github.com/garantia/garantia/internal/leakcheck"
)

// Environment of the helper processes: the test binary re-run as a
// harness that fails (or is killed) while its cluster runs.
const (
	helperModeEnv = "GARANTIA_DOCKER_HELPER"     // "fail" or "crash"
	helperRunEnv  = "GARANTIA_DOCKER_HELPER_RUN" // the run id to use
	helperBinEnv  = "GARANTIA_DOCKER_HELPER_BIN" // the garantia binary
)

var (
	binOnce  sync.Once
	binDir   string
	binPath  string
	binErr   error
	brokerOK bool
)

func TestMain(m *testing.M) {
	// The garantia that tests build goes into a FROM scratch image: it
	// must be static.
	os.Setenv("CGO_ENABLED", "0")
	if os.Getenv(helperModeEnv) == "crash" {
		crashHelper()
		return
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	removeTestImages()
	os.Exit(code)
}

// garantiaBinary builds a static garantia once per test process (or uses
// $GARANTIA_TEST_BINARY) and skips t when it has no broker.
func garantiaBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if prebuilt := os.Getenv(buildtest.BinaryEnv); prebuilt != "" {
			binPath = prebuilt
		} else {
			binDir, binErr = os.MkdirTemp("", "garantia-docker-bin-")
			if binErr == nil {
				binPath, binErr = buildtest.Garantia(binDir)
			}
		}
		if binErr == nil {
			brokerOK = buildtest.HasBroker(binPath)
		}
	})
	if binErr != nil {
		t.Fatalf("building the garantia binary for the node image: %v", binErr)
	}
	if !brokerOK {
		t.Skipf("skipping: %s has no working `broker` subcommand", binPath)
	}
	return binPath
}

// imagesBuilt are the node images this test process used; TestMain
// removes them, unless a garantia container still uses one.
var (
	imagesMu    sync.Mutex
	imagesBuilt = map[string]bool{}
)

func removeTestImages() {
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if len(imagesBuilt) == 0 {
		return
	}
	eng, err := NewEngine()
	if err != nil {
		return
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cs, err := eng.ListContainers(ctx, map[string]string{LabelManaged: "true"}); err != nil || len(cs) > 0 {
		return // another test process may be using the image
	}
	for tag := range imagesBuilt {
		_ = eng.RemoveImage(ctx, tag)
	}
}

// ciRequires fails t in CI, where the engine and tools are expected, and
// skips it elsewhere, saying why.
func ciRequires(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set, and CI machines have a Docker engine and root, so this must not skip: %s", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// realEngine connects to the Docker engine or skips t.
func realEngine(t testing.TB) Engine {
	t.Helper()
	eng, err := NewEngine()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = eng.Version(ctx)
	}
	if err != nil {
		ciRequires(t, "no Docker engine reachable (%v); this test runs broker containers", err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// leftovers lists what is labelled with run on the engine.
func leftovers(t testing.TB, eng Engine, run string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := map[string]string{LabelRun: run}
	var out []string
	cs, err := eng.ListContainers(ctx, f)
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	for _, c := range cs {
		out = append(out, "container "+c.Name)
	}
	ns, err := eng.ListNetworks(ctx, f)
	if err != nil {
		t.Fatalf("list networks: %v", err)
	}
	for _, n := range ns {
		out = append(out, "network "+n.Name)
	}
	return out
}

// expectNothingLeft registers a cleanup, to run after every cleanup
// registered later (the Teardown), that fails t if anything labelled with
// run remains, and then removes it so that one failure does not leak.
func expectNothingLeft(t testing.TB, eng Engine, run string) {
	t.Cleanup(func() {
		if left := leftovers(t, eng, run); len(left) > 0 {
			t.Errorf("after Teardown the engine still holds %v", left)
			_, _ = Clean(context.Background(), eng, CleanOptions{Run: run, Force: true})
		}
	})
}

func testRunID(t testing.TB) string {
	return fmt.Sprintf("test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
}

// newDockerCluster prepares a cluster on the real engine, torn down (and
// checked to leave nothing) when t ends.
func newDockerCluster(t testing.TB, nodes int, mod func(*Options)) (*DB, Engine) {
	t.Helper()
	eng := realEngine(t)
	bin := garantiaBinary(t)
	opts := Options{Config: db.Config{Binary: bin, Nodes: nodes, Dir: t.TempDir(), StopGrace: 2 * time.Second}, Engine: eng, RunID: testRunID(t)}
	if mod != nil {
		mod(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	expectNothingLeft(t, eng, d.RunID())
	// Cleanups run last registered first: Teardown, then the image is
	// noted for TestMain, then expectNothingLeft looks.
	t.Cleanup(func() {
		if img := d.Image(); img != "" {
			imagesMu.Lock()
			imagesBuilt[img] = true
			imagesMu.Unlock()
		}
	})
	dbtest.TeardownAtEnd(t, d)
	return d, eng
}

// probe is dbtest.Probe, short for the many probes of these tests.
var probe = dbtest.Probe

func TestDockerLifecycle(t *testing.T) {
	leakcheck.Check(t)
	d, _ := newDockerCluster(t, 2, nil)
	ctx := context.Background()
	if err := d.Setup(ctx); err != nil {
		t.Fatalf("setup: %v", err)
	}
	nodes := d.Nodes()
	n1, n2 := nodes[0], nodes[1]
	dbtest.CheckAnswer(t, nodes)
	for _, n := range nodes {
		if !d.Subnet().Contains(netipOf(t, n.Addr)) {
			t.Errorf("%s at %s, outside the run's subnet %s", n.Name, n.Addr, d.Subnet())
		}
	}
	pid1, _ := d.Pid(n1)

	// Kill: the process is gone, the address refuses.
	if err := d.Kill(ctx, n1); err != nil {
		t.Fatal(err)
	}
	if processStart(pid1) != 0 {
		t.Errorf("n1's broker (pid %d) still exists after Kill", pid1)
	}
	dbtest.CheckKilled(t, ctx, d, n1)

	// Start: same address, a new process, answering.
	dbtest.CheckStart(t, ctx, d, n1)
	if pid, _ := d.Pid(n1); pid == 0 || pid == pid1 {
		t.Fatalf("n1's pid after restart %d (before %d)", pid, pid1)
	}

	// Pause: the kernel still accepts, the frozen broker answers nothing.
	dbtest.CheckPauseResume(t, ctx, d, n2)

	// Restart: graceful stop, start, answering.
	if err := d.Restart(ctx, n2); err != nil {
		t.Fatal(err)
	}
	if err := probe(n2.Addr, 2*time.Second); err != nil {
		t.Fatalf("n2 does not answer after Restart: %v", err)
	}

	dbtest.CheckUnknownNode(t, ctx, d)

	// Pause n2 again: Teardown must stop a paused node too.
	if err := d.Pause(ctx, n2); err != nil {
		t.Fatal(err)
	}
	// And on a cancelled context, as after Ctrl-C.
	interrupted, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Teardown(interrupted); err != nil {
		t.Fatalf("teardown: %v", err)
	}

	// The logs: in the run folder, the harness's start lines, the
	// broker's own lines, and n2's graceful shutdowns.
	starts := map[string]int{"n1": 2, "n2": 2}
	logs := dbtest.CheckStartMarkers(t, d, d.opts.Dir, starts)
	for name, want := range starts {
		if got := strings.Count(logs[name], "broker listening"); got != want {
			t.Errorf("%s's log has %d 'broker listening' lines, want %d (the container's output is copied):\n%s", name, got, want, logs[name])
		}
	}
	if strings.Count(logs["n2"], "broker shut down") != 2 {
		t.Errorf("n2's log should show two graceful shutdowns (Restart, Teardown):\n%s", logs["n2"])
	}
	// The data folder is the run folder's, written as the harness's user.
	st, err := os.Stat(filepath.Join(d.opts.Dir, "n1", "data"))
	if err != nil {
		t.Fatalf("n1's data folder: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.opts.Dir, "n1", "data")); len(entries) == 0 {
		t.Error("n1's data folder in the run folder is empty: the bind mount did not take")
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		t.Errorf("n1's data folder belongs to uid %d, want the harness's %d", sys.Uid, os.Getuid())
	}
	dbtest.CheckTornDown(t, ctx, d, n1)
}

func netipOf(t *testing.T, addr string) netip.Addr {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Addr()
}

// requireFaultTools skips (or in CI fails) t when this host cannot apply
// iptables rules in the containers.
func requireFaultTools(t *testing.T, d *DB) {
	t.Helper()
	if err := d.CheckNetworkFaults(); err != nil {
		ciRequires(t, "%v", err)
	}
}

// dialFrom reports whether node from can open a TCP connection to addr.
func dialFrom(d *DB, from, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c, err := d.DialFrom(ctx, from, "tcp", addr)
	if err == nil {
		c.Close()
	}
	return err
}

// udpCount sends count datagrams from node from to node to (port 7000,
// in to's namespace) and returns how many arrived.
func udpCount(t *testing.T, d *DB, from, to string, count int) int {
	t.Helper()
	pid := func(name string) int {
		n, err := d.nodes.ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := d.Pid(n.Node)
		return p
	}
	toNode, _ := d.nodes.ByName(to)
	var pc net.PacketConn
	if err := inNetNS(pid(to), func() error {
		var err error
		pc, err = net.ListenPacket("udp4", toNode.ip.String()+":7000")
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", to, err)
	}
	defer pc.Close()
	var conn net.Conn
	if err := inNetNS(pid(from), func() error {
		var err error
		conn, err = net.Dial("udp4", toNode.ip.String()+":7000")
		return err
	}); err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	defer conn.Close()
	got := make(chan int, 1)
	go func() {
		n := 0
		buf := make([]byte, 64)
		for {
			pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, _, err := pc.ReadFrom(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	for i := 0; i < count; i++ {
		if _, err := conn.Write([]byte("garantia")); err != nil {
			t.Fatalf("send from %s: %v", from, err)
		}
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // do not overrun the socket buffer
		}
	}
	return <-got
}

// TestDockerPartition: iptables rules in the nodes' namespaces really
// drop packets, one way or both, survive a restart, work on a paused
// node, heal, and drop a share of packets under loss.
func TestDockerPartition(t *testing.T) {
	leakcheck.Check(t)
	d, _ := newDockerCluster(t, 3, nil)
	requireFaultTools(t, d)
	ctx := context.Background()
	if err := d.Setup(ctx); err != nil {
		t.Fatalf("setup: %v", err)
	}
	nodes := d.Nodes()
	n2, n3 := nodes[1], nodes[2]
	if err := dialFrom(d, "n1", n2.Addr); err != nil {
		t.Fatalf("n1 cannot reach n2 before any fault: %v", err)
	}

	// Cut n1 -> n2 only.
	if err := d.Partition(ctx, map[string][]string{"n1": {"n2"}}); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(d, "n1", n2.Addr); err == nil {
		t.Fatal("n1 reaches n2 through the cut")
	}
	if got := udpCount(t, d, "n1", "n2", 20); got != 0 {
		t.Errorf("%d of 20 datagrams n1 -> n2 arrived through the cut", got)
	}
	if got := udpCount(t, d, "n2", "n1", 20); got != 20 {
		t.Errorf("%d of 20 datagrams n2 -> n1 arrived; the cut is one way", got)
	}
	if err := dialFrom(d, "n1", n3.Addr); err != nil {
		t.Errorf("n1 cannot reach n3, which is not cut: %v", err)
	}
	// Clients are never cut: the harness still reaches n2.
	if err := probe(n2.Addr, 2*time.Second); err != nil {
		t.Errorf("the harness cannot reach n2: %v", err)
	}

	// A restart makes a new namespace; the cut must follow.
	if err := d.Kill(ctx, n2); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, n2); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(d, "n1", n2.Addr); err == nil {
		t.Fatal("n1 reaches n2 after n2 restarted: the cut was lost")
	}

	// Both ways, then heal while n2 is paused.
	if err := d.Partition(ctx, map[string][]string{"n2": {"n1"}}); err != nil {
		t.Fatal(err)
	}
	if got := udpCount(t, d, "n2", "n1", 20); got != 0 {
		t.Errorf("%d of 20 datagrams n2 -> n1 arrived through the full cut", got)
	}
	if err := d.Pause(ctx, n2); err != nil {
		t.Fatal(err)
	}
	if err := d.Heal(ctx); err != nil {
		t.Fatalf("heal with n2 paused: %v", err)
	}
	if err := d.Resume(ctx, n2); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(d, "n1", n2.Addr); err != nil {
		t.Fatalf("n1 cannot reach n2 after Heal: %v", err)
	}
	if got := udpCount(t, d, "n2", "n1", 20); got != 20 {
		t.Errorf("%d of 20 datagrams n2 -> n1 arrived after Heal", got)
	}

	// Loss: half the packets n1 sends n3. With 400 datagrams, fewer than
	// 100 or more than 300 arriving has a chance below 1e-23.
	if err := d.Shape(ctx, map[string][]string{"n1": {"n3"}}, db.Packet{Loss: 0.5}); err != nil {
		t.Fatal(err)
	}
	if got := udpCount(t, d, "n1", "n3", 400); got < 100 || got > 300 {
		t.Errorf("%d of 400 datagrams arrived under 50%% loss", got)
	}
	if err := d.Unshape(ctx); err != nil {
		t.Fatal(err)
	}
	if got := udpCount(t, d, "n1", "n3", 400); got < 396 {
		t.Errorf("%d of 400 datagrams arrived after Unshape", got)
	}

	// Delay: netem where the kernel has it; a clear refusal where not.
	const delay = 200 * time.Millisecond
	err := d.Shape(ctx, map[string][]string{"n1": {"n3"}}, db.Packet{Delay: delay})
	switch {
	case errors.Is(err, ErrUnsupportedPacketFault):
		if !strings.Contains(err.Error(), "netem") {
			t.Errorf("the refusal of a delay does not say netem is missing: %v", err)
		}
		t.Logf("this kernel has no netem: %v", err)
	case err != nil:
		t.Fatalf("shape with delay: %v", err)
	default:
		start := time.Now()
		if err := dialFrom(d, "n1", n3.Addr); err != nil {
			t.Fatalf("n1 cannot reach n3 under a delay: %v", err)
		}
		if took := time.Since(start); took < delay {
			t.Errorf("a connection n1 -> n3 took %s under a %s delay", took, delay)
		}
	}
	if err := d.Unshape(ctx); err != nil {
		t.Fatal(err)
	}
	// Whatever happened, the node restarts cleanly and its links work.
	if err := d.Restart(ctx, n3); err != nil {
		t.Fatalf("restart after the delay: %v", err)
	}
	if err := dialFrom(d, "n1", n3.Addr); err != nil {
		t.Fatalf("n1 cannot reach n3 after Unshape: %v", err)
	}
}

// TestDockerNothingLeftWhenATestFails runs a test that fails half way in a
// child process and checks its cleanup removed its containers and network.
func TestDockerNothingLeftWhenATestFails(t *testing.T) {
	eng := realEngine(t)
	bin := garantiaBinary(t)
	run := testRunID(t) + "-fail"
	expectNothingLeft(t, eng, run)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestDockerFailingHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperModeEnv+"=fail", helperRunEnv+"="+run, helperBinEnv+"="+bin)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "planned failure") {
		t.Fatalf("the helper test should have failed on purpose; it said (%v):\n%s", err, out)
	}
	if !strings.Contains(string(out), "containers of the run before the failure: 2") {
		t.Fatalf("the helper did not get its cluster up:\n%s", out)
	}
	if left := leftovers(t, eng, run); len(left) > 0 {
		t.Errorf("a failed test left %v on the engine", left)
	}
}

// TestDockerFailingHelper is the child of the test above; it does nothing
// unless started by it.
func TestDockerFailingHelper(t *testing.T) {
	if os.Getenv(helperModeEnv) != "fail" {
		t.Skip("a helper of TestDockerNothingLeftWhenATestFails")
	}
	eng := realEngine(t)
	d, err := New(Options{Config: db.Config{Binary: os.Getenv(helperBinEnv), Nodes: 2, Dir: t.TempDir()}, Engine: eng, RunID: os.Getenv(helperRunEnv)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Teardown(context.Background()) })
	if err := d.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("containers of the run before the failure: %d", len(leftovers(t, eng, d.RunID()))-1)
	t.Fatal("planned failure")
}

// crashHelper starts a cluster, says so, and waits to be SIGKILLed.
func crashHelper() {
	eng, err := NewEngine()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	dir, _ := os.MkdirTemp("", "garantia-crash-")
	d, err := New(Options{Config: db.Config{Binary: os.Getenv(helperBinEnv), Nodes: 1, Dir: dir}, Engine: eng, RunID: os.Getenv(helperRunEnv)})
	if err == nil {
		err = d.Setup(context.Background())
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready", dir)
	time.Sleep(2 * time.Minute)
	os.Exit(1)
}

// TestDockerCleanAfterCrash: a harness killed with SIGKILL leaves its
// containers; Clean (what `garantia clean` and the next Setup run) removes
// them, because their harness is dead.
func TestDockerCleanAfterCrash(t *testing.T) {
	eng := realEngine(t)
	bin := garantiaBinary(t)
	run := testRunID(t) + "-crash"
	expectNothingLeft(t, eng, run)
	line, crash := dbtest.StartHelper(t, helperModeEnv+"=crash", helperRunEnv+"="+run, helperBinEnv+"="+bin)
	if !strings.HasPrefix(line, "ready ") {
		t.Fatalf("helper said %q, want ready", line)
	}
	t.Cleanup(func() { os.RemoveAll(strings.TrimSpace(strings.TrimPrefix(line, "ready "))) })
	if len(leftovers(t, eng, run)) != 2 {
		t.Fatalf("the helper's run has %v, want a container and a network", leftovers(t, eng, run))
	}
	// While the harness lives, clean leaves its run alone.
	res, err := Clean(context.Background(), eng, CleanOptions{Run: run})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 0 || len(res.Kept) != 2 {
		t.Fatalf("clean of a live run removed %v, kept %v; want it kept", res.Removed, res.Kept)
	}
	crash()
	switch left := leftovers(t, eng, run); len(left) {
	case 2:
	case 0:
		// Setup and `garantia clean` in a concurrent test process sweep
		// dead harnesses' things too, and may have come first.
		t.Log("another process swept the crashed run's leftovers before this test's Clean")
		return
	default:
		t.Fatalf("after the crash the run has %v, want its container and network still there", left)
	}
	res, err = Clean(context.Background(), eng, CleanOptions{Run: run})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 2 {
		t.Errorf("clean after the crash removed %v, want the container and the network", res.Removed)
	}
	if left := leftovers(t, eng, run); len(left) > 0 {
		t.Errorf("after clean the engine still holds %v", left)
	}
}

// TestStaticBuildFromSource: a binary that cannot run in a FROM scratch
// image (here a dynamically linked one) is replaced by a static build of
// the source module, cached: the second call builds nothing.
func TestStaticBuildFromSource(t *testing.T) {
	garantiaBinary(t) // warms Go's build cache for the same build
	dynamic := ""
	for _, cand := range []string{mustExecutable(t), "/bin/sh", "/usr/bin/env"} {
		real, err := filepath.EvalSymlinks(cand)
		if err != nil {
			continue
		}
		if info, err := InspectBinary(real); err == nil && info.ELF && !info.Static {
			dynamic = real
			break
		}
	}
	if dynamic == "" {
		t.Skip("skipping: no dynamically linked executable on this host to stand in for a cgo build")
	}
	// A fresh cache for the static build, but Go's own build cache kept
	// (it defaults to a folder of the same user cache).
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Skipf("skipping: no go tool to build with: %v", err)
	}
	t.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	var notes []string
	logf := func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }
	ctx := context.Background()
	arch := mustInspect(t, dynamic).Arch
	out, err := staticBinary(ctx, dynamic, "", arch, logf)
	if err != nil {
		t.Fatal(err)
	}
	if info := mustInspect(t, out); !info.Static || info.Arch != arch {
		t.Fatalf("the build %s is %+v, want a static %s executable", out, info, arch)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "dynamically linked") {
		t.Errorf("notes %q, want one saying why it builds", notes)
	}
	if err := exec.Command(out, "broker", "--help").Run(); err != nil {
		t.Errorf("%s broker --help: %v", out, err)
	}
	again, err := staticBinary(ctx, dynamic, "", arch, logf)
	if err != nil || again != out || len(notes) != 1 {
		t.Errorf("second call = %s, %v with notes %q; want the cached %s without a build", again, err, notes, out)
	}
}

func mustExecutable(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func mustInspect(t *testing.T, path string) BinaryInfo {
	t.Helper()
	info, err := InspectBinary(path)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

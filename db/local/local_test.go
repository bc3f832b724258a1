package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/dbtest"
	"github.com/garantia/garantia/db/local/buildtest"
)

// Environment of the orphan helper: the test binary re-run as a harness
// that starts a node and is then SIGKILLed.
const (
	helperDirEnv = "GARANTIA_LOCAL_HELPER_DIR"
	helperBinEnv = "GARANTIA_LOCAL_HELPER_BIN"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		orphanHelper(dir, os.Getenv(helperBinEnv))
		return
	}
	buildtest.Main(m)
}

// orphanHelper starts one node, prints its pid and waits to be killed.
func orphanHelper(dir, bin string) {
	d, err := New(Options{Config: db.Config{Binary: bin, Nodes: 1, Dir: dir}})
	if err == nil {
		err = d.Setup(context.Background())
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("pid", d.Pids()["n1"])
	time.Sleep(time.Minute)
	os.Exit(1)
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...; comm may hold spaces, so cut at the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func waitDead(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive %s later", pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe is dbtest.Probe, short for the many probes of these tests.
var probe = dbtest.Probe

func newCluster(t *testing.T, nodes int, mod func(*Options)) *DB {
	t.Helper()
	bin := buildtest.Binary(t)
	opts := Options{Config: db.Config{Binary: bin, Nodes: nodes, Dir: t.TempDir(), StopGrace: 5 * time.Second}}
	if mod != nil {
		mod(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	dbtest.TeardownAtEnd(t, d)
	return d
}

// TestLifecycle drives two nodes through every fault the backend offers
// and checks each one is real: the node stops or starts answering the
// Kafka protocol, and no process survives teardown.
func TestLifecycle(t *testing.T) {
	d := newCluster(t, 2, nil)
	ctx := context.Background()
	if err := d.Setup(ctx); err != nil {
		t.Fatalf("setup: %v", err)
	}
	nodes := d.Nodes()
	if len(nodes) != 2 || nodes[0].Name != "n1" || nodes[1].Name != "n2" || nodes[0].ID != 1 {
		t.Fatalf("nodes = %+v, want n1 and n2", nodes)
	}
	if nodes[0].Addr == nodes[1].Addr {
		t.Fatalf("both nodes listen on %s", nodes[0].Addr)
	}
	dbtest.CheckAnswer(t, nodes)
	pids := d.Pids()
	n1, n2 := nodes[0], nodes[1]

	// Kill: the process is gone and the port refuses.
	if err := d.Kill(ctx, n1); err != nil {
		t.Fatal(err)
	}
	waitDead(t, pids["n1"], 2*time.Second)
	dbtest.CheckKilled(t, ctx, d, n1)

	// Start: same address, new process, answering again.
	dbtest.CheckStart(t, ctx, d, n1)
	newPid := d.Pids()["n1"]
	if newPid == 0 || newPid == pids["n1"] {
		t.Fatalf("n1 pid after restart = %d (before %d)", newPid, pids["n1"])
	}

	// Pause: the port accepts (the kernel does) but nothing answers.
	dbtest.CheckPauseResume(t, ctx, d, n2)

	// Unknown nodes are refused by name.
	dbtest.CheckUnknownNode(t, ctx, d)

	// Logs: one per node, with the harness's start markers (n1 twice).
	dbtest.CheckStartMarkers(t, d, d.opts.Dir, map[string]int{"n1": 2, "n2": 1})

	// Pause n2 again: Teardown must stop a paused node too.
	if err := d.Pause(ctx, n2); err != nil {
		t.Fatal(err)
	}
	live := d.Pids()
	if err := d.Teardown(ctx); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	for name, pid := range live {
		if alive(pid) {
			t.Errorf("%s (pid %d) survived Teardown", name, pid)
		}
	}
	if len(d.Pids()) != 0 {
		t.Errorf("Pids after Teardown = %v, want none", d.Pids())
	}
	if err := d.Teardown(ctx); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	dbtest.CheckTornDown(t, ctx, d, n1)
}

// TestSetupFailureQuotesLog: a node that exits at once makes Setup fail
// with the tail of its log, and teardown still works.
func TestSetupFailureQuotesLog(t *testing.T) {
	d := newCluster(t, 1, func(o *Options) {
		o.ExtraArgs = func(db.Node) []string { return []string{"--no-such-flag"} }
	})
	err := d.Setup(context.Background())
	if err == nil {
		t.Fatal("Setup succeeded with a flag the broker does not know")
	}
	if !errors.Is(err, db.ErrExited) || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("Setup error = %v; want ErrExited quoting the broker's complaint", err)
	}
	if err := d.Teardown(context.Background()); err != nil {
		t.Fatalf("teardown after failed setup: %v", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"no nodes", Options{Config: db.Config{Nodes: 0, Dir: dir, Binary: "x"}}, "nodes"},
		{"no dir", Options{Config: db.Config{Nodes: 1, Binary: "x"}}, "Dir"},
		{"dir is a file", Options{Config: db.Config{Nodes: 1, Dir: file, Binary: "x"}}, "not a folder"},
		{"missing dir", Options{Config: db.Config{Nodes: 1, Dir: filepath.Join(dir, "nope"), Binary: "x"}}, "Dir"},
		{"not loopback", Options{Config: db.Config{Nodes: 1, Dir: dir, Binary: "x"}, Host: "10.0.0.1"}, "loopback"},
		{"not an address", Options{Config: db.Config{Nodes: 1, Dir: dir, Binary: "x"}, Host: "localhost"}, "loopback"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New(%+v) = %v, want an error naming %q", c.opts, err, c.want)
			}
		})
	}
}

// TestNoOrphans: a harness killed with SIGKILL (no teardown at all) takes
// its broker with it, through Pdeathsig.
func TestNoOrphans(t *testing.T) {
	bin := buildtest.Binary(t)
	line, crash := dbtest.StartHelper(t, helperDirEnv+"="+t.TempDir(), helperBinEnv+"="+bin)
	var pid int
	if f := strings.Fields(line); len(f) == 2 && f[0] == "pid" {
		pid, _ = strconv.Atoi(f[1])
	}
	if pid <= 0 {
		t.Fatalf("helper said %q, want its broker's pid", line)
	}
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	if !alive(pid) {
		t.Fatalf("broker %d is not running under the helper", pid)
	}
	crash()
	waitDead(t, pid, 5*time.Second)
}

// TestPortRaceRetried: when the port handed to a node was taken before the
// node bound it, Setup retries with a new port.
func TestPortRaceRetried(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	calls := 0
	pickPort = func(host string) (int, error) {
		calls++
		if calls == 1 {
			return taken.Addr().(*net.TCPAddr).Port, nil // lose the race
		}
		return freePort(host)
	}
	t.Cleanup(func() { pickPort = freePort })

	d := newCluster(t, 1, nil)
	if err := d.Setup(context.Background()); err != nil {
		t.Fatalf("Setup did not recover from a taken port: %v", err)
	}
	if calls != 2 {
		t.Errorf("picked %d ports, want 2", calls)
	}
	if got := d.Nodes()[0].Addr; got == taken.Addr().String() {
		t.Errorf("node kept the taken address %s", got)
	}
	b, err := os.ReadFile(d.LogFiles()["n1"])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "address already in use") {
		t.Errorf("the log does not show the lost race:\n%s", b)
	}
}

func TestFreePort(t *testing.T) {
	p, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if p <= 0 || p > 65535 {
		t.Fatalf("port %d", p)
	}
}

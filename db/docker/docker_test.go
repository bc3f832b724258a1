package docker

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/db"
)

// fakeELF writes a minimal ELF header (no program headers, no sections)
// for machine: to InspectBinary, a static executable.
func fakeELF(t *testing.T, machine elf.Machine) string {
	t.Helper()
	h := make([]byte, 64)
	copy(h, []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	le := binary.LittleEndian
	le.PutUint16(h[16:], uint16(elf.ET_EXEC))
	le.PutUint16(h[18:], uint16(machine))
	le.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	le.PutUint16(h[52:], 64) // ehsize
	le.PutUint16(h[54:], 56) // phentsize
	le.PutUint16(h[58:], 64) // shentsize
	p := filepath.Join(t.TempDir(), "garantia")
	if err := os.WriteFile(p, h, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeCluster is a backend over the fake engine and firewall whose nodes
// are ready as soon as their container runs.
type fakeCluster struct {
	*DB
	eng *fakeEngine
	fw  *fakeFirewall
}

func newFakeCluster(t *testing.T, nodes int, mod func(*Options)) *fakeCluster {
	t.Helper()
	eng, fw := newFakeEngine(), newFakeFirewall()
	opts := Options{
		Config:   db.Config{Binary: fakeELF(t, elf.EM_X86_64), Nodes: nodes, Dir: t.TempDir()},
		Engine:   eng,
		Firewall: fw,
	}
	if mod != nil {
		mod(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	d.probe = func(ctx context.Context, addr string) error {
		eng.mu.Lock()
		defer eng.mu.Unlock()
		for _, c := range eng.containers {
			if netip.AddrPortFrom(c.spec.IP, KafkaPort).String() == addr && c.running && !c.paused {
				return nil
			}
		}
		return errors.New("fake: nothing answers at " + addr)
	}
	t.Cleanup(func() {
		if err := d.Teardown(context.Background()); err != nil {
			t.Errorf("teardown: %v", err)
		}
		if c, n := eng.counts(); c+n != 0 {
			t.Errorf("after Teardown the engine still holds %d containers and %d networks", c, n)
		}
	})
	return &fakeCluster{DB: d, eng: eng, fw: fw}
}

func (c *fakeCluster) node(t *testing.T, name string) db.Node {
	t.Helper()
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no node %s", name)
	return db.Node{}
}

func (c *fakeCluster) pid(t *testing.T, name string) int {
	t.Helper()
	pid, err := c.Pid(c.node(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestSetupLaysOutTheCluster(t *testing.T) {
	c := newFakeCluster(t, 3, func(o *Options) {
		o.Cluster = &Cluster{MinInsyncReplicas: 2, SessionTimeout: 3 * time.Second}
		o.Fsync = "always"
		o.Bugs = []string{"hw-truncate"}
		o.RunID = "unit-1"
	})
	// A network already on 172.28.0.0/16 and beyond: the run's must
	// avoid it whichever /24 the run id points at first.
	taken := netip.MustParsePrefix("172.28.0.0/15")
	c.eng.networks["other"] = &Network{Resource: Resource{ID: "other", Name: "other"}, Subnets: []netip.Prefix{taken}}
	if err := c.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	subnet := c.Subnet()
	if subnet.Overlaps(taken) || subnet.Bits() != 24 {
		t.Fatalf("run subnet %s: want a /24 clear of %s", subnet, taken)
	}
	nodes := c.Nodes()
	if len(nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(nodes))
	}
	peer := map[string]string{}
	for _, n := range nodes {
		ip := nodeIP(subnet, n.ID)
		if n.Addr != ip.String()+":9092" || n.Controller != ip.String()+":9093" {
			t.Errorf("%s: addr %s controller %s, want %s:9092 and :9093", n.Name, n.Addr, n.Controller, ip)
		}
		peer[n.Name] = "--peer " + strings.TrimPrefix(n.Name, "n") + "=" + n.Addr + "," + n.Controller
	}
	if got := nodes[0].Addr; !strings.HasSuffix(strings.Split(got, ":")[0], ".11") {
		t.Errorf("n1 at %s, want .11", got)
	}
	for _, n := range nodes {
		ct := c.eng.byName("garantia-unit-1-" + n.Name)
		if ct == nil {
			t.Fatalf("no container garantia-unit-1-%s", n.Name)
		}
		cmd := strings.Join(ct.spec.Cmd, " ")
		for _, want := range []string{
			"broker --id " + strings.TrimPrefix(n.Name, "n") + " --listen 0.0.0.0:9092 --advertise " + n.Addr + " --data-dir /data",
			"--controller-listen " + n.Controller,
			"--session-timeout 3s", "--min-insync-replicas 2",
			"--fsync always", "--bug hw-truncate",
		} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s's command %q lacks %q", n.Name, cmd, want)
			}
		}
		for name, p := range peer {
			if got := strings.Contains(cmd, p); got != (name != n.Name) {
				t.Errorf("%s's command %q: has %q = %v; want a --peer for every other node only", n.Name, cmd, p, got)
			}
		}
		for k, v := range map[string]string{LabelManaged: "true", LabelRun: "unit-1", LabelNode: n.Name, LabelHarness: harnessID()} {
			if ct.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", n.Name, k, ct.Labels[k], v)
			}
		}
		wantBind := filepath.Join(c.opts.Dir, n.Name, "data") + ":/data"
		if len(ct.spec.Binds) != 1 || ct.spec.Binds[0] != wantBind {
			t.Errorf("%s: binds %v, want [%s]", n.Name, ct.spec.Binds, wantBind)
		}
		if ct.spec.IP != nodeIP(subnet, n.ID) || ct.spec.Network != "garantia-unit-1" {
			t.Errorf("%s: container at %s on %s", n.Name, ct.spec.IP, ct.spec.Network)
		}
	}
	// The output of each node's container lands in its broker.log, after
	// the harness's start line.
	waitLog(t, c.LogFiles()["n2"], "fake broker n2 start 1")
	b, _ := os.ReadFile(c.LogFiles()["n2"])
	if !strings.HasPrefix(string(b), "=== garantia harness: starting n2") {
		t.Errorf("n2's log starts %q, want the harness's start line", firstLine(string(b)))
	}
	if c.Image() == "" || c.eng.builds != 1 {
		t.Errorf("image %q after %d builds, want one build", c.Image(), c.eng.builds)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// waitLog waits until path contains want (the log copier is a goroutine).
func waitLog(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never got %q; it holds:\n%s", path, want, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSingleNodeHasNoClusterFlags(t *testing.T) {
	c := newFakeCluster(t, 1, func(o *Options) {
		o.ExtraArgs = func(n db.Node) []string { return []string{"--log-level", "debug"} }
	})
	if err := c.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	cmd := strings.Join(c.eng.byName(c.ContainerName(c.node(t, "n1"))).spec.Cmd, " ")
	if strings.Contains(cmd, "--peer") || strings.Contains(cmd, "--controller-listen") {
		t.Errorf("single-node command %q has cluster flags", cmd)
	}
	if !strings.HasSuffix(cmd, "--log-level debug") {
		t.Errorf("command %q does not end with ExtraArgs", cmd)
	}
	if n := c.node(t, "n1"); n.Controller != "" {
		t.Errorf("Controller = %q without Cluster", n.Controller)
	}
}

func TestImageReused(t *testing.T) {
	bin := fakeELF(t, elf.EM_X86_64)
	eng := newFakeEngine()
	ctx := context.Background()
	tag1, err := EnsureImage(ctx, eng, bin, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tag2, err := EnsureImage(ctx, eng, bin, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tag1 != tag2 || eng.builds != 1 || !strings.HasPrefix(tag1, ImageRepo+":") {
		t.Fatalf("tags %s, %s after %d builds; want one build, reused", tag1, tag2, eng.builds)
	}
	if eng.images[tag1].Labels[LabelManaged] != "true" {
		t.Errorf("image labels %v lack %s", eng.images[tag1].Labels, LabelManaged)
	}
}

func TestImageRefusesForeignBinaryWithoutSource(t *testing.T) {
	t.Chdir(t.TempDir()) // no go.mod above
	t.Setenv(SourceDirEnv, "")
	bin := fakeELF(t, elf.EM_AARCH64)
	_, err := EnsureImage(context.Background(), newFakeEngine(), bin, "", nil)
	if err == nil || !strings.Contains(err.Error(), `built for "arm64"`) || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("EnsureImage(arm64 binary, amd64 engine, no source) = %v; want an error naming both and the fix", err)
	}
}

func TestNetworkOverlapRetried(t *testing.T) {
	c := newFakeCluster(t, 1, nil)
	c.eng.overlaps = 3
	if err := c.Setup(context.Background()); err != nil {
		t.Fatalf("setup with 3 overlaps: %v", err)
	}
	var tried []string
	for _, call := range c.eng.calls {
		if strings.HasPrefix(call, "create-network") {
			tried = append(tried, call)
		}
	}
	if len(tried) != 4 || tried[0] == tried[1] {
		t.Errorf("network creates %v, want 4 on different subnets", tried)
	}

	c2 := newFakeCluster(t, 1, nil)
	c2.eng.overlaps = 1000
	if err := c2.Setup(context.Background()); err == nil || !IsOverlap(err) {
		t.Errorf("setup with endless overlaps = %v, want an overlap error", err)
	}
}

func TestFaultsAndRulesSurviveRestart(t *testing.T) {
	c := newFakeCluster(t, 3, nil)
	ctx := context.Background()
	if err := c.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	ip := func(name string) netip.Addr { return nodeIP(c.Subnet(), c.node(t, name).ID) }

	// n1 -> n2 and n3 -> n2 cut: n2 drops both on INPUT.
	if err := c.Partition(ctx, map[string][]string{"n1": {"n2"}, "n3": {"n2"}}); err != nil {
		t.Fatal(err)
	}
	n2pid := c.pid(t, "n2")
	want := []Rule{{From: ip("n1"), Probability: 1}, {From: ip("n3"), Probability: 1}}
	if got := c.fw.of(n2pid); !slices.Equal(got, want) {
		t.Fatalf("n2's rules %v, want %v", got, want)
	}
	if got := c.fw.of(c.pid(t, "n1")); len(got) != 0 {
		t.Errorf("n1 got rules %v; a one-way cut changes only the receiver", got)
	}

	// Kill and Start: a new process (new namespace) gets the rules back.
	if err := c.Kill(ctx, c.node(t, "n2")); err != nil {
		t.Fatal(err)
	}
	if p := c.pid(t, "n2"); p != 0 {
		t.Fatalf("pid %d after Kill, want 0", p)
	}
	if err := c.Kill(ctx, c.node(t, "n2")); err != nil {
		t.Fatalf("killing a killed node: %v, want a no-op", err)
	}
	if err := c.Start(ctx, c.node(t, "n2")); err != nil {
		t.Fatal(err)
	}
	newPid := c.pid(t, "n2")
	if newPid == n2pid || !slices.Equal(c.fw.of(newPid), want) {
		t.Fatalf("after restart n2 (pid %d, was %d) has rules %v, want %v", newPid, n2pid, c.fw.of(newPid), want)
	}

	// Loss on n1 -> n3 stays through Heal; Unshape ends it.
	if err := c.Shape(ctx, map[string][]string{"n1": {"n3"}}, db.Packet{Loss: 0.25}); err != nil {
		t.Fatal(err)
	}
	n3pid := c.pid(t, "n3")
	if got := c.fw.of(n3pid); !slices.Equal(got, []Rule{{From: ip("n1"), Probability: 0.25}}) {
		t.Fatalf("n3's rules %v, want 25%% loss from n1", got)
	}
	if err := c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.fw.of(c.pid(t, "n2")); len(got) != 0 {
		t.Errorf("n2's rules after Heal: %v, want none", got)
	}
	if got := c.fw.of(n3pid); len(got) != 1 {
		t.Errorf("n3's rules after Heal: %v, want the loss to stay", got)
	}
	if err := c.Unshape(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.fw.of(n3pid); len(got) != 0 {
		t.Errorf("n3's rules after Unshape: %v, want none", got)
	}

	// Delay: netem on the sender, per receiver, back after a restart.
	if err := c.Shape(ctx, map[string][]string{"n1": {"n2", "n3"}}, db.Packet{Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	wantDelays := []Delay{{To: ip("n2"), Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond}, {To: ip("n3"), Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond}}
	if got := c.fw.delaysOf(c.pid(t, "n1")); !slices.Equal(got, wantDelays) {
		t.Fatalf("n1's delays %v, want %v", got, wantDelays)
	}
	if err := c.Kill(ctx, c.node(t, "n1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, c.node(t, "n1")); err != nil {
		t.Fatal(err)
	}
	if got := c.fw.delaysOf(c.pid(t, "n1")); !slices.Equal(got, wantDelays) {
		t.Fatalf("n1's delays after a restart %v, want %v", got, wantDelays)
	}
	if err := c.Unshape(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.fw.delaysOf(c.pid(t, "n1")); len(got) != 0 {
		t.Errorf("n1's delays after Unshape: %v, want none", got)
	}

	// Without netem a delay is refused and leaves nothing behind: the
	// next start of the node must not trip over it.
	c.fw.noNetem = true
	if err := c.Shape(ctx, map[string][]string{"n2": {"n3"}}, db.Packet{Delay: time.Millisecond}); !errors.Is(err, ErrUnsupportedPacketFault) {
		t.Errorf("Shape with delay, no netem = %v, want ErrUnsupportedPacketFault", err)
	}
	if err := c.Restart(ctx, c.node(t, "n2")); err != nil {
		t.Errorf("restart after a refused delay: %v", err)
	}
	c.fw.noNetem = false

	// Refusals: unknown names, a bad probability.
	if err := c.Partition(ctx, map[string][]string{"n1": {"n9"}}); !errors.Is(err, db.ErrUnknownNode) {
		t.Errorf("Partition to n9 = %v, want ErrUnknownNode", err)
	}
	if err := c.Shape(ctx, map[string][]string{"n1": {"n2"}}, db.Packet{Loss: 1.5}); err == nil {
		t.Error("Shape with loss 1.5 succeeded")
	}
}

func TestPartitionSaysWhatIsMissing(t *testing.T) {
	c := newFakeCluster(t, 2, nil)
	c.fw.missing = errors.New("docker: network faults unavailable on this host: nsenter is missing: install util-linux")
	if err := c.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := c.Partition(context.Background(), map[string][]string{"n1": {"n2"}})
	if err == nil || !strings.Contains(err.Error(), "nsenter") {
		t.Fatalf("Partition without nsenter = %v, want the firewall's complaint", err)
	}
}

func TestPauseResumeAndTeardownOfPausedNode(t *testing.T) {
	c := newFakeCluster(t, 2, nil)
	ctx := context.Background()
	if err := c.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	n1 := c.node(t, "n1")
	if err := c.Pause(ctx, n1); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(ctx, n1); err != nil {
		t.Errorf("pausing a paused node: %v, want a no-op", err)
	}
	if err := c.probe(ctx, n1.Addr); err == nil {
		t.Error("a paused node answers")
	}
	if err := c.Resume(ctx, n1); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(ctx, n1); err != nil {
		t.Errorf("resuming a running node: %v, want a no-op", err)
	}
	if err := c.Restart(ctx, n1); err != nil {
		t.Fatal(err)
	}
	waitLog(t, c.LogFiles()["n1"], "fake broker n1 start 2")
	if err := c.Kill(ctx, n1); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(ctx, n1); !errors.Is(err, errNotRunning) {
		t.Errorf("pausing a killed node = %v, want errNotRunning", err)
	}
	// Teardown must thaw n2 first: a frozen broker cannot stop.
	if err := c.Pause(ctx, c.node(t, "n2")); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel() // Ctrl-C: teardown still works
	if err := c.Teardown(cancelled); err != nil {
		t.Fatalf("teardown on a cancelled context: %v", err)
	}
	if err := c.Teardown(ctx); err != nil {
		t.Errorf("second teardown: %v", err)
	}
	if err := c.Start(ctx, n1); !errors.Is(err, db.ErrTornDown) {
		t.Errorf("Start after Teardown = %v, want ErrTornDown", err)
	}
	b, _ := os.ReadFile(c.LogFiles()["n2"])
	if !strings.Contains(string(b), "fake broker shut down") {
		t.Errorf("n2's log lacks its graceful shutdown:\n%s", b)
	}
}

func TestSetupFailureQuotesTheNode(t *testing.T) {
	c := newFakeCluster(t, 2, nil)
	c.eng.exitOnStart = "garantia broker: unknown flag: --bogus"
	err := c.Setup(context.Background())
	if !errors.Is(err, db.ErrExited) || !strings.Contains(err.Error(), "unknown flag: --bogus") {
		t.Fatalf("Setup = %v; want ErrExited quoting the broker", err)
	}
	// The cleanup of newFakeCluster checks that Teardown removes all.
}

func TestHalfCreatedContainerRemoved(t *testing.T) {
	c := newFakeCluster(t, 3, nil)
	c.eng.failCreate = "-n2"
	if err := c.Setup(context.Background()); err == nil {
		t.Fatal("Setup succeeded though n2's create failed")
	}
	if n, _ := c.eng.counts(); n != 3 {
		t.Fatalf("%d containers before teardown, want 3 (n2 half created)", n)
	}
	// newFakeCluster's cleanup checks nothing is left.
}

func TestNoEngine(t *testing.T) {
	c := newFakeCluster(t, 1, nil)
	c.eng.down = true
	err := c.Setup(context.Background())
	if !errors.Is(err, ErrNoEngine) || !strings.Contains(err.Error(), "--db local") {
		t.Fatalf("Setup without an engine = %v; want ErrNoEngine and the way out", err)
	}
	c.eng.down = false
}

func TestNewRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eng := newFakeEngine()
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"no nodes", Options{Config: db.Config{Nodes: 0, Dir: dir}}, "nodes"},
		{"too many nodes", Options{Config: db.Config{Nodes: 241, Dir: dir}}, "nodes"},
		{"no dir", Options{Config: db.Config{Nodes: 1}}, "Dir"},
		{"dir is a file", Options{Config: db.Config{Nodes: 1, Dir: file}}, "not a folder"},
		{"bad run id", Options{Config: db.Config{Nodes: 1, Dir: dir}, RunID: "Run_1"}, "RunID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Engine = eng
			_, err := New(c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New(%+v) = %v, want an error naming %q", c.opts, err, c.want)
			}
		})
	}
}

func TestCandidateSubnets(t *testing.T) {
	taken := []netip.Prefix{netip.MustParsePrefix("172.28.0.0/16"), netip.MustParsePrefix("10.213.7.0/24")}
	a := candidateSubnets(taken, "run-a")
	b := candidateSubnets(taken, "run-b")
	if len(a) != 1280-256-1 {
		t.Fatalf("%d candidates, want %d", len(a), 1280-256-1)
	}
	for _, p := range a {
		for _, tk := range taken {
			if p.Overlaps(tk) {
				t.Fatalf("candidate %s overlaps taken %s", p, tk)
			}
		}
		if p.Bits() != 24 {
			t.Fatalf("candidate %s is not a /24", p)
		}
	}
	if a[0] == b[0] {
		t.Errorf("runs a and b both try %s first; want them spread", a[0])
	}
	if got := candidateSubnets(taken, "run-a"); !slices.Equal(got, a) {
		t.Error("candidates differ for the same run id")
	}
	s := netip.MustParsePrefix("172.29.3.0/24")
	if nodeIP(s, 1).String() != "172.29.3.11" || gatewayIP(s).String() != "172.29.3.1" {
		t.Errorf("n1 at %s, gateway %s", nodeIP(s, 1), gatewayIP(s))
	}
}

func TestRestoreInput(t *testing.T) {
	got := string(restoreInput([]Rule{
		{From: netip.MustParseAddr("172.28.1.11"), Probability: 1},
		{From: netip.MustParseAddr("172.28.1.12"), Probability: 0.3},
	}))
	want := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -s 172.28.1.11/32 -j DROP\n" +
		"-A INPUT -s 172.28.1.12/32 -m statistic --mode random --probability 0.300000 -j DROP\n" +
		"COMMIT\n"
	if got != want {
		t.Errorf("restore input:\n%s\nwant:\n%s", got, want)
	}
	if got := string(restoreInput(nil)); !strings.HasSuffix(got, "[0:0]\nCOMMIT\n") {
		t.Errorf("empty rules give %q, want a flush", got)
	}
}

func TestTCBatch(t *testing.T) {
	a, b, c := netip.MustParseAddr("172.28.1.12"), netip.MustParseAddr("172.28.1.13"), netip.MustParseAddr("172.28.1.14")
	got, err := tcBatch([]Delay{
		{To: a, Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond},
		{To: b, Delay: 5 * time.Millisecond},
		{To: c, Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "qdisc add dev eth0 root handle 1: prio bands 3 priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n" +
		"qdisc add dev eth0 parent 1:2 handle 20: netem delay 50000us 10000us\n" +
		"qdisc add dev eth0 parent 1:3 handle 30: netem delay 5000us\n" +
		"filter add dev eth0 parent 1:0 protocol ip prio 1 u32 match ip dst 172.28.1.12/32 flowid 1:2\n" +
		"filter add dev eth0 parent 1:0 protocol ip prio 1 u32 match ip dst 172.28.1.13/32 flowid 1:3\n" +
		"filter add dev eth0 parent 1:0 protocol ip prio 1 u32 match ip dst 172.28.1.14/32 flowid 1:2\n"
	if string(got) != want {
		t.Errorf("tc batch:\n%s\nwant:\n%s", got, want)
	}
	var many []Delay
	for i := 1; i <= 16; i++ {
		many = append(many, Delay{To: a, Delay: time.Duration(i) * time.Millisecond})
	}
	if _, err := tcBatch(many); !errors.Is(err, ErrUnsupportedPacketFault) {
		t.Errorf("16 distinct delays = %v, want a refusal", err)
	}
}

func TestInspectBinary(t *testing.T) {
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		path string
		want BinaryInfo
	}{
		{"static amd64 header", fakeELF(t, elf.EM_X86_64), BinaryInfo{ELF: true, Arch: "amd64", Static: true}},
		{"static arm64 header", fakeELF(t, elf.EM_AARCH64), BinaryInfo{ELF: true, Arch: "arm64", Static: true}},
		{"script", script, BinaryInfo{}},
	}
	// A dynamically linked program of this host, if it has one.
	if sh, err := exec.LookPath("sh"); err == nil {
		if real, err := filepath.EvalSymlinks(sh); err == nil {
			if f, err := elf.Open(real); err == nil {
				dynamic := false
				for _, p := range f.Progs {
					dynamic = dynamic || p.Type == elf.PT_INTERP
				}
				f.Close()
				if dynamic {
					cases = append(cases, struct {
						name string
						path string
						want BinaryInfo
					}{"dynamic sh", real, BinaryInfo{ELF: true, Arch: elfArch[elfMachine(t, real)], Static: false}})
				}
			}
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := InspectBinary(c.path)
			if err != nil || got != c.want {
				t.Fatalf("InspectBinary(%s) = %+v, %v; want %+v", c.path, got, err, c.want)
			}
		})
	}
	if _, err := InspectBinary(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("InspectBinary of a missing file succeeded")
	}
}

func elfMachine(t *testing.T, path string) elf.Machine {
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return f.Machine
}

func TestHarnessStatus(t *testing.T) {
	if s, _ := harnessStatus(harnessID()); s != harnessAlive {
		t.Errorf("this process judged %v, want alive", s)
	}
	// A process that has exited.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	host, _ := os.Hostname()
	dead := host + "/" + strconv.Itoa(cmd.Process.Pid) + "/12345"
	if s, why := harnessStatus(dead); s != harnessDead {
		t.Errorf("exited process judged %v (%s), want dead", s, why)
	}
	if s, why := harnessStatus("elsewhere.example/1/1"); s != harnessElsewhere || !strings.Contains(why, "elsewhere.example") {
		t.Errorf("another host's harness judged %v (%s), want elsewhere", s, why)
	}
	if s, _ := harnessStatus(""); s != harnessElsewhere {
		t.Errorf("no label judged %v, want elsewhere (unknown)", s)
	}
}

func TestCleanKeepsLiveHarnesses(t *testing.T) {
	eng := newFakeEngine()
	host, _ := os.Hostname()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	harness := map[string]string{
		"dead":  host + "/" + strconv.Itoa(cmd.Process.Pid) + "/1",
		"live":  harnessID(),
		"other": "elsewhere.example/1/1",
	}
	for _, run := range []string{"dead", "live", "other"} {
		labels := map[string]string{LabelManaged: "true", LabelRun: run, LabelHarness: harness[run]}
		eng.networks["net-"+run] = &Network{Resource: Resource{ID: "net-" + run, Name: "garantia-" + run, Labels: labels}}
		eng.containers["c-"+run] = &fakeContainer{Resource: Resource{ID: "c-" + run, Name: "garantia-" + run + "-n1", Labels: labels}}
	}
	eng.images["garantia-node:x"] = Resource{ID: "sha256:x", Name: "garantia-node:x", Labels: map[string]string{LabelManaged: "true"}}
	eng.containers["foreign"] = &fakeContainer{Resource: Resource{ID: "foreign", Name: "someone-elses", Labels: map[string]string{}}}
	ctx := context.Background()

	names := func(rs []Removed) []string {
		var s []string
		for _, r := range rs {
			s = append(s, r.Kind+" "+r.Name)
		}
		return s
	}
	res, err := Clean(ctx, eng, CleanOptions{DeadOnly: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Removed); !slices.Equal(got, []string{"container garantia-dead-n1", "network garantia-dead"}) {
		t.Errorf("dead-only dry run would remove %v", got)
	}
	if n, _ := eng.counts(); n != 3 {
		t.Fatalf("a dry run removed containers: %d left", n)
	}
	res, err = Clean(ctx, eng, CleanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Removed); !slices.Equal(got, []string{"container garantia-dead-n1", "network garantia-dead"}) {
		t.Errorf("clean removed %v; want the dead run's only", got)
	}
	if len(res.Kept) != 4 {
		t.Errorf("kept %v, want the live and the other host's container and network", res.Kept)
	}
	for _, k := range res.Kept {
		if !strings.Contains(k.Why, "--force") {
			t.Errorf("kept %s without saying --force removes it: %q", k, k.Why)
		}
	}
	res, err = Clean(ctx, eng, CleanOptions{Force: true, Images: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 5 {
		t.Errorf("forced clean removed %v, want 2 containers, 2 networks and the image", names(res.Removed))
	}
	if c, n := eng.counts(); c != 0 || n != 0 || eng.byName("someone-elses") == nil {
		t.Errorf("after the forced clean: %d garantia containers, %d networks; want none, and the foreign container kept", c, n)
	}
}

// TestIPTablesCheckNamesWhatIsMissing: without nsenter, or without
// iptables, the check says which and how to install it.
func TestIPTablesCheckNamesWhatIsMissing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the check is about Linux hosts")
	}
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	old := sbinDirs
	sbinDirs = nil
	t.Cleanup(func() { sbinDirs = old })
	fake := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := (&IPTables{}).Check()
	if !errors.Is(err, ErrFaultTools) || !strings.Contains(err.Error(), "nsenter is missing") || !strings.Contains(err.Error(), "util-linux") {
		t.Errorf("check without nsenter = %v; want it named, with the package to install", err)
	}
	fake("nsenter")
	err = (&IPTables{}).Check()
	if !errors.Is(err, ErrFaultTools) || !strings.Contains(err.Error(), "iptables is missing") || !strings.Contains(err.Error(), "apt-get install iptables") {
		t.Errorf("check without iptables = %v; want it named, with the package to install", err)
	}
	fake("iptables-restore")
	err = (&IPTables{}).Check()
	if os.Geteuid() == 0 && err != nil {
		t.Errorf("check with both commands, as root = %v, want nil", err)
	}
	if os.Geteuid() != 0 && (err == nil || !strings.Contains(err.Error(), "root")) {
		t.Errorf("check as uid %d = %v, want it to ask for root", os.Geteuid(), err)
	}
}

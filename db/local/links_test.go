package local

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/local/buildtest"
	"github.com/garantia/garantia/internal/leakcheck"
)

// apiVersions writes one ApiVersions request on c.
func apiVersions(t *testing.T, c net.Conn, corr int32) {
	t.Helper()
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName = "links-test"
	req.ClientSoftwareVersion = "1"
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("links-test")).AppendRequest(nil, req, corr)
	if _, err := c.Write(frame); err != nil {
		t.Fatalf("write ApiVersions: %v", err)
	}
}

// answer reads one response on c within d and returns its correlation id.
func answer(c net.Conn, d time.Duration) (int32, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	var head [8]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return 0, err
	}
	size := binary.BigEndian.Uint32(head[:4])
	if _, err := io.CopyN(io.Discard, c, int64(size)-4); err != nil {
		return 0, err
	}
	return int32(binary.BigEndian.Uint32(head[4:])), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestLinksCutAndHeal runs three broker processes with proxied links and
// checks, with real Kafka requests through the proxies, that a directed
// cut silences the established stream and new connections of exactly the
// links it names, and that Heal delivers what was held.
func TestLinksCutAndHeal(t *testing.T) {
	leakcheck.Check(t)
	d := newCluster(t, 3, func(o *Options) { o.Links = true })
	ctx := context.Background()
	if err := d.Setup(ctx); err != nil {
		t.Fatalf("setup: %v", err)
	}
	addr := func(from, to string) string {
		t.Helper()
		k, c, err := d.LinkAddrs(from, to)
		if err != nil {
			t.Fatal(err)
		}
		if c != "" {
			t.Errorf("link %s->%s has a controller proxy outside cluster mode", from, to)
		}
		return k
	}
	n1n2, n2n1, n1n3 := addr("n1", "n2"), addr("n2", "n1"), addr("n1", "n3")
	for _, a := range []string{n1n2, n2n1, n1n3} {
		if err := probe(a, 2*time.Second); err != nil {
			t.Fatalf("probe through the proxy %s: %v", a, err)
		}
	}
	held, err := net.Dial("tcp", n1n2)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	apiVersions(t, held, 1)
	if corr, err := answer(held, 2*time.Second); err != nil || corr != 1 {
		t.Fatalf("answer before the cut: %d, %v", corr, err)
	}

	// n1 can no longer send to n2; everything else is untouched.
	if err := d.Partition(ctx, map[string][]string{"n1": {"n2"}}); err != nil {
		t.Fatal(err)
	}
	apiVersions(t, held, 2)
	if _, err := answer(held, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("an established connection n1->n2 answered through the cut (%v)", err)
	}
	if err := probe(n1n2, 300*time.Millisecond); err == nil {
		t.Error("a new connection n1->n2 works through the cut")
	}
	// n2's connections to n1 carry n1's replies: cut too.
	if err := probe(n2n1, 300*time.Millisecond); err == nil {
		t.Error("n2 hears n1's replies through the cut")
	}
	if err := probe(n1n3, 2*time.Second); err != nil {
		t.Errorf("the uncut link n1->n3 fails: %v", err)
	}

	if err := d.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	// The request held during the cut arrives now, and is answered.
	if corr, err := answer(held, 5*time.Second); err != nil || corr != 2 {
		t.Fatalf("held request after the heal: answer %d, %v; want the answer to request 2", corr, err)
	}
	for _, a := range []string{n1n2, n2n1} {
		if err := probe(a, 2*time.Second); err != nil {
			t.Errorf("probe through %s after the heal: %v", a, err)
		}
	}

	// Packet faults: a delay on n1->n3 only.
	const delay = 250 * time.Millisecond
	if err := d.Shape(ctx, map[string][]string{"n1": {"n3"}}, db.Packet{Delay: delay}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := probe(n1n3, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("a probe over a link delayed %s took %s", delay, took)
	}
	if err := d.Unshape(ctx); err != nil {
		t.Fatal(err)
	}

	// Bad requests change nothing and say why.
	if err := d.Partition(ctx, map[string][]string{"n1": {"n9"}}); !errors.Is(err, db.ErrUnknownNode) {
		t.Errorf("Partition to n9 = %v, want ErrUnknownNode", err)
	}
	if err := d.Partition(ctx, map[string][]string{"n1": {"n1"}}); err == nil {
		t.Error("Partition of a node from itself succeeded")
	}
	if err := d.Shape(ctx, map[string][]string{"n1": {"n2"}}, db.Packet{Loss: 2}); err == nil {
		t.Error("Shape with loss 2 succeeded")
	}
	if err := probe(n1n2, 2*time.Second); err != nil {
		t.Errorf("a refused Partition cut something: %v", err)
	}
}

// TestNoLinks: without Options.Links there is nothing to cut.
func TestNoLinks(t *testing.T) {
	d, err := New(Options{Config: db.Config{Binary: "x", Nodes: 2, Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Partition(context.Background(), map[string][]string{"n1": {"n2"}}); !errors.Is(err, ErrNoLinks) {
		t.Errorf("Partition = %v, want ErrNoLinks", err)
	}
	if err := d.Heal(context.Background()); !errors.Is(err, ErrNoLinks) {
		t.Errorf("Heal = %v, want ErrNoLinks", err)
	}
}

// TestClusterArgs: in cluster mode every node gets a controller port and
// one --peer per other node naming its own proxies to that node.
func TestClusterArgs(t *testing.T) {
	leakcheck.Check(t)
	d, err := New(Options{
		Config: db.Config{Binary: "x", Nodes: 3, Dir: t.TempDir(), Cluster: &Cluster{
			SessionTimeout: 3 * time.Second, MinInsyncReplicas: 2, DefaultReplicationFactor: 3, UncleanLeaderElection: true,
		}},
		Links: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Teardown(context.Background())
	for _, n := range d.nodes.All() {
		if err := d.pickPorts(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.startLinks(); err != nil {
		t.Fatal(err)
	}
	n2 := d.nodes.All()[1]
	d.mu.Lock()
	args := d.args(n2)
	d.mu.Unlock()
	flag := func(name string) []string {
		var vals []string
		for i := 0; i+1 < len(args); i++ {
			if args[i] == name {
				vals = append(vals, args[i+1])
			}
		}
		return vals
	}
	if got := flag("--controller-listen"); len(got) != 1 || got[0] != n2.Controller || n2.Controller == "" {
		t.Errorf("--controller-listen %v, want %q", got, n2.Controller)
	}
	var want []string
	for _, peer := range []string{"n1", "n3"} {
		k, c, err := d.LinkAddrs("n2", peer)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%s=%s,%s", strings.TrimPrefix(peer, "n"), k, c))
	}
	if got := flag("--peer"); !slices.Equal(got, want) {
		t.Errorf("--peer %v, want %v (n2's own proxies)", got, want)
	}
	for name, want := range map[string]string{"--session-timeout": "3s", "--min-insync-replicas": "2", "--default-replication-factor": "3"} {
		if got := flag(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s %v, want %s", name, got, want)
		}
	}
	if !slices.Contains(args, "--unclean-leader-election") {
		t.Error("no --unclean-leader-election")
	}
	if slices.Contains(args, "--replica-lag-time-max") {
		t.Error("--replica-lag-time-max passed though not set")
	}
	// The proxies point at the nodes' ports, and follow a node that moves.
	l := d.links[0][1]
	if l.kafka.Upstream() != n2.Addr || l.controller.Upstream() != n2.Controller {
		t.Errorf("link n1->n2 forwards to %s and %s, want %s and %s", l.kafka.Upstream(), l.controller.Upstream(), n2.Addr, n2.Controller)
	}
	if err := d.pickPorts(n2); err != nil {
		t.Fatal(err)
	}
	if l.kafka.Upstream() != n2.Addr || l.controller.Upstream() != n2.Controller {
		t.Errorf("after a new port, link n1->n2 forwards to %s and %s, want %s and %s", l.kafka.Upstream(), l.controller.Upstream(), n2.Addr, n2.Controller)
	}
}

// brokerHasClusterFlags reports whether bin's broker takes the cluster
// flags.
func brokerHasClusterFlags(bin string) bool {
	out, _ := exec.Command(bin, "broker", "--help").CombinedOutput()
	return strings.Contains(string(out), "--controller-listen") && strings.Contains(string(out), "--peer")
}

// TestClusterStarts runs three nodes in cluster mode with proxied links,
// once the broker takes the cluster flags.
func TestClusterStarts(t *testing.T) {
	bin := buildtest.Binary(t)
	if !brokerHasClusterFlags(bin) {
		t.Skip("skipping: the broker has no cluster flags yet (--controller-listen, --peer)")
	}
	leakcheck.Check(t)
	d := newCluster(t, 3, func(o *Options) {
		o.Links = true
		o.Cluster = &Cluster{MinInsyncReplicas: 2, DefaultReplicationFactor: 3}
	})
	if err := d.Setup(context.Background()); err != nil {
		t.Fatalf("setup: %v", err)
	}
	for _, n := range d.Nodes() {
		if n.Controller == "" {
			t.Errorf("%s has no controller address", n.Name)
		}
		if err := probe(n.Addr, 2*time.Second); err != nil {
			t.Errorf("%s: %v", n.Name, err)
		}
	}
}

// TestStartDuringPartition: a node restarted while it is cut off from
// every peer cannot be registered by a controller quorum, so it does not
// answer; Start must still return (after the start wait) with the node
// running, WaitReady must fail while the cut lasts, and once the
// partition heals WaitReady must see the node serve.
func TestStartDuringPartition(t *testing.T) {
	bin := buildtest.Binary(t)
	if !brokerHasClusterFlags(bin) {
		t.Skip("skipping: the broker has no cluster flags yet (--controller-listen, --peer)")
	}
	leakcheck.Check(t)
	const startWait = 500 * time.Millisecond
	d := newCluster(t, 3, func(o *Options) {
		o.Links = true
		o.Cluster = &Cluster{MinInsyncReplicas: 2, DefaultReplicationFactor: 3}
		o.StartWait = startWait
		o.ReadyTimeout = 10 * time.Second
	})
	ctx := context.Background()
	if err := d.Setup(ctx); err != nil {
		t.Fatalf("setup: %v", err)
	}
	n3 := d.Nodes()[2]
	if err := d.Kill(ctx, n3); err != nil {
		t.Fatal(err)
	}
	if err := d.Partition(ctx, map[string][]string{"n3": {"n1", "n2"}, "n1": {"n3"}, "n2": {"n3"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, n3); err != nil {
		t.Fatalf("Start of an isolated node = %v, want nil: not answering is the system's business", err)
	}
	if _, ok := d.Pids()["n3"]; !ok {
		t.Fatal("n3 is not running after Start")
	}
	if err := probe(n3.Addr, 200*time.Millisecond); err == nil {
		t.Fatal("isolated n3 answers: it cannot have been registered by a quorum (is the partition real?)")
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := d.WaitReady(short, n3)
	cancel()
	if err == nil {
		t.Fatal("WaitReady of an isolated node succeeded")
	}
	if err := d.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitReady(ctx, n3); err != nil {
		t.Fatalf("WaitReady after the heal: %v", err)
	}
	if b, _ := os.ReadFile(d.LogFiles()["n3"]); !strings.Contains(string(b), "does not answer yet after "+startWait.String()) {
		t.Errorf("n3's log does not say the harness left it running unready:\n%s", b)
	}
	// A killed node is not ready, at once.
	if err := d.Kill(ctx, n3); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitReady(ctx, n3); !errors.Is(err, db.ErrNotReady) {
		t.Errorf("WaitReady of a killed node = %v, want ErrNotReady", err)
	}
}

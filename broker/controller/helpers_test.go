package controller

import (
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/db/proxy"
	"github.com/garantia/garantia/db/proxy/proxytest"
	"github.com/garantia/garantia/internal/leakcheck"
)

// TestMain fails the package if any goroutine (of Raft, of this package)
// outlives the tests: every Close must stop everything it started.
func TestMain(m *testing.M) { leakcheck.Main(m) }

// testLogger logs to t until the test's cleanup stops it (a log line after
// the test ends would panic).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// cluster is n in-process controllers on loopback, ids 1..n, every
// directed link through its own proxy: the harness's (proxytest), so that
// a cut is the fault `garantia test` injects.
type cluster struct {
	t       testing.TB
	ids     []int32
	addrs   map[int32]string                 // each node's controller port
	proxies map[int32]map[int32]*proxy.Proxy // [from][to]
	dirs    map[int32]string
	log     *slog.Logger
	tweak   func(*Config)

	mu    sync.Mutex
	nodes map[int32]*Controller
}

// testConfig are timings that keep the tests fast but not flaky under the
// race detector: a 1 s session, Raft's loopback defaults.
func testConfig(c *Config) {
	c.SessionTimeout = time.Second
	c.HeartbeatInterval = 100 * time.Millisecond
}

func newCluster(t testing.TB, n int, tweak func(*Config)) *cluster {
	c := &cluster{
		t: t, addrs: map[int32]string{}, proxies: map[int32]map[int32]*proxy.Proxy{},
		dirs: map[int32]string{}, nodes: map[int32]*Controller{}, tweak: tweak,
	}
	if testing.Verbose() {
		c.log = testLogger(t)
	}
	listeners := map[int32]net.Listener{}
	for i := 1; i <= n; i++ {
		id := int32(i)
		c.ids = append(c.ids, id)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners[id] = ln
		c.addrs[id] = ln.Addr().String()
		c.dirs[id] = t.TempDir()
	}
	for _, from := range c.ids {
		c.proxies[from] = map[int32]*proxy.Proxy{}
		for _, to := range c.ids {
			if from != to {
				c.proxies[from][to] = proxytest.New(t, fmt.Sprintf("%d->%d", from, to), c.addrs[to])
			}
		}
	}
	t.Cleanup(c.closeAll)
	for _, id := range c.ids {
		c.start(id, listeners[id])
	}
	return c
}

func (c *cluster) config(id int32, ln net.Listener) Config {
	peers := map[int32]string{}
	for to, p := range c.proxies[id] {
		peers[to] = p.Addr()
	}
	cfg := Config{
		NodeID:     id,
		Listen:     c.addrs[id],
		Listener:   ln,
		Peers:      peers,
		DataDir:    c.dirs[id],
		Advertised: metadata.Broker{Host: "127.0.0.1", Port: 9090 + id},
		Logger:     c.log,
	}
	testConfig(&cfg)
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	return cfg
}

// start starts node id, on ln or (a restart) on its old address.
func (c *cluster) start(id int32, ln net.Listener) *Controller {
	c.t.Helper()
	ctl, err := Start(c.config(id, ln))
	if err != nil {
		c.t.Fatalf("starting node %d: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id] = ctl
	c.mu.Unlock()
	return ctl
}

func (c *cluster) node(id int32) *Controller {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// live returns the running nodes, by id.
func (c *cluster) live() map[int32]*Controller {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int32]*Controller{}
	for id, n := range c.nodes {
		if n != nil {
			out[id] = n
		}
	}
	return out
}

func (c *cluster) stop(id int32) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	c.nodes[id] = nil
	c.mu.Unlock()
	if n == nil {
		return
	}
	if err := n.Close(); err != nil {
		c.t.Errorf("closing node %d: %v", id, err)
	}
}

func (c *cluster) closeAll() {
	for _, id := range c.ids {
		c.stop(id)
	}
}

// isolate cuts (or heals) every link to and from node id.
func (c *cluster) isolate(id int32, cut bool) {
	for _, other := range c.ids {
		if other != id {
			proxytest.Cut(c.proxies[id][other], cut)
			proxytest.Cut(c.proxies[other][id], cut)
		}
	}
}

// waitFor polls cond until it holds, failing the test with its last
// explanation after within.
func waitFor(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still not %s: %s", within, what, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLeader waits until every live node names the same live leader.
func (c *cluster) waitLeader(within time.Duration) int32 {
	c.t.Helper()
	var leader int32
	waitFor(c.t, within, "agreed on a controller", func() (bool, string) {
		live := c.live()
		leader = -1
		var views []string
		agree := true
		for _, id := range slices.Sorted(mapKeys(live)) {
			l := live[id].LeaderID()
			views = append(views, fmt.Sprintf("%d→%d", id, l))
			if leader == -1 {
				leader = l
			}
			if l != leader {
				agree = false
			}
		}
		return agree && leader >= 0 && live[leader] != nil && live[leader].IsController(), strings.Join(views, " ")
	})
	return leader
}

// waitAll waits until cond holds on every live node's snapshot.
func (c *cluster) waitAll(within time.Duration, what string, cond func(s *metadata.Snapshot) (bool, string)) {
	c.t.Helper()
	waitFor(c.t, within, what, func() (bool, string) {
		for id, n := range c.live() {
			if ok, why := cond(n.Snapshot()); !ok {
				return false, fmt.Sprintf("node %d: %s", id, why)
			}
		}
		return true, ""
	})
}

// waitRegistered waits until every live node's broker is registered and
// unfenced.
func (c *cluster) waitRegistered(within time.Duration) {
	c.t.Helper()
	for id, n := range c.live() {
		select {
		case <-n.Registered():
		case <-time.After(within):
			c.t.Fatalf("node %d not registered after %s", id, within)
		}
	}
	c.waitAll(within, "showing every broker unfenced", func(s *metadata.Snapshot) (bool, string) {
		for _, id := range c.ids {
			if b, ok := s.Brokers[id]; !ok || b.Fenced {
				return false, fmt.Sprintf("broker %d: %+v (registered %v)", id, b, ok)
			}
		}
		return true, ""
	})
}

func mapKeys[V any](m map[int32]V) iter.Seq[int32] { return maps.Keys(m) }

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// other returns a live node that is not id.
func (c *cluster) other(id int32) int32 {
	for _, o := range slices.Sorted(mapKeys(c.live())) {
		if o != id {
			return o
		}
	}
	c.t.Fatalf("no live node besides %d", id)
	return -1
}

var _ io.Writer = (*testWriter)(nil)

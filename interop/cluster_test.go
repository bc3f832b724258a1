package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/local"
)

// garantiaBin is the garantia binary, built from the parent module by
// TestMain.
var garantiaBin string

// Both clusters are started on first use and shared by every test (each
// test uses topics and groups of its own); TestMain tears them down.
var (
	clustersMu sync.Mutex
	clusters   = map[int]*cluster{}
	workDir    string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "garantia-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		os.Exit(2)
	}
	workDir = dir
	garantiaBin = filepath.Join(dir, "garantia")
	build := exec.Command("go", "build", "-o", garantiaBin, "./cmd/garantia")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "interop: building the garantia binary:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	clustersMu.Lock()
	for _, c := range clusters {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := c.db.Teardown(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "interop: teardown:", err)
		}
		cancel()
		if code != 0 {
			for name, path := range c.db.LogFiles() {
				fmt.Fprintf(os.Stderr, "interop: %d-node cluster: log of %s kept at %s\n", len(c.nodes), name, path)
			}
		}
	}
	clustersMu.Unlock()
	if code == 0 {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// cluster is a running cluster of `garantia broker` processes (package
// db/local: real processes on loopback, cluster mode with the Raft
// controller when more than one node).
type cluster struct {
	db    *local.DB
	nodes []db.Node
}

// brokerFlags are the flags every node gets: short timeouts so that
// failovers and rebalances take seconds, not minutes.
var brokerFlags = []string{
	"--group-initial-rebalance-delay", "300ms",
	"--group-min-session-timeout", "1s",
	"--offsets-topic-partitions", "6",
}

// clusterOf returns the shared cluster of n nodes (1 or 3), starting it
// the first time. A 3-node cluster replicates everything 3 times with
// min.insync.replicas 2, as the harness's default cluster does.
func clusterOf(t *testing.T, n int) *cluster {
	t.Helper()
	clustersMu.Lock()
	defer clustersMu.Unlock()
	if c := clusters[n]; c != nil {
		return c
	}
	dir := filepath.Join(workDir, fmt.Sprintf("cluster-%d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := local.Options{Config: db.Config{
		Binary:    garantiaBin,
		Nodes:     n,
		Dir:       dir,
		ExtraArgs: func(db.Node) []string { return brokerFlags },
	}}
	if n > 1 {
		opts.Cluster = &db.Cluster{SessionTimeout: 2 * time.Second, MinInsyncReplicas: 2, DefaultReplicationFactor: 3}
	}
	d, err := local.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := d.Setup(ctx); err != nil {
		_ = d.Teardown(context.Background())
		t.Fatalf("starting a %d-node cluster: %v", n, err)
	}
	c := &cluster{db: d, nodes: d.Nodes()}
	clusters[n] = c
	// Wait until every broker is registered (a 3-node cluster's topics
	// need all three).
	adm := kadm.NewClient(c.kgo(t))
	deadline := time.Now().Add(30 * time.Second)
	for {
		bs, err := adm.ListBrokers(ctx)
		if err == nil && len(bs) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d-node cluster: brokers %v (%v) after 30s", n, bs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}

func (c *cluster) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.Addr)
	}
	return out
}

func (c *cluster) bootstrap() string { return strings.Join(c.addrs(), ",") }

// kgo is a franz-go client of the cluster, closed at the test's end.
func (c *cluster) kgo(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.addrs()...), kgo.RetryTimeout(60 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func (c *cluster) admin(t testing.TB) *kadm.Client { return kadm.NewClient(c.kgo(t)) }

// sizes runs fn as a subtest against the 1-node and the 3-node cluster.
func sizes(t *testing.T, fn func(t *testing.T, c *cluster)) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%dnode", n), func(t *testing.T) { fn(t, clusterOf(t, n)) })
	}
}

// uniqueName makes topic and group names unique per test and cluster,
// from characters Kafka allows in topic names.
func uniqueName(t *testing.T, prefix string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, t.Name())
	return fmt.Sprintf("%s-%s-%d", prefix, name, time.Now().UnixNano()%1_000_000)
}

// createTopic creates a topic with the cluster's default replication.
func (c *cluster) createTopic(t *testing.T, name string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.admin(t).CreateTopic(ctx, partitions, -1, nil, name)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic %s: %v %v", name, err, resp.Err)
	}
}

// produce writes n values per partition with kgo at acks=all and returns
// them.
func (c *cluster) produce(t *testing.T, topic string, partitions int32, n int) map[string]bool {
	t.Helper()
	cl := c.kgo(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]bool{}
	var rs []*kgo.Record
	for p := range partitions {
		for i := range n {
			v := fmt.Sprintf("%s-p%d-%04d", topic, p, i)
			want[v] = true
			rs = append(rs, &kgo.Record{Partition: p, Value: []byte(v)})
		}
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("producing to %s: %v", topic, err)
	}
	return want
}

// endOffsets are the high watermarks of topic's partitions.
func (c *cluster) endOffsets(t *testing.T, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := c.admin(t).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// readAll reads topic from the start to its high watermarks with kgo.
func (c *cluster) readAll(t *testing.T, topic string) []string {
	t.Helper()
	ends := c.endOffsets(t, topic)
	total := int64(0)
	for _, e := range ends {
		total += e
	}
	cl := c.kgo(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []string
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), total, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

// waitCommitted waits until group's committed offsets of topic equal the
// topic's end offsets, and fails naming the difference otherwise.
func (c *cluster) waitCommitted(t *testing.T, group, topic string) {
	t.Helper()
	ends := c.endOffsets(t, topic)
	adm := c.admin(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := adm.FetchOffsets(ctx, group)
		cancel()
		ok := err == nil
		var have []string
		for p, end := range ends {
			o, found := got.Lookup(topic, p)
			have = append(have, fmt.Sprintf("%d:%d/%d", p, o.At, end))
			ok = ok && (found && o.At == end || !found && end == 0)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: committed offsets of %s (committed/end) %v, err %v", group, topic, have, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkAll fails unless got holds every value of want (duplicates are
// allowed: group consumers read at least once).
func checkAll(t *testing.T, who string, want map[string]bool, got []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, v := range got {
		seen[v] = true
	}
	missing := 0
	example := ""
	for v := range want {
		if !seen[v] {
			missing++
			example = v
		}
	}
	if missing > 0 {
		t.Fatalf("%s read %d values (%d distinct) and missed %d of %d, e.g. %s", who, len(got), len(seen), missing, len(want), example)
	}
}

// tool returns the path of a command-line client, or skips the test when
// it is missing. Under CI=true a missing tool fails instead: .ci/run
// installs kcat and python3-confluent-kafka from Debian, so a missing one
// means the install broke, and a silent skip would hide that the
// librdkafka clients were never tested.
func tool(t *testing.T, name string, check ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil && len(check) > 0 {
		if out, cerr := exec.Command(path, check...).CombinedOutput(); cerr != nil {
			err = fmt.Errorf("%s %v: %v: %s", name, check, cerr, out)
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not usable under CI (.ci/run installs it from Debian): %v", name, err)
		}
		t.Skipf("%s is not usable here (Debian: apt-get install -y kcat python3-confluent-kafka): %v", name, err)
	}
	return path
}

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// procCluster is a cluster of real `garantia broker` processes (the binary
// TestMain builds), each with its Raft controller port, on loopback.
type procCluster struct {
	t     testing.TB
	nodes []*procNode
}

type procNode struct {
	id      int32
	addr    string // Kafka listener
	ctrl    string // controller listener
	dataDir string
	logPath string
	args    []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	waitErr chan error
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProcCluster starts n nodes with the given extra flags and waits
// until every node answers Metadata listing all n brokers.
func startProcCluster(t testing.TB, n int, extra ...string) *procCluster {
	t.Helper()
	c := &procCluster{t: t}
	dir := t.TempDir()
	for i := range n {
		c.nodes = append(c.nodes, &procNode{
			id: int32(i + 1), addr: freeAddr(t), ctrl: freeAddr(t),
			dataDir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), logPath: filepath.Join(dir, fmt.Sprintf("n%d.log", i+1)),
		})
	}
	for _, nd := range c.nodes {
		nd.args = []string{"broker", "--id", strconv.Itoa(int(nd.id)), "--listen", nd.addr, "--data-dir", nd.dataDir,
			"--log-file", nd.logPath, "--controller-listen", nd.ctrl}
		for _, p := range c.nodes {
			if p != nd {
				nd.args = append(nd.args, "--peer", fmt.Sprintf("%d=%s,%s", p.id, p.addr, p.ctrl))
			}
		}
		nd.args = append(nd.args, extra...)
		c.start(nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.kill(nd)
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				logs, _ := os.ReadFile(nd.logPath)
				if len(logs) > 20000 {
					logs = logs[len(logs)-20000:]
				}
				t.Logf("node %d log tail:\n%s", nd.id, logs)
			}
		}
	})
	c.waitBrokers(n, 30*time.Second)
	return c
}

func (c *procCluster) start(nd *procNode) {
	c.t.Helper()
	cmd := exec.Command(garantiaBin, nd.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	nd.mu.Lock()
	nd.cmd, nd.waitErr = cmd, make(chan error, 1)
	ch := nd.waitErr
	nd.mu.Unlock()
	go func() { ch <- cmd.Wait() }()
}

// kill SIGKILLs the node (if running) and waits for it.
func (c *procCluster) kill(nd *procNode) {
	nd.mu.Lock()
	cmd, ch := nd.cmd, nd.waitErr
	nd.cmd = nil
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-ch
}

func (c *procCluster) node(id int32) *procNode { return c.nodes[id-1] }

func (c *procCluster) seeds() []string {
	var out []string
	for _, nd := range c.nodes {
		out = append(out, nd.addr)
	}
	return out
}

func (c *procCluster) client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.seeds()...), kgo.RetryTimeout(60 * time.Second)}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// waitBrokers waits until a node's Metadata lists n live brokers.
func (c *procCluster) waitBrokers(n int, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, nd := range c.nodes {
			cl, err := kgo.NewClient(kgo.SeedBrokers(nd.addr))
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
			cancel()
			cl.Close()
			if err == nil && len(resp.Brokers) == n {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the cluster did not list %d brokers within %v", n, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func createTopicRF(t testing.TB, cl *kgo.Client, name string, partitions int32, rf int16, timeoutMillis int32) *kmsg.CreateTopicsResponseTopic {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = timeoutMillis
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, rf
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Topics[0].ErrorCode; c != 0 {
		t.Fatalf("creating topic %q: %v", name, kerr.ErrorForCode(c))
	}
	return &resp.Topics[0]
}

// groupCoordinator asks the cluster which node coordinates group.
func groupCoordinator(t testing.TB, cl *kgo.Client, group string) int32 {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey = group
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode == 0 {
			return resp.NodeID
		}
		if ctx.Err() != nil {
			t.Fatalf("no coordinator for %s: %v %+v", group, err, resp)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGroupConsumeCommitAndCoordinatorKill: kgo group consumers read back
// every record produced to a 3-node cluster and commit; the coordinator
// (the offsets partition's leader) is SIGKILLed; the committed offsets
// survive on the new coordinator, and a new consumer of the group starts
// exactly after them.
func TestGroupConsumeCommitAndCoordinatorKill(t *testing.T) {
	c := startProcCluster(t, 3, "--default-replication-factor", "3", "--min-insync-replicas", "2",
		"--session-timeout", "2s", "--group-initial-rebalance-delay", "300ms", "--group-min-session-timeout", "500ms")
	admin := c.client()
	const topic, perPartition = "orders", 100
	createTopicRF(t, admin, topic, 3, 3, 30000)
	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want := map[string]bool{}
	for p := range int32(3) {
		for i := range perPartition {
			v := fmt.Sprintf("p%d-%03d", p, i)
			want[v] = true
			if err := prod.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Two members share the topic; each commits what it processed.
	seen := make(chan string, 1000)
	var wg sync.WaitGroup
	cctx, stop := context.WithCancel(ctx)
	for i := range 2 {
		cl := c.client(kgo.ConsumerGroup("g1"), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(3*time.Second),
			kgo.HeartbeatInterval(300*time.Millisecond), kgo.ClientID(fmt.Sprintf("member-%d", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cctx.Err() == nil {
				fs := cl.PollFetches(cctx)
				fs.EachRecord(func(r *kgo.Record) { seen <- string(r.Value) })
				if err := cl.CommitUncommittedOffsets(cctx); err != nil && cctx.Err() == nil {
					t.Logf("commit: %v", err)
				}
			}
			// Leave the group cleanly so the next member need not wait.
			cl.Close()
		}()
	}
	got := map[string]bool{}
	for len(got) < len(want) {
		select {
		case v := <-seen:
			got[v] = true
		case <-ctx.Done():
			t.Fatalf("the group read %d of %d records", len(got), len(want))
		}
	}
	// Let the last commits land, then stop.
	waitCommitted(t, admin, "g1", topic, perPartition)
	stop()
	wg.Wait()

	coord := groupCoordinator(t, admin, "g1")
	c.kill(c.node(coord))
	t.Logf("killed the coordinator of g1, node %d", coord)
	alive := c.client(kgo.SeedBrokers(func() []string {
		var out []string
		for _, nd := range c.nodes {
			if nd.id != coord {
				out = append(out, nd.addr)
			}
		}
		return out
	}()...))
	// The controller fences the dead node after its session timeout and
	// the offsets partition gets a new leader.
	deadline := time.Now().Add(30 * time.Second)
	for groupCoordinator(t, alive, "g1") == coord {
		if time.Now().After(deadline) {
			t.Fatalf("the dead node %d is still the coordinator after 30s", coord)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitCommitted(t, alive, "g1", topic, perPartition)

	// A new member of the group starts after the committed offsets: it
	// reads nothing old, and exactly the records produced now.
	for p := range int32(3) {
		if err := prod.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(fmt.Sprintf("new-%d", p))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	late := c.client(kgo.ConsumerGroup("g1"), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(), kgo.SessionTimeout(3*time.Second))
	var fresh []string
	for len(fresh) < 3 {
		fs := late.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("the new member read %v", fresh)
		}
		fs.EachRecord(func(r *kgo.Record) { fresh = append(fresh, string(r.Value)) })
	}
	slices.Sort(fresh)
	if !slices.Equal(fresh, []string{"new-0", "new-1", "new-2"}) {
		t.Fatalf("after the coordinator's death the group re-read %v: committed offsets were lost", fresh)
	}
}

// waitCommitted waits until the group's committed offsets of topic are n
// on every partition.
func waitCommitted(t *testing.T, cl *kgo.Client, group, topic string, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = group
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0, 1, 2}
		req.Topics = append(req.Topics, rt)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := req.RequestWith(ctx, cl)
		cancel()
		if err == nil && resp.ErrorCode == 0 && len(resp.Topics) == 1 {
			ok := true
			for _, p := range resp.Topics[0].Partitions {
				ok = ok && p.Offset == n && p.ErrorCode == 0
			}
			if ok {
				return
			}
			last = fmt.Sprintf("%+v", resp.Topics[0].Partitions)
		} else {
			last = fmt.Sprintf("%v %+v", err, resp)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s: committed offsets of %s never reached %d: %s", group, topic, n, last)
}

// TestAdminCallsOnCluster: acks=0 sends right after CreateTopics lose
// nothing (every leader serves its partitions when CreateTopics returns);
// DeleteTopics removes the topic and its data on every replica;
// CreatePartitions grows a topic; DescribeConfigs and DescribeCluster
// report what the cluster has.
func TestAdminCallsOnCluster(t *testing.T) {
	c := startProcCluster(t, 3, "--default-replication-factor", "3", "--min-insync-replicas", "2", "--session-timeout", "2s")
	admin := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topics, count = 6, 500
	for i := range topics {
		name := fmt.Sprintf("fresh-%d", i)
		createTopicRF(t, admin, name, 3, 3, 30000)
		// A producer that never looked at this topic before, at acks=0:
		// a refused send is lost silently.
		prod := c.client(kgo.DefaultProduceTopic(name), kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
		for j := range count {
			prod.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(j))}, nil)
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := range topics {
		name := fmt.Sprintf("fresh-%d", i)
		total := int64(0)
		deadline := time.Now().Add(30 * time.Second)
		for {
			total = 0
			for _, hw := range highWatermarks(t, admin, name, 3) {
				total += hw
			}
			if total == count || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if total != count {
			t.Errorf("topic %s: %d of %d acks=0 records sent right after CreateTopics arrived", name, total, count)
		}
	}

	// DeleteTopics: gone from the metadata, its logs gone from every disk.
	deleteReq := func() *kmsg.DeleteTopicsRequest {
		del := kmsg.NewPtrDeleteTopicsRequest()
		del.TopicNames, del.TimeoutMillis = []string{"fresh-0"}, 10000
		del.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("fresh-0")}}
		return del
	}
	dresp, err := deleteReq().RequestWith(ctx, admin)
	if err != nil || dresp.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete: %v %+v", err, dresp)
	}
	for _, nd := range c.nodes {
		for p := range 3 {
			dir := filepath.Join(nd.dataDir, fmt.Sprintf("fresh-0-%d", p))
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, err := os.Stat(dir)
				if os.IsNotExist(err) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %d still has %s after DeleteTopics", nd.id, dir)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range md.Topics {
		if *mt.Topic == "fresh-0" {
			t.Fatal("the deleted topic is still in the metadata")
		}
	}
	dresp, err = deleteReq().RequestWith(ctx, admin)
	if err != nil || dresp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("deleting it again: %v %+v", err, dresp)
	}
	// Created again, it is a new, empty topic.
	createTopicRF(t, admin, "fresh-0", 1, 3, 30000)
	if hws := highWatermarks(t, admin, "fresh-0", 1); hws[0] != 0 {
		t.Fatalf("fresh-0 created again holds %d records", hws[0])
	}

	// CreatePartitions grows fresh-1 from 3 to 5; the new ones take writes.
	cp := kmsg.NewPtrCreatePartitionsRequest()
	cp.TimeoutMillis = 10000
	cp.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: "fresh-1", Count: 5}}
	cpr, err := cp.RequestWith(ctx, admin)
	if err != nil || cpr.Topics[0].ErrorCode != 0 {
		t.Fatalf("create partitions: %v %+v", err, cpr)
	}
	// As in Kafka, brokers learn of the new partitions from the metadata
	// log a moment after the controller answered: a client whose first
	// metadata came from a broker that had not applied it yet sees 3
	// partitions and refreshes until it sees 5.
	prod := c.client(kgo.DefaultProduceTopic("fresh-1"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := prod.ProduceSync(ctx, &kgo.Record{Partition: 4, Value: []byte("x")}).FirstErr()
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "invalid record partitioning choice") || time.Now().After(deadline) {
			t.Fatalf("produce to a new partition: %v", err)
		}
		prod.ForceMetadataRefresh()
		time.Sleep(50 * time.Millisecond)
	}
	cpr, _ = cp.RequestWith(ctx, admin)
	if cpr.Topics[0].ErrorCode != kerr.InvalidPartitions.Code {
		t.Fatalf("growing to the same count again: %+v", cpr.Topics[0])
	}

	// DescribeConfigs: the topic's real settings; DescribeCluster: 3 brokers.
	dc := kmsg.NewPtrDescribeConfigsRequest()
	dc.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "fresh-1"}}
	dcr, err := dc.RequestWith(ctx, admin)
	if err != nil || dcr.Resources[0].ErrorCode != 0 {
		t.Fatalf("describe configs: %v %+v", err, dcr)
	}
	found := false
	for _, e := range dcr.Resources[0].Configs {
		if e.Name == "min.insync.replicas" {
			found = *e.Value == "2"
		}
	}
	if !found {
		t.Fatalf("min.insync.replicas of fresh-1 is not reported as 2: %+v", dcr.Resources[0].Configs)
	}
	cl, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, admin)
	if err != nil || len(cl.Brokers) != 3 || cl.ControllerID < 1 {
		t.Fatalf("describe cluster: %v %+v", err, cl)
	}
}

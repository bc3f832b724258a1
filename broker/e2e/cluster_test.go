package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/node"
	"github.com/garantia/garantia/broker/partition"
	"github.com/garantia/garantia/broker/replication"
	"github.com/garantia/garantia/broker/wire"
	"github.com/garantia/garantia/db/proxy"
	"github.com/garantia/garantia/db/proxy/proxytest"
	"github.com/garantia/garantia/internal/kafkatest"
)

// This file is the harness of the multi-node tests: in-process nodes
// (node.Start) on loopback port-0 listeners, sharing one metadata.Memory
// in which the test plays the controller (FenceBroker to "kill" a node,
// UnfenceBroker to bring it back), and a TCP proxy on every directed
// follower→leader link so that a test can cut replication between two
// nodes while clients still reach both.

// nodeView is one node's window onto the shared controller. A test can
// blind it: the node keeps seeing the metadata of that moment (it is cut
// off from the controller and not yet told what changed) and, with
// alterToo, its ISR changes fail as if the controller were unreachable.
type nodeView struct {
	*metadata.Memory

	mu        sync.Mutex
	frozen    *metadata.Snapshot
	frozenCh  chan struct{}
	alterDown bool
}

func (v *nodeView) Snapshot() *metadata.Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.frozen != nil {
		return v.frozen
	}
	return v.Memory.Snapshot()
}

func (v *nodeView) Changed() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.frozen != nil {
		return v.frozenCh
	}
	return v.Memory.Changed()
}

func (v *nodeView) AlterISR(ctx context.Context, topic string, index int32, leaderEpoch, partitionEpoch int32, isr []int32) (metadata.Partition, error) {
	v.mu.Lock()
	down := v.alterDown
	v.mu.Unlock()
	if down {
		return metadata.Partition{}, fmt.Errorf("alter ISR of %s-%d from a node cut off from the controller: %w", topic, index, metadata.ErrNoController)
	}
	return v.Memory.AlterISR(ctx, topic, index, leaderEpoch, partitionEpoch, isr)
}

// blind freezes the node's metadata where it is now; with alterToo its
// AlterISR calls fail with ErrNoController too.
func (v *nodeView) blind(alterToo bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.frozen = v.Memory.Snapshot()
	v.frozenCh = make(chan struct{})
	v.alterDown = alterToo
}

// unblind lets the node see the current metadata again (and wakes its
// watcher).
func (v *nodeView) unblind() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.frozen != nil {
		close(v.frozenCh)
	}
	v.frozen, v.alterDown = nil, false
}

// clusterOpts configure a test cluster; zero fields mean node defaults.
type clusterOpts struct {
	nodes     int
	lagMax    time.Duration
	fetchWait time.Duration
	bugs      replication.Bugs
}

// cluster is a running test cluster.
type cluster struct {
	t     testing.TB
	ctrl  *metadata.Memory
	nodes map[int32]*clusterNode
	links map[[2]int32]*proxy.Proxy // [follower, leader]: the harness's proxies (proxytest), so a cut is the fault garantia test injects
}

type clusterNode struct {
	id     int32
	cfg    node.Config
	view   *nodeView
	n      *node.Node // nil while killed
	cancel context.CancelFunc
	addr   string
}

// clusterLogger writes the nodes' logs to stderr with -v.
func clusterLogger() *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newCluster starts opts.nodes nodes (ids 1..n) on data directories of
// their own, registers them with the shared controller, and stops them at
// cleanup.
func newCluster(t testing.TB, opts clusterOpts) *cluster {
	t.Helper()
	if opts.nodes == 0 {
		opts.nodes = 3
	}
	c := &cluster{t: t, ctrl: metadata.NewMemory(), nodes: map[int32]*clusterNode{}, links: map[[2]int32]*proxy.Proxy{}}
	ids := make([]int32, opts.nodes)
	for i := range ids {
		ids[i] = int32(i + 1)
	}
	for _, from := range ids {
		for _, to := range ids {
			if from != to {
				c.links[[2]int32{from, to}] = proxytest.New(t, fmt.Sprintf("n%d->n%d", from, to), "")
			}
		}
	}
	for _, id := range ids {
		peers := map[int32]string{}
		for _, to := range ids {
			if to != id {
				peers[to] = c.links[[2]int32{id, to}].Addr()
			}
		}
		cn := &clusterNode{id: id, view: &nodeView{Memory: c.ctrl}}
		cn.cfg = node.Config{
			ID:                  id,
			Listen:              "127.0.0.1:0",
			DataDir:             t.TempDir(),
			Partitions:          1,
			Logger:              clusterLogger(),
			Controller:          cn.view,
			PeerKafkaAddrs:      peers,
			ReplicaLagTimeMax:   opts.lagMax,
			ReplicaFetchMaxWait: opts.fetchWait,
			Bugs:                opts.bugs,
		}
		c.nodes[id] = cn
		c.start(cn)
		cn.cfg.Listen = cn.addr // restarts come back on the same port
	}
	for _, id := range ids {
		host, port, _ := net.SplitHostPort(c.nodes[id].addr)
		p, _ := strconv.Atoi(port)
		c.ctrl.RegisterBroker(metadata.Broker{ID: id, Host: host, Port: int32(p)})
	}
	t.Cleanup(func() {
		for _, cn := range c.nodes {
			if cn.n != nil {
				c.kill(cn.id)
			}
		}
	})
	return c
}

func (c *cluster) start(cn *clusterNode) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var n *node.Node
	var err error
	// A restart reuses the port; retry briefly in case the kernel has not
	// released it yet.
	for range 50 {
		if n, err = node.Start(ctx, cn.cfg); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		cancel()
		c.t.Fatalf("starting node %d: %v", cn.id, err)
	}
	cn.n, cn.cancel, cn.addr = n, cancel, n.Addr().String()
	for from, p := range c.links {
		if from[1] == cn.id {
			p.SetUpstream(cn.addr)
		}
	}
}

// kill stops a node (its context ends; the data directory stays).
func (c *cluster) kill(id int32) {
	c.t.Helper()
	cn := c.nodes[id]
	cn.cancel()
	select {
	case <-cn.n.Done():
		if err := cn.n.Err(); err != nil {
			c.t.Errorf("node %d stopped with %v", id, err)
		}
	case <-time.After(10 * time.Second):
		c.t.Fatalf("node %d did not stop within 10s", id)
	}
	cn.n = nil
}

// restart starts a killed node again on its data directory and port.
func (c *cluster) restart(id int32) {
	c.t.Helper()
	c.start(c.nodes[id])
}

func (c *cluster) fence(id int32) {
	c.t.Helper()
	if err := c.ctrl.FenceBroker(id); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) unfence(id int32) {
	c.t.Helper()
	if err := c.ctrl.UnfenceBroker(id); err != nil {
		c.t.Fatal(err)
	}
}

// cutLink cuts (or heals) follower's fetches from leader.
func (c *cluster) cutLink(follower, leader int32, cut bool) {
	proxytest.Cut(c.links[[2]int32{follower, leader}], cut)
}

// isolate cuts (or heals) every other node's fetches from id.
func (c *cluster) isolate(id int32, cut bool) {
	for k, p := range c.links {
		if k[1] == id {
			proxytest.Cut(p, cut)
		}
	}
}

// createTopic creates a topic through the controller and waits until
// every replica has taken its role.
func (c *cluster) createTopic(name string, partitions int32, rf int16, minISR int32) {
	c.t.Helper()
	if err := c.ctrl.CreateTopic(context.Background(), name, partitions, rf, metadata.TopicConfig{MinInsyncReplicas: minISR}); err != nil {
		c.t.Fatal(err)
	}
	for i := range partitions {
		c.waitFor(fmt.Sprintf("replicas of %s-%d to take their roles", name, i), 10*time.Second, func() bool {
			st := c.state(name, i)
			for _, r := range st.Replicas {
				want := partition.Follower
				if r == st.Leader {
					want = partition.Leader
				}
				if p := c.replica(r, name, i); p == nil || p.Role() != want {
					return false
				}
			}
			return true
		})
	}
}

// state is the controller's view of a partition.
func (c *cluster) state(topic string, index int32) metadata.Partition {
	st, ok := c.ctrl.Snapshot().Partition(topic, index)
	if !ok {
		c.t.Fatalf("no partition %s-%d in the metadata", topic, index)
	}
	return st
}

// replica is node id's replica, or nil (also when the node is down).
func (c *cluster) replica(id int32, topic string, index int32) *partition.Partition {
	cn := c.nodes[id]
	if cn == nil || cn.n == nil {
		return nil
	}
	return cn.n.Replica(topic, index)
}

func (c *cluster) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLeader waits until the partition has a leader other than not, whose
// node has taken the role, and returns it.
func (c *cluster) waitLeader(topic string, index int32, not int32) int32 {
	c.t.Helper()
	var leader int32
	c.waitFor(fmt.Sprintf("a new leader of %s-%d", topic, index), 10*time.Second, func() bool {
		leader = c.state(topic, index).Leader
		p := c.replica(leader, topic, index)
		return leader != metadata.NoLeader && leader != not && p != nil && p.IsLeader()
	})
	return leader
}

// waitInSync waits until the partition's ISR holds every replica and every
// live replica's log equals the leader's up to the high watermark, which
// is the leader's log end.
func (c *cluster) waitInSync(topic string, index int32) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("%s-%d to be fully in sync", topic, index), 15*time.Second, func() bool {
		st := c.state(topic, index)
		if len(st.ISR) != len(st.Replicas) {
			return false
		}
		lp := c.replica(st.Leader, topic, index)
		if lp == nil {
			return false
		}
		leo := lp.Log().EndOffset()
		if lp.HighWatermark() != leo {
			return false
		}
		for _, r := range st.Replicas {
			p := c.replica(r, topic, index)
			if p == nil || p.Log().EndOffset() != leo {
				return false
			}
		}
		return true
	})
}

// logBytes is node id's whole log of a partition.
func (c *cluster) logBytes(id int32, topic string, index int32) []byte {
	c.t.Helper()
	p := c.replica(id, topic, index)
	if p == nil {
		c.t.Fatalf("node %d has no replica of %s-%d", id, topic, index)
	}
	end := p.Log().EndOffset()
	b, err := p.Log().Read(p.Log().StartOffset(), 1<<30, end)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// record is one record read back from a log.
type record struct {
	offset int64
	epoch  int32
	value  string
}

// records decodes a log's (uncompressed) batches.
func records(t testing.TB, b []byte) []record {
	t.Helper()
	var out []record
	err := wire.Batches(b, func(h wire.BatchHeader, batch []byte) bool {
		if h.Compression() != 0 {
			t.Fatalf("batch at %d is compressed; the tests produce uncompressed batches", h.BaseOffset)
		}
		r := batch[wire.BatchHeaderBytes:]
		for range h.NumRecords {
			n, k := binary.Varint(r)
			if k <= 0 || n < 0 || int64(len(r)-k) < n {
				t.Fatalf("bad record length in batch at %d", h.BaseOffset)
			}
			rec := r[k : k+int(n)]
			r = r[k+int(n):]
			rd := kbin.Reader{Src: rec[1:]} // after the attributes byte
			rd.Varlong()                    // timestamp delta
			delta := rd.Varint()
			rd.VarintBytes() // key
			val := rd.VarintBytes()
			if !rd.Ok() {
				t.Fatalf("bad record in batch at %d", h.BaseOffset)
			}
			out = append(out, record{offset: h.BaseOffset + int64(delta), epoch: h.PartitionLeaderEpoch, value: string(val)})
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// valuesAt maps each offset of a node's log to its value.
func (c *cluster) valuesAt(id int32, topic string, index int32) map[int64]string {
	out := map[int64]string{}
	for _, r := range records(c.t, c.logBytes(id, topic, index)) {
		out[r.offset] = r.value
	}
	return out
}

// client is a kgo client seeded with every node, closed at cleanup. It
// produces uncompressed batches (so logs can be read back) without
// lingering, and retries quickly after a leader change.
func (c *cluster) client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	var seeds []string
	for _, cn := range c.nodes {
		seeds = append(seeds, cn.addr)
	}
	slices.Sort(seeds)
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(0),
		kgo.MetadataMinAge(50 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// produceTo sends one batch of values straight to node id (whatever the
// metadata says: a test decides who gets the write) and returns its
// partition response.
func (c *cluster) produceTo(id int32, topic string, index int32, acks int16, timeout time.Duration, values ...string) kmsg.ProduceResponseTopicPartition {
	c.t.Helper()
	recs := make([]wire.Record, len(values))
	for i, v := range values {
		recs[i].Value = []byte(v)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 10, acks, int32(timeout/time.Millisecond)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = index
	rp.Records = wire.EncodeBatch(wire.BatchHeader{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, FirstTimestamp: time.Now().UnixMilli()}, recs)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = req.Version
	c.roundTrip(id, req, resp, timeout+5*time.Second)
	return resp.Topics[0].Partitions[0]
}

// roundTrip sends req to node id on a fresh connection and reads resp.
func (c *cluster) roundTrip(id int32, req kmsg.Request, resp kmsg.Response, timeout time.Duration) {
	c.t.Helper()
	conn, err := net.DialTimeout("tcp", c.nodes[id].addr, time.Second)
	if err != nil {
		c.t.Fatalf("connecting to node %d: %v", id, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	b := kafkatest.Frame(req, 1, "test")
	if _, err := conn.Write(b); err != nil {
		c.t.Fatalf("node %d: %v", id, err)
	}
	frame, err := wire.ReadFrame(bufio.NewReader(conn), 1<<30)
	if err != nil {
		c.t.Fatalf("node %d: reading the %s response: %v", id, kmsg.NameForKey(req.Key()), err)
	}
	if err := resp.ReadFrom(kafkatest.ResponseBody(resp, frame[4:])); err != nil {
		c.t.Fatalf("node %d: decoding the %s response: %v", id, kmsg.NameForKey(req.Key()), err)
	}
}

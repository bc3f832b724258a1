package docker

// The partition-and-rejoin test of a replicated cluster on containers. It
// needs the broker's cluster mode (--controller-listen); until the cluster
// issue lands it skips, saying so, and TestDockerPartition covers the
// network level.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/storage/storagetest"
	"github.com/garantia/garantia/db"
)

const rejoinTopic = "rejoin"

// requireClusterMode skips t unless bin's broker has cluster mode.
func requireClusterMode(t testing.TB, bin string) {
	t.Helper()
	out, _ := exec.Command(bin, "broker", "--help").CombinedOutput()
	if !strings.Contains(string(out), "--controller-listen") {
		t.Skipf("skipping: %s broker has no --controller-listen flag, so no replicated cluster yet; the network-level partition is tested by TestDockerPartition", bin)
	}
}

// newReplicatedCluster starts a 3-node cluster with quick failure
// detection and a topic of one partition replicated to all three.
func newReplicatedCluster(t testing.TB) *DB {
	t.Helper()
	bin := garantiaBinary(t)
	requireClusterMode(t, bin)
	d, _ := newDockerCluster(t, 3, func(o *Options) {
		o.Cluster = &Cluster{
			SessionTimeout:           3 * time.Second,
			ReplicaLagTimeMax:        3 * time.Second,
			MinInsyncReplicas:        2,
			DefaultReplicationFactor: 3,
		}
	})
	if t, ok := t.(*testing.T); ok {
		requireFaultTools(t, d)
	}
	ctx := context.Background()
	if err := d.Setup(ctx); err != nil {
		t.Fatalf("setup: %v", err)
	}
	cl := kafkaClient(t, addrs(d.Nodes()))
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 20000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = rejoinTopic, 1, 3
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("create topic: %v", err)
	}
	waitFor(t, 30*time.Second, "a leader with all three replicas in sync", func() error {
		st, err := partitionState(d.Nodes()[0].Addr)
		if err == nil && (st.leader < 0 || len(st.isr) != 3) {
			err = fmt.Errorf("leader %d, ISR %v", st.leader, st.isr)
		}
		return err
	})
	return d
}

func addrs(nodes []db.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Addr)
	}
	return out
}

func kafkaClient(t testing.TB, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(time.Second),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryTimeout(5 * time.Second),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

type partState struct {
	leader int32
	isr    []int32
}

// partitionState asks the node at addr who leads partition 0 of the
// topic and who is in sync, in that node's own view.
func partitionState(addr string) (partState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 7
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(rejoinTopic)
	req.Topics = append(req.Topics, mt)
	r, err := db.RoundTrip(ctx, addr, req)
	if err != nil {
		return partState{}, err
	}
	resp := r.(*kmsg.MetadataResponse)
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if p.Partition == 0 {
				return partState{leader: p.Leader, isr: p.ISR}, kerr.ErrorForCode(p.ErrorCode)
			}
		}
	}
	return partState{}, fmt.Errorf("%s lists no partition 0 of %s", addr, rejoinTopic)
}

func waitFor(t testing.TB, limit time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < limit {
		if last = cond(); last == nil {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s within %s: last: %v", what, limit, last)
	return 0
}

// produce sends values one by one and returns those acknowledged.
func produce(t testing.TB, cl *kgo.Client, values []string) []string {
	t.Helper()
	var acked []string
	for _, v := range values {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: rejoinTopic, Partition: 0, Value: []byte(v)}).FirstErr()
		cancel()
		if err == nil {
			acked = append(acked, v)
		}
	}
	return acked
}

func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// isolateLeader cuts the leader off from the other nodes, both ways, and
// returns the old leader and how long the others took to elect a new one.
func isolateLeader(t testing.TB, d *DB) (db.Node, time.Duration) {
	t.Helper()
	return isolateLeaderWith(t, d, nil)
}

// isolateLeaderWith is isolateLeader that also runs whileCut (if not nil)
// on the isolated leader the moment the cut is in place, before its
// controller session can lapse and before waiting for the new leader.
func isolateLeaderWith(t testing.TB, d *DB, whileCut func(leader db.Node)) (db.Node, time.Duration) {
	t.Helper()
	nodes := d.Nodes()
	st, err := partitionState(nodes[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	var leader db.Node
	var others []db.Node
	for _, n := range nodes {
		if n.ID == st.leader {
			leader = n
		} else {
			others = append(others, n)
		}
	}
	if leader.Name == "" {
		t.Fatalf("leader %d is none of the nodes", st.leader)
	}
	cut := map[string][]string{leader.Name: nil}
	for _, o := range others {
		cut[leader.Name] = append(cut[leader.Name], o.Name)
		cut[o.Name] = []string{leader.Name}
	}
	if err := d.Partition(context.Background(), cut); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	if whileCut != nil {
		whileCut(leader)
	}
	waitFor(t, 60*time.Second, "new leader among the majority", func() error {
		st, err := partitionState(others[0].Addr)
		if err == nil && (st.leader == leader.ID || st.leader < 0) {
			err = fmt.Errorf("leader still %d", st.leader)
		}
		return err
	})
	return leader, time.Since(cutAt)
}

// TestDockerClusterPartitionRejoin: with the leader isolated by iptables,
// the others elect a new leader and the isolated node cannot reach them.
// Right after the cut, before its controller session lapses, the isolated
// leader still takes acks=1 writes sent straight to it: a divergent tail.
// After the heal it rejoins the ISR, and the test proves that tail was
// truncated: the isolated leader acknowledged at least one such write, none
// of them is in the partition read from the new leader, and the old
// leader's own log records truncating a tail that covers every offset it
// handed out while isolated.
func TestDockerClusterPartitionRejoin(t *testing.T) {
	d := newReplicatedCluster(t)
	nodes := d.Nodes()
	all := kafkaClient(t, addrs(nodes), kgo.RequiredAcks(kgo.AllISRAcks()))
	before := produce(t, all, values("before", 20))
	if len(before) != 20 {
		t.Fatalf("%d of 20 acks=all writes acknowledged before any fault", len(before))
	}

	// The divergent writes go out the moment the cut is in place: the
	// isolated leader serves as leader only until its controller session
	// (SessionTimeout) lapses, and the new leader comes after that.
	var divergent []directWrite
	var refused map[string]int
	old, took := isolateLeaderWith(t, d, func(leader db.Node) {
		divergent, refused = produceDirect(leader.Addr, "divergent", time.Second)
	})
	t.Logf("%s isolated; a new leader %s after the cut", old.Name, took)
	t.Logf("the isolated %s acknowledged %d acks=1 writes at offsets %v; refusals: %v", old.Name, len(divergent), offsetsOf(divergent), refused)
	if len(divergent) == 0 {
		t.Fatalf("the isolated leader %s acknowledged no acks=1 write in the first second of its isolation, so there is no divergent tail to truncate; refusals: %v", old.Name, refused)
	}
	var others []db.Node
	for _, n := range nodes {
		if n.ID != old.ID {
			others = append(others, n)
			if err := dialFrom(d, old.Name, n.Controller); err == nil {
				t.Errorf("isolated %s reaches %s's controller", old.Name, n.Name)
			}
			if err := dialFrom(d, old.Name, n.Addr); err == nil {
				t.Errorf("isolated %s reaches %s's Kafka port", old.Name, n.Name)
			}
		}
	}

	// The new leader takes acks=all writes; they land on the offsets the
	// old leader gave the divergent writes, so the two logs now differ.
	majority := kafkaClient(t, addrs(others), kgo.RequiredAcks(kgo.AllISRAcks()))
	during := produce(t, majority, values("during", 20))
	if len(during) == 0 {
		t.Fatal("the majority acknowledged no acks=all write under its new leader")
	}

	if err := d.Heal(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom(d, old.Name, others[0].Controller); err != nil {
		t.Fatalf("after the heal %s cannot reach %s: %v", old.Name, others[0].Name, err)
	}
	waitFor(t, 60*time.Second, old.Name+" back in the ISR", func() error {
		st, err := partitionState(others[0].Addr)
		if err == nil && !slices.Contains(st.isr, old.ID) {
			err = fmt.Errorf("leader %d, ISR %v", st.leader, st.isr)
		}
		return err
	})

	// Read the whole partition: every acks=all write, no divergent one.
	got := readAll(t, addrs(others))
	for _, v := range append(before, during...) {
		if !got[v] {
			t.Errorf("acknowledged acks=all write %s is missing after the rejoin", v)
		}
	}
	for _, w := range divergent {
		if got[w.value] {
			t.Errorf("%s, acknowledged at offset %d only by the isolated old leader, survived the rejoin", w.value, w.offset)
		}
	}

	// The old leader, now a follower, must itself have dropped the tail:
	// its log names a truncation of this partition from at or below the
	// first divergent offset through at least the last one.
	first, last := divergent[0].offset, divergent[len(divergent)-1].offset
	logFile := d.LogFiles()[old.Name]
	var truncs []string
	waitFor(t, 10*time.Second, old.Name+" logging the truncation of its divergent tail", func() error {
		b, err := os.ReadFile(logFile)
		if err != nil {
			return err
		}
		truncs = truncations(string(b))
		for _, tr := range truncs {
			if to, dropped, ok := truncationRange(tr); ok && to <= first && dropped >= last {
				t.Logf("%s: %s", old.Name, tr)
				return nil
			}
		}
		return fmt.Errorf("divergent offsets %d..%d; truncations of %s-0 logged in %s: %q", first, last, rejoinTopic, logFile, truncs)
	})
}

// directWrite is a write a node acknowledged, and the offset it gave it.
type directWrite struct {
	value  string
	offset int64
}

func offsetsOf(ws []directWrite) []int64 {
	var out []int64
	for _, w := range ws {
		out = append(out, w.offset)
	}
	return out
}

// produceDirect sends acks=1 Produce requests for partition 0, one value
// each, straight to the node at addr for about dur, and returns the writes
// it acknowledged and how often each refusal came. No client library sits
// in between, so no metadata refresh sends the writes to another leader.
func produceDirect(addr, prefix string, dur time.Duration) ([]directWrite, map[string]int) {
	var acked []directWrite
	refused := map[string]int{}
	deadline := time.Now().Add(dur)
	for i := 0; time.Now().Before(deadline); i++ {
		v := fmt.Sprintf("%s-%d", prefix, i)
		req := kmsg.NewPtrProduceRequest()
		req.Version = 7
		req.Acks = 1
		req.TimeoutMillis = 1000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = rejoinTopic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = 0
		rp.Records = storagetest.Batch([]byte(v))
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := db.RoundTrip(ctx, addr, req)
		cancel()
		switch {
		case err != nil:
			refused[err.Error()]++
		case len(r.(*kmsg.ProduceResponse).Topics) != 1 || len(r.(*kmsg.ProduceResponse).Topics[0].Partitions) != 1:
			refused["a response without exactly one partition"]++
		default:
			p := r.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				refused[err.Error()]++
			} else {
				acked = append(acked, directWrite{value: v, offset: p.BaseOffset})
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return acked, refused
}

// truncations returns the broker log lines that record a follower of
// partition 0 of the topic truncating a diverging tail.
func truncations(brokerLog string) []string {
	var out []string
	for line := range strings.Lines(brokerLog) {
		if strings.Contains(line, "truncated a diverging log tail") && strings.Contains(line, rejoinTopic+"-0") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

var (
	truncatedToRE = regexp.MustCompile(`truncated_to"?[=:](-?\d+)`)
	droppedToRE   = regexp.MustCompile(`dropped_to"?[=:](-?\d+)`)
)

// truncationRange parses the first offset dropped (truncated_to) and the
// last (dropped_to) from a truncation line, in text or JSON form.
func truncationRange(line string) (to, dropped int64, ok bool) {
	a, b := truncatedToRE.FindStringSubmatch(line), droppedToRE.FindStringSubmatch(line)
	if a == nil || b == nil {
		return 0, 0, false
	}
	to, err1 := strconv.ParseInt(a[1], 10, 64)
	dropped, err2 := strconv.ParseInt(b[1], 10, 64)
	return to, dropped, err1 == nil && err2 == nil
}

// readAll reads partition 0 from the start to its high watermark.
func readAll(t testing.TB, seeds []string) map[string]bool {
	t.Helper()
	cl := kafkaClient(t, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		rejoinTopic: {0: kgo.NewOffset().AtStart()},
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = rejoinTopic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = 0, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	end := resp.Topics[0].Partitions[0].Offset
	got := map[string]bool{}
	next := int64(0)
	for next < end {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read only to offset %d of %d", next, end)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Value)] = true
			next = r.Offset + 1
		})
	}
	return got
}

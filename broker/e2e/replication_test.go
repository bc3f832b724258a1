package e2e

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/partition"
	"github.com/garantia/garantia/internal/leakcheck"
)

// ackedRecord is a write a producer was told is saved.
type ackedRecord struct {
	partition int32
	offset    int64
	value     string
}

// producer produces unique values to a topic from a goroutine until
// stopped, recording every acknowledgement.
type producer struct {
	cl     *kgo.Client
	topic  string
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	acked []ackedRecord
	sent  int
}

func startProducer(cl *kgo.Client, topic string) *producer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{cl: cl, topic: topic, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var inflight sync.WaitGroup
		defer inflight.Wait()
		sem := make(chan struct{}, 32)
		for i := 0; ; i++ {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			inflight.Add(1)
			p.mu.Lock()
			p.sent++
			p.mu.Unlock()
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "value-%08d", i)}, func(r *kgo.Record, err error) {
				defer inflight.Done()
				<-sem
				if err != nil {
					return // indeterminate: may or may not be in the log
				}
				p.mu.Lock()
				p.acked = append(p.acked, ackedRecord{r.Partition, r.Offset, string(r.Value)})
				p.mu.Unlock()
			})
		}
	}()
	return p
}

func (p *producer) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// waitAcked waits until n more writes than now are acknowledged.
func (p *producer) waitAcked(t testing.TB, n int, what string) {
	t.Helper()
	want := p.ackedCount() + n
	deadline := time.Now().Add(20 * time.Second)
	for p.ackedCount() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: only %d of %d writes acknowledged within 20s", what, p.ackedCount(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *producer) stop() []ackedRecord {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ackedRecord(nil), p.acked...)
}

// TestAcksAllSurvivesLeaderKills produces acks=all (RF 3, min ISR 2) while
// the leader of partition 0 is killed and fenced three times (a new leader
// is elected from the ISR each time and the client follows it) and
// restarted on its data directory: afterwards all three replicas' logs are
// identical byte for byte and every acknowledged write is at its offset.
func TestAcksAllSurvivesLeaderKills(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	const topic, partitions = "acks-all", 3
	c.createTopic(topic, partitions, 3, 2)
	p := startProducer(c.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(30*time.Second),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner())), topic)
	p.waitAcked(t, 1000, "before the first kill")
	for round := range 3 {
		old := c.state(topic, 0).Leader
		c.kill(old)
		c.fence(old)
		leader := c.waitLeader(topic, 0, old)
		t.Logf("round %d: killed leader %d, new leader %d", round, old, leader)
		p.waitAcked(t, 1000, fmt.Sprintf("round %d, with node %d down", round, old))
		c.restart(old)
		c.unfence(old)
		for i := range int32(partitions) {
			c.waitFor(fmt.Sprintf("node %d to rejoin the ISR of %s-%d", old, topic, i), 15*time.Second, func() bool {
				st := c.state(topic, i)
				return st.InISR(old)
			})
		}
		p.waitAcked(t, 1000, fmt.Sprintf("round %d, after node %d rejoined", round, old))
	}
	acked := p.stop()

	for i := range int32(partitions) {
		c.waitInSync(topic, i)
		st := c.state(topic, i)
		want := c.logBytes(st.Leader, topic, i)
		for _, r := range st.Replicas {
			if got := c.logBytes(r, topic, i); !bytes.Equal(got, want) {
				t.Fatalf("%s-%d: node %d's log (%d bytes) differs from leader %d's (%d bytes)", topic, i, r, len(got), st.Leader, len(want))
			}
		}
	}
	values := make([]map[int64]string, partitions)
	for i := range int32(partitions) {
		values[i] = c.valuesAt(c.state(topic, i).Leader, topic, i)
	}
	for _, a := range acked {
		if got, ok := values[a.partition][a.offset]; !ok || got != a.value {
			t.Fatalf("acknowledged write %q at %s-%d offset %d is lost: the log has %q there", a.value, topic, a.partition, a.offset, got)
		}
	}
	t.Logf("%d acknowledged writes, all present on every replica", len(acked))
}

// produceOK writes values to node id with acks=all and fails the test
// unless they are acknowledged; it returns the base offset.
func (c *cluster) produceOK(id int32, topic string, index int32, values ...string) int64 {
	c.t.Helper()
	sp := c.produceTo(id, topic, index, -1, 5*time.Second, values...)
	if sp.ErrorCode != 0 {
		c.t.Fatalf("acks=all produce of %q to node %d: error %s", values, id, kerr.ErrorForCode(sp.ErrorCode))
	}
	return sp.BaseOffset
}

// offsetOf returns the offset holding value in node id's log, or -1.
func (c *cluster) offsetOf(id int32, topic string, index int32, value string) int64 {
	for o, v := range c.valuesAt(id, topic, index) {
		if v == value {
			return o
		}
	}
	return -1
}

// assertHolds fails unless node id's log holds every value at its offset.
func (c *cluster) assertHolds(id int32, topic string, index int32, want map[int64]string, what string) {
	c.t.Helper()
	got := c.valuesAt(id, topic, index)
	for o, v := range want {
		if got[o] != v {
			c.t.Fatalf("%s: acknowledged write %q at offset %d is lost: node %d's log has %q there", what, v, o, id, got[o])
		}
	}
}

// lessonSetup makes a 3-replica partition with committed writes and cuts
// its leader off from both followers; it returns the leader and the
// committed writes.
func lessonSetup(t *testing.T, c *cluster, topic string, minISR int32) (int32, map[int64]string) {
	t.Helper()
	c.createTopic(topic, 1, 3, minISR)
	leader := c.state(topic, 0).Leader
	acked := map[int64]string{}
	for i := range 3 {
		v := fmt.Sprintf("committed-%d", i)
		acked[c.produceOK(leader, topic, 0, v)] = v
	}
	c.waitInSync(topic, 0)
	c.isolate(leader, true)
	return leader, acked
}

// lessonFailover kills and fences the old leader, writes to the new one,
// brings the old leader back (same data directory, unfenced) and waits
// until all replicas agree again. It returns the new leader.
func lessonFailover(t *testing.T, c *cluster, topic string, old int32, acked map[int64]string) int32 {
	t.Helper()
	c.kill(old)
	c.fence(old)
	leader := c.waitLeader(topic, 0, old)
	for i := range 3 {
		v := fmt.Sprintf("after-failover-%d", i)
		acked[c.produceOK(leader, topic, 0, v)] = v
	}
	c.isolate(old, false)
	c.restart(old)
	c.unfence(old)
	c.waitInSync(topic, 0)
	return leader
}

// TestSeedLessonAcksOneIsLost is the seed's lesson, scripted: a leader cut
// off from its followers acknowledges an acks=1 write that only it has;
// it dies, a follower from the ISR takes over and takes new writes; when
// the old leader comes back it truncates the write away (its log is the
// new leader's, byte for byte). The producer was told "saved" and the
// write is gone: that is what acks=1 means.
func TestSeedLessonAcksOneIsLost(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	const topic = "lesson-acks1"
	old, acked := lessonSetup(t, c, topic, 2)
	sp := c.produceTo(old, topic, 0, 1, 5*time.Second, "acks1-write")
	if sp.ErrorCode != 0 {
		t.Fatalf("acks=1 produce to the isolated leader: error %s, want it acknowledged", kerr.ErrorForCode(sp.ErrorCode))
	}
	if got := c.valuesAt(old, topic, 0)[sp.BaseOffset]; got != "acks1-write" {
		t.Fatalf("the old leader's log has %q at offset %d, want the acks=1 write", got, sp.BaseOffset)
	}
	leader := lessonFailover(t, c, topic, old, acked)

	if o := c.offsetOf(leader, topic, 0, "acks1-write"); o >= 0 {
		t.Fatalf("the acks=1 write survived at offset %d of the new leader; it never reached a follower", o)
	}
	if got := c.valuesAt(old, topic, 0)[sp.BaseOffset]; got == "acks1-write" {
		t.Fatalf("the old leader still has the acks=1 write at offset %d: it was not truncated", sp.BaseOffset)
	}
	if !bytes.Equal(c.logBytes(old, topic, 0), c.logBytes(leader, topic, 0)) {
		t.Fatalf("the old leader's log differs from the new leader's after it rejoined")
	}
	c.assertHolds(leader, topic, 0, acked, "acks=all writes")
}

// TestSeedLessonAcksAllIsNotLost is the same script with acks=all and
// min.insync.replicas 2: the isolated leader cannot commit the write, so
// it is refused instead of acknowledged, and nothing acknowledged is lost.
func TestSeedLessonAcksAllIsNotLost(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	const topic = "lesson-acksall"
	old, acked := lessonSetup(t, c, topic, 2)
	sp := c.produceTo(old, topic, 0, -1, time.Second, "acksall-write")
	switch sp.ErrorCode {
	case kerr.RequestTimedOut.Code, kerr.NotEnoughReplicas.Code, kerr.NotEnoughReplicasAfterAppend.Code:
	default:
		t.Fatalf("acks=all produce to the isolated leader: error %s; want it refused or timed out, not acknowledged", kerr.ErrorForCode(sp.ErrorCode))
	}
	leader := lessonFailover(t, c, topic, old, acked)
	c.assertHolds(leader, topic, 0, acked, "after the failover")
	c.assertHolds(old, topic, 0, acked, "on the old leader after it rejoined")
	if !bytes.Equal(c.logBytes(old, topic, 0), c.logBytes(leader, topic, 0)) {
		t.Fatalf("the old leader's log differs from the new leader's after it rejoined")
	}
}

// TestISRShrinksAndExpands cuts both followers off: after the lag limit
// the leader shrinks the ISR to itself (through the controller), so the
// acks=all write waiting meanwhile is committed below min.insync.replicas
// (NOT_ENOUGH_REPLICAS_AFTER_APPEND) and the next one is refused before
// the append (NOT_ENOUGH_REPLICAS), while acks=1 goes on. Healed, the
// followers catch up and rejoin, and acks=all works again.
func TestISRShrinksAndExpands(t *testing.T) {
	c := newCluster(t, clusterOpts{lagMax: 400 * time.Millisecond, fetchWait: 100 * time.Millisecond})
	const topic = "isr"
	leader, acked := lessonSetup(t, c, topic, 2)
	sp := c.produceTo(leader, topic, 0, -1, 10*time.Second, "during-shrink")
	if sp.ErrorCode != kerr.NotEnoughReplicasAfterAppend.Code {
		t.Fatalf("acks=all produce while the ISR shrinks: error %s, want NOT_ENOUGH_REPLICAS_AFTER_APPEND", kerr.ErrorForCode(sp.ErrorCode))
	}
	if st := c.state(topic, 0); len(st.ISR) != 1 || st.ISR[0] != leader {
		t.Fatalf("ISR %v after the followers were cut off, want [%d]", st.ISR, leader)
	}
	if sp := c.produceTo(leader, topic, 0, -1, 10*time.Second, "below-min-isr"); sp.ErrorCode != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all produce with ISR 1 < min ISR 2: error %s, want NOT_ENOUGH_REPLICAS", kerr.ErrorForCode(sp.ErrorCode))
	}
	if o := c.offsetOf(leader, topic, 0, "below-min-isr"); o >= 0 {
		t.Fatalf("a write refused with NOT_ENOUGH_REPLICAS was appended at offset %d", o)
	}
	if sp := c.produceTo(leader, topic, 0, 1, 10*time.Second, "acks1"); sp.ErrorCode != 0 {
		t.Fatalf("acks=1 produce with a shrunk ISR: error %s", kerr.ErrorForCode(sp.ErrorCode))
	}
	c.isolate(leader, false)
	c.waitInSync(topic, 0)
	acked[c.produceOK(leader, topic, 0, "after-expand")] = "after-expand"
	for _, r := range c.state(topic, 0).Replicas {
		c.assertHolds(r, topic, 0, acked, fmt.Sprintf("node %d after the ISR expanded", r))
	}
}

// TestClusterMetadataAndLeaderHints checks what clients are told: topics
// created through CreateTopics with a replication factor and
// min.insync.replicas, Metadata listing the unfenced brokers and each
// partition's leader, ISR and offline replicas, and NOT_LEADER_OR_FOLLOWER
// answers naming the current leader (KIP-951) so clients move on.
func TestClusterMetadataAndLeaderHints(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "hints", 2, 3
	minISR, bad := "2", "many"
	rt.Configs = []kmsg.CreateTopicsRequestTopicConfig{{Name: "min.insync.replicas", Value: &minISR}}
	req.Topics = append(req.Topics, rt)
	rt2 := rt
	rt2.Topic, rt2.Configs = "bad-config", []kmsg.CreateTopicsRequestTopicConfig{{Name: "min.insync.replicas", Value: &bad}}
	rt3 := rt
	rt3.Topic, rt3.ReplicationFactor, rt3.Configs = "too-many-replicas", 4, nil
	req.Topics = append(req.Topics, rt2, rt3)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []*kerr.Error{nil, kerr.InvalidConfig, kerr.InvalidReplicationFactor} {
		if got := kerr.ErrorForCode(resp.Topics[i].ErrorCode); got != want && !(want == nil && got == nil) {
			t.Errorf("create %s: error %v, want %v", resp.Topics[i].Topic, got, want)
		}
	}
	if topic := c.ctrl.Snapshot().Topics["hints"]; topic == nil || topic.Config.MinInsyncReplicas != 2 || len(topic.Partitions[0].Replicas) != 3 {
		t.Fatalf("created topic in the metadata: %+v", topic)
	}
	for i := range int32(2) {
		c.waitInSync("hints", i)
	}

	st := c.state("hints", 0)
	var follower int32
	for _, r := range st.Replicas {
		if r != st.Leader {
			follower = r
		}
	}
	sp := c.produceTo(follower, "hints", 0, -1, time.Second, "to-a-follower")
	if sp.ErrorCode != kerr.NotLeaderForPartition.Code || sp.CurrentLeader.LeaderID != st.Leader || sp.CurrentLeader.LeaderEpoch != st.LeaderEpoch {
		t.Fatalf("produce to follower %d: error %s, hint %+v; want NOT_LEADER_OR_FOLLOWER naming leader %d at epoch %d",
			follower, kerr.ErrorForCode(sp.ErrorCode), sp.CurrentLeader, st.Leader, st.LeaderEpoch)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.MaxBytes, fetch.SessionEpoch = 12, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "hints"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	fresp := kmsg.NewPtrFetchResponse()
	fresp.Version = 12
	c.roundTrip(follower, fetch, fresp, 5*time.Second)
	if p := fresp.Topics[0].Partitions[0]; p.ErrorCode != kerr.NotLeaderForPartition.Code || p.CurrentLeader.LeaderID != st.Leader {
		t.Fatalf("consumer fetch from follower %d: error %s, hint %+v", follower, kerr.ErrorForCode(p.ErrorCode), p.CurrentLeader)
	}

	c.kill(follower)
	c.fence(follower)
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	mresp := kmsg.NewPtrMetadataResponse()
	mresp.Version = 12
	c.roundTrip(st.Leader, md, mresp, 5*time.Second)
	if len(mresp.Brokers) != 2 || slices.ContainsFunc(mresp.Brokers, func(b kmsg.MetadataResponseBroker) bool { return b.NodeID == follower }) {
		t.Fatalf("metadata brokers %+v: want the two unfenced ones", mresp.Brokers)
	}
	mp := mresp.Topics[0].Partitions[0]
	if *mresp.Topics[0].Topic == "hints" && (mp.Leader != st.Leader || len(mp.ISR) != 2 || !slices.Equal(mp.OfflineReplicas, []int32{follower})) {
		t.Fatalf("metadata of hints-0 with node %d fenced: %+v", follower, mp)
	}
	// Clients keep producing with acks=all: the ISR of two meets min ISR 2.
	prod := c.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("hints"))
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("still-writable")}).FirstErr(); err != nil {
		t.Fatalf("acks=all produce with one of three replicas down: %v", err)
	}
}

// TestClusterShutdownLeavesNoGoroutines: stopping every node of a
// replicating cluster (fetchers parked in long polls at their leaders,
// ISR checks, checkpoints) leaves none of the broker's goroutines behind.
func TestClusterShutdownLeavesNoGoroutines(t *testing.T) {
	leakcheck.Check(t)
	c := newCluster(t, clusterOpts{})
	c.createTopic("shutdown", 3, 3, 2)
	for i := range int32(3) {
		c.produceOK(c.state("shutdown", i).Leader, "shutdown", i, "v")
		c.waitInSync("shutdown", i)
	}
	for id := range c.nodes {
		c.kill(id)
	}
	// leakcheck.Check proves, at the end, that no goroutine is left.
}

// TestDeposedLeaderBecomesFollower: a live leader that the controller
// deposes (its followers cut off from it) learns it from the metadata: it
// refuses writes with NOT_LEADER_OR_FOLLOWER naming the new leader, and,
// as a follower of the new leader, truncates the acks=1 write only it had,
// without a restart.
func TestDeposedLeaderBecomesFollower(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	const topic = "deposed"
	old, acked := lessonSetup(t, c, topic, 2)
	sp := c.produceTo(old, topic, 0, 1, 5*time.Second, "only-on-old")
	if sp.ErrorCode != 0 {
		t.Fatalf("acks=1 produce: error %s", kerr.ErrorForCode(sp.ErrorCode))
	}
	c.fence(old)
	leader := c.waitLeader(topic, 0, old)
	c.waitFor("the old leader to follow", 5*time.Second, func() bool {
		return c.replica(old, topic, 0).Role() == partition.Follower
	})
	refused := c.produceTo(old, topic, 0, -1, 5*time.Second, "to-the-deposed")
	if refused.ErrorCode != kerr.NotLeaderForPartition.Code || refused.CurrentLeader.LeaderID != leader {
		t.Fatalf("produce to the deposed leader: error %s, hint %+v; want NOT_LEADER_OR_FOLLOWER naming %d",
			kerr.ErrorForCode(refused.ErrorCode), refused.CurrentLeader, leader)
	}
	for i := range 3 {
		v := fmt.Sprintf("new-%d", i)
		acked[c.produceOK(leader, topic, 0, v)] = v
	}
	c.unfence(old)
	c.waitInSync(topic, 0)
	if got := c.valuesAt(old, topic, 0)[sp.BaseOffset]; got == "only-on-old" {
		t.Fatalf("the deposed leader kept its unreplicated write at offset %d", sp.BaseOffset)
	}
	if !bytes.Equal(c.logBytes(old, topic, 0), c.logBytes(leader, topic, 0)) {
		t.Fatal("the deposed leader's log differs from the new leader's")
	}
	c.assertHolds(old, topic, 0, acked, "on the deposed leader")
}

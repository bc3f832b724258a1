package group

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/partition"
	"github.com/garantia/garantia/broker/storage"
)

// The unit tests run one coordinator (node 1) over real partition replicas
// on in-memory logs. The test plays the replica manager and the
// controller: it makes node 1 leader or follower of an offsets partition,
// and plays the followers (ReplicaFetch) to move the high watermark.

const self = int32(1)

type fakeReplicas struct {
	mu    sync.Mutex
	parts map[int32]*partition.Partition
}

func (r *fakeReplicas) Partition(topic string, index int32) *partition.Partition {
	if topic != OffsetsTopic {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.parts[index]
}

type env struct {
	t     *testing.T
	meta  *metadata.Memory
	reps  *fakeReplicas
	logs  map[int32]storage.PartitionLog
	coord *Coordinator
}

func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newEnv makes an offsets topic of n partitions, each replicated on
// replicas (node 1 first, so it leads), all led by node 1 at epoch 0, and
// a started coordinator.
func newEnv(t *testing.T, n int32, replicas []int32, tweak func(*Config)) *env {
	t.Helper()
	var brokers []metadata.Broker
	for _, id := range replicas {
		brokers = append(brokers, metadata.Broker{ID: id, Host: "127.0.0.1", Port: 9000 + id})
	}
	e := &env{t: t, meta: metadata.NewMemory(brokers...), reps: &fakeReplicas{parts: map[int32]*partition.Partition{}}, logs: map[int32]storage.PartitionLog{}}
	if err := e.meta.CreateTopic(context.Background(), OffsetsTopic, n, int16(len(replicas)), metadata.TopicConfig{MinInsyncReplicas: 1}); err != nil {
		t.Fatal(err)
	}
	// Node 1 leads every partition (replica order is round-robin).
	if err := e.meta.Update(func(s *metadata.Snapshot) (*metadata.Snapshot, error) {
		n := s.Clone()
		for i := range n.Topics[OffsetsTopic].Partitions {
			p := &n.Topics[OffsetsTopic].Partitions[i]
			p.Replicas = append([]int32(nil), replicas...)
			p.ISR = append([]int32(nil), replicas...)
			p.Leader = self
		}
		n.Version++
		return n, nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		log := storage.NewMemLog(OffsetsTopic)
		part, err := partition.Open(partition.Config{Topic: OffsetsTopic, Index: i, Self: self, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		st, _ := e.meta.Snapshot().Partition(OffsetsTopic, i)
		part.BecomeLeader(st, 1, time.Now())
		e.reps.parts[i] = part
		e.logs[i] = log
	}
	cfg := Config{
		NodeID:                self,
		Metadata:              e.meta,
		Replicas:              e.reps,
		MinSessionTimeout:     10 * time.Millisecond,
		InitialRebalanceDelay: -1,
		CommitTimeout:         2 * time.Second,
		Logger:                testLogger(t),
		pollInterval:          5 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(c.Close)
	e.coord = c
	return e
}

func (e *env) part(i int32) *partition.Partition { return e.reps.Partition(OffsetsTopic, i) }

// waitActive waits until every shard is loaded.
func (e *env) waitActive(n int32) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		e.coord.mu.Lock()
		for i := range n {
			if s := e.coord.shards[i]; s == nil || !s.isActive() {
				ok = false
			}
		}
		e.coord.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	e.t.Fatalf("offsets partitions not all loaded within 5s")
}

// do sends req as client cl and returns its answer, waiting for a parked
// one up to 5s.
func (e *env) do(req kmsg.Request, cl Client) kmsg.Response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, wait := e.coord.Handle(ctx, req, cl)
	if wait != nil {
		return wait(ctx)
	}
	return resp
}

// async sends req now (its work happens in order) and waits for the
// answer in the background.
func (e *env) async(req kmsg.Request, cl Client) <-chan kmsg.Response {
	ch := make(chan kmsg.Response, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	resp, wait := e.coord.Handle(ctx, req, cl)
	go func() {
		defer cancel()
		if wait != nil {
			resp = wait(ctx)
		}
		ch <- resp
	}()
	return ch
}

func recv(t *testing.T, ch <-chan kmsg.Response) kmsg.Response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s")
		return nil
	}
}

// joinReq is a consumer's JoinGroup at v9 with one protocol.
func joinReq(group, member string, protocol string, meta string) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = 9
	r.Group, r.MemberID = group, member
	r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 10000, 2000
	r.ProtocolType = "consumer"
	r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: protocol, Metadata: []byte(meta)}}
	return r
}

// joinNew joins as a new dynamic member: MEMBER_ID_REQUIRED, then the
// real join (parked); it returns the member id and the channel of the
// parked answer.
func (e *env) joinNew(group string, cl Client) (string, <-chan kmsg.Response) {
	e.t.Helper()
	first := e.do(joinReq(group, "", "range", cl.ID), cl).(*kmsg.JoinGroupResponse)
	if first.ErrorCode != kerr.MemberIDRequired.Code || first.MemberID == "" {
		e.t.Fatalf("first join of %s: error %d member %q, want MEMBER_ID_REQUIRED with an id", cl.ID, first.ErrorCode, first.MemberID)
	}
	return first.MemberID, e.async(joinReq(group, first.MemberID, "range", cl.ID), cl)
}

func syncReq(group, member string, gen int32, assign map[string]string) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version = 5
	r.Group, r.MemberID, r.Generation = group, member, gen
	for id, a := range assign {
		r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: []byte(a)})
	}
	return r
}

func heartbeat(e *env, group, member string, gen int32) int16 {
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version = 4
	r.Group, r.MemberID, r.Generation = group, member, gen
	return e.do(r, Client{}).(*kmsg.HeartbeatResponse).ErrorCode
}

func commitReq(group, member string, gen int32, topic string, offsets map[int32]int64) *kmsg.OffsetCommitRequest {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 9
	r.Group, r.MemberID, r.Generation = group, member, gen
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = topic
	for p, o := range offsets {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, o
		t.Partitions = append(t.Partitions, rp)
	}
	r.Topics = append(r.Topics, t)
	return r
}

func commitCodes(resp kmsg.Response) map[int32]int16 {
	out := map[int32]int16{}
	for _, t := range resp.(*kmsg.OffsetCommitResponse).Topics {
		for _, p := range t.Partitions {
			out[p.Partition] = p.ErrorCode
		}
	}
	return out
}

// fetchOffsets returns the group's committed offsets of topic (v9), and
// the group's error code.
func (e *env) fetchOffsets(group, topic string, parts ...int32) (map[int32]int64, int16) {
	e.t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = 9
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: parts}}
	r.Groups = append(r.Groups, rg)
	resp := e.do(r, Client{}).(*kmsg.OffsetFetchResponse)
	out := map[int32]int64{}
	g := resp.Groups[0]
	for _, t := range g.Topics {
		for _, p := range t.Partitions {
			out[p.Partition] = p.Offset
		}
	}
	return out, g.ErrorCode
}

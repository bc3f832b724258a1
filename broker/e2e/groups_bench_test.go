package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The group benchmarks run against a 3-node cluster of broker processes
// (RF 3, min.insync.replicas 2) with no initial rebalance delay, so that
// they measure the protocol, not Kafka's 3s wait for more members (which
// `--group-initial-rebalance-delay` adds to a first join).

func benchCluster(b *testing.B) *procCluster {
	b.Helper()
	return startProcCluster(b, 3, "--default-replication-factor", "3", "--min-insync-replicas", "2",
		"--group-initial-rebalance-delay", "0s", "--group-min-session-timeout", "500ms")
}

// BenchmarkGroupJoin10: ten kgo members (cooperative-sticky) join a new
// group until each has its assignment (join-ms), then an eleventh joins
// and the group rebalances until all eleven hold their new assignment
// (rebalance-ms: members learn of it from a heartbeat, every 100ms here,
// and a cooperative rebalance takes two rounds).
func BenchmarkGroupJoin10(b *testing.B) {
	c := benchCluster(b)
	admin := c.client()
	createTopicRF(b, admin, "join", 12, 3, 10000)
	var joins, rebalances []time.Duration
	for i := 0; b.Loop(); i++ {
		group := fmt.Sprintf("join-%d", i)
		var assigned atomic.Int32 // members that got an assignment at least once
		firsts := &flags{}
		gen := make(chan struct{}, 64)
		newMember := func(j int) *kgo.Client {
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics("join"),
				kgo.HeartbeatInterval(100*time.Millisecond), kgo.SessionTimeout(3*time.Second),
				kgo.ClientID(fmt.Sprintf("m%d", j)),
				kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
					if firsts.CompareAndSwap(int32(j), 0, 1) {
						assigned.Add(1)
					}
					select {
					case gen <- struct{}{}:
					default:
					}
				}))
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				for {
					if fs := cl.PollFetches(context.Background()); fs.IsClientClosed() {
						return
					}
				}
			}()
			return cl
		}
		start := time.Now()
		var members []*kgo.Client
		for j := range 10 {
			members = append(members, newMember(j))
		}
		waitAssigned(b, &assigned, 10, gen)
		waitStable(b, admin, group, 10)
		joins = append(joins, time.Since(start))

		start = time.Now()
		members = append(members, newMember(10))
		// Every member's assignment changes or is confirmed in the new
		// generation; with cooperative-sticky the callback fires for the
		// members that gain partitions, so wait until the newcomer has its
		// share and the group is stable.
		waitAssigned(b, &assigned, 11, gen)
		waitStable(b, admin, group, 11)
		rebalances = append(rebalances, time.Since(start))
		var wg sync.WaitGroup
		for _, m := range members {
			wg.Add(1)
			go func() { defer wg.Done(); m.Close() }()
		}
		wg.Wait()
	}
	b.ReportMetric(median(joins).Seconds()*1000, "join-ms")
	b.ReportMetric(median(rebalances).Seconds()*1000, "rebalance-ms")
}

// flags are one bit per member: set once it got an assignment.
type flags struct{ v [16]atomic.Int32 }

func (f *flags) CompareAndSwap(i, old, new int32) bool { return f.v[i].CompareAndSwap(old, new) }

func waitAssigned(b *testing.B, n *atomic.Int32, want int32, ch <-chan struct{}) {
	b.Helper()
	deadline := time.After(60 * time.Second)
	for n.Load() < want {
		select {
		case <-ch:
		case <-deadline:
			b.Fatalf("%d of %d members assigned after 60s", n.Load(), want)
		}
	}
}

// waitStable polls DescribeGroups until the group is Stable with members.
func waitStable(b *testing.B, cl *kgo.Client, group string, members int) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{group}
		resp, err := req.RequestWith(context.Background(), cl)
		if err == nil && len(resp.Groups) == 1 && resp.Groups[0].State == "Stable" && len(resp.Groups[0].Members) == members {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatalf("group %s not Stable with %d members after 60s", group, members)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkCommitLatency: one OffsetCommit at a time to the group's
// coordinator, each acknowledged once the offsets record is on every
// in-sync replica; beside it, an acks=all produce of one record to a
// topic of the same replication, the reference.
func BenchmarkCommitLatency(b *testing.B) {
	c := benchCluster(b)
	admin := c.client()
	createTopicRF(b, admin, "ref", 1, 3, 10000)
	coord := groupCoordinator(b, admin, "bench-commit")
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.node(coord).addr))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.DefaultProduceTopic("ref"), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	ctx := context.Background()
	commit := func(i int) {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group = "bench-commit"
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Offset = int64(i)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		for tries := 0; ; tries++ {
			resp, err := req.RequestWith(ctx, cl.Broker(int(coord)))
			if err == nil && resp.Topics[0].Partitions[0].ErrorCode == 0 {
				return
			}
			// The offsets partition may still be loading right after the
			// first FindCoordinator created it.
			if err != nil || resp.Topics[0].Partitions[0].ErrorCode != kerr.CoordinatorLoadInProgress.Code || tries > 100 {
				b.Fatalf("commit: %v %+v", err, resp)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i := range 50 { // warm up connections and the offsets partition
		commit(i)
		_ = prod.ProduceSync(ctx, &kgo.Record{Value: []byte("w")}).FirstErr()
	}
	var commits, produces []time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		commit(i)
		commits = append(commits, time.Since(t0))
		t0 = time.Now()
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		produces = append(produces, time.Since(t0))
	}
	slices.Sort(commits)
	slices.Sort(produces)
	q := func(s []time.Duration, p float64) float64 { return float64(s[int(p*float64(len(s)-1))].Microseconds()) }
	b.ReportMetric(q(commits, 0.5), "commit-p50-µs")
	b.ReportMetric(q(commits, 0.99), "commit-p99-µs")
	b.ReportMetric(q(produces, 0.5), "produce-p50-µs")
	b.ReportMetric(q(produces, 0.99), "produce-p99-µs")
}

// BenchmarkConsumeGroupVsAssign reads the same 3-partition topic of
// 300,000 records start to end, alternately through a group member (one
// consumer, committing after every poll) and by assigning the partitions
// directly, and reports both rates.
func BenchmarkConsumeGroupVsAssign(b *testing.B) {
	c := benchCluster(b)
	admin := c.client()
	const total = 300000
	createTopicRF(b, admin, "tput", 3, 3, 10000)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.DefaultProduceTopic("tput"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	val := make([]byte, 100)
	for i := range total {
		prod.Produce(ctx, &kgo.Record{Value: val, Partition: int32(i % 3)}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	prod.Close()
	read := func(opts ...kgo.Opt) time.Duration {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.seeds()...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		start := time.Now()
		n := 0
		for n < total {
			fs := cl.PollFetches(ctx)
			n += fs.NumRecords()
			if cl.OptValue(kgo.ConsumerGroup) != "" {
				if err := cl.CommitUncommittedOffsets(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		return time.Since(start)
	}
	var group, assign []time.Duration
	for i := 0; b.Loop(); i++ {
		group = append(group, read(kgo.ConsumerGroup(fmt.Sprintf("tput-%d", i)), kgo.ConsumeTopics("tput"), kgo.DisableAutoCommit()))
		assign = append(assign, read(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"tput": {
			0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart()}})))
	}
	b.ReportMetric(total/median(group).Seconds(), "group-records/s")
	b.ReportMetric(total/median(assign).Seconds(), "assign-records/s")
}

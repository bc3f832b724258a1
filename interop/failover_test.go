package interop

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFailoverDuringGroupConsumption: on the 3-node cluster, while a
// producer writes at acks=all and a group of two consumers reads and
// commits, the group's coordinator is SIGKILLed (and later restarted), then
// a data partition's leader. Every acknowledged record is read by the
// group, and the group's committed offsets end at the topic's end: no
// commit the coordinator acknowledged was lost with it.
func TestFailoverDuringGroupConsumption(t *testing.T) {
	for _, client := range []string{"sarama", "kgo"} {
		t.Run(client, func(t *testing.T) {
			c := clusterOf(t, 3)
			topic, group := uniqueName(t, "fo"), uniqueName(t, "fog")
			c.createTopic(t, topic, 3)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()

			// The producer: one acks=all record at a time, keeping what
			// was acknowledged.
			var mu sync.Mutex
			acked := map[string]bool{}
			pctx, stopProducing := context.WithCancel(ctx)
			prod := c.kgo(t, kgo.DefaultProduceTopic(topic), kgo.RequestTimeoutOverhead(5*time.Second),
				kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
			var pw sync.WaitGroup
			pw.Add(1)
			go func() {
				defer pw.Done()
				for i := 0; pctx.Err() == nil; i++ {
					v := fmt.Sprintf("%s-%05d", topic, i)
					if err := prod.ProduceSync(pctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err == nil {
						mu.Lock()
						acked[v] = true
						mu.Unlock()
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()

			seen := newSeenSet()
			cctx, stopConsuming := context.WithCancel(ctx)
			var cw sync.WaitGroup
			for i := range 2 {
				cw.Add(1)
				go func() {
					defer cw.Done()
					switch client {
					case "sarama":
						saramaMember(t, cctx, c, group, topic, seen)
					case "kgo":
						kgoMember(t, cctx, c, group, topic, seen, i)
					}
				}()
			}

			time.Sleep(2 * time.Second)
			coord := coordinatorOf(t, c, group)
			c.bounce(t, coord, 4*time.Second)
			leader := leaderOf(t, c, topic, 0)
			c.bounce(t, leader, 4*time.Second)
			time.Sleep(time.Second)
			stopProducing()
			pw.Wait()

			mu.Lock()
			want := acked
			mu.Unlock()
			if len(want) == 0 {
				t.Fatal("no record was acknowledged")
			}
			deadline := time.Now().Add(60 * time.Second)
			for !seen.hasAll(want) {
				if time.Now().After(deadline) {
					checkAll(t, client+" group during failovers", want, seen.list())
				}
				time.Sleep(100 * time.Millisecond)
			}
			c.waitCommitted(t, group, topic)
			stopConsuming()
			cw.Wait()
			t.Logf("%d acknowledged records read by the %s group across the coordinator (node %d) and partition leader (node %d) kills", len(want), client, coord, leader)
		})
	}
}

// bounce SIGKILLs a node, waits, starts it again and waits until every
// broker is back in the metadata.
func (c *cluster) bounce(t *testing.T, id int32, down time.Duration) {
	t.Helper()
	n := c.nodes[id-1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.db.Kill(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed node %d", id)
	time.Sleep(down)
	if err := c.db.Start(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := c.db.WaitReady(ctx, n); err != nil {
		t.Fatal(err)
	}
	adm := c.admin(t)
	for {
		bs, err := adm.ListBrokers(ctx)
		if err == nil && len(bs) == len(c.nodes) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("node %d did not rejoin: %v %v", id, bs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("node %d is back", id)
}

func coordinatorOf(t *testing.T, c *cluster, group string) int32 {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey = group
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, c.kgo(t))
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("FindCoordinator %s: %v %+v", group, err, resp)
	}
	return resp.NodeID
}

func leaderOf(t *testing.T, c *cluster, topic string, partition int32) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := c.admin(t).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return td[topic].Partitions[partition].Leader
}

type seenSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func newSeenSet() *seenSet { return &seenSet{m: map[string]bool{}} }

func (s *seenSet) add(v string) {
	s.mu.Lock()
	s.m[v] = true
	s.mu.Unlock()
}

func (s *seenSet) hasAll(want map[string]bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for v := range want {
		if !s.m[v] {
			return false
		}
	}
	return true
}

func (s *seenSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m))
	for v := range s.m {
		out = append(out, v)
	}
	return out
}

type markHandler struct{ seen *seenSet }

func (h markHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h markHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h markHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.seen.add(string(m.Value))
		s.MarkMessage(m, "")
	}
	return nil
}

// saramaMember consumes with sarama's ConsumerGroup (auto-committing its
// marks every 200ms) until ctx ends, rejoining after errors.
func saramaMember(t *testing.T, ctx context.Context, c *cluster, group, topic string, seen *seenSet) {
	cfg := saramaConfig(sarama.WaitForAll)
	cfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	cfg.Consumer.Offsets.Retry.Max = 10
	cg, err := sarama.NewConsumerGroup(c.addrs(), group, cfg)
	if err != nil {
		t.Error(err)
		return
	}
	defer cg.Close()
	go func() {
		for err := range cg.Errors() {
			t.Logf("sarama consumer group: %v", err)
		}
	}()
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{topic}, markHandler{seen}); err != nil && ctx.Err() == nil {
			t.Logf("sarama Consume: %v", err)
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// kgoMember consumes with a kgo group member, committing after every
// poll, until ctx ends.
func kgoMember(t *testing.T, ctx context.Context, c *cluster, group, topic string, seen *seenSet, i int) {
	cl := c.kgo(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond), kgo.ClientID(fmt.Sprintf("kgo-fo-%d", i)))
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { seen.add(string(r.Value)) })
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			t.Logf("kgo commit: %v", err)
		}
	}
	cl.Close()
}

package interop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sarama's protocol version: it does not negotiate by default, and picks
// each request's version from this (2.8: JoinGroup v5 through v7, static
// membership, KIP-394).
var saramaVersion = sarama.V2_8_0_0

func saramaConfig(acks sarama.RequiredAcks) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = saramaVersion
	cfg.ClientID = "sarama-interop"
	cfg.Producer.RequiredAcks = acks
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Metadata.Retry.Max = 20
	cfg.Metadata.Retry.Backoff = 250 * time.Millisecond
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	cfg.Consumer.Return.Errors = true
	return cfg
}

// TestProduceEveryAcks: each client produces at acks=0, 1 and all to a
// fresh topic; kgo reads back every value.
func TestProduceEveryAcks(t *testing.T) {
	const n = 200
	sizes(t, func(t *testing.T, c *cluster) {
		for _, acks := range []struct {
			name    string
			sarama  sarama.RequiredAcks
			kafkago kafka.RequiredAcks
			rdkafka string
		}{
			{"acks0", sarama.NoResponse, kafka.RequireNone, "0"},
			{"acks1", sarama.WaitForLocal, kafka.RequireOne, "1"},
			{"acksall", sarama.WaitForAll, kafka.RequireAll, "all"},
		} {
			t.Run(acks.name, func(t *testing.T) {
				values := func(prefix string) []string {
					var out []string
					for i := range n {
						out = append(out, fmt.Sprintf("%s-%04d", prefix, i))
					}
					return out
				}
				clients := map[string]func(topic string, vs []string) error{
					"sarama": func(topic string, vs []string) error {
						p, err := sarama.NewSyncProducer(c.addrs(), saramaConfig(acks.sarama))
						if err != nil {
							return err
						}
						defer p.Close()
						var msgs []*sarama.ProducerMessage
						for i, v := range vs {
							msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 3), Value: sarama.StringEncoder(v)})
						}
						return p.SendMessages(msgs)
					},
					"kafka-go": func(topic string, vs []string) error {
						// A transport of its own: kafka-go's shared default one
						// caches metadata for 6s, from before the topic existed.
						w := &kafka.Writer{Addr: kafka.TCP(c.addrs()...), Topic: topic, RequiredAcks: acks.kafkago,
							Balancer: &kafka.RoundRobin{}, BatchTimeout: 5 * time.Millisecond, MaxAttempts: 20, Transport: &kafka.Transport{}}
						defer w.Close()
						var msgs []kafka.Message
						for _, v := range vs {
							msgs = append(msgs, kafka.Message{Value: []byte(v)})
						}
						ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
						defer cancel()
						return w.WriteMessages(ctx, msgs...)
					},
					"kcat": func(topic string, vs []string) error {
						kcat := tool(t, "kcat", "-V")
						cmd := exec.Command(kcat, "-P", "-b", c.bootstrap(), "-t", topic, "-X", "acks="+acks.rdkafka, "-X", "message.send.max.retries=10")
						cmd.Stdin = strings.NewReader(strings.Join(vs, "\n") + "\n")
						if out, err := cmd.CombinedOutput(); err != nil || bytes.Contains(out, []byte("failed")) {
							return fmt.Errorf("kcat -P: %v: %s", err, out)
						}
						return nil
					},
					"confluent-kafka": func(topic string, vs []string) error {
						py := pythonWithConfluent(t)
						return runPython(py, producerScript, c.bootstrap(), topic, acks.rdkafka, strings.Join(vs, ","))
					},
				}
				for _, name := range []string{"sarama", "kafka-go", "kcat", "confluent-kafka"} {
					t.Run(name, func(t *testing.T) {
						topic := uniqueName(t, "acks")
						c.createTopic(t, topic, 3)
						vs := values(name)
						if err := clients[name](topic, vs); err != nil {
							t.Fatalf("%s at %s: %v", name, acks.name, err)
						}
						want := map[string]bool{}
						for _, v := range vs {
							want[v] = true
						}
						// acks=0 answers nothing: wait for the records to land.
						deadline := time.Now().Add(10 * time.Second)
						for {
							total := int64(0)
							for _, e := range c.endOffsets(t, topic) {
								total += e
							}
							if total >= n || time.Now().After(deadline) {
								break
							}
							time.Sleep(50 * time.Millisecond)
						}
						checkAll(t, name+" then kgo", want, c.readAll(t, topic))
					})
				}
			})
		}
	})
}

// TestGroupConsume: every client's group consumer reads back every record
// produced, with commits, and the group's committed offsets end at the
// topic's end.
func TestGroupConsume(t *testing.T) {
	const perPartition = 100
	consumers := map[string]func(t *testing.T, c *cluster, group, topic string, want map[string]bool) []string{
		"kcat": kcatGroup,
		"sarama": func(t *testing.T, c *cluster, group, topic string, want map[string]bool) []string {
			return saramaGroup(t, c, group, topic, want, sarama.NewBalanceStrategyRange())
		},
		"sarama-sticky": func(t *testing.T, c *cluster, group, topic string, want map[string]bool) []string {
			return saramaGroup(t, c, group, topic, want, sarama.NewBalanceStrategySticky())
		},
		"kafka-go":        kafkaGoGroup,
		"kgo":             kgoGroup,
		"confluent-kafka": confluentGroup,
	}
	sizes(t, func(t *testing.T, c *cluster) {
		for _, name := range []string{"kcat", "sarama", "sarama-sticky", "kafka-go", "kgo", "confluent-kafka"} {
			t.Run(name, func(t *testing.T) {
				topic, group := uniqueName(t, "grp"), uniqueName(t, "g")
				c.createTopic(t, topic, 3)
				want := c.produce(t, topic, 3, perPartition)
				got := consumers[name](t, c, group, topic, want)
				checkAll(t, name+" group consumer", want, got)
				c.waitCommitted(t, group, topic)
				// The group is known to the coordinator, Empty now that its
				// members are gone (or still Stable for clients that keep
				// their session until it expires).
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ds, err := c.admin(t).DescribeGroups(ctx, group)
				if err != nil || ds.Error() != nil {
					t.Fatalf("describe %s: %v %v", group, err, ds.Error())
				}
			})
		}
	})
}

func kcatGroup(t *testing.T, c *cluster, group, topic string, want map[string]bool) []string {
	kcat := tool(t, "kcat", "-V")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// -e: exit once every assigned partition is read to its end; on exit
	// librdkafka commits the offsets it consumed (auto commit).
	cmd := exec.CommandContext(ctx, kcat, "-b", c.bootstrap(), "-G", group, topic, "-e", "-q", "-f", "%s\n",
		"-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("kcat -G: %v: %s", err, stderr)
	}
	return strings.Fields(string(out))
}

type saramaHandler struct {
	mu   sync.Mutex
	got  []string
	want map[string]bool
	done chan struct{}
	once sync.Once
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		s.MarkMessage(m, "")
		h.mu.Lock()
		h.got = append(h.got, string(m.Value))
		seen := map[string]bool{}
		for _, v := range h.got {
			seen[v] = true
		}
		all := true
		for v := range h.want {
			all = all && seen[v]
		}
		h.mu.Unlock()
		if all {
			s.Commit()
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

func saramaGroup(t *testing.T, c *cluster, group, topic string, want map[string]bool, strategy sarama.BalanceStrategy) []string {
	cfg := saramaConfig(sarama.WaitForAll)
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{strategy}
	cfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	h := &saramaHandler{want: want, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Two members share the partitions.
	var wg sync.WaitGroup
	for range 2 {
		cg, err := sarama.NewConsumerGroup(c.addrs(), group, cfg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cg.Close()
			go func() {
				for err := range cg.Errors() {
					t.Logf("sarama consumer group: %v", err)
				}
			}()
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
					t.Logf("sarama Consume: %v", err)
					time.Sleep(100 * time.Millisecond)
				}
				select {
				case <-h.done:
					return
				default:
				}
			}
		}()
	}
	select {
	case <-h.done:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got
}

// collector gathers what the members of a group read (with duplicates)
// and tells when every wanted value was seen.
type collector struct {
	mu   sync.Mutex
	want map[string]bool
	got  []string
	seen map[string]bool
}

func newCollector(want map[string]bool) *collector {
	return &collector{want: want, seen: map[string]bool{}}
}

// add records v and reports whether every wanted value has been seen.
func (c *collector) add(v string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, v)
	c.seen[v] = true
	return len(c.seen) >= len(c.want)
}

func (c *collector) values() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func kafkaGoGroup(t *testing.T, c *cluster, group, topic string, want map[string]bool) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	col := newCollector(want)
	var wg sync.WaitGroup
	for range 2 {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: c.addrs(), GroupID: group, Topic: topic, StartOffset: kafka.FirstOffset,
			MaxWait: 100 * time.Millisecond, HeartbeatInterval: 500 * time.Millisecond,
			SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second,
			// CommitInterval 0: ReadMessage commits each message before returning it.
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				if col.add(string(m.Value)) {
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	return col.values()
}

func kgoGroup(t *testing.T, c *cluster, group, topic string, want map[string]bool) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	col := newCollector(want)
	var wg sync.WaitGroup
	for i := range 2 {
		cl := c.kgo(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ClientID(fmt.Sprintf("kgo-%d", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				done := false
				fs.EachRecord(func(r *kgo.Record) {
					if col.add(string(r.Value)) {
						done = true
					}
				})
				if err := cl.CommitUncommittedOffsets(context.Background()); err != nil {
					t.Logf("kgo commit: %v", err)
				}
				if done {
					cancel()
				}
			}
			cl.Close() // leaves the group
		}()
	}
	wg.Wait()
	return col.values()
}

func confluentGroup(t *testing.T, c *cluster, group, topic string, want map[string]bool) []string {
	py := pythonWithConfluent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", consumerScript, c.bootstrap(), group, topic, fmt.Sprint(len(want)), "cooperative-sticky")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("confluent-kafka consumer: %v\n%s", err, stderr.String())
	}
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	return got
}

// pythonWithConfluent is Debian's python3 with confluent_kafka (the
// package installs into the system python, which may not be the first
// python3 on PATH).
func pythonWithConfluent(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(py); err == nil {
			if exec.Command(path, "-c", "import confluent_kafka").Run() == nil {
				return path
			}
		}
	}
	return tool(t, "python3-with-confluent_kafka")
}

func runPython(py, script string, args ...string) error {
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("python: %v: %s", err, out)
	}
	return nil
}

const producerScript = `
import sys
from confluent_kafka import Producer
bootstrap, topic, acks, values = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
failed = []
def report(err, msg):
    if err is not None:
        failed.append(str(err))
p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "message.send.max.retries": 10})
for i, v in enumerate(values):
    p.produce(topic, v.encode(), partition=i % 3, on_delivery=report)
    p.poll(0)
left = p.flush(60)
if left or failed:
    sys.exit("confluent-kafka: %d not delivered, failures %s" % (left, failed[:3]))
`

const consumerScript = `
import sys
from confluent_kafka import Consumer, KafkaException
bootstrap, group, topic, want, strategy = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 6000,
              "partition.assignment.strategy": strategy})
c.subscribe([topic])
seen = set()
while len(seen) < want:
    m = c.poll(1.0)
    if m is None:
        continue
    if m.error():
        print("consumer error: %s" % m.error(), file=sys.stderr)
        continue
    v = m.value().decode()
    seen.add(v)
    print(v, flush=True)
    c.commit(message=m, asynchronous=False)
c.close()
`

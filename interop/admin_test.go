package interop

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafka "github.com/segmentio/kafka-go"
)

// TestAdminCalls: kafka-go's DeleteTopics really removes the topic (it
// used to get an empty success); topics created by kadm take acks=0 sends
// from sarama and kafka-go right away without losing any; sarama's
// ClusterAdmin lists topics (through DescribeConfigs), grows a topic and
// describes the cluster; kadm describes and lists groups and configs.
func TestAdminCalls(t *testing.T) {
	sizes(t, func(t *testing.T, c *cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		adm := c.admin(t)

		t.Run("kafka-go DeleteTopics", func(t *testing.T) {
			topic := uniqueName(t, "del")
			c.createTopic(t, topic, 2)
			c.produce(t, topic, 2, 10)
			cl := &kafka.Client{Addr: kafka.TCP(c.addrs()...), Timeout: 30 * time.Second}
			resp, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
			if err != nil || resp.Errors[topic] != nil {
				t.Fatalf("kafka-go DeleteTopics: %v %v", err, resp)
			}
			topics, err := adm.ListTopics(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if topics.Has(topic) {
				t.Fatalf("%s is still listed after kafka-go deleted it", topic)
			}
			// Deleting it again is an error, not an empty success.
			resp, err = cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
			if err == nil && resp.Errors[topic] == nil {
				t.Fatalf("deleting a deleted topic succeeded")
			}
		})

		t.Run("acks=0 right after CreateTopics", func(t *testing.T) {
			const n = 500
			for i := range 4 {
				topic := uniqueName(t, fmt.Sprintf("fresh%d", i))
				c.createTopic(t, topic, 3)
				if i%2 == 0 {
					cfg := saramaConfig(sarama.NoResponse)
					cfg.Producer.Partitioner = sarama.NewRoundRobinPartitioner
					p, err := sarama.NewSyncProducer(c.addrs(), cfg)
					if err != nil {
						t.Fatal(err)
					}
					for j := range n {
						if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(j))}); err != nil {
							t.Fatal(err)
						}
					}
					p.Close()
				} else {
					w := &kafka.Writer{Addr: kafka.TCP(c.addrs()...), Topic: topic, RequiredAcks: kafka.RequireNone,
						Balancer: &kafka.RoundRobin{}, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
					for j := range n {
						if err := w.WriteMessages(ctx, kafka.Message{Value: []byte(fmt.Sprint(j))}); err != nil {
							t.Fatal(err)
						}
					}
					w.Close()
				}
				deadline := time.Now().Add(10 * time.Second)
				total := int64(0)
				for time.Now().Before(deadline) {
					total = 0
					for _, e := range c.endOffsets(t, topic) {
						total += e
					}
					if total == n {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if total != n {
					t.Errorf("%s: %d of %d acks=0 records sent right after CreateTopics arrived", topic, total, n)
				}
			}
		})

		t.Run("sarama ClusterAdmin", func(t *testing.T) {
			topic := uniqueName(t, "sadm")
			ca, err := sarama.NewClusterAdmin(c.addrs(), saramaConfig(sarama.WaitForAll))
			if err != nil {
				t.Fatal(err)
			}
			defer ca.Close()
			if err := ca.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: int16(len(c.nodes))}, false); err != nil {
				t.Fatal(err)
			}
			topics, err := ca.ListTopics()
			if err != nil {
				t.Fatalf("sarama ListTopics (Metadata, then DescribeConfigs): %v", err)
			}
			d, ok := topics[topic]
			// sarama keeps the entries that are not defaults: the broker's
			// segment size is one.
			if !ok || d.NumPartitions != 2 || d.ConfigEntries["segment.bytes"] == nil {
				t.Fatalf("sarama ListTopics shows %s as %+v", topic, d)
			}
			if err := ca.CreatePartitions(topic, 4, nil, false); err != nil {
				t.Fatalf("sarama CreatePartitions: %v", err)
			}
			md, err := ca.DescribeTopics([]string{topic})
			if err != nil || len(md) != 1 || len(md[0].Partitions) != 4 {
				t.Fatalf("after growing: %v %+v", err, md)
			}
			brokers, controller, err := ca.DescribeCluster()
			if err != nil || len(brokers) != len(c.nodes) || controller < 0 {
				t.Fatalf("sarama DescribeCluster: %v, %d brokers, controller %d", err, len(brokers), controller)
			}
			if err := ca.DeleteTopic(topic); err != nil {
				t.Fatalf("sarama DeleteTopic: %v", err)
			}
		})

		t.Run("kadm groups and configs", func(t *testing.T) {
			topic, group := uniqueName(t, "kadm"), uniqueName(t, "kg")
			c.createTopic(t, topic, 2)
			want := c.produce(t, topic, 2, 20)
			got := kgoGroup(t, c, group, topic, want)
			checkAll(t, "kgo", want, got)
			c.waitCommitted(t, group, topic)
			listed, err := adm.ListGroups(ctx)
			if err != nil || !slices.Contains(listed.Groups(), group) {
				t.Fatalf("kadm ListGroups: %v, %v does not hold %s", err, listed.Groups(), group)
			}
			described, err := adm.DescribeGroups(ctx, group)
			if err != nil || described.Error() != nil {
				t.Fatalf("kadm DescribeGroups: %v %v", err, described.Error())
			}
			if g := described[group]; g.State != "Empty" && g.State != "Stable" && g.State != "PreparingRebalance" {
				t.Fatalf("group %s is %q", group, g.State)
			}
			rcs, err := adm.DescribeTopicConfigs(ctx, topic)
			if err != nil || len(rcs) != 1 || rcs[0].Err != nil {
				t.Fatalf("kadm DescribeTopicConfigs: %v %+v", err, rcs)
			}
			bcs, err := adm.DescribeBrokerConfigs(ctx, c.nodes[0].ID)
			if err != nil || len(bcs) != 1 || bcs[0].Err != nil {
				t.Fatalf("kadm DescribeBrokerConfigs: %v %+v", err, bcs)
			}
			found := false
			for _, cfg := range bcs[0].Configs {
				if cfg.Key == "offsets.topic.num.partitions" && cfg.MaybeValue() == "6" {
					found = true
				}
			}
			if !found {
				t.Fatalf("broker configs do not show offsets.topic.num.partitions=6: %+v", bcs[0].Configs)
			}
			// A group with members cannot be deleted; an empty one can.
			dg, err := adm.DeleteGroups(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			if r := dg[group]; r.Err != nil {
				t.Fatalf("kadm DeleteGroups of the finished group: %v", r.Err)
			}
			offsets, err := adm.FetchOffsets(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := offsets.Lookup(topic, 0); ok {
				t.Fatalf("the deleted group's offsets remain: %+v", offsets)
			}
		})
	})
}

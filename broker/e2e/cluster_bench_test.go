package e2e

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/garantia/garantia/broker/metadata"
)

// benchValueBytes is the size of each benchmark record's value.
const benchValueBytes = 100

// ackModes are the three producer guarantees the benchmarks compare.
var ackModes = []struct {
	name string
	acks kgo.Acks
}{
	{"acks=0", kgo.NoAck()},
	{"acks=1", kgo.LeaderAck()},
	{"acks=all", kgo.AllISRAcks()},
}

// benchProducer is a kgo producer for a benchmark cluster.
func benchProducer(c *cluster, topic string, acks kgo.Acks, opts ...kgo.Opt) *kgo.Client {
	opts = append(opts, kgo.RequiredAcks(acks), kgo.DefaultProduceTopic(topic))
	if acks != kgo.AllISRAcks() {
		opts = append(opts, kgo.DisableIdempotentWrite()) // kgo's idempotence needs acks=all
	}
	return c.client(opts...)
}

// reportLatencies reports the 50th and 99th percentile in milliseconds.
func reportLatencies(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[min(int(q*float64(len(lat))), len(lat)-1)]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkClusterProduce measures producing to a 3-node loopback cluster
// (in-process nodes, RF 3, min ISR 2, fsync never) with kgo, for each acks
// setting: "pipelined" keeps up to 10000 records buffered (throughput, and
// latency from Produce to acknowledgement under that load); "sequential"
// sends one record at a time (latency alone). acks=0 is acknowledged when
// written to the socket, so its latency says little.
func BenchmarkClusterProduce(b *testing.B) {
	value := bytes.Repeat([]byte{'v'}, benchValueBytes)
	for _, m := range ackModes {
		b.Run("pipelined/"+m.name, func(b *testing.B) {
			c := newCluster(b, clusterOpts{})
			c.createTopic("bench", 1, 3, 2)
			cl := benchProducer(c, "bench", m.acks, kgo.MaxBufferedRecords(10000))
			var (
				mu  sync.Mutex
				lat = make([]time.Duration, 0, b.N)
				wg  sync.WaitGroup
			)
			ctx := context.Background()
			b.SetBytes(benchValueBytes)
			b.ResetTimer()
			wg.Add(b.N)
			for range b.N {
				start := time.Now()
				cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					d := time.Since(start)
					if err != nil {
						b.Error(err)
					}
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					wg.Done()
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			reportLatencies(b, lat)
		})
		b.Run("sequential/"+m.name, func(b *testing.B) {
			c := newCluster(b, clusterOpts{})
			c.createTopic("bench", 1, 3, 2)
			cl := benchProducer(c, "bench", m.acks)
			ctx := context.Background()
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
				b.Fatal(err) // warm up: connections and metadata
			}
			lat := make([]time.Duration, 0, b.N)
			b.SetBytes(benchValueBytes)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportLatencies(b, lat)
		})
	}
}

// BenchmarkClusterFailover measures the time from the controller fencing
// a killed leader (the in-memory controller: election is instant, so this
// is the brokers' share) to the first acks=all write acknowledged by the
// new leader, RF 3, min ISR 2. "raw" retries a produce to whichever broker
// the metadata names every millisecond: the brokers' failover (roles,
// followers switching leader and truncating, the high watermark moving).
// "kgo" is what a client sees: it also has to notice and refresh its
// metadata (retry backoff 50ms here). Each iteration restarts the old
// leader and waits until it is back in sync.
func BenchmarkClusterFailover(b *testing.B) {
	for _, mode := range []string{"raw", "kgo"} {
		b.Run(mode, func(b *testing.B) {
			c := newCluster(b, clusterOpts{})
			const topic = "failover"
			c.createTopic(topic, 1, 3, 2)
			cl := benchProducer(c, topic, kgo.AllISRAcks(), kgo.RecordDeliveryTimeout(30*time.Second))
			ctx := context.Background()
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm")}).FirstErr(); err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				old := c.state(topic, 0).Leader
				c.kill(old)
				b.StartTimer()
				start := time.Now()
				c.fence(old)
				if mode == "raw" {
					for {
						leader := c.state(topic, 0).Leader
						if leader != metadata.NoLeader && leader != old {
							if sp := c.produceTo(leader, topic, 0, -1, 5*time.Second, "after"); sp.ErrorCode == 0 {
								break
							}
						}
						time.Sleep(time.Millisecond)
					}
				} else if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				b.StopTimer()
				c.restart(old)
				c.unfence(old)
				c.waitInSync(topic, 0)
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(total)/float64(b.N)/float64(time.Millisecond), "failover-ms")
		})
	}
}

package e2e

import (
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/garantia/garantia/broker/node"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/internal/kafkatest"
)

// recordBytes is the value size of every benchmark record.
const recordBytes = 100

// latencySample: one produced record in this many has its latency taken.
const latencySample = 16

// BenchmarkLoopbackTCP is the machine's ceiling: one goroutine copies
// 1 MiB per op through a loopback TCP connection to a reader that
// discards it. Compare the broker's MB/s with this.
func BenchmarkLoopbackTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		done <- n
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	<-done
}

// benchNode runs an in-process broker on a disk store in a temp dir.
func benchNode(b *testing.B, fsync storage.FsyncPolicy) *node.Node {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n, err := node.Start(ctx, node.Config{ID: 1, Listen: "127.0.0.1:0", DataDir: b.TempDir(), Fsync: fsync, Partitions: 1})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cancel()
		if err := n.Wait(); err != nil {
			b.Errorf("node stopped with %v", err)
		}
	})
	return n
}

// BenchmarkProduce measures kgo producing 100-byte records (kgo's default
// batching: 10ms linger, 1 MiB batches) to one partition, per acks level:
// records/s, MB/s of record values, and p50/p99 latency from Produce to
// the acknowledgement.
func BenchmarkProduce(b *testing.B) {
	for _, bc := range []struct {
		name      string
		fsync     storage.FsyncPolicy
		producers int
		opts      []kgo.Opt
	}{
		{"acks=0", storage.FsyncNever, 1, []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}},
		{"acks=1", storage.FsyncNever, 1, []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}},
		{"acks=-1", storage.FsyncNever, 1, []kgo.Opt{}}, // kgo's default: idempotent, acks=all
		{"acks=-1/fsync=always", storage.FsyncAlways, 1, []kgo.Opt{}},
		// Eight clients, small batches: what the harness does. Their
		// appends share fsyncs (the log's group commit).
		{"acks=-1/fsync=always/8-producers-linger=0", storage.FsyncAlways, 8, []kgo.Opt{kgo.ProducerLinger(0)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := benchNode(b, bc.fsync)
			admin := kafkatest.Client(b, n.Addr().String())
			kafkatest.CreateTopic(b, admin, "bench", 1)
			// No compression, so that wire bytes are value bytes (kgo would
			// otherwise snappy-compress the all-zero values to nothing).
			clients := make([]*kgo.Client, bc.producers)
			for i := range clients {
				clients[i] = kafkatest.Client(b, n.Addr().String(), append(bc.opts, kgo.DefaultProduceTopic("bench"), kgo.ProducerBatchCompression(kgo.NoCompression()))...)
			}
			value := make([]byte, recordBytes)
			// Latency is sampled (one record in latencySample) because
			// reading the clock twice per record costs the client more
			// than the broker spends on it.
			lat := make([]time.Duration, 0, b.N/latencySample+1)
			var latMu sync.Mutex
			var wg sync.WaitGroup
			var errOnce sync.Once
			var firstErr error
			ctx := context.Background()
			b.SetBytes(recordBytes)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				wg.Add(1)
				var t0 time.Time
				if i%latencySample == 0 {
					t0 = time.Now()
				}
				clients[i%len(clients)].Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					if !t0.IsZero() {
						d := time.Since(t0)
						latMu.Lock()
						lat = append(lat, d)
						latMu.Unlock()
					}
					if err != nil {
						errOnce.Do(func() { firstErr = err })
					}
					wg.Done()
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if firstErr != nil {
				b.Fatal(firstErr)
			}
			reportLatency(b, lat)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}

// BenchmarkFetch measures kgo consuming 100-byte records from the start
// of one partition (written beforehand, outside the timer): records/s and
// MB/s of record values.
func BenchmarkFetch(b *testing.B) {
	n := benchNode(b, storage.FsyncNever)
	addr := n.Addr().String()
	kafkatest.CreateTopic(b, kafkatest.Client(b, addr), "bench", 1)
	prod := kafkatest.Client(b, addr, kgo.DefaultProduceTopic("bench"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.ProducerBatchCompression(kgo.NoCompression()))
	value := make([]byte, recordBytes)
	var wg sync.WaitGroup
	for range b.N {
		wg.Add(1)
		prod.Produce(context.Background(), &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
			wg.Done()
		})
	}
	wg.Wait()

	cons := kafkatest.Client(b, addr, kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(16<<20), kgo.FetchMaxPartitionBytes(16<<20))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.SetBytes(recordBytes)
	b.ResetTimer()
	start := time.Now()
	got := 0
	for got < b.N {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("consumed %d of %d", got, b.N)
		}
		fs.EachError(func(t string, p int32, err error) { b.Fatalf("%s/%d: %v", t, p, err) })
		got += fs.NumRecords()
	}
	b.ReportMetric(float64(got)/time.Since(start).Seconds(), "records/s")
}

package powerfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/garantia/garantia/db/local/buildtest"
)

// benchSeconds is how long each measurement produces; BENCH_SECONDS
// overrides it.
func benchSeconds() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("BENCH_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 3 * time.Second
}

// produceRate runs a single-node `garantia broker` on dataDir and
// produces for d from conc clients, each sending one acks=all record at a
// time (as the queue workload's senders do); it returns records per
// second.
func produceRate(b *testing.B, dataDir string, fsync string, conc int, d time.Duration) float64 {
	bp := &brokerProc{bin: buildtest.Binary(b), dataDir: dataDir, addr: freeAddr(b), ctl: freeAddr(b), tb: b,
		extraArgs: []string{"--fsync", fsync}, single: true}
	bp.start()
	defer bp.kill()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bp.addr), kgo.DefaultProduceTopic("bench"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	// Warm up: the topic exists, connections are open.
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("warm")}).FirstErr(); err != nil {
		b.Fatalf("warm-up produce: %v\n%s", err, bp.log)
	}
	var n atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for c := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := []byte(fmt.Sprintf("client %d value ............................................................", c))
			for ctx.Err() == nil {
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr(); err == nil {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

// BenchmarkProduceThroughPowerfs measures what the power-loss filesystem
// costs a broker: produce throughput of one broker process with its data
// folder on a powerfs mount against one on a plain folder, with fsync
// never and always, in interleaved rounds, and reports the
// min/median/max ratio (powerfs / plain) per fsync policy. Run it with
//
//	go test ./db/powerfs -run '^$' -bench ProduceThroughPowerfs -benchtime 1x
//
// (BENCH_ROUNDS, BENCH_SECONDS and BENCH_CONCURRENCY change the rounds,
// the seconds per measurement and the producing clients).
func BenchmarkProduceThroughPowerfs(b *testing.B) {
	rounds, conc := 5, 10
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	if v, err := strconv.Atoi(os.Getenv("BENCH_CONCURRENCY")); err == nil && v > 0 {
		conc = v
	}
	d := benchSeconds()
	for range b.N {
		ratios := map[string][]float64{}
		for round := range rounds {
			for _, fsync := range []string{"never", "always"} {
				var plain, mounted float64
				// Alternate which goes first, so drift in the host's speed
				// does not always favour one.
				order := []bool{false, true}
				if round%2 == 1 {
					order = []bool{true, false}
				}
				for _, onPowerfs := range order {
					base := b.TempDir()
					dataDir := filepath.Join(base, "plain")
					if onPowerfs {
						f := mountT(b, Options{Label: "bench"})
						dataDir = filepath.Join(f.Dir(), "data")
						mounted = produceRate(b, dataDir, fsync, conc, d)
						if err := f.Unmount(); err != nil {
							b.Fatal(err)
						}
					} else {
						plain = produceRate(b, dataDir, fsync, conc, d)
					}
				}
				ratio := mounted / plain
				ratios[fsync] = append(ratios[fsync], ratio)
				b.Logf("round %d, fsync %s: plain folder %.0f records/s, powerfs %.0f records/s, ratio %.2f", round, fsync, plain, mounted, ratio)
			}
		}
		for _, fsync := range []string{"never", "always"} {
			r := ratios[fsync]
			slices.Sort(r)
			b.Logf("fsync %s: powerfs/plain over %d rounds: min %.2f, median %.2f, max %.2f", fsync, len(r), r[0], r[len(r)/2], r[len(r)-1])
			b.ReportMetric(r[len(r)/2], "ratio-median-fsync-"+fsync)
		}
	}
}

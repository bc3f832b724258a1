package powerfs_test

import (
	"context"
	"fmt"
	"github.com/garantia/garantia/db/powerfs"
	"github.com/garantia/garantia/db/powerfs/powerfstest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
// the seconds per measurement and the producing clients;
// BENCH_NO_BACKING_SYNC=1 mounts with powerfs.Options.NoBackingSync).
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
						f := powerfstest.Mount(b, powerfs.Options{Label: "bench", NoBackingSync: os.Getenv("BENCH_NO_BACKING_SYNC") == "1"})
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

// testRunOps runs `garantia test --rate 0 --nemesis none` (the README's
// throughput measurement: a local 3-node cluster, acks=all, RF 3) with its
// store in storeDir, and returns the recorded operations per second.
func testRunOps(b *testing.B, storeDir string, d time.Duration) float64 {
	cmd := exec.Command(buildtest.Binary(b), "test", "--rate", "0", "--nemesis", "none",
		"--time-limit", d.String(), "--store", storeDir, "--seed", "1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("garantia test --store %s: %v\n%s", storeDir, err, out)
	}
	m := regexp.MustCompile(`(?m)^ops: (\d+) events`).FindSubmatch(out)
	if m == nil {
		b.Fatalf("no \"ops: N events\" line in:\n%s", out)
	}
	events, _ := strconv.Atoi(string(m[1]))
	return float64(events) / d.Seconds()
}

// BenchmarkTestRunThroughPowerfs measures the default `garantia test`
// cluster with its whole store (each node's data folder, the history, the
// results) on a powerfs mount against a plain folder, in interleaved
// rounds, and reports min/median/max of the ratio of recorded operations
// per second:
//
//	go test ./db/powerfs -run '^$' -bench TestRunThroughPowerfs -benchtime 1x
//
// (BENCH_ROUNDS and BENCH_SECONDS as for BenchmarkProduceThroughPowerfs;
// 8 s a run by default).
func BenchmarkTestRunThroughPowerfs(b *testing.B) {
	rounds, d := 3, 8*time.Second
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	if v, err := strconv.Atoi(os.Getenv("BENCH_SECONDS")); err == nil && v > 0 {
		d = time.Duration(v) * time.Second
	}
	for range b.N {
		var ratios []float64
		for round := range rounds {
			var plain, mounted float64
			order := []bool{false, true}
			if round%2 == 1 {
				order = []bool{true, false}
			}
			for _, onPowerfs := range order {
				if onPowerfs {
					f := powerfstest.Mount(b, powerfs.Options{Label: "bench"})
					mounted = testRunOps(b, f.Dir(), d)
					if err := f.Unmount(); err != nil {
						b.Fatal(err)
					}
				} else {
					plain = testRunOps(b, b.TempDir(), d)
				}
			}
			ratios = append(ratios, mounted/plain)
			b.Logf("round %d: plain folder %.0f ops/s, powerfs %.0f ops/s, ratio %.2f", round, plain, mounted, mounted/plain)
		}
		slices.Sort(ratios)
		b.Logf("garantia test, powerfs/plain over %d rounds: min %.2f, median %.2f, max %.2f", len(ratios), ratios[0], ratios[len(ratios)/2], ratios[len(ratios)-1])
		b.ReportMetric(ratios[len(ratios)/2], "ratio-median")
	}
}

package powerfs_test

import (
	"context"
	"fmt"
	"github.com/garantia/garantia/db/powerfs"
	"github.com/garantia/garantia/db/powerfs/powerfstest"
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
	return time.Duration(buildtest.EnvInt("BENCH_SECONDS", 3)) * time.Second
}

// interleaved is the order of a round's two measurements (on the
// filesystem or not): alternated from round to round, so that drift in
// the host's speed does not always favour one.
func interleaved(round int) []bool {
	if round%2 == 1 {
		return []bool{true, false}
	}
	return []bool{false, true}
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
	rounds, conc := buildtest.EnvInt("BENCH_ROUNDS", 5), 10
	if v, err := strconv.Atoi(os.Getenv("BENCH_CONCURRENCY")); err == nil && v > 0 {
		conc = v
	}
	d := benchSeconds()
	for range b.N {
		ratios := map[string][]float64{}
		for round := range rounds {
			for _, fsync := range []string{"never", "always"} {
				var plain, mounted float64
				for _, onPowerfs := range interleaved(round) {
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
	return buildtest.TestOpsPerSecond(b, d, "--rate", "0", "--nemesis", "none", "--store", storeDir)
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
	rounds, d := buildtest.EnvInt("BENCH_ROUNDS", 3), time.Duration(buildtest.EnvInt("BENCH_SECONDS", 8))*time.Second
	for range b.N {
		var ratios []float64
		for round := range rounds {
			var plain, mounted float64
			for _, onPowerfs := range interleaved(round) {
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

// BenchmarkDataFoldersOnPowerfs measures what power faults cost a run
// besides the faults: `garantia test` as a user runs it, with --powerfs
// (each node's data folder on a power-loss mount that the harness itself
// serves, as under --nemesis power) against plain data folders, in
// interleaved rounds, for two workloads: the default run (--rate 1000,
// partitions and kills, 30 s) and the throughput run (--rate 0 --nemesis
// none, 10 s). It reports min/median/max of the ratio of recorded
// operations per second (powerfs / plain):
//
//	go test ./db/powerfs -run '^$' -bench DataFoldersOnPowerfs -benchtime 1x -v
//
// (-v shows every round; BENCH_ROUNDS, 5 by default; BENCH_SECONDS sets
// both time limits; BENCH_WORKLOAD=default or throughput runs one.)
func BenchmarkDataFoldersOnPowerfs(b *testing.B) {
	if err := powerfs.Probe(); err != nil {
		powerfstest.SkipOrFail(b, err)
	}
	rounds := buildtest.EnvInt("BENCH_ROUNDS", 5)
	workloads := []struct {
		name string
		d    time.Duration
		args []string
	}{
		{"default", 30 * time.Second, nil},
		{"throughput", 10 * time.Second, []string{"--rate", "0", "--nemesis", "none"}},
	}
	if v, err := strconv.Atoi(os.Getenv("BENCH_SECONDS")); err == nil && v > 0 {
		for i := range workloads {
			workloads[i].d = time.Duration(v) * time.Second
		}
	}
	for range b.N {
		for _, w := range workloads {
			if only := os.Getenv("BENCH_WORKLOAD"); only != "" && only != w.name {
				continue
			}
			var ratios, plains, mounteds []float64
			for round := range rounds {
				var plain, mounted float64
				for _, onPowerfs := range interleaved(round) {
					args := append([]string{"--store", b.TempDir()}, w.args...)
					if onPowerfs {
						mounted = buildtest.TestOpsPerSecond(b, w.d, append(args, "--powerfs")...)
					} else {
						plain = buildtest.TestOpsPerSecond(b, w.d, args...)
					}
				}
				ratios, plains, mounteds = append(ratios, mounted/plain), append(plains, plain), append(mounteds, mounted)
				b.Logf("%s, round %d: plain %.0f ops/s, powerfs %.0f ops/s, ratio %.2f", w.name, round, plain, mounted, mounted/plain)
			}
			for _, r := range [][]float64{ratios, plains, mounteds} {
				slices.Sort(r)
			}
			mid := len(ratios) / 2
			b.Logf("%s: plain %.0f/%.0f/%.0f ops/s, powerfs %.0f/%.0f/%.0f ops/s (min/median/max); ratio min %.2f, median %.2f, max %.2f over %d rounds",
				w.name, plains[0], plains[mid], plains[len(plains)-1], mounteds[0], mounteds[mid], mounteds[len(mounteds)-1],
				ratios[0], ratios[mid], ratios[len(ratios)-1], len(ratios))
			b.ReportMetric(ratios[mid], "ratio-median-"+w.name)
		}
	}
}

package runner

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/garantia/garantia/db/local/buildtest"
	"github.com/garantia/garantia/workloads/queue"
)

// BenchmarkConsumeVia measures `garantia test --rate 0 --nemesis none`
// with consumers that subscribe against consumers that assign, in
// interleaved rounds (the machine's speed drifts: only runs side by side
// compare), and reports min/median/max of each one's recorded operations
// per second and of their ratio:
//
//	go test ./runner -run '^$' -bench ConsumeVia -benchtime 1x
//
// BENCH_ROUNDS (default 3) and BENCH_SECONDS (default 8) change the rounds
// and each run's time limit.
func BenchmarkConsumeVia(b *testing.B) {
	rounds, d := 3, 8*time.Second
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	if v, err := strconv.Atoi(os.Getenv("BENCH_SECONDS")); err == nil && v > 0 {
		d = time.Duration(v) * time.Second
	}
	for range b.N {
		var assign, subscribe, ratios []float64
		for round := range rounds {
			order := []string{queue.ConsumeAssign, queue.ConsumeSubscribe}
			if round%2 == 1 {
				order = []string{queue.ConsumeSubscribe, queue.ConsumeAssign}
			}
			got := map[string]float64{}
			for _, via := range order {
				got[via] = runOpsPerSecond(b, via, d)
			}
			assign, subscribe = append(assign, got[queue.ConsumeAssign]), append(subscribe, got[queue.ConsumeSubscribe])
			ratios = append(ratios, got[queue.ConsumeSubscribe]/got[queue.ConsumeAssign])
			b.Logf("round %d: assign %.0f ops/s, subscribe %.0f ops/s, ratio %.2f", round, got[queue.ConsumeAssign], got[queue.ConsumeSubscribe], ratios[round])
		}
		for _, s := range []struct {
			name string
			v    []float64
		}{{"assign ops/s", assign}, {"subscribe ops/s", subscribe}, {"subscribe/assign", ratios}} {
			slices.Sort(s.v)
			b.Logf("%s over %d rounds: min %.2f, median %.2f, max %.2f", s.name, len(s.v), s.v[0], s.v[len(s.v)/2], s.v[len(s.v)-1])
		}
		b.ReportMetric(ratios[len(ratios)/2], "ratio-median")
	}
}

// runOpsPerSecond runs garantia test for d with consumers that get their
// partitions via via, and returns its recorded events per second of d.
func runOpsPerSecond(b *testing.B, via string, d time.Duration) float64 {
	cmd := exec.Command(buildtest.Binary(b), "test", "--rate", "0", "--nemesis", "none", "--consume-via", via,
		"--time-limit", d.String(), "--store", b.TempDir(), "--seed", "1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("garantia test --consume-via %s: %v\n%s", via, err, out)
	}
	m := regexp.MustCompile(`(?m)^ops: (\d+) events`).FindSubmatch(out)
	if m == nil {
		b.Fatalf("no \"ops: N events\" line in:\n%s", out)
	}
	events, _ := strconv.Atoi(string(m[1]))
	return float64(events) / d.Seconds()
}

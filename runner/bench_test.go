package runner

import (
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
// and each run's time limit, BENCH_PARTITIONS the topic's partitions
// (default garantia test's 4: with 10 processes, 6 members of the group
// hold no partition at a time; 10 gives each one).
func BenchmarkConsumeVia(b *testing.B) {
	rounds, d := buildtest.EnvInt("BENCH_ROUNDS", 3), time.Duration(buildtest.EnvInt("BENCH_SECONDS", 8))*time.Second
	partitions := strconv.Itoa(buildtest.EnvInt("BENCH_PARTITIONS", Defaults().Partitions))
	for range b.N {
		var assign, subscribe, ratios []float64
		for round := range rounds {
			order := []string{queue.ConsumeAssign, queue.ConsumeSubscribe}
			if round%2 == 1 {
				order = []string{queue.ConsumeSubscribe, queue.ConsumeAssign}
			}
			got := map[string]float64{}
			for _, via := range order {
				got[via] = buildtest.TestOpsPerSecond(b, d, "--rate", "0", "--nemesis", "none", "--consume-via", via,
					"--partitions", partitions, "--store", b.TempDir())
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

package queue_test

import (
	"testing"

	"github.com/garantia/garantia/checker/queue"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/synth"
)

// The checker's throughput on realistic histories from package synth: 10
// keys, 20 processes, 1% info, 1% fail, 60% sends, 35% polls, some assigns,
// nemesis events and a final drain. An "op" here is one history event (an
// invocation or a completion: a line of history.jsonl), Jepsen's sense of
// the word; 1M events are about 500k client operations.
//
// Generation runs before the timed loop. Peak memory of a whole run
// (history plus analysis) is what /usr/bin/time -v reports for
//
//	go test -run '^$' -bench QueueCheck1M -benchtime 1x ./checker/queue
func BenchmarkQueueCheck1M(b *testing.B)   { benchCheck(b, 1_000_000) }
func BenchmarkQueueCheck100k(b *testing.B) { benchCheck(b, 100_000) }

func benchCheck(b *testing.B, events int) {
	cfg := synth.DefaultConfig()
	cfg.Ops = events
	cfg.Keys = 10
	cfg.Processes = 20
	cfg.InfoRate = 0.01
	ops, err := synth.Generate(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h, err := histories.FromOps(ops, histories.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r := queue.Check(h, queue.Options{})
		if r.Valid != verdict.Valid {
			b.Fatalf("seed %d: a correct history checks %v: %v", cfg.Seed, r.Valid, r.AnomalyTypes)
		}
	}
	b.ReportMetric(float64(len(ops))*float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

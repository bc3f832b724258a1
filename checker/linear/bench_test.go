package linear

import (
	"context"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

// TestGenerated checks simulated histories of a correct log (valid) and
// the same with one acked offset moved onto another send's (invalid), at a
// size that keeps go test fast.
func TestGenerated(t *testing.T) {
	seeds := []int64{1, 2, 3}
	if *seedFlag != 0 {
		seeds = []int64{*seedFlag}
	}
	for _, seed := range seeds {
		cfg := benchConfig(seed)
		cfg.Ops = 5_000
		cfg.Cut = seed%2 == 0
		cfg.Gaps = seed != 1
		ops := mustHistory(t, generate(cfg))
		bad0, what := corrupt(generate(cfg), rand.New(rand.NewSource(seed)))
		bad := mustHistory(t, bad0)
		// Whole keys, the default segments, and tiny segments.
		for _, segOps := range []int{0, segmentOps, 16} {
			res, err := check(context.Background(), ops, Options{}, config{segmentOps: segOps})
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			if res.Valid != verdict.Valid {
				t.Fatalf("seed %d (rerun with -linear.seed=%d), segments of %d ops: a correct log's history is %v: %s",
					seed, seed, segOps, res.Valid, dump(res))
			}
			res, err = check(context.Background(), bad, Options{}, config{segmentOps: segOps})
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			if res.Valid != verdict.Invalid || res.KeysInvalid != 1 {
				t.Fatalf("seed %d (rerun with -linear.seed=%d), segments of %d ops: %s: want one invalid key, got %s",
					seed, seed, segOps, what, dump(res))
			}
		}
	}
}

// TestSegments checks that a generated key is in fact cut, that the
// segments partition its ops, and that each starts where the previous
// ends; also when a corrupted ack makes one send dead.
func TestSegments(t *testing.T) {
	cfg := benchConfig(5)
	cfg.Ops, cfg.Keys, cfg.Gaps = 20_000, 1, true
	ops := generate(cfg)
	bad0, what := corrupt(ops, rand.New(rand.NewSource(5)))
	bad := mustHistory(t, bad0)
	for _, h := range []*histories.History{mustHistory(t, ops), bad} {
		sym, _ := h.Lookup("0")
		kops := splitKey(h, sym, keyIndex(h)[sym])
		m := newKeyModel(h, kops)
		segs := m.segments(segmentOps)
		if len(segs) < 3 {
			t.Fatalf("%d ops in %d segments: the cuts are not found", len(kops.ops), len(segs))
		}
		seen := make(map[*kop]bool)
		next := state{}
		for i, seg := range segs {
			if seg.init != next {
				t.Fatalf("segment %d starts at %+v, the previous one ends at %+v", i, seg.init, next)
			}
			if i < len(segs)-1 && len(seg.ops) < segmentOps {
				t.Errorf("segment %d has %d ops, want >= %d", i, len(seg.ops), segmentOps)
			}
			for _, o := range seg.ops {
				if seen[o] {
					t.Fatalf("op %s in two segments", m.describe(o))
				}
				seen[o] = true
				switch {
				case o.kind == kindPoll:
					next.polls++
				case o.ok:
					next.n++
				}
			}
		}
		if len(seen) != len(kops.ops) {
			t.Fatalf("segments hold %d of %d ops", len(seen), len(kops.ops))
		}
		t.Logf("%d ops in %d segments", len(kops.ops), len(segs))
	}
	res, err := Check(context.Background(), bad, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if kr := res.Keys["0"]; kr == nil || !strings.Contains(kr.Reason, "segment") {
		t.Fatalf("%s: want the key invalid in one segment, got %s", what, dump(res))
	}
}

// mustHistory makes a History of ops.
func mustHistory(t testing.TB, ops []histories.Op) *histories.History {
	t.Helper()
	h, err := histories.FromOps(ops, histories.LoadOptions{})
	if err != nil {
		t.Fatalf("malformed history: %v", err)
	}
	return h
}

// BenchmarkLinear100k checks the history the performance goal names:
// 100,000 operations over 10 keys by 20 processes, ~1% info.
func BenchmarkLinear100k(b *testing.B) {
	ops := mustHistory(b, generate(benchConfig(1)))
	b.Logf("%d events", len(ops.Events))
	b.ReportAllocs()
	for b.Loop() {
		res, err := Check(context.Background(), ops, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if res.Valid != verdict.Valid {
			b.Fatalf("want valid, got %s", dump(res))
		}
	}
}

// BenchmarkLinear100kInvalid is the same history with one acked offset
// corrupted, and its visualization written.
func BenchmarkLinear100kInvalid(b *testing.B) {
	bad, _ := corrupt(generate(benchConfig(1)), rand.New(rand.NewSource(1)))
	ops := mustHistory(b, bad)
	dir := b.TempDir()
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		res, err := Check(context.Background(), ops, Options{VisualizeDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if res.Valid != verdict.Invalid {
			b.Fatalf("want invalid, got %s", dump(res))
		}
		b.Logf("%v: %s", time.Since(start), dump(res))
	}
}

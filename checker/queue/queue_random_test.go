package queue_test

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/queue"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/synth"
)

// Randomized property tests: histories of a simulated correct log (package
// synth) must check valid under every interleaving, and the same history
// with one injected fault must be caught under the right anomaly name. The
// default seed count keeps `go test` to a few seconds; -queue.seeds runs
// more, and -queue.seed reruns the one a failure printed.
var (
	seedCount = flag.Int("queue.seeds", 0, "seeds per randomized queue test (0: a few seconds' worth)")
	oneSeed   = flag.Int64("queue.seed", 0, "run the randomized queue tests with this seed only")
)

func seeds(defaultCount int) []int64 {
	if *oneSeed != 0 {
		return []int64{*oneSeed}
	}
	n := defaultCount
	if *seedCount > 0 {
		n = *seedCount
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

// variant is a shape of history; every seed is run in each.
type variant struct {
	name string
	edit func(*synth.Config)
}

var variants = []variant{
	{"default", func(*synth.Config) {}},
	{"acks0", func(c *synth.Config) { c.Acks0 = true }},
	{"multi-mop-sends", func(c *synth.Config) { c.MopsPerSend = 3 }},
	{"many-info", func(c *synth.Config) { c.InfoRate, c.FailRate = 0.15, 0.10 }},
	{"one-key", func(c *synth.Config) { c.Keys, c.Processes = 1, 4 }},
	{"commits", func(c *synth.Config) { *c = c.WithCommits(); c.FetchRate = 0.1 }},
}

// config is small enough for many seeds per second, with short polls and
// frequent reassigns, failures and timeouts so that every rule is hit.
func config(seed int64, v variant) synth.Config {
	cfg := synth.DefaultConfig()
	cfg.Seed = seed
	cfg.Ops = 3_000
	cfg.Keys = 5
	cfg.Processes = 8
	cfg.InfoRate = 0.03
	cfg.FailRate = 0.03
	cfg.AssignRate = 0.08
	cfg.MaxPollRecords = 10
	cfg.NemesisInterval = 100 * time.Millisecond
	v.edit(&cfg)
	return cfg
}

func generate(t *testing.T, cfg synth.Config) []histories.Op {
	t.Helper()
	ops, err := synth.Generate(cfg)
	if err != nil {
		t.Fatalf("seed %d: synth.Generate: %v", cfg.Seed, err)
	}
	return ops
}

// check checks a history as garantia check does, drain markers and all.
func check(t testing.TB, ops []histories.Op) *queue.Result {
	t.Helper()
	h, err := histories.FromOps(ops, histories.LoadOptions{})
	if err != nil {
		t.Fatalf("malformed history: %v", err)
	}
	return queue.Check(h, queue.Options{})
}

// summary lists every anomaly found with its count and first explanation.
func summary(r *queue.Result) string {
	var b strings.Builder
	for _, name := range r.AnomalyTypes {
		a := r.Anomalies[name]
		fmt.Fprintf(&b, "\n  %s x%d", name, a.Count)
		if len(a.Examples) > 0 {
			fmt.Fprintf(&b, ": %s", a.Examples[0].Explanation)
		}
	}
	return b.String()
}

func TestRandomCorrectHistoriesAreValid(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			for _, seed := range seeds(15) {
				cfg := config(seed, v)
				ops := generate(t, cfg)
				r := check(t, ops)
				if r.Valid != verdict.Valid || len(r.AnomalyTypes) != 0 {
					t.Fatalf("seed %d (%s; rerun with -queue.seed %d): a correct history checks %v with anomalies:%s",
						seed, v.name, seed, r.Valid, summary(r))
				}
				if r.Counts.Acknowledged == 0 || r.Counts.Read == 0 {
					t.Fatalf("seed %d (%s): the history acknowledged %d and read %d values; the generator is broken",
						seed, v.name, r.Counts.Acknowledged, r.Counts.Read)
				}
				if c := r.Counts.Commits; cfg.CommitRate > 0 && (c == nil || c.Acknowledged == 0 || c.Fetched == 0) {
					t.Fatalf("seed %d (%s): the history commits and fetches no offsets (%+v); the generator is broken", seed, v.name, c)
				}
			}
		})
	}
}

// casesPerFault is how many cases of its anomaly one injected fault makes:
// one, except unseen, which drops a key's last few records (at least one
// of them acknowledged).
func casesPerFault(f synth.Fault) (lo, hi int) {
	if f == synth.Unseen {
		return 1, 5
	}
	return 1, 1
}

func TestRandomInjectedFaultIsCaught(t *testing.T) {
	for _, f := range synth.Faults() {
		want, also := f.Expect()
		t.Run(string(f), func(t *testing.T) {
			for _, v := range variants {
				for _, seed := range seeds(6) {
					cfg := f.Config(config(seed, v))
					ops := generate(t, cfg)
					rng := rand.New(rand.NewPCG(uint64(seed), uint64(len(f))))
					bad, desc, err := synth.Inject(ops, f, rng)
					if errors.Is(err, synth.ErrNoCandidate) {
						// acks=0 histories hold no provable lost write, tiny
						// ones may hold no failed send, ...
						continue
					}
					if err != nil {
						t.Fatalf("seed %d (%s): synth.Inject: %v", seed, v.name, err)
					}
					r := check(t, bad)
					where := fmt.Sprintf("seed %d (%s; rerun with -queue.seed %d), injected %s", seed, v.name, seed, desc)
					if r.Valid != verdict.Invalid {
						t.Fatalf("%s\nchecks %v, want invalid; anomalies:%s", where, r.Valid, summary(r))
					}
					for _, w := range want {
						a := r.Anomalies[w]
						lo, hi := casesPerFault(f)
						if a == nil || a.Count < lo || a.Count > hi {
							t.Fatalf("%s\nwant %d..%d case(s) of %s; anomalies:%s", where, lo, hi, w, summary(r))
						}
					}
					for _, name := range r.AnomalyTypes {
						if !slices.Contains(want, name) && !slices.Contains(also, name) {
							t.Fatalf("%s\nreports %s as well, which the fault does not cause under Jepsen's rules; anomalies:%s",
								where, name, summary(r))
						}
					}
				}
			}
		})
	}
}

package runner

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/internal/leakcheck"
)

// The acceptance runs of the cluster harness: long, so behind a flag.
//
//	go test ./runner -run Acceptance -acceptance -timeout 60m
var acceptance = flag.Bool("acceptance", false, "run the acceptance runs of the cluster (minutes each)")

// TestRunCluster runs the defaults (3 nodes, RF 3, min ISR 2, acks=all,
// partitions and kills) for a few seconds with a short interval, so that
// faults happen: the run must be valid, with nothing left running.
func TestRunCluster(t *testing.T) {
	leakcheck.Check(t)
	cfg := testConfig(t)
	cfg.TimeLimit = 6 * time.Second
	cfg.NemesisInterval = time.Second
	var out, progress bytes.Buffer
	cfg.Out, cfg.Progress = &out, &progress
	results, dir, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("seed %d: %v\n%s", cfg.Seed, err, progress.String())
	}
	if survivors := brokersUnder(t, dir); len(survivors) > 0 {
		t.Errorf("broker processes %v survived the run", survivors)
	}
	if results.Valid != verdict.Valid {
		t.Errorf("seed %d: verdict %v with acks=all, RF 3, min ISR 2\n%s", cfg.Seed, results.Valid, out.String())
	}
}

// TestAcceptanceDefaults: the defaults are valid every time, across 10
// seeds, for the full 30 seconds.
func TestAcceptanceDefaults(t *testing.T) {
	if !*acceptance {
		t.Skip("skipping: -acceptance not given")
	}
	for i := int64(0); i < 10; i++ {
		cfg := testConfig(t)
		cfg.TimeLimit = Defaults().TimeLimit
		cfg.Rate = Defaults().Rate
		cfg.Seed = 1000 + i
		results, _, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("seed %d: %v", cfg.Seed, err)
		}
		if results.Valid != verdict.Valid {
			t.Errorf("seed %d: %v", cfg.Seed, results.Valid)
		}
	}
}

// TestAcceptanceAcksOneLoses: acks=1 under leader partitions and kills
// loses acknowledged writes in most runs; acks=0 under kills leaves
// writes unseen.
func TestAcceptanceAcksOneLoses(t *testing.T) {
	if !*acceptance {
		t.Skip("skipping: -acceptance not given")
	}
	cases := []struct {
		acks    string
		nemesis string
		anomaly string
	}{
		{"1", "partition:leader,kill:leader", "lost-write"},
		{"0", "kill", "unseen"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("acks=%s", c.acks), func(t *testing.T) {
			found := 0
			const runs = 5
			for i := int64(0); i < runs; i++ {
				cfg := testConfig(t)
				cfg.Acks = c.acks
				cfg.Nemesis = []string{c.nemesis}
				cfg.TimeLimit = 30 * time.Second
				cfg.Seed = 2000 + i
				results, _, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatalf("seed %d: %v", cfg.Seed, err)
				}
				if a := results.Queue.Anomalies[c.anomaly]; a != nil && a.Count > 0 {
					found++
				}
			}
			if found*2 <= runs {
				t.Errorf("%s found in %d of %d runs, want most", c.anomaly, found, runs)
			}
		})
	}
}

// TestAcceptanceBugs: each broker bug switch makes the run invalid with
// the anomaly the bug causes.
func TestAcceptanceBugs(t *testing.T) {
	if !*acceptance {
		t.Skip("skipping: -acceptance not given")
	}
	cases := []struct {
		bug     string
		nemesis string
		acks    string
	}{
		{"hw-truncation", "partition:leader,kill:leader", "all"},
		{"early-ack", "kill:leader", "all"},
		{"stale-leader", "partition:leader", "all"},
	}
	for _, c := range cases {
		t.Run(c.bug, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Bugs = []string{c.bug}
			cfg.Acks = c.acks
			cfg.Nemesis = []string{c.nemesis}
			cfg.TimeLimit = 30 * time.Second
			results, _, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("seed %d: %v", cfg.Seed, err)
			}
			if results.Valid != verdict.Invalid {
				t.Errorf("seed %d: --bug %s gave %v, want invalid", cfg.Seed, c.bug, results.Valid)
			}
			for name, a := range results.Queue.Anomalies {
				t.Logf("--bug %s: %s %d", c.bug, name, a.Count)
			}
		})
	}
}

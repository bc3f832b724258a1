package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

// TestMain lets this test binary serve `broker` too: garantia test runs
// its own executable as the broker nodes, and under `go test` that
// executable is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "broker" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestTestBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		flag string
	}{
		{[]string{"--acks", "2"}, "--acks"},
		{[]string{"--nodes", "0"}, "--nodes"},
		{[]string{"--replication-factor", "4"}, "--replication-factor"}, // more than the 3 nodes
		{[]string{"--min-insync-replicas", "4"}, "--min-insync-replicas"},
		{[]string{"--nodes", "2"}, "--replication-factor"}, // the default RF 3 needs 3 nodes
		{[]string{"--time-limit", "soon"}, "--time-limit"},
		{[]string{"--time-limit", "-3"}, "--time-limit"},
		{[]string{"--nodes", "1", "--replication-factor", "1", "--min-insync-replicas", "1", "--nemesis", "partition"}, "--nemesis"}, // no link to cut
		{[]string{"--nemesis", "kill:bridge"}, "--nemesis"},
		{[]string{"--nemesis", "none,kill"}, "--nemesis"},
		{[]string{"--nemesis", "kill", "--nemesis-interval", "1ms"}, "--nemesis-interval"},
		{[]string{"--db", "kubernetes"}, "--db"},
		{[]string{"--test-count", "0"}, "--test-count"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--fsync", "maybe"}, "--fsync"},
		{[]string{"--nemesis", "power:bridge"}, "--nemesis"},
		{[]string{"--nemesis", "power", "--powerfs-mode", "ext4"}, "--powerfs-mode"},
		{[]string{"--powerfs-torn"}, "--powerfs-torn"}, // no power faults, no --powerfs: it would do nothing
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"extra"}, "extra"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"test"}, c.args...), &stdout, &stderr)
			if code != verdict.ExitBadArguments {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, verdict.ExitBadArguments, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.flag) {
				t.Errorf("stderr does not name %s:\n%s", c.flag, stderr.String())
			}
		})
	}
}

func TestTimeLimitFlag(t *testing.T) {
	cases := map[string]time.Duration{"30": 30 * time.Second, "1.5": 1500 * time.Millisecond, "2m": 2 * time.Minute, "90s": 90 * time.Second}
	for in, want := range cases {
		var tl timeLimit
		if err := tl.Set(in); err != nil || time.Duration(tl) != want {
			t.Errorf("Set(%q) = %v, %v; want %v", in, time.Duration(tl), err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "0s", "soon", "3 parsecs"} {
		var tl timeLimit
		if err := tl.Set(in); err == nil {
			t.Errorf("Set(%q) succeeded", in)
		}
	}
}

func TestWorse(t *testing.T) {
	if got := worse(worse(verdict.ExitValid, verdict.ExitUnknown), verdict.ExitValid); got != verdict.ExitUnknown {
		t.Errorf("valid, unknown, valid: %d", got)
	}
	if got := worse(verdict.ExitInvalid, verdict.ExitUnknown); got != verdict.ExitInvalid {
		t.Errorf("invalid, unknown: %d", got)
	}
	if got := worse(verdict.ExitInvalid, verdict.ExitInternal); got != verdict.ExitInternal {
		t.Errorf("invalid, internal: %d", got)
	}
}

// TestTestRuns runs `garantia test` with the cluster defaults twice
// (--test-count 2) for a second each, and checks the exit code and that
// the runs used seed and seed+1.
func TestTestRuns(t *testing.T) {
	store := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"test", "--time-limit", "1", "--store", store, "--seed", "41", "--test-count", "2", "--rate", "200"}, &stdout, &stderr)
	if code != verdict.ExitValid {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	runs, err := filepath.Glob(filepath.Join(store, "queue-acks-all-partition+kill", "2*"))
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs in the store: %v (%v), want 2", runs, err)
	}
	sort.Strings(runs)
	for i, dir := range runs {
		b, err := os.ReadFile(filepath.Join(dir, histories.TestFile))
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			Seed int64 `json:"seed"`
		}
		if err := json.Unmarshal(b, &info); err != nil {
			t.Fatal(err)
		}
		if info.Seed != 41+int64(i) {
			t.Errorf("run %d has seed %d, want %d", i, info.Seed, 41+i)
		}
	}
	if !strings.Contains(stdout.String(), "2 runs; worst exit code 0") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/runner"
)

func init() {
	register(command{
		name:    "test",
		summary: "run a test against a local cluster, check it and store the run",
		run:     runTest,
	})
}

// seedMax keeps drawn seeds exact in JSON readers that use doubles.
const seedMax = 1 << 53

func runTest(args []string, stdout, stderr io.Writer) int {
	def := runner.Defaults()
	fs := pflag.NewFlagSet("garantia test", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported below, once
	fs.SortFlags = false
	cfg := def
	fs.IntVar(&cfg.Nodes, "nodes", def.Nodes, "broker nodes (1 until the broker replicates: the cluster issue; then 3)")
	fs.IntVar(&cfg.ReplicationFactor, "replication-factor", def.ReplicationFactor, "replicas of each partition")
	fs.IntVar(&cfg.MinInsyncReplicas, "min-insync-replicas", def.MinInsyncReplicas, "the topic's min.insync.replicas: acks=all needs this many in-sync replicas")
	fs.StringVar(&cfg.Acks, "acks", def.Acks, "producer acks: 0 (no reply), 1 (leader) or all (every in-sync replica)")
	limit := timeLimit(def.TimeLimit)
	fs.Var(&limit, "time-limit", "how long the workload runs: a Go duration (90s, 2m) or a number of seconds")
	fs.Float64Var(&cfg.Rate, "rate", def.Rate, "operations per second over all processes; 0 is as fast as the brokers answer")
	fs.IntVar(&cfg.Concurrency, "concurrency", def.Concurrency, "concurrent client processes")
	fs.StringSliceVar(&cfg.Nemesis, "nemesis", def.Nemesis, "faults, comma-separated: none, kill (SIGKILL a node, restart it), pause (SIGSTOP, SIGCONT)")
	fs.DurationVar(&cfg.NemesisInterval, "nemesis-interval", def.NemesisInterval, "time between a fault and its heal, and between heal and the next fault")
	seed := fs.Int64("seed", 0, "seed of the schedule (default: drawn at random and printed); repeats a run's schedule")
	fs.StringVar(&cfg.DB, "db", def.DB, "where nodes run: local (processes on loopback) or docker (not yet)")
	fs.StringVar(&cfg.Store, "store", def.Store, "folder of the run store: runs go to STORE/<test>/<time>/")
	count := fs.Int("test-count", 1, "run the test this many times, with seeds seed, seed+1, ...; the exit code is the worst")
	fs.BoolVar(&cfg.UncleanLeaderElection, "unclean-leader-election", def.UncleanLeaderElection, "let an out-of-sync replica become leader (the topic's unclean.leader.election.enable)")
	fs.StringVar(&cfg.Fsync, "fsync", def.Fsync, "the brokers' --fsync: always, interval or never (default: the broker's own)")
	fs.StringArrayVar(&cfg.Bugs, "bug", nil, "switch on a known broker bug by NAME (repeatable; passed to every broker)")
	fs.IntVar(&cfg.Partitions, "partitions", def.Partitions, "partitions of the topic: the keys of the history")

	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "garantia test: "+format+"\n", a...)
		fmt.Fprintln(stderr, "Run 'garantia test --help' for its flags.")
		return verdict.ExitBadArguments
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			testUsage(stdout, fs)
			return 0
		}
		return bad("%v", err)
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q (flags only)", fs.Arg(0))
	}
	if *count < 1 {
		return bad("--test-count: want 1 or more, got %d", *count)
	}
	cfg.TimeLimit = time.Duration(limit)
	if fs.Changed("seed") {
		cfg.Seed = *seed
	} else {
		cfg.Seed = rand.Int64N(seedMax)
	}
	cfg.Progress = stderr
	cfg.Out = stdout
	if err := cfg.Validate(); err != nil {
		return bad("%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	worst := verdict.ExitValid
	first := cfg.Seed
	for i := 0; i < *count; i++ {
		run := cfg
		run.Seed = first + int64(i)
		if *count > 1 {
			fmt.Fprintf(stderr, "\n=== run %d of %d (seed %d)\n", i+1, *count, run.Seed)
		}
		code := testOnce(ctx, run, stderr)
		worst = worse(worst, code)
		if ctx.Err() != nil {
			break
		}
	}
	if *count > 1 {
		fmt.Fprintf(stdout, "%d runs; worst exit code %d\n", *count, worst)
	}
	return worst
}

func testOnce(ctx context.Context, cfg runner.Config, stderr io.Writer) int {
	results, dir, err := runner.Run(ctx, cfg)
	if err != nil {
		if runner.IsFlagError(err) {
			fmt.Fprintf(stderr, "garantia test: %v\n", err)
			return verdict.ExitBadArguments
		}
		fmt.Fprintf(stderr, "garantia test: the harness failed: %v\n", err)
		if dir != "" {
			fmt.Fprintf(stderr, "garantia test: the run's files (test.json, history.jsonl, node logs) are in %s\n", dir)
		}
		return verdict.ExitInternal
	}
	return results.Valid.ExitCode()
}

// worse returns the worse of two exit codes: a harness failure, then an
// invalid history, then unknown, then valid.
func worse(a, b int) int {
	rank := func(c int) int {
		switch c {
		case verdict.ExitValid:
			return 0
		case verdict.ExitUnknown:
			return 1
		case verdict.ExitInvalid:
			return 2
		case verdict.ExitBadArguments:
			return 3
		}
		return 4
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// timeLimit is --time-limit: a Go duration, or a bare number of seconds.
type timeLimit time.Duration

func (t *timeLimit) String() string { return time.Duration(*t).String() }
func (t *timeLimit) Type() string   { return "duration" }
func (t *timeLimit) Set(s string) error {
	s = strings.TrimSpace(s)
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs <= 0 || secs > 1e9 {
			return fmt.Errorf("want a positive number of seconds, got %s", s)
		}
		*t = timeLimit(time.Duration(secs * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like 30s or 2m, or a number of seconds, got %q", s)
	}
	if d <= 0 {
		return fmt.Errorf("want a positive duration, got %s", s)
	}
	*t = timeLimit(d)
	return nil
}

func testUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintln(w, `Usage: garantia test [flags]

Starts broker nodes on loopback, runs the queue workload against them
(sends of unique values, assigns and polls, Jepsen's Kafka workload) for the
time limit while the faults of --nemesis act, drains every partition,
stops the nodes, and checks the history. Everything goes to
STORE/<test>/<time>/: test.json (configuration, seed, versions),
history.jsonl, results.json and each node's log; STORE/latest points at it.

Exit codes: 0 valid, 1 invalid, 2 unknown, 254 bad arguments, 255 the
harness itself failed.

Flags:`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

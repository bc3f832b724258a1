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
	"github.com/garantia/garantia/nemesis"
	"github.com/garantia/garantia/report"
	"github.com/garantia/garantia/runner"
	"github.com/garantia/garantia/workloads/queue"
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

// runFlags are the flags garantia test and garantia matrix share: the
// configuration of one run.
type runFlags struct {
	cfg   runner.Config
	limit timeLimit
	seed  *int64
	fs    *pflag.FlagSet
}

// addRunFlags defines the run flags on fs; acks is false for matrix,
// which sets acks itself.
func addRunFlags(fs *pflag.FlagSet, acks bool) *runFlags {
	def := runner.Defaults()
	f := &runFlags{cfg: def, limit: timeLimit(def.TimeLimit), fs: fs}
	cfg := &f.cfg
	fs.IntVar(&cfg.Nodes, "nodes", def.Nodes, "broker nodes")
	fs.IntVar(&cfg.ReplicationFactor, "replication-factor", def.ReplicationFactor, "replicas of each partition")
	fs.IntVar(&cfg.MinInsyncReplicas, "min-insync-replicas", def.MinInsyncReplicas, "the topic's min.insync.replicas: acks=all needs this many in-sync replicas")
	if acks {
		fs.StringVar(&cfg.Acks, "acks", def.Acks, "producer acks: 0 (no reply), 1 (leader) or all (every in-sync replica)")
	}
	fs.Var(&f.limit, "time-limit", "how long the workload runs: a Go duration (90s, 2m) or a number of seconds")
	fs.Float64Var(&cfg.Rate, "rate", def.Rate, "operations per second over all processes; 0 is as fast as the brokers answer")
	fs.IntVar(&cfg.Concurrency, "concurrency", def.Concurrency, "concurrent client processes")
	fs.StringSliceVar(&cfg.Nemesis, "nemesis", nil, "faults, comma-separated, each KIND or KIND:TARGET+TARGET...; none for no faults.\n"+
		"Kinds and their targets: "+nemesis.Help()+".\n"+
		"Without targets a kind draws from every target the cluster is big enough for.\n"+
		"power kills its targets together, cuts the power of their data folders (what was not fsynced is lost) and restarts them;\n"+
		"it mounts the power-loss filesystem (FUSE) under every node's data folder, which needs root or fusermount.\n"+
		"(default: partition,kill; kill alone on a single node)")
	fs.DurationVar(&cfg.NemesisInterval, "nemesis-interval", def.NemesisInterval, "mean time between faults, and mean duration of each (each drawn from [interval/2, 3*interval/2])")
	f.seed = fs.Int64("seed", 0, "seed of the schedule (default: drawn at random and printed); repeats a run's workload and fault schedule")
	fs.StringVar(&cfg.DB, "db", def.DB, "where nodes run: local (processes on loopback, links through proxies) or docker (a container per node on a bridge network of the run's own; real packet drops with iptables)")
	fs.StringVar(&cfg.Store, "store", def.Store, "folder of the run store: runs go to STORE/<test>/<time>/")
	fs.BoolVar(&cfg.UncleanLeaderElection, "unclean-leader-election", def.UncleanLeaderElection, "let an out-of-sync replica become leader (the topic's unclean.leader.election.enable)")
	fs.StringVar(&cfg.Fsync, "fsync", def.Fsync, "the brokers' --fsync: always, interval or never (default: the broker's own)")
	fs.StringArrayVar(&cfg.Bugs, "bug", nil, "switch on a known broker bug by NAME (repeatable; passed to every broker)")
	fs.IntVar(&cfg.Partitions, "partitions", def.Partitions, "partitions of the topic: the keys of the history")
	fs.DurationVar(&cfg.SessionTimeout, "session-timeout", 0, "the brokers' --session-timeout in cluster mode (default: the broker's own)")
	fs.DurationVar(&cfg.ReplicaLagTimeMax, "replica-lag-time-max", 0, "the brokers' --replica-lag-time-max in cluster mode (default: the broker's own)")
	fs.BoolVar(&cfg.PowerFS, "powerfs", false, "put every node's data folder on the power-loss filesystem (FUSE) even without power faults, for instance to measure what it costs (power faults turn it on)")
	fs.StringVar(&cfg.PowerMode, "powerfs-mode", "", "when the power-loss filesystem makes a file's create, rename or remove durable: strict (only with an fsync of its folder, the POSIX reading; the default) or ordered (as ext4 with data=ordered: any later fsync commits every such change made before it)")
	fs.BoolVar(&cfg.PowerTorn, "powerfs-torn", false, "a power cut leaves each file's last unsynced write torn: each of its 512-byte sectors kept or lost, drawn from the seed")
	fs.StringVar(&cfg.ConsumeVia, "consume-via", queue.ConsumeAssign, "how consumers get partitions (Jepsen's --sub-via): assign (each picks its partitions), subscribe (they join a consumer group, commit what they read, and the group's committed offsets are fetched back and checked) or mixed (each assign-or-subscribe draw picks one)")
	return f
}

// finish completes the configuration after parsing: the time limit and
// the seed (drawn when not given).
func (f *runFlags) finish() runner.Config {
	f.cfg.TimeLimit = time.Duration(f.limit)
	if f.fs.Changed("seed") {
		f.cfg.Seed = *f.seed
	} else {
		f.cfg.Seed = rand.Int64N(seedMax)
	}
	return f.cfg
}

func runTest(args []string, stdout, stderr io.Writer) int {
	c := newCLI("test", stdout, stderr)
	fs := c.fs
	fs.SortFlags = false
	rf := addRunFlags(fs, true)
	count := fs.Int("test-count", 1, "run the test this many times, with seeds seed, seed+1, ...; the exit code is the worst")
	junit := fs.String("junit", "", "also write the verdict as JUnit XML to `FILE` (one test case per checker; with --test-count, one suite per run in FILE, FILE.2, ...), for CI")

	bad := c.bad
	if code, done := c.parse(args, testUsage); done {
		return code
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q (flags only)", fs.Arg(0))
	}
	if *count < 1 {
		return bad("--test-count: want 1 or more, got %d", *count)
	}
	cfg := rf.finish()
	cfg.Progress = stderr
	cfg.Out = stdout
	if err := cfg.Validate(); err != nil {
		return bad("%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first interrupt lets the run heal, stop its nodes and check what
	// it recorded; a second one quits at once, as it would without us
	// (local nodes die with the harness, docker leftovers go with garantia
	// clean).
	context.AfterFunc(ctx, stop)
	worst := verdict.ExitValid
	first := cfg.Seed
	for i := 0; i < *count; i++ {
		run := cfg
		run.Seed = first + int64(i)
		if *count > 1 {
			fmt.Fprintf(stderr, "\n=== run %d of %d (seed %d)\n", i+1, *count, run.Seed)
		}
		junitPath := *junit
		if junitPath != "" && i > 0 {
			junitPath = fmt.Sprintf("%s.%d", junitPath, i+1)
		}
		code := testOnce(ctx, run, stderr, junitPath)
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

func testOnce(ctx context.Context, cfg runner.Config, stderr io.Writer, junitPath string) int {
	results, dir, err := runner.Run(ctx, cfg)
	if junitPath != "" {
		suite := fmt.Sprintf("garantia test (seed %d)", cfg.Seed)
		var jerr error
		if err != nil {
			jerr = report.WriteJUnitError(junitPath, suite, "the harness failed: "+err.Error())
		} else {
			jerr = report.WriteJUnit(junitPath, results, suite)
		}
		if jerr != nil {
			fmt.Fprintf(stderr, "garantia test: --junit: %v\n", jerr)
		}
	}
	if err != nil {
		if runner.IsFlagError(err) {
			fmt.Fprintf(stderr, "garantia test: %v\n", err)
			return verdict.ExitBadArguments
		}
		if errors.Is(err, runner.ErrInterrupted) && results != nil {
			// The verdict of what was recorded is printed; the exit code
			// stays the harness's, since the test did not run to its end.
			fmt.Fprintf(stderr, "garantia test: %v; the verdict above covers what was recorded, exit %d\n", err, verdict.ExitInternal)
			return verdict.ExitInternal
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
time limit while the faults of --nemesis act on a schedule drawn from the
seed, heals every fault and restarts every node, drains every partition,
stops the nodes, and checks the history. A progress line shows elapsed
time, ops/s, ok/info/fail counts and the faults in force; at the end the
verdict and the count of each anomaly are printed. Everything goes to
STORE/<test>/<time>/: test.json (configuration, seed, versions, the fault
schedule), history.jsonl, results.json and each node's log; STORE/latest
points at it.

Links between nodes go through proxies that partitions cut and packet
faults slow; clients reach every node directly, as in Jepsen.

Power faults (--nemesis power, e.g. power:all) kill their targets together,
cut the power of their data folders and start them again after the fault's
duration: a kill leaves the kernel's page cache, a power cut loses
everything the brokers did not fsync (--fsync decides what that is). The
run mounts a power-loss filesystem (FUSE) under every node's data folder
for them; on a machine that cannot mount it (no /dev/fuse, neither root nor
fusermount) such a run stops before any node starts, exit 255. Every mount
is unmounted when the run ends, fails or is interrupted; garantia clean
removes those of a harness that was killed.

Exit codes: 0 valid, 1 invalid, 2 unknown, 254 bad arguments, 255 the
harness itself failed.

Flags:`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

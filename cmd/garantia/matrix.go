package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/runner"
)

func init() {
	register(command{
		name:    "matrix",
		summary: "run acks=0, 1 and all (and, with --fsync-levels, each fsync policy) under one seed and fault schedule, and compare",
		run:     runMatrix,
	})
}

func runMatrix(args []string, stdout, stderr io.Writer) int {
	c := newCLI("matrix", stdout, stderr)
	fs := c.fs
	fs.SortFlags = false
	levels := fs.StringSlice("acks-levels", runner.AcksLevels, "the acks settings to compare, in order")
	fsyncs := fs.StringSlice("fsync-levels", nil, "also compare these fsync policies of the brokers (never, interval, always), in order, each under every acks setting;\n"+
		"without --nemesis the faults are then "+strings.Join(runner.PowerMatrixNemesis, ",")+" (default: no fsync axis; every run takes --fsync)")
	rf := addRunFlags(fs, false)

	bad := c.bad
	if code, done := c.parse(args, matrixUsage); done {
		return code
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q (flags only)", fs.Arg(0))
	}
	cfg := rf.finish()
	cfg.Progress = stderr
	cfg.Out = stderr // each run's summary goes with its progress; the table to stdout
	for _, l := range [][]string{*levels, *fsyncs} {
		for i := range l {
			l[i] = strings.TrimSpace(l[i])
		}
	}
	axes := runner.MatrixAxes{Acks: *levels, Fsync: *fsyncs}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	what := "acks " + strings.Join(*levels, ", ")
	if len(*fsyncs) > 0 {
		what += " × fsync " + strings.Join(*fsyncs, ", ")
	}
	fmt.Fprintf(stderr, "garantia matrix: %s under seed %d (repeat with --seed %d)\n", what, cfg.Seed, cfg.Seed)
	m, err := runner.RunMatrix(ctx, cfg, axes)
	if err != nil {
		if runner.IsFlagError(err) {
			return bad("%v", err)
		}
		fmt.Fprintf(stderr, "garantia matrix: %v\n", err)
		return verdict.ExitInternal
	}
	fmt.Fprintln(stdout)
	m.WriteTable(stdout)
	fmt.Fprintf(stdout, "\nmatrix: %s (%s, %s)\n", m.Dir, runner.MatrixJSONFile, runner.MatrixMDFile)
	for _, r := range m.Rows {
		setting := "acks=" + r.Acks
		if r.Fsync != "" {
			setting += " fsync=" + r.Fsync
		}
		if r.Error != "" {
			fmt.Fprintf(stdout, "%s: the harness failed: %s\n", setting, r.Error)
		} else {
			fmt.Fprintf(stdout, "%s: %s\n", setting, filepath.Clean(r.Run))
		}
	}
	for _, r := range m.Rows {
		if r.Error != "" {
			return verdict.ExitInternal
		}
	}
	return verdict.ExitValid
}

func matrixUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintln(w, `Usage: garantia matrix [flags]

The seed's lesson, measured: runs the same test once per acks setting
(0, 1 and all by default), one after the other, under the same seed and so
the same fault schedule, each a full run with its own run folder, then
prints one table:

  acks | sent | acknowledged | lost | unseen | duplicates | throughput | p50 | p99 | verdict

acks decides what one failed node can lose; fsync decides what a
correlated power cut can lose. --fsync-levels never,always adds the second
axis (a fsync column, one run per acks setting and fsync policy) and, unless
--nemesis says otherwise, the faults that show both: the leader isolated
(acks=1 loses what its leader acknowledged alone) and every node's power cut
at once (acks=all with fsync never loses what no replica had synced;
acks=all with fsync always loses nothing). Power faults mount the
power-loss filesystem (FUSE) under the nodes' data folders.

Throughput is acknowledged sends per second; p50 and p99 are the latencies
of acknowledged sends, from invocation to completion in the history. The
table is also written as matrix.json and matrix.md in STORE/matrix/<time>/
(STORE/matrix/latest points at it).

Exit codes: 0 when every run completed, whatever its verdict (a lossy acks
setting losing writes is the measurement, not a failure); 254 bad
arguments; 255 when a run's harness failed.

Flags:`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/queue"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/report"
)

func init() {
	register(command{
		name:    "check",
		summary: "re-analyse a stored history (.jsonl or .edn) or run folder",
		run:     runCheck,
	})
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	c := newCLI("check", stdout, stderr)
	fs := c.fs
	out := fs.String("out", "", "where to write results.json (default: beside the history)")
	allErrors := fs.Bool("all-errors", false, "keep every example of every anomaly, not just the first 8")
	maxExamples := fs.Int("max-examples", 8, "examples kept per anomaly (ignored with --all-errors)")
	linearTimeout := fs.Duration("linear-timeout", 0, "bound on the linearizability search (0: its default); when it runs out that verdict is unknown")
	noLinear := fs.Bool("no-linear", false, "skip the linearizability analysis")
	quiet := fs.Bool("quiet", false, "print only the verdict line")
	defer addJUnitFlags(fs, stderr).write() // --junit FILE, --junit-unknown: written from results.json on return
	if code, done := c.parse(args, checkUsage); done {
		return code
	}
	if fs.NArg() != 1 {
		return c.bad("want exactly one PATH (a history file or a run folder), got %d arguments", fs.NArg())
	}
	if *maxExamples < 0 {
		return c.bad("--max-examples: want 0 or more, got %d", *maxExamples)
	}

	historyPath, err := histories.ResolveHistory(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "garantia check: %v\n", err)
		return verdict.ExitBadArguments
	}
	started := time.Now()
	ops, warnings, err := readHistory(historyPath)
	if err != nil {
		// A malformed history is bad input, not a failure of ours: the
		// error names the file and line.
		fmt.Fprintf(stderr, "garantia check: %v\n", err)
		return verdict.ExitBadArguments
	}
	readTime := time.Since(started)

	resultsPath := *out
	if resultsPath == "" {
		resultsPath = filepath.Join(filepath.Dir(historyPath), histories.ResultsFile)
	}
	opts := checker.Options{
		MaxExamples:   *maxExamples,
		LinearTimeout: *linearTimeout,
		SkipLinear:    *noLinear,
		VisualizeDir:  filepath.Dir(resultsPath),
	}
	if *maxExamples == 0 {
		opts.MaxExamples = 8
	}
	if *allErrors {
		opts.MaxExamples = -1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	results, err := checker.Check(ctx, ops, opts)
	if err != nil {
		fmt.Fprintf(stderr, "garantia check: %s: %v\n", historyPath, err)
		return verdict.ExitInternal
	}
	results.Warnings = append(results.Warnings, warnings...)
	if err := results.WriteFile(resultsPath); err != nil {
		fmt.Fprintf(stderr, "garantia check: %v\n", err)
		return verdict.ExitInternal
	}
	if !*quiet {
		fmt.Fprintf(stdout, "history: %s (%d events, read in %s; checked in %s)\n",
			historyPath, len(ops), readTime.Round(time.Millisecond), time.Since(started).Round(time.Millisecond)-readTime.Round(time.Millisecond))
		report.Summary(stdout, results, 3)
		fmt.Fprintf(stdout, "results: %s\n", resultsPath)
	} else {
		fmt.Fprintf(stdout, "verdict: %s\n", results.Valid)
	}
	return results.Valid.ExitCode()
}

// readHistory reads a JSONL or EDN history, chosen by the file's extension.
func readHistory(path string) ([]histories.Op, []string, error) {
	if strings.EqualFold(filepath.Ext(path), ".edn") {
		return histories.ReadEDNFile(path)
	}
	return histories.ReadFile(path)
}

func checkUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintln(w, `Usage: garantia check [flags] PATH

Analyses a history without a cluster. PATH is a history file (history.jsonl,
or a Jepsen history.edn), a run folder holding history.jsonl, or a store
folder whose "latest" link points at a run. Writes results.json beside the
history (or to --out) and, for each key whose log is not linearizable,
porcupine's visualization linear-<key>.html beside it.

Exit codes: 0 valid, 1 invalid, 2 unknown, 254 bad arguments or a malformed
history, 255 internal failure.

Flags:`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nAnomalies (Jepsen's Kafka taxonomy):")
	names := make([]string, 0, len(queue.Descriptions))
	for n := range queue.Descriptions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-22s %s\n", n, queue.Descriptions[n])
	}
	fmt.Fprintln(w, "\n  linearizable           each key's log, checked with porcupine against an append-only log model")
}

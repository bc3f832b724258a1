package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/linear"
	"github.com/garantia/garantia/checker/queue"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/anomaly"
	"github.com/garantia/garantia/internal/crash"
	"github.com/garantia/garantia/report"
)

func init() {
	register(command{
		name:    "check",
		summary: "re-analyse a stored history (.jsonl or .edn) or run folder",
		run:     runCheck,
	})
}

// checkFlags are the flags of `garantia check`.
type checkFlags struct {
	out               string
	allErrors         bool
	maxExamples       int
	linearTimeout     time.Duration
	noLinear          bool
	maxVisualizations int
	assumeDrained     bool
	fragment          bool
	quiet             bool
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	c := newCLI("check", stdout, stderr)
	fs := c.fs
	var f checkFlags
	fs.StringVar(&f.out, "out", "", "where to write results.json (default: beside the history); porcupine's visualizations go to the same folder")
	fs.BoolVar(&f.allErrors, "all-errors", false, "keep every example of every anomaly")
	fs.IntVar(&f.maxExamples, "max-examples", queue.DefaultMaxExamples, "examples kept per anomaly; 0 keeps none, only the counts (ignored with --all-errors)")
	fs.DurationVar(&f.linearTimeout, "linear-timeout", 0, "bound on the linearizability search (0: its default, "+linear.DefaultTimeout.String()+"); when it runs out that verdict is unknown")
	fs.BoolVar(&f.noLinear, "no-linear", false, "skip the linearizability analysis")
	fs.IntVar(&f.maxVisualizations, "max-visualizations", linear.DefaultMaxVisualizations, "keys not linearizable that get porcupine's visualization, the first by name (the rest are counted); 0: none")
	fs.BoolVar(&f.assumeDrained, "assume-drained", false, "judge unseen values as if the history ended with a completed final drain: for histories that record no drain markers but end by reading every partition to its end (Jepsen's final polls)")
	fs.BoolVar(&f.fragment, "fragment", false, "the history is cut from a longer one: a process's first event may complete an op invoked before the cut, and reads of values sent before it are not garbage")
	fs.BoolVar(&f.quiet, "quiet", false, "print only the verdict line")
	junit := addJUnitFlags(fs)
	if code, done := c.parse(args, checkUsage); done {
		return code
	}
	if fs.NArg() != 1 {
		return c.bad("want exactly one PATH (a history file or a run folder), got %d arguments", fs.NArg())
	}
	if f.maxExamples < 0 {
		return c.bad("--max-examples: want 0 or more, got %d (use --all-errors to keep every example)", f.maxExamples)
	}
	if f.maxVisualizations < 0 {
		return c.bad("--max-visualizations: want 0 or more, got %d", f.maxVisualizations)
	}
	if err := junit.checkPath(); err != nil {
		return c.bad("%v", err)
	}
	if os.Getenv("GOGC") == "" {
		// Nearly everything a check allocates lives to its end (the
		// history, its version orders): collecting garbage more often costs
		// little and keeps the process near its live size instead of
		// twice it.
		debug.SetGCPercent(checkGCPercent)
	}
	code, results, suite := check(fs.Arg(0), f, stdout, stderr)
	return junit.finish(code, results, suite, stderr)
}

// checkGCPercent is the garbage collector's target in a check (see
// runtime/debug.SetGCPercent): measured on a 10,000,000-event history, 30
// costs 8% more CPU than the default 100 (27 s against 25) and a third
// less memory (2.2 GB against 3.4).
const checkGCPercent = 30

// check checks the history at path and returns the exit code, the results
// (nil when there are none) and the JUnit suite's name.
func check(path string, f checkFlags, stdout, stderr io.Writer) (int, *checker.Results, string) {
	fail := func(code int, format string, a ...any) (int, *checker.Results, string) {
		fmt.Fprintf(stderr, "garantia check: "+format+"\n", a...)
		return code, nil, path
	}
	historyPath, err := histories.ResolveHistory(path)
	if err != nil {
		return fail(verdict.ExitBadArguments, "%v", err)
	}
	suite := suiteName(filepath.Dir(historyPath), historyPath)
	resultsPath := f.out
	if resultsPath == "" {
		resultsPath = filepath.Join(filepath.Dir(historyPath), histories.ResultsFile)
	} else if err := checkOutputPath("--out", resultsPath, historyPath); err != nil {
		return fail(verdict.ExitBadArguments, "%v", err)
	}
	// From here on, a check that fails must not leave an older verdict
	// beside the history, as though it were this history's.
	failed := func(code int, format string, a ...any) (int, *checker.Results, string) {
		removeStale(resultsPath, stderr)
		fmt.Fprintf(stderr, "garantia check: "+format+"\n", a...)
		return code, nil, suite
	}

	started := time.Now()
	h, err := histories.LoadHistory(historyPath, histories.LoadOptions{Fragment: f.fragment})
	if err != nil {
		// A malformed history is bad input, not a failure of ours: the
		// error names the file, the line and the rule broken.
		hint := ""
		if errors.Is(err, histories.ErrOrphanCompletion) {
			hint = "\n(if this file is cut from the middle of a longer history, check it with --fragment)"
		}
		if crash.Is(err) {
			return failed(verdict.ExitInternal, "%v", err)
		}
		return failed(verdict.ExitBadArguments, "%v%s", err, hint)
	}
	readTime := time.Since(started)

	opts := checker.Options{
		MaxExamples:       f.maxExamples,
		LinearTimeout:     f.linearTimeout,
		SkipLinear:        f.noLinear,
		VisualizeDir:      filepath.Dir(resultsPath),
		MaxVisualizations: f.maxVisualizations,
		AssumeDrained:     f.assumeDrained,
	}
	switch {
	case f.allErrors:
		opts.MaxExamples = queue.AllExamples
	case f.maxExamples == 0:
		opts.MaxExamples = queue.NoExamples
	}
	if f.maxVisualizations == 0 {
		opts.MaxVisualizations = -1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	results, err := checker.CheckHistory(ctx, h, opts)
	if err != nil {
		return failed(verdict.ExitInternal, "%s: %v", historyPath, err)
	}
	if err := results.WriteFile(resultsPath); err != nil {
		code := verdict.ExitInternal
		if isPathProblem(err) {
			code = verdict.ExitBadArguments
		}
		return failed(code, "cannot write the results to %s: %v", resultsPath, rootCause(err))
	}
	if !f.quiet {
		fmt.Fprintf(stdout, "history: %s (%d events, read in %s; checked in %s)\n",
			historyPath, len(h.Events), readTime.Round(time.Millisecond), (time.Since(started) - readTime).Round(time.Millisecond))
		report.Summary(stdout, results, 3)
		fmt.Fprintf(stdout, "results: %s\n", resultsPath)
	} else {
		fmt.Fprintf(stdout, "verdict: %s\n", results.Valid)
	}
	for _, w := range results.Warnings {
		if f.quiet {
			fmt.Fprintf(stderr, "garantia check: warning: %s\n", w)
		}
	}
	return results.Valid.ExitCode(), results, suite
}

// checkOutputPath refuses, before any work, an output path that cannot be
// written: a folder, a file in a folder that does not exist or cannot be
// written, or the history itself.
func checkOutputPath(flag, path, historyPath string) error {
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("%s %s is a folder; want the path of a file to write", flag, path)
		}
		if hfi, err := os.Stat(historyPath); err == nil && os.SameFile(fi, hfi) {
			return fmt.Errorf("%s %s is the history itself; want another file", flag, path)
		}
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s: the folder %s does not exist", flag, path, dir)
	case err != nil:
		return fmt.Errorf("%s %s: %v", flag, path, rootCause(err))
	case !fi.IsDir():
		return fmt.Errorf("%s %s: %s is not a folder", flag, path, dir)
	}
	probe, err := os.CreateTemp(dir, ".garantia-write-test-*")
	if err != nil {
		return fmt.Errorf("%s %s: cannot write in the folder %s: %v", flag, path, dir, rootCause(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

// removeStale removes a results file left by an earlier check, so that a
// failed check leaves no verdict behind.
func removeStale(path string, stderr io.Writer) {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	if err := os.Remove(path); err != nil {
		fmt.Fprintf(stderr, "garantia check: warning: could not remove the earlier results %s, which are not this history's: %v\n", path, err)
	}
}

// rootCause is the innermost error of a file operation ("permission
// denied"), without the temporary file names the layers above add.
func rootCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// isPathProblem reports whether a write failed because of where it was
// asked to go (the user's doing) rather than of the machine.
func isPathProblem(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist)
}

func checkUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintln(w, `Usage: garantia check [flags] PATH

Analyses a history without a cluster. PATH is a history file (history.jsonl,
or a Jepsen history.edn), a run folder holding history.jsonl, or a store
folder whose "latest" link points at a run. Writes results.json beside the
history (or to --out) and, for the first keys whose log is not linearizable
(--max-visualizations), porcupine's visualization linear-<key>.html beside
it. A check that fails removes the results.json it would have written, so
that no older verdict stays behind.

The history must be well formed: every line an op (a torn last line, as a
crashed writer leaves, is skipped with a warning), valid UTF-8, indexes
increasing and times never decreasing, every completion after its
process's invocation with the same f and micro-ops, no process invoking
twice before completing. Otherwise the check stops with exit 254 naming the
file, the line and the rule broken.

An acknowledged message that no poll read proves a loss only once the
history records a completed final drain (the harness's "drain" ops):
without one it may just not have been reached, so "unseen" is reported but
its verdict is unknown (exit 2), and the summary says why. A history with
no drain markers at all counts as not drained: that is what an interrupted
or crashed run leaves, and calling its lag a loss would fail a release for
nothing. Histories from tools that record no markers but end with their
own final polls (Jepsen's, older garantia runs) take --assume-drained,
which judges them as Jepsen does. --fragment checks a piece cut from the
middle of a history: completions whose invocations were cut off, and
reads of values sent before the cut, are accepted.

Exit codes: 0 valid, 1 invalid, 2 unknown, 254 bad arguments or a malformed
history, 255 internal failure (a bug: the message says where).

Flags:`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nAnomalies (Jepsen's Kafka taxonomy):")
	for _, a := range anomaly.Table {
		fmt.Fprintf(w, "  %-22s %s\n", a.Name, a.Description)
	}
	fmt.Fprintln(w, "\n  linearizable           each key's log, checked with porcupine against an append-only log model (offsets ordered, gaps and a non-zero start allowed)")
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/report"
)

func init() {
	register(command{
		name:    "report",
		summary: "(re)build the HTML report of a run folder or history file",
		run:     runReport,
	})
}

func runReport(args []string, stdout, stderr io.Writer) int {
	c := newCLI("report", stdout, stderr)
	fs := c.fs
	maxOps := fs.Int("max-ops", report.DefaultMaxOps, "operations embedded in the report's table (the rest is linked)")
	maxKeys := fs.Int("max-keys", report.DefaultMaxKeys, "keys that get a picture of their log")
	linearTimeout := fs.Duration("linear-timeout", 0, "bound on the linearizability search when the checkers must run again (0: its default)")
	quiet := fs.Bool("quiet", false, "print only the report's path")
	if code, done := c.parse(args, reportUsage); done {
		return code
	}
	if fs.NArg() != 1 {
		return c.bad("want exactly one PATH (a run folder or a history file), got %d arguments", fs.NArg())
	}
	if *maxOps < 1 || *maxKeys < 1 {
		return c.bad("--max-ops and --max-keys: want 1 or more, got %d and %d", *maxOps, *maxKeys)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	started := time.Now()
	run, err := report.Open(ctx, fs.Arg(0), report.OpenOptions{Check: checker.Options{LinearTimeout: *linearTimeout}})
	if err != nil {
		fmt.Fprintf(stderr, "garantia report: %v\n", err)
		if errors.Is(err, report.ErrInput) {
			return verdict.ExitBadArguments
		}
		return verdict.ExitInternal
	}
	loaded := time.Since(started)
	path, err := run.WriteFile(report.Options{MaxOps: *maxOps, MaxKeys: *maxKeys})
	if err != nil {
		fmt.Fprintf(stderr, "garantia report: %v\n", err)
		return verdict.ExitInternal
	}
	if !*quiet {
		for _, n := range run.Notes {
			fmt.Fprintf(stderr, "garantia report: note: %s\n", n)
		}
		size := int64(0)
		if fi, err := os.Stat(path); err == nil {
			size = fi.Size()
		}
		fmt.Fprintf(stderr, "garantia report: %d events, verdict %s; history read (and checked, when needed) in %s, report built in %s, %.1f MB\n",
			len(run.Ops), run.Results.Valid, loaded.Round(time.Millisecond),
			(time.Since(started) - loaded).Round(time.Millisecond), float64(size)/1e6)
	}
	fmt.Fprintln(stdout, path)
	return 0
}

func reportUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintln(w, `Usage: garantia report [flags] PATH

Builds report.html, a self-contained page (no network needed to open it), for
a run: the verdict and configuration; each anomaly with its examples linked
to the operations; for every key with lost, duplicated or inconsistent
writes a picture of its log (which value each poll and ack saw at each
offset, over time) and tables of the offsets around each problem; latency
and throughput over time with every fault shaded; porcupine's visualization
of each key that is not linearizable.

PATH is a run folder, a history file (.jsonl or Jepsen .edn), or a store
folder whose "latest" link points at a run. The report is written into the
run folder (or beside the history) and its path printed. results.json and
test.json are read from there; when results.json is missing or stale the
checkers run again (results.json is not rewritten).

Exit codes: 0 the report was written, 254 bad arguments, no history at PATH
or a malformed history, 255 internal failure.

Flags:`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// junitFlags are --junit and --junit-unknown, which `garantia check` has:
// the results written as JUnit XML for CI, one test case per checker.
type junitFlags struct {
	path    *string
	unknown *unknownMode
}

func addJUnitFlags(fs *pflag.FlagSet) *junitFlags {
	j := &junitFlags{unknown: &unknownMode{report.UnknownAsError}}
	j.path = fs.String("junit", "", "also write the results as JUnit XML to `FILE` (one test case per checker), for CI")
	fs.Var(j.unknown, "junit-unknown", "how an unknown verdict appears in the JUnit XML: error (CI fails) or skipped")
	return j
}

// checkPath refuses a --junit path that cannot be written, before any
// work is done.
func (j *junitFlags) checkPath() error {
	if *j.path == "" {
		return nil
	}
	return checkOutputPath("--junit", *j.path, "")
}

// finish writes the JUnit file, if asked for, and returns the command's
// exit code: code, unless the file could not be written, which must not
// pass unnoticed in CI (254 when the path is at fault, else 255). Without
// results (the check failed) the file holds one test case in error, so
// that CI shows the failure rather than a missing file.
func (j *junitFlags) finish(code int, results *checker.Results, suite string, stderr io.Writer) int {
	if *j.path == "" {
		return code
	}
	var err error
	if results == nil {
		err = report.WriteJUnitError(*j.path, suite, "garantia check did not produce results (see its output)")
	} else {
		var sum bytes.Buffer
		report.Summary(&sum, results, 3)
		err = report.WriteJUnitWith(*j.path, results, suite, report.JUnitOptions{Unknown: j.unknown.mode, Summary: sum.String()})
	}
	if err == nil {
		return code
	}
	fmt.Fprintf(stderr, "garantia check: --junit %s: cannot write it: %v\n", *j.path, rootCause(err))
	if code == verdict.ExitBadArguments || code == verdict.ExitInternal {
		return code
	}
	if isPathProblem(err) {
		return verdict.ExitBadArguments
	}
	return verdict.ExitInternal
}

// suiteName names a run's JUnit suite: its test's name from test.json,
// else the history's path.
func suiteName(dir, historyPath string) string {
	if t, _, err := histories.LoadTestInfo(dir); err == nil && t != nil && t.Name != "" {
		return t.Name
	}
	return historyPath
}

// unknownMode is --junit-unknown, checked when the flags are parsed.
type unknownMode struct{ mode string }

func (u *unknownMode) String() string { return u.mode }
func (u *unknownMode) Type() string   { return "error|skipped" }
func (u *unknownMode) Set(s string) error {
	if s != report.UnknownAsError && s != report.UnknownAsSkipped {
		return fmt.Errorf("want %s or %s, got %q", report.UnknownAsError, report.UnknownAsSkipped, s)
	}
	u.mode = s
	return nil
}

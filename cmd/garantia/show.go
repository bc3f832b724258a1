package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/report"
)

func init() {
	register(command{
		name:    "show",
		summary: "print the summary of a stored run (default: the store's latest)",
		run:     runShow,
	})
}

func runShow(args []string, stdout, stderr io.Writer) int {
	c := newCLI("show", stdout, stderr)
	fs := c.fs
	examples := fs.Int("examples", 3, "examples printed per anomaly")
	if code, done := c.parse(args, showUsage); done {
		return code
	}
	path := "store"
	switch fs.NArg() {
	case 0:
	case 1:
		path = fs.Arg(0)
	default:
		return c.bad("want at most one PATH, got %d arguments", fs.NArg())
	}
	if *examples < 0 {
		return c.bad("--examples: want 0 or more, got %d", *examples)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	st, err := report.LoadStored(ctx, path, checker.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "garantia show: %v\n", err)
		if errors.Is(err, report.ErrInput) {
			return verdict.ExitBadArguments
		}
		return verdict.ExitInternal
	}
	fmt.Fprintf(stdout, "run: %s\n", st.Dir)
	if t := st.Info; t != nil {
		line := "test: " + t.Name
		if !t.StartTime.IsZero() {
			line += ", started " + t.StartTime.Format(time.RFC3339Nano)
		}
		line += fmt.Sprintf(", seed %d", t.Seed)
		if t.GarantiaVersion != "" {
			line += ", garantia " + t.GarantiaVersion
		}
		fmt.Fprintln(stdout, line)
		if c := t.Config.Summary(); c != "" {
			fmt.Fprintf(stdout, "config: %s\n", c)
		}
		if t.Interrupted != "" {
			fmt.Fprintf(stdout, "interrupted: during the %s; the history stops there, without a completed final drain\n", t.Interrupted)
		}
	}
	if st.Note != "" {
		fmt.Fprintf(stdout, "note: %s\n", st.Note)
	}
	report.Summary(stdout, st.Results, *examples)
	fmt.Fprintf(stdout, "history: %s\n", st.HistoryPath)
	if st.ResultsPath != "" {
		fmt.Fprintf(stdout, "results: %s\n", st.ResultsPath)
	}
	rp := filepath.Join(st.Dir, report.FileName)
	if _, err := os.Stat(rp); err == nil {
		fmt.Fprintf(stdout, "report: %s\n", rp)
	} else {
		fmt.Fprintf(stdout, "report: none yet (garantia report %s builds it)\n", st.Dir)
	}
	return st.Results.Valid.ExitCode()
}

func showUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintf(w, `Usage: garantia show [flags] [PATH]

Prints the summary of a stored run: its test, configuration and seed, the
verdict, the counts that matter for durability, each anomaly with its first
examples, and where its files are. PATH is a run folder, one of its files, a
history file, or a store folder (its %q run); the default is the
store folder "store". results.json is read as stored; when it is missing or older than
the history, the history is checked now (nothing is written).

Exit codes: 0 valid, 1 invalid, 2 unknown (the run's verdict), 254 bad
arguments or no run at PATH, 255 internal failure.

Flags:
`, histories.LatestLink)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

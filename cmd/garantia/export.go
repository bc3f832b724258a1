package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/internal/atomicfile"
)

func init() {
	register(command{
		name:    "export",
		summary: "convert a history between JSON Lines and Jepsen's EDN",
		run:     runExport,
	})
}

func runExport(args []string, stdout, stderr io.Writer) int {
	c := newCLI("export", stdout, stderr)
	fs := c.fs
	format := fs.String("format", "edn", "what to write: edn (Jepsen's history.edn) or jsonl (history.jsonl)")
	out := fs.String("out", "-", "file to write (- for stdout)")
	if code, done := c.parse(args, exportUsage); done {
		return code
	}
	if fs.NArg() != 1 {
		return c.bad("want exactly one PATH (a history file or a run folder), got %d arguments", fs.NArg())
	}
	write := histories.WriteEDN
	switch strings.ToLower(*format) {
	case "edn":
	case "jsonl":
		write = histories.WriteAll
	default:
		return c.bad("--format: want edn or jsonl, got %q", *format)
	}
	if *out != "-" {
		if err := checkOutputPath("--out", *out, ""); err != nil {
			return c.bad("%v", err)
		}
	}
	path, err := histories.ResolveHistory(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "garantia export: %v\n", err)
		return verdict.ExitBadArguments
	}
	// The history is checked as `garantia check` checks it: what is
	// exported reads back.
	ops, warnings, err := histories.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "garantia export: %v\n", err)
		return verdict.ExitBadArguments
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "garantia export: warning: %s\n", w)
	}
	if *out == "-" {
		var buf bytes.Buffer
		if err := write(&buf, ops); err != nil {
			fmt.Fprintf(stderr, "garantia export: %v\n", err)
			return verdict.ExitInternal
		}
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			fmt.Fprintf(stderr, "garantia export: writing: %v\n", err)
			return verdict.ExitInternal
		}
		return 0
	}
	if err := atomicfile.Write(*out, 0o644, func(w io.Writer) error { return write(w, ops) }); err != nil {
		code := verdict.ExitInternal
		if isPathProblem(err) {
			code = verdict.ExitBadArguments
		}
		fmt.Fprintf(stderr, "garantia export: cannot write %s: %v\n", *out, rootCause(err))
		return code
	}
	fmt.Fprintf(stderr, "garantia export: wrote %d events of %s to %s\n", len(ops), path, *out)
	return 0
}

func exportUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintln(w, `Usage: garantia export [flags] PATH

Converts a history, so that Jepsen's tools and Elle can read what Garantia
recorded, and Garantia's tools what Jepsen recorded. PATH is a history file
(history.jsonl, or a Jepsen history.edn) or a run folder. The history is
checked first as garantia check checks it (a malformed one exits 254, naming
the line). EDN writes Jepsen's form: one op map per line, :nemesis for the
nemesis process, keys that are decimal numbers as integers; message values
that are not integers are written as strings (an EDN keyword :a read earlier
comes back as "a").

Exit codes: 0 written, 254 bad arguments or a malformed history, 255
internal failure.

Flags:`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

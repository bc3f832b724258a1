package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/checker/verdict"
)

// cli is a subcommand's flag set and the one way every subcommand treats
// its command line: --help prints the usage to stdout and exits 0; a bad
// flag or argument prints "garantia NAME: what is wrong" and a hint to
// stderr and exits with ExitBadArguments.
type cli struct {
	name           string
	fs             *pflag.FlagSet
	stdout, stderr io.Writer
}

func newCLI(name string, stdout, stderr io.Writer) *cli {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	// Usage is printed by us: to stdout for --help, and as a hint on
	// stderr after a bad flag (pflag would otherwise print it a second
	// time, and to stderr for --help).
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cli{name: name, fs: fs, stdout: stdout, stderr: stderr}
}

// parse parses args. When the command must stop there (after --help, or
// on a bad flag) it reports done with the exit code.
func (c *cli) parse(args []string, usage func(w io.Writer, fs *pflag.FlagSet)) (code int, done bool) {
	err := c.fs.Parse(args)
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, pflag.ErrHelp):
		usage(c.stdout, c.fs)
		return 0, true
	}
	return c.bad("%v", err), true
}

// bad reports a bad command line and returns ExitBadArguments.
func (c *cli) bad(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "garantia %s: %s\n", c.name, fmt.Sprintf(format, a...))
	fmt.Fprintf(c.stderr, "Run 'garantia %s --help' for its flags.\n", c.name)
	return verdict.ExitBadArguments
}

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/internal/crash"
)

// command is one subcommand. run gets the arguments after the subcommand's
// name and returns the process exit code.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands holds every subcommand; each file registers its own in init so
// that adding one never touches this file.
var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("garantia: subcommand registered twice: " + c.name)
	}
	commands[c.name] = c
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) (code int) {
	if len(args) == 0 {
		usage(stderr)
		return verdict.ExitBadArguments
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "garantia: unknown subcommand %q\n\n", args[0])
		usage(stderr)
		return verdict.ExitBadArguments
	}
	if stop := startCPUProfile(c.name, stderr); stop != nil {
		defer stop()
	}
	// A panic is a bug of ours: one line saying where, and 255 ("the
	// harness itself failed"), never the runtime's exit 2, which a release
	// gate would read as "unknown". Goroutines that run analyses recover on
	// their own and return the same error (package crash).
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "garantia %s: %v\n", c.name, crash.Errorf(r, c.name))
			code = verdict.ExitInternal
		}
	}()
	return c.run(args[1:], stdout, stderr)
}

// cpuProfileDirEnv names a folder where every garantia process (the
// harness and each broker it starts, which inherit the environment) writes
// a CPU profile, <subcommand>-<pid>.pprof: the way to see where a run's
// time goes across processes.
const cpuProfileDirEnv = "GARANTIA_CPU_PROFILE_DIR"

func startCPUProfile(name string, stderr io.Writer) (stop func()) {
	dir := os.Getenv(cpuProfileDirEnv)
	if dir == "" {
		return nil
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", name, os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "garantia: %s: %v (no CPU profile)\n", cpuProfileDirEnv, err)
		return nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "garantia: %s: %v (no CPU profile)\n", cpuProfileDirEnv, err)
		f.Close()
		return nil
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "garantia: a correctness checker for Kafka-style replicated logs")
	fmt.Fprintln(w, "\nUsage: garantia <subcommand> [flags]\n\nSubcommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'garantia <subcommand> --help' for its flags.")
	fmt.Fprintln(w, "Exit codes: 0 valid, 1 invalid, 2 unknown, 254 bad arguments, 255 internal failure.")
}

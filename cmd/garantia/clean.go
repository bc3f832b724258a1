package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/db/docker"
	"github.com/garantia/garantia/db/powerfs"
)

func init() {
	register(command{
		name:    "clean",
		summary: "remove the power-loss mounts, Docker containers and networks that crashed runs left",
		run:     runClean,
	})
}

// cleanTimeout bounds the whole clean: a hung engine must not hang it.
const cleanTimeout = 2 * time.Minute

// newCleanEngine is docker.NewEngine; tests replace it.
var newCleanEngine = docker.NewEngine

func runClean(args []string, stdout, stderr io.Writer) int {
	c := newCLI("clean", stdout, stderr)
	fs := c.fs
	fs.SortFlags = false
	var opts docker.CleanOptions
	fs.StringVar(&opts.Run, "run", "", "remove only this run's containers and network (the id in their garantia.run label)")
	fs.BoolVar(&opts.Images, "images", false, "also remove garantia's node images (rebuilt on the next --db docker run)")
	fs.BoolVar(&opts.Force, "force", false, "also remove what belongs to a harness still running, or to one on another host")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "list what would be removed; remove nothing")
	bad := c.bad
	if code, done := c.parse(args, cleanUsage); done {
		return code
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q (flags only)", fs.Arg(0))
	}
	if opts.Images && opts.Run != "" {
		return bad("--images removes images, which no run owns; it cannot go with --run")
	}

	// Power-loss mounts first: they need no engine, and a mount whose
	// harness died answers nothing but "transport endpoint is not
	// connected" until it is gone.
	if code := cleanMounts(opts.DryRun, stdout, stderr); code != verdict.ExitValid {
		return code
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cleanTimeout)
	defer cancel()
	eng, err := newCleanEngine()
	if err != nil {
		fmt.Fprintf(stderr, "garantia clean: %v\n", err)
		return verdict.ExitInternal
	}
	defer eng.Close()
	if _, err := eng.Version(ctx); err != nil {
		fmt.Fprintf(stderr, "garantia clean: %v (DOCKER_HOST=%q)\n", err, os.Getenv("DOCKER_HOST"))
		return verdict.ExitInternal
	}
	res, err := docker.Clean(ctx, eng, opts)
	verb := "removed"
	if opts.DryRun {
		verb = "would remove"
	}
	counts := map[string]int{}
	for _, r := range res.Removed {
		fmt.Fprintf(stdout, "%s %s\n", verb, r)
		counts[r.Kind]++
	}
	for _, r := range res.Kept {
		fmt.Fprintf(stdout, "kept %s: %s\n", r, r.Why)
	}
	fmt.Fprintf(stdout, "%s %d container(s), %d network(s), %d image(s); kept %d\n",
		verb, counts["container"], counts["network"], counts["image"], len(res.Kept))
	if err != nil {
		fmt.Fprintf(stderr, "garantia clean: %v\n", err)
		return verdict.ExitInternal
	}
	return verdict.ExitValid
}

// cleanMounts removes (or, with dryRun, lists) the powerfs mounts of
// harnesses that died: mounts of live processes, whoever they belong to,
// stay.
func cleanMounts(dryRun bool, stdout, stderr io.Writer) int {
	var stale []powerfs.Mounted
	var err error
	if dryRun {
		var all []powerfs.Mounted
		all, err = powerfs.Mounts()
		for _, m := range all {
			if m.Stale {
				stale = append(stale, m)
			}
		}
	} else {
		stale, err = powerfs.RemoveStale()
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	for _, m := range stale {
		fmt.Fprintf(stdout, "%s %s\n", verb, m)
	}
	if len(stale) > 0 {
		fmt.Fprintf(stdout, "%s %d stale power-loss mount(s)\n", verb, len(stale))
	}
	if err != nil {
		fmt.Fprintf(stderr, "garantia clean: %v\n", err)
		return verdict.ExitInternal
	}
	return verdict.ExitValid
}

func cleanUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintf(w, `Usage: garantia clean [flags]

Removes from the Docker engine the containers and networks of garantia
test --db docker runs (everything labelled %s=true) whose harness is no
longer running: what a crashed or killed run left behind. A run that ends
normally, fails or is interrupted with Ctrl-C removes its own. Each removed
thing is printed with its run id and run folder. The engine is the one the
environment names (DOCKER_HOST), else the local socket.

First it unmounts (lazily) the power-loss filesystems (FUSE mounts of type
fuse.garantia-powerfs) whose serving process is gone; their backing folders
stay as they were.

Exit codes: 0 done (also when there was nothing to remove), 254 bad
arguments, 255 the engine could not be reached or a removal failed.

Flags:
`, docker.LabelManaged)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

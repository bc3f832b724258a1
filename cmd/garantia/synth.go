package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/synth"
)

func init() {
	register(command{
		name:    "synth",
		summary: "write a synthetic history of a correct queue, optionally with one injected fault",
		run:     runSynth,
	})
}

func runSynth(args []string, stdout, stderr io.Writer) int {
	def := synth.DefaultConfig()
	fs := pflag.NewFlagSet("synth", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	ops := fs.Int("ops", def.Ops, "client events (history lines) of the main phase; the final drain and nemesis events come on top")
	keys := fs.Int("keys", def.Keys, "partitions (keys)")
	procs := fs.Int("processes", def.Processes, "concurrent client processes")
	infoRate := fs.Float64("info-rate", def.InfoRate, "fraction of operations that end indeterminate (info)")
	failRate := fs.Float64("fail-rate", def.FailRate, "fraction of operations that fail")
	acks0 := fs.Bool("acks0", false, "ok sends report no offset, as with acks=0")
	mops := fs.Int("mops-per-send", def.MopsPerSend, "largest number of messages in one send")
	maxPoll := fs.Int("max-poll-records", def.MaxPollRecords, "largest number of records one poll returns")
	nemesis := fs.Duration("nemesis-interval", def.NemesisInterval, "mean simulated time between nemesis events (0: none)")
	commitRate := fs.Float64("commit-rate", def.CommitRate, "fraction of ok polls after which the process commits the group's offsets as a commit op (0 with --fetch-rate 0: commits are not recorded; --fault lost-offset-commit sets both when neither is given)")
	fetchRate := fs.Float64("fetch-rate", def.FetchRate, "fraction of operations that fetch the group's committed offsets back (committed ops)")
	faultName := fs.String("fault", "", "inject one fault: "+faultNames())
	seed := fs.Int64("seed", 0, "random seed (default: from the clock; printed either way)")
	out := fs.String("out", "-", "history file to write (- for stdout)")
	// pflag calls Usage itself on --help; print it once, below, to stdout.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			synthUsage(stdout, fs)
			return 0
		}
		fmt.Fprintf(stderr, "garantia synth: %v (see garantia synth --help)\n", err)
		return verdict.ExitBadArguments
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "garantia synth: unexpected arguments %q (write the file with --out)\n", fs.Args())
		return verdict.ExitBadArguments
	}
	if !fs.Changed("seed") {
		*seed = time.Now().UnixNano()
	}
	cfg := synth.Config{
		Ops: *ops, Keys: *keys, Processes: *procs, InfoRate: *infoRate, FailRate: *failRate,
		Acks0: *acks0, Seed: *seed, MopsPerSend: *mops, SendRate: def.SendRate, AssignRate: def.AssignRate,
		MaxPollRecords: *maxPoll, NemesisInterval: *nemesis, CommitRate: *commitRate, FetchRate: *fetchRate,
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "garantia synth: %s\n", flagNames.Replace(strings.TrimPrefix(err.Error(), "synth: ")))
		return verdict.ExitBadArguments
	}
	var fault synth.Fault
	if *faultName != "" {
		var err error
		if fault, err = synth.ParseFault(*faultName); err != nil {
			fmt.Fprintf(stderr, "garantia synth: --fault: %s\n", strings.TrimPrefix(err.Error(), "synth: "))
			return verdict.ExitBadArguments
		}
		cfg = fault.Config(cfg) // what the fault needs a place in (commits)
	}
	// Progress and the seed go to stderr when the history goes to stdout.
	info := stdout
	if *out == "-" {
		info = stderr
	}

	started := time.Now()
	// With a fault the whole history is generated and rewritten in memory
	// first, so that a fault with no place to go leaves no file behind.
	var bad []histories.Op
	desc := "none"
	if fault != "" {
		h, err := synth.Generate(cfg)
		if err == nil {
			rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0xfa17))
			bad, desc, err = synth.Inject(h, fault, rng)
		}
		if errors.Is(err, synth.ErrNoCandidate) {
			fmt.Fprintf(stderr, "garantia synth: seed %d: %s\n", cfg.Seed, strings.TrimPrefix(err.Error(), "synth: "))
			return verdict.ExitBadArguments
		}
		if err != nil {
			fmt.Fprintf(stderr, "garantia synth: seed %d: %v\n", cfg.Seed, err)
			return verdict.ExitInternal
		}
	}

	var w *histories.Writer
	if *out == "-" {
		w = histories.NewWriter(stdout)
	} else {
		var err error
		if w, err = histories.Create(*out); err != nil {
			fmt.Fprintf(stderr, "garantia synth: --out: %v\n", err)
			return verdict.ExitBadArguments
		}
	}
	n := 0
	write := func(op histories.Op) error {
		n++
		return w.Write(op)
	}
	var err error
	if fault == "" {
		// Streamed: a history of any size is never held in memory.
		err = synth.Stream(cfg, write)
	} else {
		for i := 0; err == nil && i < len(bad); i++ {
			err = write(bad[i])
		}
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "garantia synth: writing %s: %v\n", *out, err)
		return verdict.ExitInternal
	}
	fmt.Fprintf(info, "synth: seed %d (reproduce with --seed %d)\n", cfg.Seed, cfg.Seed)
	fmt.Fprintf(info, "synth: fault injected: %s\n", desc)
	fmt.Fprintf(info, "synth: wrote %d events to %s in %s\n", n, *out, time.Since(started).Round(time.Millisecond))
	return 0
}

// flagNames turns Config field names in validation errors into the flags
// that set them.
var flagNames = strings.NewReplacer(
	"InfoRate+FailRate", "--info-rate + --fail-rate",
	"Ops", "--ops", "Keys", "--keys", "Processes", "--processes",
	"InfoRate", "--info-rate", "FailRate", "--fail-rate",
	"MopsPerSend", "--mops-per-send", "MaxPollRecords", "--max-poll-records",
	"NemesisInterval", "--nemesis-interval", "CommitRate", "--commit-rate", "FetchRate", "--fetch-rate",
)

func faultNames() string {
	var names []string
	for _, f := range synth.Faults() {
		names = append(names, string(f))
	}
	return strings.Join(names, ", ")
}

func synthUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintln(w, "Usage: garantia synth [flags]")
	fmt.Fprintln(w, "\nSimulates a correct Kafka-like queue under a Jepsen-style workload and writes")
	fmt.Fprintln(w, "its history (JSON Lines), ending with a final drain that reads every key, between")
	fmt.Fprintln(w, "the drain markers (f \"drain\", process -1) that garantia check needs to judge unseen. With")
	fmt.Fprintln(w, "--fault it injects one anomaly, which `garantia check` must then report. The")
	fmt.Fprintln(w, "seed and the injected fault are printed (to stderr when the history goes to")
	fmt.Fprintln(w, "stdout).\n\nExample: garantia synth --ops 1000000 --out /tmp/h.jsonl\n\nFlags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/broker/node"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/checker/verdict"
)

func init() {
	register(command{
		name:    "broker",
		summary: "run one Kafka-protocol broker node (the system under test)",
		run:     runBroker,
	})
}

// runBroker parses the broker flags and runs a node until SIGTERM or
// SIGINT, then shuts it down gracefully (listener, connections, storage).
func runBroker(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("garantia broker", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported below, once
	fs.SortFlags = false
	var (
		id         = fs.Int32("id", 1, "node id, at least 0")
		listen     = fs.String("listen", "127.0.0.1:9092", "HOST:PORT to serve the Kafka protocol on (port 0 picks a free one; the log line \"broker listening\" says which)")
		advertise  = fs.String("advertise", "", "HOST:PORT that Metadata tells clients to connect to (default: the address listened on)")
		dataDir    = fs.String("data-dir", "", "directory holding the partition logs and producer id state (required)")
		fsync      = storage.FsyncNever
		fsyncEvery = fs.Duration("fsync-interval", storage.DefaultFsyncInterval, "period of background syncs under --fsync interval")
		autoCreate = fs.Bool("auto-create-topics", false, "create unknown topics when a client's Metadata request allows it")
		partitions = fs.Int32("partitions", 1, "partition count of auto-created topics (and of CreateTopics asking for the default)")
		logFile    = fs.String("log-file", "", "append logs to this file instead of stderr")
		logFormat  = fs.String("log-format", "json", "log format: json or text")
		logLevel   = fs.String("log-level", "info", "log level: debug, info, warn or error")
		maxFrame   = fs.Int("max-frame-bytes", 100<<20, "largest request frame accepted; a larger one closes its connection")
	)
	fs.Var(&fsync, "fsync", "when appends reach stable storage: always (before acknowledging), interval, or never (Kafka's default)")
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "Usage: garantia broker --data-dir DIR [flags]")
		fmt.Fprintln(w, "\nRuns one broker node serving the Kafka protocol until SIGTERM or SIGINT.\n\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "garantia broker: "+format+"\n", a...)
		fmt.Fprintln(stderr, "Run 'garantia broker --help' for its flags.")
		return verdict.ExitBadArguments
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			usage(stdout)
			return 0
		}
		return bad("%v", err)
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q (flags only)", fs.Arg(0))
	}
	if *dataDir == "" {
		return bad("--data-dir is required")
	}
	if *id < 0 {
		return bad("--id %d: must be at least 0", *id)
	}
	if *partitions < 1 {
		return bad("--partitions %d: must be at least 1", *partitions)
	}
	if *fsyncEvery <= 0 {
		return bad("--fsync-interval %v: must be positive", *fsyncEvery)
	}
	if *maxFrame < 1 {
		return bad("--max-frame-bytes %d: must be positive", *maxFrame)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return bad("--log-level %q: want debug, info, warn or error", *logLevel)
	}

	var logOut io.Writer = stderr
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return bad("--log-file: %v", err)
		}
		defer f.Close()
		logOut = f
	}
	opts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler
	switch strings.ToLower(*logFormat) {
	case "json":
		handler = slog.NewJSONHandler(logOut, opts)
	case "text":
		handler = slog.NewTextHandler(logOut, opts)
	default:
		return bad("--log-format %q: want json or text", *logFormat)
	}
	logger := slog.New(handler)

	cfg := node.Config{
		ID:               *id,
		Listen:           *listen,
		Advertise:        *advertise,
		DataDir:          *dataDir,
		Fsync:            fsync,
		FsyncInterval:    *fsyncEvery,
		AutoCreateTopics: *autoCreate,
		Partitions:       *partitions,
		MaxFrameBytes:    *maxFrame,
		Logger:           logger,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		logger.Error("broker failed to start", "err", err)
		fmt.Fprintf(stderr, "garantia broker: %v\n", err)
		if errors.Is(err, node.ErrConfig) {
			return verdict.ExitBadArguments
		}
		return verdict.ExitInternal
	}
	select {
	case <-ctx.Done():
		logger.Info("broker shutting down", "reason", "signal")
	case <-n.Done():
		// The node stopped on its own (its listener failed).
	}
	// A second signal during shutdown kills the process the default way.
	stop()
	shutdownStart := time.Now()
	if err := n.Wait(); err != nil {
		fmt.Fprintf(stderr, "garantia broker: %v\n", err)
		return verdict.ExitInternal
	}
	logger.Info("broker shut down", "took", time.Since(shutdownStart).String())
	return 0
}

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/report"
)

func init() {
	register(command{
		name:    "serve",
		summary: "serve a web page over the run store (127.0.0.1:8080 by default)",
		run:     runServe,
	})
}

// shutdownTimeout bounds the wait for requests in flight after Ctrl-C.
const shutdownTimeout = 5 * time.Second

func runServe(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, args, stdout, stderr)
}

// serve runs the web server until ctx ends. The first line it prints to
// stdout is the URL it serves.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCLI("serve", stdout, stderr)
	fs := c.fs
	store := fs.String("store", "store", "the run store to serve")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on, HOST:PORT (port 0 picks a free one)")
	allowRemote := fs.Bool("allow-remote", false, "allow a --listen address other than loopback: the store's files become readable by anyone who can reach it")
	limit := fs.Int("limit", report.DefaultIndexLimit, "runs listed on the index page, newest first")
	if code, done := c.parse(args, serveUsage); done {
		return code
	}
	if fs.NArg() != 0 {
		return c.bad("unexpected argument %q (the store is --store)", fs.Arg(0))
	}
	if *limit < 1 {
		return c.bad("--limit: want 1 or more, got %d", *limit)
	}
	if err := checkLoopback(*listen); err != nil && !*allowRemote {
		return c.bad("--listen: %v (pass --allow-remote to serve beyond this machine)", err)
	}

	h, err := report.NewStoreHandler(*store)
	if err != nil {
		fmt.Fprintf(stderr, "garantia serve: %v (run garantia test first, or pass --store)\n", err)
		return verdict.ExitBadArguments
	}
	defer h.Close()
	h.Limit = *limit
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "garantia serve: %v\n", err)
		return verdict.ExitBadArguments
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Fprintf(stdout, "http://%s/\n", ln.Addr())
	fmt.Fprintf(stderr, "garantia serve: serving the store %s at http://%s/ (Ctrl-C stops)\n", *store, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "garantia serve: %v\n", err)
		return verdict.ExitInternal
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		fmt.Fprintf(stderr, "garantia serve: shutting down: %v\n", err)
	}
	<-errc
	fmt.Fprintln(stderr, "garantia serve: stopped")
	return 0
}

// checkLoopback refuses listen addresses that are not on loopback: an
// empty host (every interface), a name other than localhost, or an IP
// outside 127.0.0.0/8 and ::1.
func checkLoopback(listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("want HOST:PORT, got %q: %w", listen, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	switch {
	case host == "":
		return fmt.Errorf("%q listens on every interface, not only loopback", listen)
	case ip == nil:
		return fmt.Errorf("%q: host %q is not an IP address or localhost, so it may not be loopback", listen, host)
	case !ip.IsLoopback():
		return fmt.Errorf("%q is not a loopback address", listen)
	}
	return nil
}

func serveUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintln(w, `Usage: garantia serve [flags]

Serves a small web site over a run store: the runs, newest first, with their
verdict, test name, configuration and anomaly counts, each linked to its
report (built on first view when the run has none) and files. It listens on
loopback only unless --allow-remote is given, and serves only files inside
the store. Ctrl-C stops it.

Exit codes: 0 stopped by Ctrl-C, 254 bad arguments (no store, a non-loopback
address without --allow-remote, an address in use), 255 the server failed.

Flags:`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

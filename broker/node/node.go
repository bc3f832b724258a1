package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/garantia/garantia/broker/server"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
)

// ErrConfig: the configuration is invalid; nothing was started.
var ErrConfig = errors.New("broker config")

// Config is one node's configuration; the fields mirror the flags of
// `garantia broker`.
type Config struct {
	// ID is the node id (--id), at least 0.
	ID int32
	// Listen is the HOST:PORT to listen on (--listen); port 0 picks one,
	// and Addr tells which.
	Listen string
	// Advertise is the HOST:PORT Metadata gives clients (--advertise);
	// empty means the address actually listened on.
	Advertise string
	// DataDir holds the logs and the producer id state (--data-dir).
	// Required unless Store is set.
	DataDir string
	// Fsync and FsyncInterval are the storage fsync policy (--fsync,
	// --fsync-interval); "" means never, Kafka's default.
	Fsync         storage.FsyncPolicy
	FsyncInterval time.Duration
	// SegmentBytes is the storage segment size; 0 is storage's default.
	SegmentBytes int64
	// AutoCreateTopics lets Metadata create topics (--auto-create-topics)
	// with Partitions partitions (--partitions, at least 1).
	AutoCreateTopics bool
	Partitions       int32
	// MaxFrameBytes bounds a request frame; 0 means 100 MiB.
	MaxFrameBytes int
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Store, when set, is used instead of opening DataDir (tests run on
	// storage.NewMemStore). The node closes it on shutdown.
	Store storage.Store
}

func (c Config) validate() error {
	switch {
	case c.ID < 0:
		return fmt.Errorf("node id %d: must be at least 0", c.ID)
	case c.Listen == "":
		return errors.New("listen address is empty")
	case c.DataDir == "" && c.Store == nil:
		return errors.New("data directory is empty")
	case c.Partitions < 1:
		return fmt.Errorf("partitions %d: auto-created topics need at least 1", c.Partitions)
	case c.MaxFrameBytes < 0:
		return fmt.Errorf("max frame bytes %d is negative", c.MaxFrameBytes)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen address %q: %w", c.Listen, err)
	}
	if c.Advertise != "" {
		if _, _, err := splitAdvertise(c.Advertise); err != nil {
			return err
		}
	}
	return nil
}

func splitAdvertise(hostport string) (string, int32, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("advertise address %q: %w", hostport, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || host == "" {
		return "", 0, fmt.Errorf("advertise address %q: want HOST:PORT with a port in 1..65535", hostport)
	}
	return host, int32(p), nil
}

// Node is a running broker node.
type Node struct {
	addr net.Addr
	done chan struct{}
	err  error
}

// Addr is the address the node listens on.
func (n *Node) Addr() net.Addr { return n.addr }

// Done is closed once the node has stopped: listener and connections
// closed, every goroutine exited, storage closed.
func (n *Node) Done() <-chan struct{} { return n.done }

// Err is why the node stopped (nil after a shutdown by its context); call
// it after Done is closed.
func (n *Node) Err() error { return n.err }

// Wait blocks until the node stops and returns Err.
func (n *Node) Wait() error {
	<-n.done
	return n.err
}

// Start opens storage, listens, and serves until ctx ends. It returns once
// the node is listening (the log line "broker listening" is written then);
// startup failures are returned and leave nothing running.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.ID)

	store := cfg.Store
	if store == nil {
		s, err := storage.Open(cfg.DataDir, storage.Options{
			Fsync:         cfg.Fsync,
			FsyncInterval: cfg.FsyncInterval,
			SegmentBytes:  cfg.SegmentBytes,
			Logger:        logger.With("component", "storage"),
		})
		if err != nil {
			return nil, fmt.Errorf("broker: opening storage in %s: %w", cfg.DataDir, err)
		}
		store = s
	}
	fail := func(err error) (*Node, error) {
		if cerr := store.Close(); cerr != nil {
			logger.Error("closing storage after a failed start", "err", cerr)
		}
		return nil, err
	}

	pids, err := openProducerIDs(cfg.DataDir)
	if err != nil {
		return fail(fmt.Errorf("broker: %w", err))
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fail(fmt.Errorf("broker: listening on %s: %w", cfg.Listen, err))
	}
	advertise := cfg.Advertise
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	host, port, err := splitAdvertise(advertise)
	if err != nil {
		ln.Close()
		return fail(fmt.Errorf("broker: %w", err))
	}
	srv, err := server.New(server.Config{
		NodeID:            cfg.ID,
		AdvertisedHost:    host,
		AdvertisedPort:    port,
		AutoCreateTopics:  cfg.AutoCreateTopics,
		DefaultPartitions: cfg.Partitions,
		MaxFrameBytes:     cfg.MaxFrameBytes,
		Logger:            logger,
	}, store, pids)
	if err != nil {
		ln.Close()
		return fail(fmt.Errorf("broker: %w", err))
	}
	pids.atLeast(srv.MaxProducerID() + 1)

	maxFrame := cfg.MaxFrameBytes
	if maxFrame == 0 {
		maxFrame = wire.DefaultMaxFrameBytes
	}
	logger.Info("broker listening", "listen", ln.Addr().String(), "advertise", advertise,
		"data_dir", cfg.DataDir, "fsync", string(cfg.Fsync), "auto_create_topics", cfg.AutoCreateTopics,
		"partitions", cfg.Partitions, "max_frame_bytes", maxFrame)

	n := &Node{addr: ln.Addr(), done: make(chan struct{})}
	go func() {
		defer close(n.done)
		serveErr := srv.Serve(ctx, ln)
		closeErr := store.Close()
		if closeErr != nil {
			closeErr = fmt.Errorf("broker: closing storage: %w", closeErr)
		}
		n.err = errors.Join(serveErr, closeErr)
		if n.err != nil {
			logger.Error("broker stopped", "err", n.err)
		} else {
			logger.Info("broker stopped")
		}
	}()
	return n, nil
}

// Run is Start followed by Wait.
func Run(ctx context.Context, cfg Config) error {
	n, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	return n.Wait()
}

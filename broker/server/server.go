package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/garantia/garantia/broker/partition"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
)

// Config is what the server needs to know about its node.
type Config struct {
	// NodeID is this broker's id in Metadata and in every replica list.
	NodeID int32
	// AdvertisedHost and AdvertisedPort are what Metadata tells clients to
	// connect to.
	AdvertisedHost string
	AdvertisedPort int32
	// ClusterID is reported in Metadata; empty means "garantia".
	ClusterID string
	// AutoCreateTopics lets Metadata create unknown topics that the client
	// allows to be auto-created, with DefaultPartitions partitions.
	AutoCreateTopics bool
	// DefaultPartitions is the partition count of auto-created topics and
	// of CreateTopics requests that say -1; below 1 means 1.
	DefaultPartitions int32
	// MaxFrameBytes bounds one request; 0 means wire.DefaultMaxFrameBytes.
	MaxFrameBytes int
	// MaxInflightPerConn bounds requests read but not yet answered on one
	// connection; 0 means 64.
	MaxInflightPerConn int
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// ProducerIDs hands out idempotent producer ids that are never reused,
// not even across restarts.
type ProducerIDs interface {
	// NextProducerID returns a fresh producer id.
	NextProducerID() (int64, error)
}

// Server serves the Kafka protocol for one node.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store storage.Store
	pids  ProducerIDs

	mu     sync.RWMutex
	topics map[string]*topic
	byID   map[[16]byte]*topic
}

// New makes a server over store and opens the partition state of every
// topic already in it (rebuilding producer state from the logs).
func New(cfg Config, store storage.Store, pids ProducerIDs) (*Server, error) {
	if cfg.ClusterID == "" {
		cfg.ClusterID = "garantia"
	}
	if cfg.DefaultPartitions < 1 {
		cfg.DefaultPartitions = 1
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = wire.DefaultMaxFrameBytes
	}
	if cfg.MaxInflightPerConn <= 0 {
		cfg.MaxInflightPerConn = 64
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:    cfg,
		log:    logger,
		store:  store,
		pids:   pids,
		topics: make(map[string]*topic),
		byID:   make(map[[16]byte]*topic),
	}
	for name, n := range store.Topics() {
		t, err := s.openTopic(name, n, false)
		if err != nil {
			return nil, fmt.Errorf("server: opening existing topic %q: %w", name, err)
		}
		s.topics[name] = t
		s.byID[t.id] = t
	}
	return s, nil
}

// MaxProducerID is the largest producer id found in any log, or -1.
func (s *Server) MaxProducerID() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := int64(-1)
	for _, t := range s.topics {
		for _, p := range t.parts {
			m = max(m, p.MaxProducerID())
		}
	}
	return m
}

// Serve accepts connections on ln until ctx ends, then closes ln and every
// connection and returns once all of its goroutines have exited. It returns
// nil after a shutdown by ctx, or the accept error that stopped it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	stopListener := context.AfterFunc(ctx, func() { ln.Close() })
	defer stopListener()

	var err error
	var tempDelay time.Duration
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(aerr, net.ErrClosed) {
				err = fmt.Errorf("server: listener %s closed: %w", ln.Addr(), aerr)
				break
			}
			// Out of file descriptors and the like: back off and keep
			// serving the connections we have, as net/http does.
			tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", aerr, "delay", tempDelay)
			select {
			case <-time.After(tempDelay):
			case <-ctx.Done():
			}
			continue
		}
		tempDelay = 0
		cc := s.newConn(ctx, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc.serve()
		}()
	}
	cancel()
	ln.Close()
	wg.Wait()
	return err
}

// partitionOf returns the partition, or nil if the topic or partition does
// not exist.
func (s *Server) partitionOf(topic string, index int32) *partition.Partition {
	s.mu.RLock()
	t := s.topics[topic]
	s.mu.RUnlock()
	if t == nil || index < 0 || int(index) >= len(t.parts) {
		return nil
	}
	return t.parts[index]
}

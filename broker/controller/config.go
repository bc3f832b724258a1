package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/garantia/garantia/broker/metadata"
)

// ErrConfig: the configuration is invalid; nothing was started.
var ErrConfig = errors.New("controller config")

// Defaults of the zero values of Config's durations.
const (
	// DefaultSessionTimeout: Kafka's broker.session.timeout.ms is 9 s; a
	// test cluster on loopback wants faster failure detection.
	DefaultSessionTimeout = 3 * time.Second
	// DefaultHeartbeatInterval gives a broker ten heartbeats per session.
	DefaultHeartbeatInterval = 300 * time.Millisecond
	// DefaultElectionTimeout is Raft's heartbeat and election timeout, tuned
	// for loopback: followers start an election after 1–2× this without
	// hearing from the leader, so a controller failover takes about 1 s.
	// hashicorp/raft's default (1 s) suits real networks.
	DefaultElectionTimeout = 500 * time.Millisecond
	// DefaultRequestTimeout bounds one attempt of one controller RPC.
	DefaultRequestTimeout = 2 * time.Second
	// DefaultSnapshotThreshold is how many log entries trigger a snapshot of
	// the metadata (raft's default is 8192; ours are few and small).
	DefaultSnapshotThreshold = 1024
)

// Config is one node's controller configuration. The fields mirror the
// flags of `garantia broker` (--id, --controller-listen, --peer,
// --data-dir, --advertise, --session-timeout).
type Config struct {
	// NodeID is this broker's id, at least 0; it is also its Raft server id
	// (in decimal).
	NodeID int32
	// Listen is the HOST:PORT of the controller port, carrying both Raft
	// traffic and controller RPCs. Ignored when Listener is set.
	Listen string
	// Listener, when set, is used instead of listening on Listen (tests
	// bind port 0 listeners first so the peers' addresses are known). The
	// controller closes it.
	Listener net.Listener
	// Peers maps every other voter's broker id to the controller address by
	// which THIS node reaches it (possibly a proxy for the link
	// this node → that peer). The voters are this node and the peers; every
	// node must be given the same set of ids.
	Peers map[int32]string
	// DataDir is the broker's data directory; the Raft log, stable store and
	// snapshots go to DataDir/controller.
	DataDir string
	// Advertised is this broker's client-facing address, registered with
	// the controller; its ID and Fenced fields are ignored.
	Advertised metadata.Broker
	// SessionTimeout: a broker whose last heartbeat the controller received
	// longer ago than this is fenced. Zero means DefaultSessionTimeout.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often this node heartbeats to the
	// controller; it must be below SessionTimeout. Zero means
	// DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// ElectionTimeout sets Raft's HeartbeatTimeout and ElectionTimeout;
	// LeaderLeaseTimeout (how long a leader cut off from a quorum keeps
	// acting as one) is half of it. At least 50ms; zero means
	// DefaultElectionTimeout.
	ElectionTimeout time.Duration
	// RequestTimeout bounds one attempt of one controller RPC (the whole
	// call is bounded by its context). Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// SnapshotThreshold and TrailingLogs are Raft's: a snapshot is taken
	// every SnapshotThreshold entries and TrailingLogs entries are kept
	// after it (a follower further behind gets the snapshot). Zero means
	// DefaultSnapshotThreshold for both.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// Logger receives structured logs, Raft's included (Info and above);
	// nil discards them.
	Logger *slog.Logger

	// snapshotInterval is how often Raft checks SnapshotThreshold (raft's
	// default, 120 s, when zero); tests lower it to exercise snapshots.
	snapshotInterval time.Duration
}

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	if c.NodeID < 0 {
		return c, fmt.Errorf("node id %d: must be at least 0", c.NodeID)
	}
	if c.Listener == nil {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return c, fmt.Errorf("controller listen address %q: %w", c.Listen, err)
		}
	}
	for id, addr := range c.Peers {
		switch {
		case id < 0:
			return c, fmt.Errorf("peer id %d: must be at least 0", id)
		case id == c.NodeID:
			return c, fmt.Errorf("peer id %d is this node's own id", id)
		}
		if _, err := splitHostPort(addr); err != nil {
			return c, fmt.Errorf("peer %d controller address: %w", id, err)
		}
	}
	if c.DataDir == "" {
		return c, errors.New("data directory is empty")
	}
	c.Advertised.ID = c.NodeID
	c.Advertised.Fenced = false
	if c.Advertised.Host == "" || c.Advertised.Port < 1 || c.Advertised.Port > 65535 {
		return c, fmt.Errorf("advertised address %s:%d: want a host and a port in 1..65535",
			c.Advertised.Host, c.Advertised.Port)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"session timeout", &c.SessionTimeout, DefaultSessionTimeout},
		{"heartbeat interval", &c.HeartbeatInterval, DefaultHeartbeatInterval},
		{"election timeout", &c.ElectionTimeout, DefaultElectionTimeout},
		{"request timeout", &c.RequestTimeout, DefaultRequestTimeout},
	} {
		if *d.v < 0 {
			return c, fmt.Errorf("%s %s is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		return c, fmt.Errorf("heartbeat interval %s must be below the session timeout %s",
			c.HeartbeatInterval, c.SessionTimeout)
	}
	if c.ElectionTimeout < 50*time.Millisecond {
		return c, fmt.Errorf("election timeout %s: must be at least 50ms", c.ElectionTimeout)
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultSnapshotThreshold
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func splitHostPort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || host == "" {
		return "", fmt.Errorf("%q: want HOST:PORT with a port in 1..65535", addr)
	}
	return host, nil
}

package runner

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ClusterReady says whether the broker forms a multi-node, replicating
// cluster. Until the cluster issue lands it does not: independent brokers
// would each claim every partition, and the history would show anomalies
// of the harness, not of the broker. Validate refuses --nodes > 1 and
// --replication-factor > 1 while this is false.
const ClusterReady = false

// Config is everything a run needs. Each field with a flag names it.
type Config struct {
	Nodes                 int           // --nodes
	ReplicationFactor     int           // --replication-factor
	MinInsyncReplicas     int           // --min-insync-replicas
	Acks                  string        // --acks: "0", "1" or "all"
	TimeLimit             time.Duration // --time-limit
	Rate                  float64       // --rate: ops/s over all processes; 0 unlimited
	Concurrency           int           // --concurrency
	Nemesis               []string      // --nemesis: none, kill, pause
	NemesisInterval       time.Duration // --nemesis-interval
	Seed                  int64         // --seed (the command draws one when not given)
	DB                    string        // --db: local or docker
	Store                 string        // --store
	UncleanLeaderElection bool          // --unclean-leader-election
	Fsync                 string        // --fsync: always, interval, never; "" is the broker's default
	Bugs                  []string      // --bug, passed to every broker
	Partitions            int           // --partitions: the keys

	// TestName names the test's folder in the store; "" derives one from
	// the workload, acks and faults ("queue-acks-all-kill").
	TestName string
	// BrokerBinary is the garantia executable that serves `broker`; ""
	// means this process's own executable.
	BrokerBinary string
	// OpTimeout bounds each client operation; 0 means the workload's
	// default.
	OpTimeout time.Duration
	// DrainTimeout bounds the final drain; 0 means the workload's default.
	DrainTimeout time.Duration
	// Progress receives the start line, the live progress line and
	// warnings (normally stderr); nil discards them.
	Progress io.Writer
	// Out receives the summary (normally stdout); nil discards it.
	Out io.Writer
}

// Defaults are the flag defaults of garantia test.
func Defaults() Config {
	return Config{
		// 3 once the cluster issue lands; a single node until then.
		Nodes:             1,
		ReplicationFactor: 1,
		MinInsyncReplicas: 1,
		Acks:              "all",
		TimeLimit:         30 * time.Second,
		Rate:              1000,
		Concurrency:       10,
		Nemesis:           []string{"none"},
		NemesisInterval:   5 * time.Second,
		DB:                "local",
		Store:             "store",
		Partitions:        4,
	}
}

// Faults the runner's own fault loop knows.
var knownFaults = map[string]string{
	"kill":  "SIGKILL a random node, restart it one interval later",
	"pause": "SIGSTOP a random node, SIGCONT it one interval later",
}

// FlagError is a configuration error; Flag names the flag at fault.
type FlagError struct {
	Flag string
	Msg  string
}

func (e *FlagError) Error() string { return "--" + e.Flag + ": " + e.Msg }

func flagErr(flag, format string, args ...any) error {
	return &FlagError{Flag: flag, Msg: fmt.Sprintf(format, args...)}
}

// IsFlagError reports whether err is (or wraps) a configuration error.
func IsFlagError(err error) bool {
	var fe *FlagError
	return errors.As(err, &fe)
}

// maxPartitions bounds --partitions: each key is a porcupine search and a
// drain consumer.
const maxPartitions = 1024

// Validate checks c, naming the flag of the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Nodes < 1:
		return flagErr("nodes", "want 1 or more, got %d", c.Nodes)
	case c.Nodes > 1 && !ClusterReady:
		return flagErr("nodes", "%d nodes: the broker does not form a replicating cluster yet (replication arrives with the cluster issue); use --nodes 1", c.Nodes)
	case c.ReplicationFactor < 1:
		return flagErr("replication-factor", "want 1 or more, got %d", c.ReplicationFactor)
	case c.ReplicationFactor > 1 && !ClusterReady:
		return flagErr("replication-factor", "%d: replication arrives with the cluster issue; until then only 1 works", c.ReplicationFactor)
	case c.ReplicationFactor > c.Nodes:
		return flagErr("replication-factor", "%d is more than the %d nodes", c.ReplicationFactor, c.Nodes)
	case c.MinInsyncReplicas < 1:
		return flagErr("min-insync-replicas", "want 1 or more, got %d", c.MinInsyncReplicas)
	case c.MinInsyncReplicas > c.ReplicationFactor:
		return flagErr("min-insync-replicas", "%d is more than the replication factor %d: no write could succeed", c.MinInsyncReplicas, c.ReplicationFactor)
	case c.Acks != "0" && c.Acks != "1" && c.Acks != "all":
		return flagErr("acks", "want 0, 1 or all, got %q", c.Acks)
	case c.TimeLimit <= 0:
		return flagErr("time-limit", "want a positive duration, got %s", c.TimeLimit)
	case c.Rate < 0:
		return flagErr("rate", "want 0 (unlimited) or more, got %g", c.Rate)
	case c.Concurrency < 1:
		return flagErr("concurrency", "want 1 or more, got %d", c.Concurrency)
	case c.Partitions < 1 || c.Partitions > maxPartitions:
		return flagErr("partitions", "want 1 to %d, got %d", maxPartitions, c.Partitions)
	case c.Store == "":
		return flagErr("store", "want a folder")
	}
	switch c.DB {
	case "local":
	case "docker":
		return flagErr("db", "docker: not implemented yet, see issue 6; use --db local")
	default:
		return flagErr("db", "want local or docker, got %q", c.DB)
	}
	switch c.Fsync {
	case "", "always", "interval", "never":
	default:
		return flagErr("fsync", "want always, interval or never, got %q", c.Fsync)
	}
	for _, b := range c.Bugs {
		if b == "" || strings.HasPrefix(b, "-") {
			return flagErr("bug", "want a bug name, got %q", b)
		}
	}
	faults, err := c.faults()
	if err != nil {
		return err
	}
	if len(faults) > 0 && c.NemesisInterval < 100*time.Millisecond {
		return flagErr("nemesis-interval", "want 100ms or more, got %s", c.NemesisInterval)
	}
	return nil
}

// faults returns the fault names of --nemesis, without "none".
func (c *Config) faults() ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, f := range c.Nemesis {
		f = strings.TrimSpace(f)
		switch {
		case f == "none":
			if len(c.Nemesis) > 1 {
				return nil, flagErr("nemesis", "none cannot be combined with other faults")
			}
		case knownFaults[f] != "":
			if !seen[f] {
				out = append(out, f)
				seen[f] = true
			}
		case f == "":
			return nil, flagErr("nemesis", "empty fault name")
		default:
			return nil, flagErr("nemesis", "unknown fault %q: this version knows none, kill and pause (partitions and the rest arrive with the nemesis issue)", f)
		}
	}
	return out, nil
}

// Name is the test's folder name in the store.
func (c *Config) Name() string {
	if c.TestName != "" {
		return c.TestName
	}
	faults, _ := c.faults()
	n := "queue-acks-" + c.Acks
	if len(faults) > 0 {
		n += "-" + strings.Join(faults, "+")
	}
	return n
}

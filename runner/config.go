package runner

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/garantia/garantia/nemesis"
	"github.com/garantia/garantia/workloads/queue"
)

// Config is everything a run needs. Each field with a flag names it.
type Config struct {
	Nodes                 int           // --nodes
	ReplicationFactor     int           // --replication-factor
	MinInsyncReplicas     int           // --min-insync-replicas
	Acks                  string        // --acks: "0", "1" or "all"
	TimeLimit             time.Duration // --time-limit
	Rate                  float64       // --rate: ops/s over all processes; 0 unlimited
	Concurrency           int           // --concurrency
	Nemesis               []string      // --nemesis: kinds[:targets] (package nemesis) or none; nil is DefaultNemesis
	NemesisInterval       time.Duration // --nemesis-interval
	Seed                  int64         // --seed (the command draws one when not given)
	DB                    string        // --db: local or docker
	Store                 string        // --store
	UncleanLeaderElection bool          // --unclean-leader-election
	Fsync                 string        // --fsync: always, interval, never; "" is the broker's default
	Bugs                  []string      // --bug, passed to every broker
	Partitions            int           // --partitions: the keys
	SessionTimeout        time.Duration // --session-timeout: the brokers' (cluster mode); 0 their default
	ReplicaLagTimeMax     time.Duration // --replica-lag-time-max: the brokers' (cluster mode); 0 their default
	PowerFS               bool          // --powerfs: the data folders on the power-loss filesystem even without power faults
	PowerMode             string        // --powerfs-mode: strict or ordered; "" is strict
	PowerTorn             bool          // --powerfs-torn: a power cut leaves each file's last unsynced write torn
	ConsumeVia            string        // --consume-via: assign, subscribe or mixed (Jepsen's :sub-via); "" is assign

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

// Defaults are the flag defaults of garantia test: a 3-node cluster with
// replication factor 3 and min.insync.replicas 2, the smallest in which
// acks=all survives the loss of one node and a minority can be cut off.
func Defaults() Config {
	return Config{
		Nodes:             3,
		ReplicationFactor: 3,
		MinInsyncReplicas: 2,
		Acks:              "all",
		TimeLimit:         30 * time.Second,
		Rate:              1000,
		Concurrency:       10,
		NemesisInterval:   5 * time.Second,
		DB:                "local",
		Store:             "store",
		Partitions:        4,
	}
}

// DefaultNemesis is the fault list of a cluster of nodes nodes when
// --nemesis is not given: partitions and kills, or kills alone on a
// single node, where there is no link to cut.
func DefaultNemesis(nodes int) []string {
	if nodes > 1 {
		return []string{"partition", "kill"}
	}
	return []string{"kill"}
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
	case c.ReplicationFactor < 1:
		return flagErr("replication-factor", "want 1 or more, got %d", c.ReplicationFactor)
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
	case c.ConsumeVia != "" && !slices.Contains(queue.ConsumeVias, c.ConsumeVia):
		return flagErr("consume-via", "want %s, got %q", strings.Join(queue.ConsumeVias, ", "), c.ConsumeVia)
	}
	switch c.DB {
	case "local":
	case "docker":
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
	specs, err := c.Specs()
	if err != nil {
		return err
	}
	if len(specs) > 0 && c.NemesisInterval < 100*time.Millisecond {
		return flagErr("nemesis-interval", "want 100ms or more, got %s", c.NemesisInterval)
	}
	if c.SessionTimeout < 0 {
		return flagErr("session-timeout", "want a positive duration, got %s", c.SessionTimeout)
	}
	if c.ReplicaLagTimeMax < 0 {
		return flagErr("replica-lag-time-max", "want a positive duration, got %s", c.ReplicaLagTimeMax)
	}
	if _, err := c.powerOptions(); err != nil {
		return err
	}
	if !c.NeedsPowerFS() {
		// The filesystem's options would do nothing: say so, rather than
		// let someone believe torn writes were tested.
		switch {
		case c.PowerMode != "":
			return flagErr("powerfs-mode", "the power-loss filesystem is mounted only for power faults (--nemesis power...) or with --powerfs")
		case c.PowerTorn:
			return flagErr("powerfs-torn", "the power-loss filesystem is mounted only for power faults (--nemesis power...) or with --powerfs")
		}
	}
	return nil
}

// NemesisItems is --nemesis as given, or the default for the cluster size.
func (c *Config) NemesisItems() []string {
	if len(c.Nemesis) == 0 {
		return DefaultNemesis(c.Nodes)
	}
	return c.Nemesis
}

// Specs parses --nemesis and resolves its targets for the cluster size
// (package nemesis); nil means no faults.
func (c *Config) Specs() ([]nemesis.Spec, error) {
	specs, err := nemesis.ParseSpecs(c.NemesisItems())
	if err == nil {
		specs, err = nemesis.Resolve(specs, c.Nodes)
	}
	if err != nil {
		return nil, flagErr("nemesis", "%v", strings.TrimPrefix(err.Error(), nemesis.ErrSpec.Error()+": "))
	}
	return specs, nil
}

// Name is the test's folder name in the store: the workload, how it
// consumes when not by assign, the acks and the fault kinds
// ("queue-acks-1-partition+kill", "queue-subscribe-acks-all-kill").
func (c *Config) Name() string {
	if c.TestName != "" {
		return c.TestName
	}
	specs, _ := c.Specs()
	n := "queue-acks-" + c.Acks
	if c.ConsumeVia != "" && c.ConsumeVia != queue.ConsumeAssign {
		n = "queue-" + c.ConsumeVia + "-acks-" + c.Acks
	}
	if len(specs) > 0 {
		kinds := make([]string, len(specs))
		for i, s := range specs {
			kinds[i] = string(s.Kind)
		}
		n += "-" + strings.Join(kinds, "+")
	}
	return n
}

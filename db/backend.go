package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// This file holds what the backends share beyond the DB interface: the
// options that mean the same in every backend, the run folder's layout,
// the table of nodes, the wait for a node to answer and the errors and
// log lines of a start. One copy keeps the backends from drifting apart,
// so that a test run on either starts the same brokers and says the same
// when one does not come up; each backend keeps only how it starts,
// stops, signals and cuts.

// DefaultStopGrace is how long a backend waits after SIGTERM before it
// sends SIGKILL when it stops a node gracefully (Teardown).
const DefaultStopGrace = 2 * time.Second

// Config holds the options every backend takes, with one meaning: each
// backend's Options embeds it.
type Config struct {
	// Binary is the garantia executable the nodes run, as `Binary broker
	// ...`; "" means this process's own (os.Executable). Tests, whose
	// executable is the test binary, build garantia and pass its path.
	Binary string
	// Nodes is how many broker nodes to run, 1 or more.
	Nodes int
	// Dir is the run's store folder; node nK keeps Dir/nK/data and writes
	// Dir/nK/broker.log (LayOut). It must exist.
	Dir string

	// Fsync is passed as --fsync when not "".
	Fsync string
	// AutoCreateTopics passes --auto-create-topics.
	AutoCreateTopics bool
	// Partitions, when above 0, is passed as --partitions (the partition
	// count of auto-created topics).
	Partitions int
	// Bugs are passed as one --bug NAME each.
	Bugs []string
	// Cluster, when not nil, runs the nodes as one replicating cluster:
	// each gets a controller port (--controller-listen), a --peer flag
	// for every other node and the flags of Cluster. nil runs
	// independent single-node brokers.
	Cluster *Cluster
	// ExtraArgs, when set, returns more broker flags for a node.
	ExtraArgs func(n Node) []string

	// ReadyTimeout bounds Setup's and WaitReady's wait for a node to
	// answer Kafka requests; 0 means DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StartWait bounds Start's wait for a restarted node to answer before
	// it returns anyway (see DB.Start); 0 means DefaultStartWait.
	StartWait time.Duration
	// StopGrace is the wait between SIGTERM and SIGKILL when a node is
	// stopped gracefully; 0 means DefaultStopGrace.
	StopGrace time.Duration
}

// WithDefaults checks c for a backend that runs 1 to maxNodes nodes (0:
// no upper bound) and returns it with every unset field set to its default. Its errors begin
// with backend, such as "local db", as the backend's own errors do, and
// name the field.
func (c Config) WithDefaults(backend string, maxNodes int) (Config, error) {
	switch {
	case maxNodes <= 0 && c.Nodes < 1:
		return c, fmt.Errorf("%s: nodes: want 1 or more, got %d", backend, c.Nodes)
	case maxNodes > 0 && (c.Nodes < 1 || c.Nodes > maxNodes):
		return c, fmt.Errorf("%s: nodes: want 1 to %d, got %d", backend, maxNodes, c.Nodes)
	}
	if c.Dir == "" {
		return c, fmt.Errorf("%s: Dir: the run folder is required", backend)
	}
	if st, err := os.Stat(c.Dir); err != nil {
		return c, fmt.Errorf("%s: Dir: %w", backend, err)
	} else if !st.IsDir() {
		return c, fmt.Errorf("%s: Dir: %s is not a folder", backend, c.Dir)
	}
	if c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("%s: find the garantia executable: %w", backend, err)
		}
		c.Binary = exe
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.StartWait <= 0 {
		c.StartWait = DefaultStartWait
	}
	if c.StopGrace <= 0 {
		c.StopGrace = DefaultStopGrace
	}
	return c, nil
}

// BrokerArgs returns the broker flags of c's settings that are the same
// for every node, in a fixed order: the broker flags, then the cluster's
// (not the per-node --controller-listen and --peer flags, which only a
// backend knows).
func (c Config) BrokerArgs() []string {
	var a []string
	if c.Fsync != "" {
		a = append(a, "--fsync", c.Fsync)
	}
	if c.AutoCreateTopics {
		a = append(a, "--auto-create-topics")
	}
	if c.Partitions > 0 {
		a = append(a, "--partitions", strconv.Itoa(c.Partitions))
	}
	for _, b := range c.Bugs {
		a = append(a, "--bug", b)
	}
	if c.Cluster != nil {
		a = append(a, c.Cluster.Args()...)
	}
	return a
}

// NodeFiles is one node of a run and where it keeps its files. A
// backend's own node type embeds it.
type NodeFiles struct {
	Node           // its ID and Name; the backend sets the addresses
	DataDir string // the broker's --data-dir on the host
	LogPath string // its broker.log
}

// Files returns f itself: the method by which a Table reaches the
// NodeFiles inside a backend's node type.
func (f *NodeFiles) Files() *NodeFiles { return f }

// LayOut returns the nodes n1 to nN of a run of count nodes whose run
// folder is runDir: node nK keeps its data in runDir/nK/data and its log
// in runDir/nK/broker.log. Every backend uses this one layout, so that the
// run's report finds the logs of either in the same place, and a
// filesystem mounted under the nodes knows where their data goes.
func LayOut(runDir string, count int) []NodeFiles {
	out := make([]NodeFiles, 0, count)
	for i := 1; i <= count; i++ {
		id := int32(i)
		name := NameOf(id)
		dir := filepath.Join(runDir, name)
		out = append(out, NodeFiles{
			Node:    Node{ID: id, Name: name},
			DataDir: filepath.Join(dir, "data"),
			LogPath: filepath.Join(dir, "broker.log"),
		})
	}
	return out
}

// Table is a backend's nodes in id order (n1 first), each of the
// backend's own type N, which embeds NodeFiles. The nodes' addresses
// change under the backend's lock, which the table shares.
type Table[N interface{ Files() *NodeFiles }] struct {
	mu    *sync.Mutex
	nodes []N
}

// NewTable lays out count nodes in runDir (LayOut) and makes each
// backend node with newNode; mu is the lock under which the backend sets
// their addresses.
func NewTable[N interface{ Files() *NodeFiles }](mu *sync.Mutex, runDir string, count int, newNode func(NodeFiles) N) Table[N] {
	t := Table[N]{mu: mu}
	for _, f := range LayOut(runDir, count) {
		t.nodes = append(t.nodes, newNode(f))
	}
	return t
}

// All returns the backend's nodes, in id order.
func (t Table[N]) All() []N { return t.nodes }

// Nodes lists the nodes as the DB interface does.
func (t Table[N]) Nodes() []Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Node, len(t.nodes))
	for i, n := range t.nodes {
		out[i] = n.Files().Node
	}
	return out
}

// LogFiles maps each node's name to its broker.log.
func (t Table[N]) LogFiles() map[string]string {
	m := make(map[string]string, len(t.nodes))
	for _, n := range t.nodes {
		m[n.Files().Name] = n.Files().LogPath
	}
	return m
}

// Lookup finds the node want names: by id, and by name when it has one.
func (t Table[N]) Lookup(want Node) (N, error) {
	for _, n := range t.nodes {
		if f := n.Files(); f.ID == want.ID && (want.Name == "" || want.Name == f.Name) {
			return n, nil
		}
	}
	var zero N
	return zero, fmt.Errorf("%w: %q (id %d)", ErrUnknownNode, want.Name, want.ID)
}

// ByName finds the node called name.
func (t Table[N]) ByName(name string) (N, error) {
	for _, n := range t.nodes {
		if n.Files().Name == name {
			return n, nil
		}
	}
	var zero N
	return zero, fmt.Errorf("%w: %q", ErrUnknownNode, name)
}

// ForEach calls act for every node concurrently and joins the errors:
// the nodes of a cluster need each other (a broker serves only once a
// controller quorum has registered it), so one at a time would make the
// first wait for the others.
func ForEach[N any](nodes []N, act func(N) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = act(n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readyPoll is how often AwaitReady probes a node.
const readyPoll = 25 * time.Millisecond

// AwaitReady probes the node at addr with Kafka ApiVersions requests
// (probe, normally Probe) until it answers, until gone reports that its
// process is gone (an error wrapping ErrExited; gone is asked after every
// failed probe and is given the probe's count), or until timeout or ctx
// runs out: ErrNotReady naming the last probe's error, or ctx's error.
func AwaitReady(ctx context.Context, addr string, timeout time.Duration, probe func(context.Context, string) error, gone func(probes int) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for i := 0; ; i++ {
		probeCtx, probeCancel := context.WithTimeout(ctx, time.Second)
		last := probe(probeCtx, addr)
		probeCancel()
		if last == nil {
			return nil
		}
		if err := gone(i); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("%w within %s: last probe: %v", ErrNotReady, timeout, last)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// logTailBytes bounds the end of a node's log that an error quotes.
const logTailBytes = 2048

// StartError is the error of a node that did not come up: err with the
// end of what the node wrote since logStart (its log usually says why).
// It begins with backend, such as "local db".
func StartError(backend string, n *NodeFiles, logStart int64, err error) error {
	if tail := LogTail(n.LogPath, logStart, logTailBytes); tail != "" {
		return fmt.Errorf("%s: %s at %s: %w; %s ends with:\n%s", backend, n.Name, n.Addr, err, n.LogPath, tail)
	}
	return fmt.Errorf("%s: %s at %s: %w", backend, n.Name, n.Addr, err)
}

// LogTail returns up to the last max bytes of the file at path from
// offset from on, trimmed of surrounding white space: what a node wrote
// since it was last started, for an error to quote. It returns "" when the
// file cannot be read or is shorter than from.
func LogTail(path string, from int64, max int) string {
	b, err := os.ReadFile(path)
	if err != nil || from > int64(len(b)) {
		return ""
	}
	b = b[from:]
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.TrimSpace(b))
}

// HarnessLine writes one line of the harness into a node's log: "===
// garantia harness: " then msg, then the time. The lines say when the
// harness started a node and what it saw, among the broker's own.
func HarnessLine(w io.Writer, msg string) {
	fmt.Fprintf(w, "=== garantia harness: %s at %s\n", msg, time.Now().UTC().Format(time.RFC3339Nano))
}

// StartLine writes the harness's line that starts a run of node n in its
// log: how says what runs (a command line, a container).
func StartLine(w io.Writer, n *NodeFiles, how string) {
	fmt.Fprintf(w, "=== garantia harness: starting %s at %s: %s\n", n.Name, time.Now().UTC().Format(time.RFC3339Nano), how)
}

// Started decides what the readiness wait of a start means (see
// DB.Start): err is AwaitReady's. Setup (strict) needs the node to
// answer; a restart does not, and a node running but not answering
// within the start wait is left running (with faults in force it may be
// waiting for a controller quorum: the system's business, for the final
// heal's WaitReady to judge), noted in its log by note. It returns the
// error that stands.
func Started(err error, strict bool, wait time.Duration, n *NodeFiles, note func(msg string)) error {
	if err != nil && !strict && errors.Is(err, ErrNotReady) {
		note(fmt.Sprintf("%s does not answer yet after %s; it keeps running", n.Name, wait))
		return nil
	}
	return err
}

package db

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Node is one broker node of a test.
type Node struct {
	// ID is the broker id (Kafka's broker.id), 1, 2, 3, ...
	ID int32 `json:"id"`
	// Name is the node's name in histories and logs: "n1" for ID 1.
	Name string `json:"name"`
	// Addr is the host:port a client dials to reach the node: the
	// broker's own Kafka listener. Clients are never partitioned from
	// nodes (Jepsen's model: the network between the nodes fails, every
	// client reaches every node), so no proxy stands in between; only the
	// links between nodes go through the backend's fault machinery.
	Addr string `json:"addr"`
	// Controller is the host:port of the node's controller listener (Raft
	// and controller RPCs) in cluster mode; "" otherwise.
	Controller string `json:"controller,omitempty"`
}

// NameOf is the conventional name of the node with broker id id: "n1" for 1.
func NameOf(id int32) string { return "n" + strconv.Itoa(int(id)) }

// DB is a backend that runs the broker nodes of a test.
//
// Every method that changes a node waits until the change is done: Setup
// returns once every node answers Kafka requests, Start once the node's
// process runs (see Start for how long it waits for the node to answer),
// Kill once the process is gone. Methods are safe for concurrent use.
//
// Readiness (answering a Kafka ApiVersions request) is the harness's
// business only at two moments: at Setup, before the workload starts, and
// at the final heal, before the drain, when every fault has ended
// (WaitReady). A node restarted while faults are in force may be unable
// to serve: in cluster mode a broker opens its Kafka port only once the
// Raft controller has registered it, which needs a quorum that a
// partition or a killed majority can deny. That is the system's business,
// for the history to show, never a harness failure.
type DB interface {
	// Setup starts every node and returns once each one answers a Kafka
	// ApiVersions request. On error the nodes already started keep running
	// until Teardown, so that their logs can be read.
	Setup(ctx context.Context) error

	// Nodes lists the nodes in id order. It is valid after Setup.
	Nodes() []Node

	// Kill stops node abruptly (SIGKILL or its equivalent): no shutdown
	// code runs, unsynced writes in the process are gone, the data folder
	// stays. Killing a node that is not running is a no-op.
	Kill(ctx context.Context, node Node) error

	// Start restarts a killed node on its old data folder and address and
	// returns once its process runs and either answers Kafka requests or
	// has had the backend's start wait (DefaultStartWait) to do so,
	// whichever comes first. Not answering in time is not an error: the
	// node keeps running, and may well be waiting for a quorum that the
	// faults in force deny (see DB). Start fails only when the node could
	// not be started or its process exited during the wait (ErrExited).
	// Starting a running node is a no-op.
	Start(ctx context.Context, node Node) error

	// WaitReady returns once node answers a Kafka ApiVersions request. It
	// fails with ErrNotReady after the backend's ready timeout
	// (DefaultReadyTimeout) or when the node is not running, and with
	// ErrExited when its process exits meanwhile. Setup waits this way
	// for every node; the final heal, after every fault has ended, too.
	WaitReady(ctx context.Context, node Node) error

	// Pause freezes node (SIGSTOP): its sockets stay open but it answers
	// nothing, like a long GC pause or a stalled VM. It returns once the
	// node is frozen.
	Pause(ctx context.Context, node Node) error

	// Resume unfreezes a paused node (SIGCONT).
	Resume(ctx context.Context, node Node) error

	// Teardown stops every node and releases everything Setup took. It is
	// always safe to call, also twice, also after a failed Setup.
	Teardown(ctx context.Context) error

	// LogFiles maps each node's name to the path of its log file.
	LogFiles() map[string]string
}

// Partitioner is implemented by backends that can cut the links between
// nodes. The nemesis finds it with a type assertion and refuses partition
// faults on a backend without it.
//
// A cut models a packet drop, as Jepsen's iptables DROP rules do, not a
// refused connection: bytes already in flight and bytes sent later on
// established connections stop being delivered, and new connections get
// no answer. Clients are never cut off (see Node.Addr).
type Partitioner interface {
	// Partition cuts, for each node named by a key of drops, the traffic
	// it sends to every node in the key's value: one direction per entry
	// (list both for a full cut). Cuts add up: a second Partition cuts
	// more links, and Heal ends them all.
	Partition(ctx context.Context, drops map[string][]string) error
	// Heal restores every link Partition cut. Packet faults
	// ([PacketShaper]) stay.
	Heal(ctx context.Context) error
}

// Packet is a packet fault on a link: what the traffic from one node to
// another suffers while it is in force.
type Packet struct {
	// Delay is added to the delivery of every byte; Jitter varies it by up
	// to that much either way.
	Delay  time.Duration `json:"delay,omitempty"`
	Jitter time.Duration `json:"jitter,omitempty"`
	// Loss is the probability, 0 to 1, that a packet is lost. On a TCP
	// link a lost packet is retransmitted, so to the applications a loss
	// is a stall of the stream, never a hole in it; each backend says how
	// it models that.
	Loss float64 `json:"loss,omitempty"`
}

// IsZero reports whether p does nothing.
func (p Packet) IsZero() bool { return p.Delay == 0 && p.Jitter == 0 && p.Loss == 0 }

// PacketShaper is implemented by backends that can delay and lose packets
// on the links between nodes (the nemesis's packet faults).
type PacketShaper interface {
	// Shape applies p to the traffic each key of links sends to every node
	// in its value (one direction per entry, as Partition), replacing the
	// links' earlier packet fault.
	Shape(ctx context.Context, links map[string][]string, p Packet) error
	// Unshape ends every packet fault. Partitions stay.
	Unshape(ctx context.Context) error
}

// Errors every backend returns (wrapped, with the node's name).
var (
	// ErrUnknownNode: the node is not one of the backend's nodes.
	ErrUnknownNode = errors.New("db: unknown node")
	// ErrNotReady: a node did not answer Kafka requests in time.
	ErrNotReady = errors.New("db: node did not become ready")
	// ErrExited: a node's process exited by itself.
	ErrExited = errors.New("db: node exited")
	// ErrTornDown: the backend was torn down; nothing can be started.
	ErrTornDown = errors.New("db: torn down")
)

// DefaultReadyTimeout bounds how long Setup and WaitReady wait for a node
// to answer Kafka requests.
const DefaultReadyTimeout = 20 * time.Second

// DefaultStartWait bounds how long Start waits for a restarted node to
// answer before it returns anyway (see DB.Start): long enough for a
// broker to start and register in a healthy cluster, short enough not to
// hold up the nemesis's schedule when faults deny it a quorum.
const DefaultStartWait = 5 * time.Second

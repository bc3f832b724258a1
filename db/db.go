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
	// Addr is the host:port a client dials to reach the node. With the
	// proxies of the nemesis issue this will be the proxy's address, not
	// the broker's own listener.
	Addr string `json:"addr"`
}

// NameOf is the conventional name of the node with broker id id: "n1" for 1.
func NameOf(id int32) string { return "n" + strconv.Itoa(int(id)) }

// DB is a backend that runs the broker nodes of a test.
//
// Every method that changes a node waits until the change is done: Setup
// and Start return once the node answers Kafka requests, Kill once the
// process is gone. Methods are safe for concurrent use.
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
	// returns once it answers Kafka requests. Starting a running node is a
	// no-op.
	Start(ctx context.Context, node Node) error

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

// Partitioner is the place for network faults: a backend that can cut
// links between nodes (and between clients and nodes) implements it in
// addition to DB. It arrives with the proxies of the nemesis issue; the
// nemesis finds it with a type assertion and refuses partition faults on a
// backend without it.
type Partitioner interface {
	// Partition drops all traffic from each node in the map's keys to
	// every node in its value (one direction; list both for a full cut).
	Partition(ctx context.Context, drops map[string][]string) error
	// Heal restores every link.
	Heal(ctx context.Context) error
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

// DefaultReadyTimeout bounds how long Setup and Start wait for a node to
// answer Kafka requests.
const DefaultReadyTimeout = 20 * time.Second

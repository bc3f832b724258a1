// Package local runs the broker nodes of a test as processes on loopback:
// the default backend of garantia test, needing no Docker and no root.
//
// Each node is one `garantia broker` process (the harness runs its own
// executable, or Options.Binary) listening on a free 127.0.0.1 port, with
// its data folder and log file inside the run's store folder:
//
//	store/<test>/<ts>/n1/data
//	store/<test>/<ts>/n1/broker.log
//
// With power faults the data folder is a power-loss mount (package
// db/powerfs), which the harness makes before Setup; the backend does not
// know the difference.
//
// Faults are signals: Kill is SIGKILL, Pause SIGSTOP, Resume SIGCONT, and
// Start runs the node again on the same port and data folder. Start waits
// for the node to answer only up to Options.StartWait and leaves a node
// that does not answer yet running; Setup and WaitReady wait for it up to
// Options.ReadyTimeout (see package db on readiness).
//
// Links (Options.Links): every ordered pair of nodes (a, b) gets its own
// in-process proxies (package db/proxy) on loopback, one to b's Kafka
// port and, in cluster mode, one to b's controller port; node a's
// `--peer b=KAFKA,CONTROLLER` flag names a's own proxies to b, so that
// every byte a sends to b crosses them. The DB implements db.Partitioner
// (a cut holds the link's bytes and new connections, as a packet drop
// does to TCP, and delivers them on Heal) and db.PacketShaper (delay,
// jitter, and loss as retransmission stalls). Clients dial the nodes'
// own listeners: Jepsen partitions the nodes from each other, never the
// clients from the nodes.
//
// Cluster mode (Options.Cluster, which the runner always sets) adds
// --controller-listen, the --peer flags and the replication flags;
// without it the nodes are independent single-node brokers (single-node
// tests use that), and the proxies are still there to be cut.
//
// Nothing outlives the harness. Each process is its own process group (so
// a terminal's Ctrl-C reaches the harness only, which then tears down in
// order), Teardown kills every group, and each child carries
// Pdeathsig=SIGKILL so that the kernel kills it if the harness dies
// without tearing down (kill -9, a panic). Pdeathsig fires when the
// *thread* that forked the child exits, not the process, so all children
// are forked from one goroutine locked to its OS thread for the life of
// the backend (Go's runtime otherwise may retire threads).
package local

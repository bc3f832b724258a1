// Package db starts, stops and disturbs the broker nodes a test runs
// against.
//
// A backend ([DB]) owns a set of broker nodes: it brings them up and waits
// until each answers the Kafka protocol, names them (n1, n2, ...) and says
// where clients reach them, and later kills, restarts, pauses and resumes
// single nodes on the nemesis's request. Teardown stops everything and is
// safe to call any number of times, so the runner calls it on every path:
// success, failure and Ctrl-C.
//
// Backends:
//
//   - local: broker processes on loopback ports, the default; no Docker, no
//     root.
//   - docker: one container per node on a bridge network of the run's
//     own.
//
// Readiness: a node is ready when it answers a Kafka ApiVersions request.
// In cluster mode a broker opens its Kafka port only once the Raft
// controller has registered it, which takes a controller quorum. So
// readiness is demanded only where the harness controls the conditions:
//
//   - Setup starts every node and waits until each is ready (the ready
//     timeout, [DefaultReadyTimeout]); a node that does not come up is a
//     harness failure.
//   - Start, the nemesis's restart of a killed node, returns once the
//     process runs; it waits for readiness only up to a short start wait
//     ([DefaultStartWait]) and then returns anyway, leaving the node
//     running. A node restarted while a partition or a killed majority
//     denies it a quorum cannot be ready, and that is the system's
//     business, for the history to show, not the harness's. Only a node
//     that cannot be started or whose process exits is an error.
//   - WaitReady waits until a node is ready (the ready timeout). The
//     nemesis's final heal, after every fault has ended and every node was
//     started, waits this way for every node before the drain: then a
//     node that does not come back is a failure of the run.
//
// What the backends share lives here (backend.go), so that a test on
// either starts the same brokers and reports a node that does not come up
// the same way: the options ([Config], which each backend's Options
// embeds), the run folder's layout ([LayOut]), the table of nodes
// ([Table]: lookup by id or name, the node list, the log files), the wait
// for a node to answer ([AwaitReady]), what a wait means for a start
// ([Started]), its error ([StartError]) and the harness's lines in a
// node's log. Each backend keeps only what differs: how it starts, stops,
// signals and cuts a node.
//
// Power faults: a [PowerCutter] puts a node's data folder back to what
// was durable, as a power cut leaves a disk. It is not a backend's: the
// harness mounts a power-loss filesystem (package db/powerfs, its Disks)
// at every node's data folder (LayOut) before the backend starts the
// nodes, so both backends run on it unchanged (the docker backend
// bind-mounts the folder, and a container started again after a cut sees
// the new mount), and hands the cutter to the nemesis beside the backend.
//
// Network faults: a backend that can cut the links between nodes also
// implements [Partitioner], and one that can delay or lose their packets
// [PacketShaper]. Links are directed (the traffic node A sends to node B),
// and only links between nodes fail: clients reach every node directly,
// as in Jepsen, where a partition splits the cluster and the clients see
// whichever side they talk to. The local backend does both with in-process
// proxies (package db/proxy), the docker backend with iptables rules in
// each container's network namespace.
package db

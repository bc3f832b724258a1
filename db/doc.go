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
//   - docker: one container per node (a later issue).
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

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
// Network faults (cutting the links between nodes) come with the proxies
// of the nemesis issue; a backend that can cut links will also implement
// [Partitioner]. No backend does yet.
package db

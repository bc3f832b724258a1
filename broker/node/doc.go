// Package node wires one broker node together: it opens the storage in
// the data directory and the producer id allocator beside it, follows the
// cluster metadata (an injected metadata.Controller, or a single-node
// in-memory one), runs the replica manager (package replication: roles,
// fetchers, ISR changes, high watermark checkpoints), the group coordinator
// (package group), the Kafka protocol server and the listener until its
// context ends, and then shuts them down in order (listener and
// connections, group coordinator, replication, storage).
//
// Producer ids are unique across the cluster without coordination: node n
// hands out n, n+65536, n+2·65536, …, so node ids are 0 to 65535.
//
// `garantia broker` is a thin flag layer over Run; tests and benchmarks
// use Start to run nodes in process.
package node

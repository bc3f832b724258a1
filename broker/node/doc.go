// Package node wires one broker node together: it opens the storage in
// the data directory, the producer id allocator beside it, the Kafka
// protocol server, and the listener, runs them until its context ends, and
// then shuts them down in order (listener, connections, storage).
//
// `garantia broker` is a thin flag layer over Run; tests and benchmarks
// use Start to run a node in process.
package node

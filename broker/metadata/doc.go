// Package metadata is the cluster metadata of a broker cluster, as every
// broker sees it, and the interface through which brokers read and change it.
//
// The metadata (brokers and their liveness, and for every partition its
// replicas, leader, leader epoch, partition epoch and in-sync replica set)
// lives in a replicated log owned by the controller (package
// broker/controller: a Raft log, KRaft-style). Brokers never change it
// directly: they ask the controller through [Controller], and learn every
// committed change by watching their local copy ([Controller.Snapshot] and
// [Controller.Changed]).
//
// [NewMemory] is an in-memory controller for tests of its neighbours
// (replication, the server): several in-process nodes share one, and the
// test plays the controller's part (fencing a broker, electing a leader) by
// calling its methods directly, so scenarios run deterministically.
package metadata

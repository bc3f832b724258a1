// Package workloads holds the clients that generate a test's operations
// and record each one, invocation and completion, into the history.
//
// A workload talks to the brokers only over the Kafka protocol, as any
// application would, and decides for every failed operation whether it
// definitely did not happen (fail) or might still take effect (info): that
// classification is what lets the checker prove a lost write.
//
// Workloads, one package each:
//
//   - queue: Jepsen's Kafka queue workload: sends of unique integers to
//     topic partitions, assigns and polls, and a final drain that reads
//     every partition from the start.
package workloads

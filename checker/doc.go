// Package checker analyses a history and composes the verdicts of every
// analysis into the results of a run (results.json).
//
// The analyses live in subpackages, one per concern:
//
//   - queue: Jepsen's Kafka anomalies (lost-write, unseen, duplicate, ...)
//   - linear: per-key linearizability of the log with porcupine
//   - stats: operation counts
//
// The composed verdict is the worst of them: invalid beats unknown beats
// valid (see package verdict).
package checker

// Package checker analyses a history and composes the verdicts of every
// analysis into the results of a run (results.json).
//
// The analyses live in subpackages, one per concern:
//
//   - queue: Jepsen's Kafka anomalies (lost-write, unseen, duplicate, G1a,
//     garbage-read, ...) and consumer groups' committed offsets
//     (lost-offset-commit)
//   - linear: per-key linearizability of the log with porcupine
//   - stats: operation counts
//
// They read a histories.History, which is well formed by construction, so
// none of them meets a broken history; Check makes one of ops in memory and
// reports a malformed history as ErrMalformed. They run one after the
// other, the memory of one collected before the next: each may need as
// much as the history itself, and the linearizability check uses every CPU
// on its own. A panic in any of them (a bug) comes back as an error of
// package internal/crash, never as a verdict.
//
// The composed verdict is the worst of them: invalid beats unknown beats
// valid (see package verdict).
package checker

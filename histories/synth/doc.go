// Package synth makes synthetic queue histories: what a correct Kafka-like
// log would have recorded under a Jepsen-style queue workload, and the same
// history with one known fault injected.
//
// It exists so that the queue checker can be tested against histories whose
// right answer is known (property tests over many seeds) and benchmarked on
// histories of realistic shape and any size, without running a cluster.
//
// [Stream] and [Generate] simulate a correct system in simulated time: P
// client threads run concurrently against N partitions (keys), sending unique
// integer values, assigning themselves partitions and polling contiguous
// stretches of each partition from their position up to the high watermark.
// Some operations fail (they definitely did not happen) and some end as info
// (the process is retired and a fresh process id takes over; an info send
// may or may not be applied, possibly after its completion). Nemesis events
// are sprinkled in, and the history ends with Jepsen's final drain: one fresh
// process per key assigns itself that key and polls from offset 0 to the end,
// so every committed value is read at least once. The history obeys the rules
// of Jepsen's kafka.clj checker: it has none of its anomalies.
//
// [Inject] then rewrites such a history so that it shows exactly one anomaly
// of Jepsen's taxonomy (lost-write, duplicate, inconsistent-offsets, ...),
// in a way a broken broker could have produced it. [Fault.Expect] says which
// anomalies a checker following Jepsen's rules must report for it.
//
// With Config.CommitRate and FetchRate (Config.WithCommits) the history
// also records the consumer group's offsets: processes commit what their
// polls read (commit ops) and fetch the group's committed offsets back
// (committed ops), and Inject can plant lost-offset-commit.
//
// Everything is driven by one seed: the same [Config] gives the same history,
// event for event.
package synth

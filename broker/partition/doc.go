// Package partition is a broker's replica of one topic partition: its log,
// its role (leader or follower, at a leader epoch from the cluster
// metadata), the idempotent producers' sequence state and, as leader, what
// Kafka's ISR design needs:
//
//   - each follower's log end offset, as its fetch offset says, and the
//     last time it was caught up (Kafka's lastCaughtUpTime);
//   - the high watermark: the smallest log end offset over the in-sync
//     replicas (the leader's own counted only once its append is durable
//     per the fsync policy). Consumers read only below it and acks=all
//     writes are acknowledged only once it passes them;
//   - ISR changes to propose to the controller (drop followers lagging
//     longer than the limit, add back followers that reached the high
//     watermark), counting the "maximal ISR" (committed plus proposed)
//     while one is in flight, so that an uncommitted shrink never
//     advances the high watermark;
//   - acks=all outcomes: NOT_ENOUGH_REPLICAS before the append when the
//     ISR is below min.insync.replicas, NOT_ENOUGH_REPLICAS_AFTER_APPEND
//     when it shrank below it before the commit, NOT_LEADER_OR_FOLLOWER
//     when the leader was deposed (by the metadata, or by the controller
//     refusing its ISR change) before the commit.
//
// As follower it appends what its fetcher brings (package replication),
// keeping producer state in step so that it deduplicates retries the
// moment it becomes leader, and truncates where the leader's epochs say
// its log diverges.
package partition

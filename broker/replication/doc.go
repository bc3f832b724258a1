// Package replication copies partitions between brokers the way Kafka's
// ISR design does, and keeps each broker's local replicas in step with the
// cluster metadata. Manager is the broker's replica manager (Kafka's
// ReplicaManager):
//
//   - Reconciliation: at every metadata change (metadata.Controller's
//     Changed) it opens the log of every partition this broker replicates
//     and makes it leader at the metadata's leader epoch (new appends are
//     stamped with it) or follower of the metadata's leader; partitions it
//     no longer replicates stop.
//   - Fetchers: one per leader this broker follows (Kafka's
//     ReplicaFetcherThread), over one connection to the leader's Kafka
//     listener as this broker reaches it (Config.PeerKafkaAddrs). A new
//     follower first reconciles its log with OffsetForLeaderEpoch and
//     truncates where the leader says its last epoch ended (KIP-101,
//     KIP-279; see truncationOffset), never to its own high watermark.
//     Then it fetches (Fetch v12 with its broker id, its leader epoch and
//     the epoch of its last batch), appends what comes back as is
//     (AppendAsFollower), truncates when the leader reports a diverging
//     epoch (KIP-320), and takes the smaller of the leader's high
//     watermark and its own log end as its high watermark. The leader
//     parks a caught-up follower's fetch until its log grows (storage
//     Notify), so replication waits on no timer.
//   - ISR management: for the partitions it leads it asks the controller
//     (AlterISR) to drop followers not caught up for ReplicaLagTimeMax and
//     to add back followers that reached the high watermark. While a
//     change is in flight the high watermark counts the larger ISR, so it
//     never relies on a shrink that is not committed; a leader the
//     controller answers "your epoch is over" stops taking writes.
//   - The high watermark checkpoint (Kafka's replication-offset-checkpoint)
//     in the data directory, written periodically and at Close: where a
//     restarted replica's high watermark starts.
//
// The leader's side of all this (tracking followers, the high watermark,
// proposing ISR changes, acks=all waits) lives in package partition; the
// wire side of follower fetches in package server.
//
// Bugs are switches that put known replication bugs back (KIP-101's
// high-watermark truncation, acknowledging acks=all early, a deposed
// leader applying an uncommitted ISR shrink), off by default, so that a
// test can show the checker catching the acknowledged writes each loses.
package replication

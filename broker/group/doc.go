// Package group is the broker's group coordinator: Kafka's classic
// rebalance protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and
// committed offsets (OffsetCommit, OffsetFetch), with DescribeGroups,
// ListGroups and DeleteGroups.
//
// # Where groups live
//
// Groups and their committed offsets live in the internal offsets topic
// (OffsetsTopic, "__consumer_offsets"), whose partitions the broker
// replicates like any other (ISR, leader epochs, acks=all). A group
// belongs to partition PartitionFor(group, partitions), Kafka's
// abs(hashCode) % partitions, and its coordinator is that partition's
// leader. The records are Kafka's own (kmsg's OffsetCommitKey/Value and
// GroupMetadataKey/Value; a null value is a tombstone), so any Kafka
// client can read the topic.
//
// Each partition this node leads is a shard. A shard loads when this node
// becomes leader: it waits until the partition's high watermark covers the
// start of its leader epoch (everything earlier leaders wrote is then
// committed), reads the log to the high watermark, and restores every
// group (Stable at its last generation with its members and assignments,
// or Empty) and every committed offset. Until then the group APIs answer
// COORDINATOR_LOAD_IN_PROGRESS; a node that does not lead the group's
// partition answers NOT_COORDINATOR (after catching up with the
// controller once, in case the client knows of a newer leadership), and
// so does a node whose controller session lapsed: it may have been
// deposed without knowing it, and must not serve offsets its successor
// has moved past. When the leadership moves away the shard unloads:
// parked requests are answered NOT_COORDINATOR and the groups are dropped.
//
// # Durability
//
// Every change that must survive a failover is appended to the partition
// as its leader with acks=all, and acknowledged only once the high
// watermark passes it: offset commits, a generation's assignment (written
// before any member learns it, so a new coordinator knows the generation
// its members are in), a static member's new member id, a group becoming
// Empty, a group's deletion. Committed offsets are served only from what
// the shard read back below the high watermark, never from a write still
// in flight, so OffsetFetch never returns an offset a failover could take
// back. A write that is refused before it reaches the log (validation,
// NOT_ENOUGH_REPLICAS before the append, NOT_COORDINATOR) did not happen;
// one that was appended but did not commit in time (COORDINATOR_NOT_AVAILABLE
// after the append) may still commit later, as an acks=all produce that
// timed out may.
//
// # The rebalance protocol
//
// Groups move through Kafka's states: Empty, PreparingRebalance (members
// rejoin; the join phase ends when every member and every member id handed
// out by MEMBER_ID_REQUIRED (KIP-394) has rejoined, or at the longest
// rebalance timeout, dropping the rest; the first rebalance of an empty
// group waits InitialRebalanceDelay for more members), CompletingRebalance
// (the leader, which got every member's metadata, computes the assignment
// and sends it with its SyncGroup; the others' SyncGroups wait for it) and
// Stable. Members keep their session with heartbeats; a member silent for
// its session timeout is removed and the group rebalances. Assignors are
// the clients': range, round-robin, sticky and cooperative-sticky all run
// on the leader; cooperative rebalancing (KIP-429) needs nothing more of
// the coordinator than that a leader's rejoin, or a member's changed
// subscription, starts a new rebalance. Static members (group.instance.id,
// KIP-345) join without the member id round trip and, when they come back
// with the same subscription to a Stable group, take their old place
// without a rebalance (the leader gets SkipAssignment, KIP-814).
//
// Requests that must wait (JoinGroup, SyncGroup, OffsetCommit,
// DeleteGroups) return a function that waits; the server runs it on the
// connection's writer, so that waiting blocks no other connection.
// Offsets never expire (Kafka's offsets.retention.minutes is not
// implemented): a group's offsets stay until DeleteGroups.
package group

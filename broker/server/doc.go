// Package server is the broker's network front: it accepts Kafka protocol
// connections, decodes requests with kmsg (via package wire), and answers
// ApiVersions, Metadata, Produce, Fetch, ListOffsets, OffsetForLeaderEpoch,
// CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
// DescribeCluster, InitProducerID and FindCoordinator; the group APIs
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
// DescribeGroups, ListGroups, DeleteGroups) go to the group coordinator
// (package group). ApiVersions lists exactly what is served
// (SupportedAPIs); any other key or version closes the connection, as
// Kafka does, never an empty answer a client could take for success.
//
// Admin changes go through the controller and wait for the brokers:
// CreateTopics and CreatePartitions answer once every new partition's
// leader has applied the change (or REQUEST_TIMED_OUT after timeout_ms),
// DeleteTopics once every replica has (each deletes its logs). A node asked
// about a topic it does not know first catches up with the controller
// (metadata.SyncGate), so that a client that learned of a new topic from a
// further-along broker is served, not refused. FindCoordinator creates the
// offsets topic on first use, with its own partition count and replication
// factor, and names the leader of the group's offsets partition; clients
// may read that topic but not write, delete or grow it.
//
// Everything a client is told about the cluster comes from the metadata
// (metadata.Controller's snapshot): Metadata lists the unfenced brokers and
// each partition's leader, leader epoch, replicas, ISR and offline
// replicas; CreateTopics and auto-creation go to the controller with the
// requested (or default) replication factor, min.insync.replicas and
// unclean.leader.election.enable. Produce, Fetch, ListOffsets and
// OffsetForLeaderEpoch are served only by a partition's leader; any other
// broker answers NOT_LEADER_OR_FOLLOWER with the current leader (Produce
// v10+ and Fetch v12+ CurrentLeader) so clients move on.
//
// A Fetch with a replica id is a follower's: it reads up to the log end,
// reports the follower's progress to the partition (which may advance the
// high watermark or the ISR) or where its log diverges, and long-polls on
// the logs themselves. A consumer's reads only below the high watermark.
// An acks=all Produce is answered once the high watermark passes the write
// (see package partition for the errors otherwise).
//
// Each connection has one reader goroutine and one writer goroutine joined
// by an ordered queue. The reader decodes requests and performs their side
// effects in arrival order (a produce is appended before the next request
// is read); anything that must wait (acks=all waiting on the high
// watermark, a fetch long-polling for MinBytes) is done by the writer when
// that response reaches the head of the queue, so responses leave in
// request order without blocking the reader. A malformed or oversized frame
// closes its own connection only, and a panic in a handler is contained to
// the connection that caused it.
package server

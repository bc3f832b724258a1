// Package server is the broker's network front: it accepts Kafka protocol
// connections, decodes requests with kmsg (via package wire), and answers
// ApiVersions, Metadata, Produce, Fetch, ListOffsets, OffsetForLeaderEpoch,
// CreateTopics and InitProducerID.
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

// Package server is the broker's network front: it accepts Kafka protocol
// connections, decodes requests with kmsg (via package wire), answers
// ApiVersions, Metadata, Produce, Fetch, ListOffsets, OffsetForLeaderEpoch,
// CreateTopics and InitProducerID, and keeps the topic registry of
// partitions this node leads.
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

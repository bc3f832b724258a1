// Package partition is the broker's state for one topic partition that this
// node leads: its log, its leader epoch, its in-sync replica set, its high
// watermark, and the idempotent producers' sequence state.
//
// The high watermark is kept apart from the log end offset on purpose. A
// record is visible to consumers, and an acks=all write is acknowledged,
// only once the high watermark passes it; the high watermark is the minimum
// log end offset over the in-sync replicas. On a single node the ISR is the
// leader alone, so the high watermark follows the log end offset as soon as
// an append is durable per the fsync policy, but every waiter is written as
// a wait on the high watermark so that replication slots in without
// changing the request handlers.
package partition

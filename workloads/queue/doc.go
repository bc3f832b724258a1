// Package queue is Jepsen's Kafka queue workload, on franz-go's kgo client.
//
// Keys are the partitions of one topic (key "3" is partition 3 of
// "garantia-queue"); values are integers unique across the test, drawn
// from one counter. Each logical process runs one operation at a time:
//
//   - send: produce one record with the value to the key's partition
//     (manual partitioner) and wait for the acknowledgement; ok records
//     ["send", k, [offset, v]], or [null, v] with acks=0, which gives no
//     offset.
//   - assign: point the process's consumer at a set of keys. Keys it
//     keeps resume where they were; a new key starts where this worker
//     last read it, or at the log's start when the worker never read it
//     or the assign draws a rewind (1 in 32 per key: rereading a whole log
//     checks old offsets again, but costs the log's length every time,
//     and the final drain reads everything anyway). The process keeps
//     one consumer client across its assigns.
//   - poll: one bounded poll of the consumer; ok records what it returned
//     per key, with offsets, in order.
//
// A process owns two kgo clients, a producer and a consumer. When an
// operation completes as info its outcome is unknown and may change
// later, so the process is retired: the worker closes both clients and
// continues as process id+concurrency with fresh ones (Jepsen's rule).
// See classify.go for which errors are fail and which are info.
//
// Every operation takes bounded time, so that a dead or frozen node shows
// up in the history as fail or info rather than as a hung test: a send
// goes out in at most one produce request (kgo.RecordRetries(0); a retry
// could append the value twice and make the broker look guilty of a
// duplicate), the broker may wait 3/5 of OpTimeout for replicas, the
// connection deadline is that plus 2s, and the record expires after
// OpTimeout (kgo.RecordDeliveryTimeout); a poll waits at most PollTimeout.
// The history's node field is the broker a send was written to, or the
// broker the consumer last fetched from.
//
// Operations are drawn from a schedule seeded per worker (send, poll and
// assign in fixed proportions, keys uniformly), paced to a total rate.
// After the run, Drain reads every partition with a fresh consumer from
// the start up to its end offset, recorded as ordinary assign and poll
// operations, so that the checker sees every committed value. The drain
// is framed by process -1 "drain" markers (histories.FDrain): an
// invocation when it begins, ok once every partition was read to the end
// offset it had then, info naming what fell short when it was cut short.
package queue

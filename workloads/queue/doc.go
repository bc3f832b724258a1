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
// Consumers get their partitions one of three ways (Config.ConsumeVia,
// Jepsen's :sub-via): ConsumeAssign, as above; ConsumeSubscribe, where the
// assign draws are subscribes; ConsumeMixed, where each such draw is
// either, so a process switches between them:
//
//   - subscribe: the process's consumer joins the group (Config.Group) and
//     subscribes to the topic, recorded as a subscribe of every key, with
//     the op's group; the group shares the partitions out among its
//     members (kgo's cooperative-sticky balancer) and a member reads a
//     partition from the group's committed offset, or from the log's start
//     when there is none. It returns at once, as Kafka's subscribe does:
//     the member joins in the background. A process already subscribed
//     stays as it is; one that assigned closes that consumer first, and
//     one that subscribed leaves the group before it assigns (Kafka's
//     consumer must unsubscribe first).
//   - commit: after a member's poll read something, the process commits
//     the offset after the last record it read of each key (commitSync),
//     and only then lets the group rebalance (kgo.BlockRebalanceOnPoll), so
//     a commit never rewinds a partition another member took over. Nothing
//     else commits: no autocommit, no commit on revoke or leave, so the
//     history holds every commit. ok is acknowledged; fail and info as
//     commitOutcome says (the errors a coordinator answers before it
//     appends, on the one request sent, are fail; COORDINATOR_NOT_AVAILABLE
//     and NOT_COORDINATOR may follow the append, so they are info).
//   - committed: with subscribing consumers, 2 of 64 draws fetch the
//     group's committed offsets of every key (OffsetFetch); once more, by
//     a fresh process, at the end of the final drain. A fetch changes
//     nothing, so one without an answer fails.
//
// A member's rebalances (kgo's OnPartitionsAssigned, Revoked and Lost)
// are recorded on the process's next completion as Jepsen's rebalance log
// ({"type": "revoked", "keys": [...]}, see package histories). Members
// notice a rebalance within a heartbeat (300ms), and the brokers must
// allow their 3s session timeout (GroupBrokerArgs). A retired member
// leaves the group in the background, within 2s.
//
// A process owns two kgo clients, a producer and a consumer. When an
// operation completes as info its outcome is unknown and may change
// later, so the process is retired: the worker closes both clients and
// continues under a fresh process id with fresh ones (Jepsen's rule):
// thread t's ids are t, t+concurrency, t+2*concurrency, ..., in order,
// shared by its processes and its group members' own offset fetches.
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
// assign or subscribe in fixed proportions, keys uniformly), paced to a
// total rate; a commit follows its poll without a draw.
// After the run, Drain reads every partition with a fresh consumer from
// the start up to its end offset, recorded as ordinary assign and poll
// operations, so that the checker sees every committed value. The drain
// is framed by process -1 "drain" markers (histories.FDrain): an
// invocation when it begins, ok once every partition was read to the end
// offset it had then, info naming what fell short when it was cut short.
// The drain assigns, whatever the consumers did: subscribing would leave
// it to the group which partitions it reads, and from where.
package queue

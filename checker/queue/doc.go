// Package queue checks a Kafka-style queue history for lost, unseen,
// duplicated and reordered messages, following the rules of Jepsen's Kafka
// workload checker (jepsen/src/jepsen/tests/kafka.clj), reimplemented in
// roughly linear time.
//
// # Model
//
// Every key is one partition: an append-only log of (offset, value) records.
// Values are unique across a test. Check pairs each invocation with its
// completion per process (one op at a time per process; an invocation left
// without completion, at the end of the history or because the process
// invoked again, counts as info).
//
// A send is committed when it completed ok, or when it completed info and
// some ok poll read one of its values (proof that it took effect; Jepsen's
// must-have-committed?). Failed sends never count.
//
// A value is read when an ok poll returned it. Values are compared per key.
//
// # Version order
//
// Each key's log is built from every (offset, value) pair that a committed
// send reported and that any poll returned (ok, info or fail: a poll only
// ever shows what the log held). The distinct offsets, in order, get dense
// positions 0, 1, 2, ...: gaps in the offsets (transaction markers,
// compaction) are not holes. Ordering checks compare positions, so a step of
// one position is the next record and anything more is a skip. Positions of
// poll records come from the offsets the poll reported, so a value that sits
// at two offsets never confuses them. Sends that report no offset (acks=0,
// ["send","3",[null,1042]], and usually info sends) take part in the
// durability checks below but in no send-order check; Jepsen would place them
// where polls saw their value, but the producer claimed no position.
//
// # Anomalies
//
//   - lost-write: a committed value that no ok poll read although an ok poll
//     read its key at or past the value's (last) position: something after
//     it was seen, the value itself never was. Bounded by the highest offset
//     that an ok poll read in the key.
//   - unseen: an ok send that no ok poll read and that is not lost, because
//     nothing at or after it was read (or it has no known offset). During a
//     test that is lag; after the final drain it is a durability failure.
//   - duplicate: a value at two or more offsets of its key's log.
//   - inconsistent-offsets: two or more values at one offset of a key.
//   - poll-skip: a process's ok poll of a key was followed, in its next poll
//     of that key, by a record more than one position later: it skipped
//     records that exist.
//   - nonmonotonic-poll: likewise, but the next poll started at or before
//     the record the previous one ended on.
//   - int-poll-skip, int-nonmonotonic-poll: the same, between consecutive
//     records of one key inside a single poll.
//   - nonmonotonic-send: a process's send to a key landed at or before the
//     position of its previous send to that key.
//   - int-send-skip, int-nonmonotonic-send: the same between consecutive
//     sends to one key inside a single op (skip: not adjacent).
//
// An ok or info assign (or subscribe) forgets the process's poll position
// for every key it no longer names, so the first poll after a key comes back
// may start anywhere. Keys it still names keep their position. Only ok polls
// move a position; polls of any type with records are compared. Unlike
// Jepsen, assign does not reset send positions: the producer is unchanged.
//
// # Verdict
//
// Any anomaly makes the result invalid, except those Jepsen allows by
// default (allowed-error-types): int-send-skip always, because other
// producers' records interleave with an op's sends; and poll-skip and
// nonmonotonic-poll when the history subscribes (Jepsen's :sub-via
// :subscribe), because a rebalance may move a consumer anywhere. Allowed
// anomalies are still reported. With no anomaly, the result is valid unless
// nothing was acknowledged and nothing was read, which proves nothing and is
// unknown.
//
// G1a and precommitted-read (transactions) are not checked yet; txn ops
// already have their send and poll micro-operations analysed like the others.
package queue

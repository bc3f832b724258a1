// Package queue checks a Kafka-style queue history for lost, unseen,
// duplicated, reordered and impossible messages, following the rules of
// Jepsen's Kafka workload checker (jepsen/src/jepsen/tests/kafka.clj),
// reimplemented in roughly linear time. The anomalies are named in package
// histories/anomaly. The rules below are the specification: a test reads
// them a second time, slowly and obviously, and compares the two on random
// histories.
//
// # Model
//
// Every key is one partition: an append-only log of (offset, value)
// records. Values are opaque (integers, or Jepsen's keywords, strings and
// nil) and compared for equality. The history is well formed (see
// histories.History): each completion follows its process's invocation.
//
// An op is an invocation with its completion; one that never completed
// counts as info, and comes after every completed op. Its micro-ops are the
// completion's, or the invocation's when the completion carries none. Its
// sends are (key, value, offset) with the offset known or not (acks=0,
// info); its reads are, per key, the records its polls returned, in order
// across its poll micro-ops; a record's offset may be unknown too.
//
//   - The writer of a value of a key is the most definite op that sent it
//     there: ok before info before fail, then the first.
//   - A value is read when an ok op read it.
//   - An op is committed when it completed ok, or completed info and one of
//     its sent values was read (Jepsen's must-have-committed?).
//
// # Version order
//
// Each key's log is the set of (offset, value) pairs that committed ops
// sent with a known offset, and that polls of any outcome (ok, info, fail:
// a poll only ever shows what the log held) read with a known offset. The
// distinct offsets, in order, get positions 0, 1, 2, ...: gaps in the
// offsets (transaction markers, compaction, a log that does not start at 0)
// are not holes, and nothing is sized by the offsets' span. A value's first
// and last positions are the lowest and highest it occupies.
//
// The order checks place a record at its offset's position, or, when its
// offset is unknown, at its value's first position; a send at its offset's
// position when its op is committed, else at its value's first position
// (where polls saw it: Jepsen's version order by value, so acks=0 and info
// sends take part). A record or send that cannot be placed is skipped.
//
// # Anomalies
//
//   - inconsistent-offsets: an offset of a key's log holds two or more
//     values.
//   - duplicate: a value sits at two or more offsets of a key's log. (The
//     same value sent twice is not a malformed history: it is a duplicate
//     once the log shows it twice.)
//   - lost-write: a value of a key that was not read, whose writer is
//     committed, and whose last position is at or before the bound: the
//     furthest first position of any value read in that key.
//   - unseen: a value whose writer completed ok, that was not read and is
//     not lost. It is inconclusive (it proves nothing either way: the
//     value may just not have been reached) unless the history records a
//     completed final drain (histories.FDrain) that began after the
//     writer completed, or Options.AssumeDrained is set. (Jepsen counts
//     lost values as unseen too; here each value is one or the other.)
//   - G1a: a value read whose writer failed.
//   - garbage-read: a value some poll (of any outcome) read in a key that
//     no op sent to that key. Not reported for a fragment of a history,
//     whose sends may precede it.
//   - int-send-skip, int-nonmonotonic-send: within a completed op of any
//     outcome, two consecutive sends to one key, both placed, whose
//     positions differ by more than one (skip) or less than one.
//   - int-poll-skip, int-nonmonotonic-poll: within a completed op of any
//     outcome, two consecutive records of one key, both placed, whose
//     positions differ by more than one or less than one; keys named in the
//     op's rebalance log (Jepsen's :rebalance-log) are exempt.
//   - nonmonotonic-send: a process's ok or info op sends to a key, and its
//     first send there is placed at or before the last send to that key of
//     the process's previous ok or info op that sent there.
//   - poll-skip, nonmonotonic-poll: a completed op (any outcome) of a
//     process reads a key, and its first record there is placed more than
//     one position after (skip), or at or before (nonmonotonic), the last
//     record the process's last ok read of that key ended on.
//
// Per process, in history order of completions: an ok or info assign or
// subscribe keeps the poll positions of the keys it still names and
// forgets the others, and makes the process subscribed (subscribe) or not
// (assign); an assign after a subscribe forgets every position (Kafka's
// consumer must unsubscribe before it assigns, which drops its positions);
// a failed one changes nothing. Only ok polls move a position.
// An info completion retires the process: its state ends. Unlike Jepsen,
// an assign does not forget send positions: the producer is unchanged.
//
// # Committed offsets
//
// A consumer group's committed offset of a key is a register, one per
// group and key, written by commit ops and read by committed ops (see
// package histories: FCommit, FCommitted); Kafka promises it is durable
// and linearizable (a commit is acknowledged only once the offsets topic
// committed it, and OffsetFetch serves only committed offsets). "Later"
// is real time, the history's order of events: an op B began after op A
// completed when B's invocation comes after A's completion. Concurrent ops
// may take effect in either order; an info commit, or one never completed,
// may take effect at any time after its invocation, even after its
// completion; a failed one never does.
//
//   - lost-offset-commit: an ok committed F fetched offset o of a key (or
//     none) in a group, and before F began, a commit of another offset o'
//     of that group and key is known to have taken effect: an ok commit of
//     o' completed, or an ok committed completed that fetched o' (then some
//     commit of o' that did not fail, invoked before that fetch returned,
//     took effect: the earliest of them is the one the rule assumes). F is
//     consistent with it only if some commit W of o that did not fail was
//     invoked before F completed and may have taken effect after the
//     commit of o' was invoked: W is info or never completed, or completed
//     ok after that invocation. None did: the committed offset went back
//     to an older one (or none) that no commit wrote after it. Another
//     member may legitimately commit an older offset later; that commit,
//     recorded, makes the fetch consistent.
//
// Each offset a committed returned is one case at most, whichever piece of
// evidence it contradicts; the example names that evidence and the fetch.
// Counts.Commits totals the offsets committed per outcome and fetched.
//
// # Verdict
//
// A case is allowed when it is within Kafka's contract (Jepsen's
// allowed-error-types): every int-send-skip, because other producers'
// records interleave with an op's sends; and poll-skip and
// nonmonotonic-poll of a process subscribed at the time, because a
// rebalance may move a subscribed consumer anywhere (Jepsen allows them
// for the whole test when it subscribes; here one process's subscribe
// excuses only that process). A case is inconclusive as unseen says.
//
// A history with no drain markers at all counts as not drained, rather
// than as drained: it is what a run interrupted or crashed before its
// drain leaves, and the markers are the only evidence a history carries
// that its last values were looked for. Tools that record no markers but
// end with final polls (Jepsen's) are judged as Jepsen judges them with
// Options.AssumeDrained (`--assume-drained`), which the user chooses
// knowing where the history came from.
//
// The result is invalid when some case is neither allowed nor
// inconclusive; else unknown when some case is inconclusive, or when
// nothing was acknowledged, read or fetched back (which proves nothing);
// else valid. Allowed and inconclusive cases are still reported.
//
// precommitted-read (a transaction reading its own send) is not checked
// yet; txn ops have their send and poll micro-operations analysed like the
// others.
package queue

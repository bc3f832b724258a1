// Package linear checks that each key's log behaved linearizably, with
// porcupine (github.com/anishathalye/porcupine), and explains and draws the
// keys where it did not.
//
// [Check] takes each key of a history in turn (GOMAXPROCS keys at a time,
// largest first, within one time budget), builds the key's operations only
// when its turn comes, runs porcupine on them and composes the verdicts:
// invalid beats unknown beats valid. A key whose search the budget cuts
// short is unknown, never valid. It then draws porcupine's HTML
// visualization, linear-<key>.html, for the first keys by name that are
// not linearizable, at most Options.MaxVisualizations of them (20 by
// default), and counts the rest: a history with ten thousand bad keys gets
// twenty files, not ten thousand. A visualization that cannot be written
// is a warning; the verdict stands.
//
// # The history of one key
//
// The history is well formed (histories.History): each completion follows
// its process's invocation. Per micro-operation:
//
//   - An ok send with an offset is an append that must land at that offset,
//     within the operation's interval.
//   - A send whose outcome is unknown is an indeterminate append: it may
//     land at any time after its invocation, or never. Its interval ends
//     "at infinity" (after every event). This covers info completions,
//     invocations that never completed (the history was cut short), and ok
//     sends without an offset (acks=0). The last deviates from "acks=0 sends
//     append within their interval": a producer with acks=0 is told ok as
//     soon as the request is written to the socket, so the append may
//     happen after the ok, or be lost; holding it to its interval would
//     flag correct brokers.
//   - Failed sends are dropped: they definitely did not happen.
//   - An ok poll contributes, for each key it read at least one record of,
//     one read of that key. Polls that failed or are indeterminate read
//     nothing and are dropped, as are empty reads (every log agrees with
//     them) and reads with a record of unknown offset (where it sits is
//     not known; leaving the read out can hide a violation, never invent
//     one).
//   - A txn is split the same way: its sends of key k and its records of
//     key k go to k's history, each as its own operation with the txn's
//     interval. That is weaker than atomicity, never stronger, so it cannot
//     flag a correct history.
//   - In a fragment of a history (histories.LoadOptions.Fragment) a
//     completion whose invocation came before the fragment is invoked at
//     the start, and a value read that no send of the fragment wrote was
//     sent before it, at an unknown time.
//
// A value sent twice to one key breaks the model's premise that values are
// unique: the key is unknown, with that reason (the queue checker judges
// the duplicate the log shows).
//
// # The model
//
// The specification M is a log that starts empty: a list of records
// (offset, value) whose offsets increase, but need not start at 0 or be
// dense (Kafka's transaction markers, compaction and retention leave gaps
// and move the log's start). An append of v with a reported offset o
// succeeds only if o is past the last record's offset, and then v is at o.
// An indeterminate append of v puts v at some offset past the last, or
// does nothing. A read of records [o1,v1], ..., [ok,vk] succeeds if they
// are consecutive records of the log: a stretch of it, starting anywhere
// (our polls are assign-based and the history does not record where they
// started), and it may stop before the log's end (a poll returns at most
// max.poll.records). A key is linearizable if some order of its operations,
// consistent with real time, is accepted by M.
//
// Porcupine needs a deterministic step and searches all orders; M has a
// nondeterministic step and a log as state, so porcupine on M directly is
// slow (states are large and many orders lead to the same log). Check uses
// an equivalent model M' whose state is two integers: the number of records
// in the log, n, and the number of reads linearized, polls. It rests on
// four facts.
//
// 1. Never taking effect is the same as taking effect last. An
// indeterminate append returns at infinity, so it may be linearized after
// every other operation; there it changes nothing anyone observed.
//
// 2. Claims are facts. Values are unique, so each value is appended at most
// once and the log never changes where it is written. An ack "v at o" and a
// read "v at o" each claim that offset o holds v, forever. If two claims put
// different values at one offset, or one value at two offsets, or a read
// claims a value no send of this key wrote, no log satisfies them: the key
// is not linearizable (the reason lists these conflicts). Otherwise each
// claimed offset has exactly one owner, the send of the value claimed
// there: an acked send at its acked offset, an indeterminate send that
// some read observed at the offset it was observed at ("pinned").
//
// 3. The log's content is a function of its size, and unclaimed offsets
// do not matter. Sort the claimed offsets: the r-th is rank r. An append
// at an offset no one claims is an indeterminate send no one read; by 1 it
// can be taken last or never, and it never helps: nothing reads it, and
// it would sit between records a read must see side by side, or before an
// acked offset that must come after it. So such sends drop out, and in any
// legal run the log holds exactly the owners of ranks 0, 1, ..., n-1. A
// read is legal when its records sit at consecutive ranks, each holding
// its owner, below n. M' therefore keeps only n, and steps:
//
//	owner send (acked or pinned) of rank r:   n == r          -> n+1
//	read of ranks [lo..hi], rank k among reads: its claims hold, hi < n, polls == k -> polls+1
//
// where a send that is not its offset's owner never steps ("dead"), and a
// read whose claims conflict never steps.
//
// 4. Reads go in the order they returned. A read changes nothing and,
// since the log only grows and never changes what it holds, a read that is
// legal at some point stays legal later; moving it to just before its
// return keeps any run legal. Then reads are linearized in return order,
// which M' enforces with polls and each read's rank.
//
// By 1-4 a key is accepted by M' if and only if it is accepted by M (the
// tests compare both on thousands of random histories, with gaps and logs
// that do not start at 0, M written the obvious way with porcupine's
// power-set construction). In M' every step is forced: in each state at
// most one append and one read can go next, so a linearizable history is
// found without backtracking, and porcupine's search of a non-linearizable
// one visits at most (appends+1)*(reads+1) states instead of
// exponentially many; indeterminate sends nobody read, however many, cost
// nothing.
//
// Building a key's model costs a sort of its acks and one lookup per
// record read (reads repeat what acks claim many times over); records at
// offsets no ack claims are sorted in. Memory follows the distinct
// offsets, never their span: a log with offsets 0 and 2^63-1 holds two
// records.
//
// # Segments
//
// Porcupine clones a bitset of all operations at every step, so its cost
// grows with the square of a key's length. Check therefore cuts a long
// key into segments of at least a few thousand operations and runs
// porcupine on each, from the state the previous one ends in. By 3 and 4
// the appends form a chain A0, A1, ... (Ar appends rank r) and the reads a
// chain R0, R1, ... (by rank), each linearized in order. A cut (a, p)
// puts A0..A(a-1) and R0..R(p-1) before it and the rest after. It is sound
// if every operation before it was invoked before every operation after it
// returned, and every read before it reads below rank a. Then any
// linearization of the key, reordered to take the ops before the cut
// first (keeping each side's order), is still a linearization: no op after
// the cut had to precede one before it, reads before the cut still find
// their records, and reads after it find at least as long a log; and
// conversely linearizations of both sides, concatenated, form one of the
// key. So the key is linearizable if and only if each segment is.
//
// A hole (a claimed rank whose owner no send wrote) makes the key not
// linearizable; no cut goes past the first hole, so the segment that holds
// it also holds an op that needs it, and fails. Dead sends go into the
// segment of the rank they claim, and fail there.
//
// # Time budget
//
// Options.Timeout bounds the whole check (DefaultTimeout if 0); each
// segment's porcupine run gets what remains. Porcupine takes a timeout but
// no context, so cancellation of the caller's context reaches the search
// through a flag that makes every step fail. A failing step can hide a
// linearization but never invent one, so porcupine's "ok" is always
// trusted and its "illegal" only when the flag was never set; anything
// else is unknown.
//
// # Limits
//
// Polls are checked for being a stretch of the log, not for moving forward
// from the previous poll: that is the queue checker's nonmonotonic-poll
// and poll-skip.
package linear

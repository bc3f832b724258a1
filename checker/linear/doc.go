// Package linear checks that each key's log behaved linearizably, with
// porcupine (github.com/anishathalye/porcupine), and explains and draws the
// keys where it did not.
//
// [Check] splits a history into one history per key, runs porcupine on
// each (in parallel, GOMAXPROCS keys at a time, within one time budget) and
// composes the verdicts: invalid beats unknown beats valid. A key whose
// search the budget cuts short is unknown, never valid. For every invalid
// key it can write porcupine's HTML visualization, linear-<key>.html.
//
// # The history of one key
//
// Invocations pair with completions by process (a process runs one
// operation at a time). Then, per micro-operation:
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
//     them).
//   - A txn is split the same way: its sends of key k and its records of
//     key k go to k's history, each as its own operation with the txn's
//     interval. That is weaker than atomicity, never stronger, so it cannot
//     flag a correct history.
//
// A malformed history (a completion with no invocation, a value sent twice
// to a key, a negative offset) is an error, not a verdict.
//
// # The model
//
// The specification M is a log that starts empty. An append of v with a
// reported offset o succeeds only if the log's length is o, and then v is
// at o. An indeterminate append of v puts v at the end, or does nothing. A
// read of records [o,v0], [o+1,v1], ..., [h,vk] succeeds if the offsets
// are contiguous and the log holds exactly those values there: the read is
// a stretch of the log starting at any offset o (our polls are
// assign-based and the history does not record where they started), and
// it may stop before the log's end (a poll returns at most
// max.poll.records). A key is linearizable if some order of its
// operations, consistent with real time, is accepted by M.
//
// Porcupine needs a deterministic step and searches all orders; M has a
// nondeterministic step and a log as state, so porcupine on M directly is
// slow (states are large and many orders lead to the same log). Check uses
// an equivalent model M' whose state is two integers: the log's length n
// and the number of reads linearized, polls. It rests on four facts.
//
// 1. Never taking effect is the same as taking effect last. An
// indeterminate append returns at infinity, so it may be linearized after
// every other operation; there it changes nothing anyone observed. Hence a
// history is accepted by M if and only if it is accepted when every
// indeterminate append must append (somewhere after its invocation). So
// every operation is linearized, as porcupine requires, and the step is
// deterministic.
//
// 2. Claims are facts. Values are unique, so each value is appended at
// most once and the log never changes where it is written. An ack "v at o"
// and a read "v at o" each claim that offset o holds v, forever. If two
// claims put different values at one offset, or one value at two offsets,
// or a read claims a value no send of this key wrote, or a read's offsets
// are not contiguous, no log satisfies them: the key is not linearizable.
// (The reason then lists these conflicts.) Otherwise each claimed offset o
// has exactly one owner, the send of the value claimed there: an acked
// send at its acked offset, an indeterminate send that some read observed
// at the offset it was observed at ("pinned").
//
// 3. The log's content is a function of its length. Call the unclaimed
// offsets free. Any legal run of M puts each owner at its offset (by 2),
// so the free offsets below the length hold indeterminate sends nobody
// read ("fillers"). Fillers are interchangeable: no read saw them and
// their intervals never end, so if filler j (by invocation) is unused or
// later than a filler i invoked after it, swapping i and j keeps the run
// legal (the earlier-invoked one can sit wherever the later-invoked one
// could). So without loss of generality the r-th filler by invocation
// fills the r-th free offset. With that, the offset-o entry of any log of
// length n > o is determined: the owner if o is claimed, else the filler
// of o's rank among free offsets. M' therefore keeps only n, and steps:
//
//	owner send (acked or pinned) at o:   n == o          -> n+1
//	filler of rank r:                    n is the r-th free offset -> n+1
//	read of [lo..hi] of rank k:          its claims hold, hi < n, polls == k -> polls+1
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
// tests compare both on thousands of random histories, M written the
// obvious way with porcupine's power-set construction). In M' every step
// is forced: in each state at most one append and one read can go next, so
// a linearizable history is found without backtracking, and porcupine's
// search of a non-linearizable one visits at most (appends+1)*(reads+1)
// states instead of exponentially many.
//
// # Segments
//
// Porcupine clones a bitset of all operations at every step, so its cost
// grows with the square of a key's length. Check therefore cuts a long
// key into segments of at least a few thousand operations and runs
// porcupine on each, from the state the previous one ends in. By 3 and 4
// the appends form a chain A0, A1, ... (Ao appends at o) and the reads a
// chain R0, R1, ... (by rank), each linearized in order. A cut (a, p)
// puts A0..A(a-1) and R0..R(p-1) before it and the rest after. It is
// sound if every operation before it was invoked before every operation
// after it returned, and every read before it reads below offset a. Then
// any linearization of the key, reordered to take the ops before the cut
// first (keeping each side's order), is still a linearization: no op after
// the cut had to precede one before it, reads before the cut still find
// their offsets, and reads after it find at least as long a log; and
// conversely linearizations of both sides, concatenated, form one of the
// key. So the key is linearizable if and only if each segment is.
//
// A hole (an offset no op can fill: a claimed offset whose owner was never
// sent, or more free offsets than fillers) makes the key not
// linearizable; no cut goes past the first hole, so the segment that
// holds it also holds an op that needs it, and fails. Dead sends go into
// the segment of the offset they claim, and fail there.
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
// The model assumes each key's log starts empty (offset 0) with
// contiguous offsets, as our broker does; compaction or transaction
// markers would need a model with gaps. Polls are checked for being a
// stretch of the log, not for moving forward from the previous poll: that
// is the queue checker's nonmonotonic-poll and poll-skip.
package linear

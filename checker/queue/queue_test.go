package queue

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/anomaly"
	"github.com/garantia/garantia/histories/histtest"
)

const unknown = histories.OffsetUnknown

// The shared history builder's helpers, by short names.
var (
	at      = histtest.SendMop
	r       = histtest.R
	invoked = histtest.Invoked
	o       = histtest.O
)

// checkOps checks ops as a drained history (the unit cases are about the
// rules, not the drain markers; TestDrain is about those).
func checkOps(t testing.TB, ops []histories.Op, opts Options) *Result {
	t.Helper()
	h, err := histories.FromOps(ops, histories.LoadOptions{})
	if err != nil {
		t.Fatalf("malformed test history: %v", err)
	}
	opts.AssumeDrained = true
	return Check(h, opts)
}

// want is what a case expects of one anomaly: how many cases, and the op
// indices its first example must cite, in order.
type want struct {
	n   int
	ops []int64
}

// Every anomaly has a case that shows it and, right after, near-miss twins
// that must not be flagged.
var cases = []struct {
	name  string
	build func(h *histtest.Builder) map[string]want
	valid verdict.Verdict
}{
	// lost-write
	{"lost-write: acked, never read, a later offset read", func(h *histtest.Builder) map[string]want {
		w := h.SendOK(0, "a", 0, 1)
		h.SendOK(0, "a", 1, 2)
		p := h.PollOK(1, "a", r(1, 2))
		return map[string]want{anomaly.LostWrite: {1, []int64{w, p}}}
	}, verdict.Invalid},
	{"lost-write twin: read after the later offset was read", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		h.SendOK(0, "a", 1, 2)
		h.PollOK(1, "a", r(1, 2))
		h.PollOK(2, "a", r(0, 1))
		return nil
	}, verdict.Valid},
	{"lost-write twin: info send never read", func(h *histtest.Builder) map[string]want {
		h.Send(0, histories.Info, at("a", 0, 1))
		h.SendOK(1, "a", 1, 2)
		h.PollOK(2, "a", r(1, 2))
		return nil
	}, verdict.Valid},
	{"lost-write twin: info send reporting an offset, never read", func(h *histtest.Builder) map[string]want {
		// Without proof it committed, its offset does not enter the log
		// either: offset 1 is the first position, so no skip.
		h.Add(0, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 1)})})
		h.Add(0, histories.Info, histories.FSend, histories.Value{Mops: []histories.Mop{at("a", 0, 1)}})
		h.SendOK(1, "a", 1, 2)
		h.PollOK(2, "a", r(1, 2))
		return nil
	}, verdict.Valid},
	{"lost-write: info send proven committed by another of its values", func(h *histtest.Builder) map[string]want {
		h.Add(0, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 1), at("b", 0, 3)})})
		w := h.Add(0, histories.Info, histories.FSend, histories.Value{Mops: []histories.Mop{at("a", 0, 1), at("b", 0, 3)}})
		h.SendOK(1, "a", 1, 2)
		h.PollOK(2, "b", r(0, 3))
		p := h.PollOK(2, "a", r(1, 2))
		return map[string]want{anomaly.LostWrite: {1, []int64{w, p}}}
	}, verdict.Invalid},

	// unseen
	{"unseen: acked, never read, nothing read", func(h *histtest.Builder) map[string]want {
		w := h.SendOK(0, "a", 0, 1)
		return map[string]want{anomaly.Unseen: {1, []int64{w}}}
	}, verdict.Invalid},
	{"unseen: acked, nothing after it read", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		w := h.SendOK(0, "a", 1, 2)
		h.PollOK(1, "a", r(0, 1))
		return map[string]want{anomaly.Unseen: {1, []int64{w}}}
	}, verdict.Invalid},
	{"unseen: acks=0 send never read", func(h *histtest.Builder) map[string]want {
		w := h.SendOK(0, "a", unknown, 1)
		h.SendOK(0, "a", unknown, 2)
		h.PollOK(1, "a", r(0, 2))
		return map[string]want{anomaly.Unseen: {1, []int64{w}}}
	}, verdict.Invalid},
	{"unseen twin: acks=0 send read", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", unknown, 1)
		h.PollOK(1, "a", r(0, 1))
		return nil
	}, verdict.Valid},
	{"unseen twin: failed send never read", func(h *histtest.Builder) map[string]want {
		h.Send(0, histories.Fail, at("a", 0, 1))
		h.SendOK(1, "a", 0, 2)
		h.ReadAll(2, "a", 2)
		return nil
	}, verdict.Valid},
	{"unseen twin: send never completed (harness crashed)", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		h.Add(1, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 1, 2)})})
		h.ReadAll(2, "a", 1)
		return nil
	}, verdict.Valid},

	// duplicate
	{"duplicate: one value at two offsets", func(h *histtest.Builder) map[string]want {
		w := h.SendOK(0, "a", 0, 1)
		p := h.PollOK(1, "a", r(0, 1), r(1, 1))
		return map[string]want{anomaly.Duplicate: {1, []int64{w, p}}}
	}, verdict.Invalid},
	{"duplicate: acks=0 value read at two offsets", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", unknown, 1)
		p := h.PollOK(1, "a", r(0, 1), r(1, 1))
		return map[string]want{anomaly.Duplicate: {1, []int64{p}}}
	}, verdict.Invalid},
	{"duplicate twin: one record read by two polls", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		h.PollOK(1, "a", r(0, 1))
		h.PollOK(2, "a", r(0, 1))
		return nil
	}, verdict.Valid},

	// inconsistent-offsets
	{"inconsistent-offsets: two acked values at one offset", func(h *histtest.Builder) map[string]want {
		w1 := h.SendOK(0, "a", 0, 1)
		w2 := h.SendOK(1, "a", 0, 2)
		p := h.PollOK(2, "a", r(0, 2))
		return map[string]want{
			anomaly.InconsistentOffsets: {1, []int64{w1, w2}},
			anomaly.LostWrite:           {1, []int64{w1, p}}, // value 1 was overwritten
		}
	}, verdict.Invalid},
	{"inconsistent-offsets twin: distinct offsets", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		h.SendOK(1, "a", 1, 2)
		h.ReadAll(2, "a", 1, 2)
		return nil
	}, verdict.Valid},

	// poll-skip
	{"poll-skip: next poll jumps a record", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		p1 := h.PollOK(1, "a", r(0, 1))
		p2 := h.PollOK(1, "a", r(2, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return map[string]want{anomaly.PollSkip: {1, []int64{p1, p2}}}
	}, verdict.Invalid},
	{"poll-skip: assign keeps the position of a key still assigned", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		p1 := h.PollOK(1, "a", r(0, 1))
		h.Assign(1, histories.FAssign, "a", "b")
		p2 := h.PollOK(1, "a", r(2, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return map[string]want{anomaly.PollSkip: {1, []int64{p1, p2}}}
	}, verdict.Invalid},
	{"poll-skip twin: key unassigned and assigned again starts anywhere", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		h.PollOK(1, "a", r(0, 1))
		h.Assign(1, histories.FAssign, "b")
		h.Assign(1, histories.FAssign, "a")
		h.PollOK(1, "a", r(2, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return nil
	}, verdict.Valid},
	{"poll-skip twin: another process reads further", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		h.PollOK(1, "a", r(0, 1))
		h.PollOK(3, "a", r(2, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return nil
	}, verdict.Valid},
	{"poll-skip: reported but allowed when the history subscribes", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		h.Assign(1, histories.FSubscribe, "a")
		p1 := h.PollOK(1, "a", r(0, 1))
		p2 := h.PollOK(1, "a", r(2, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return map[string]want{anomaly.PollSkip: {1, []int64{p1, p2}}}
	}, verdict.Valid},

	// nonmonotonic-poll
	{"nonmonotonic-poll: next poll starts where the last ended", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		p1 := h.PollOK(1, "a", r(0, 1), r(1, 2))
		p2 := h.PollOK(1, "a", r(1, 2), r(2, 3))
		return map[string]want{anomaly.NonmonotonicPoll: {1, []int64{p1, p2}}}
	}, verdict.Invalid},
	{"nonmonotonic-poll twin: a failed poll does not move the position", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		h.PollOK(1, "a", r(0, 1))
		h.Poll(1, histories.Fail, map[string][]histories.Record{"a": {r(1, 2)}})
		h.PollOK(1, "a", r(1, 2), r(2, 3))
		return nil
	}, verdict.Valid},

	// nonmonotonic-send
	{"nonmonotonic-send: a producer's next send lands before its last", func(h *histtest.Builder) map[string]want {
		w1 := h.SendOK(0, "a", 1, 1)
		w2 := h.SendOK(0, "a", 0, 2)
		h.ReadAll(1, "a", 2, 1)
		return map[string]want{anomaly.NonmonotonicSend: {1, []int64{w1, w2}}}
	}, verdict.Invalid},
	{"nonmonotonic-send: a producer's next send lands on the same offset", func(h *histtest.Builder) map[string]want {
		w1 := h.SendOK(0, "a", 0, 1)
		w2 := h.SendOK(0, "a", 0, 2)
		p := h.ReadAll(1, "a", 2)
		return map[string]want{
			anomaly.NonmonotonicSend:    {1, []int64{w1, w2}},
			anomaly.InconsistentOffsets: {1, []int64{w1, w2}},
			anomaly.LostWrite:           {1, []int64{w1, p}},
		}
	}, verdict.Invalid},
	{"nonmonotonic-send twin: two producers", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 1, 1)
		h.SendOK(1, "a", 0, 2)
		h.ReadAll(2, "a", 2, 1)
		return nil
	}, verdict.Valid},
	{"nonmonotonic-send: an acks=0 send is placed where polls read it", func(h *histtest.Builder) map[string]want {
		w1 := h.SendOK(0, "a", 1, 1)
		w2 := h.SendOK(0, "a", unknown, 2)
		h.ReadAll(1, "a", 2, 1)
		return map[string]want{anomaly.NonmonotonicSend: {1, []int64{w1, w2}}}
	}, verdict.Invalid},
	{"nonmonotonic-send: an info send is placed where polls read it", func(h *histtest.Builder) map[string]want {
		w1 := h.SendOK(0, "a", 1, 1)
		w2 := h.Send(0, histories.Info, at("a", unknown, 2))
		h.ReadAll(1, "a", 2, 1)
		return map[string]want{anomaly.NonmonotonicSend: {1, []int64{w1, w2}}}
	}, verdict.Invalid},
	{"nonmonotonic-send twin: an acks=0 send nobody read claims no position", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 1, 1)
		h.SendOK(0, "a", unknown, 2)
		h.PollOK(1, "a", r(1, 1))
		return map[string]want{anomaly.Unseen: {1, []int64{3}}}
	}, verdict.Invalid},

	// int-poll-skip
	{"int-poll-skip: one poll jumps a record", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		p := h.PollOK(1, "a", r(0, 1), r(2, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return map[string]want{anomaly.IntPollSkip: {1, []int64{p}}}
	}, verdict.Invalid},
	{"int-poll-skip twin: offset gaps nobody saw are not skips", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		h.SendOK(0, "a", 5, 2)
		h.PollOK(1, "a", r(0, 1), r(5, 2))
		return nil
	}, verdict.Valid},

	// int-nonmonotonic-poll
	{"int-nonmonotonic-poll: one poll goes backwards", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		h.SendOK(0, "a", 1, 2)
		p := h.PollOK(1, "a", r(1, 2), r(0, 1))
		return map[string]want{anomaly.IntNonmonotonicPoll: {1, []int64{p}}}
	}, verdict.Invalid},
	{"int-nonmonotonic-poll twin: lower offset in another key", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		h.SendOK(0, "a", 1, 2)
		h.SendOK(0, "b", 0, 3)
		h.PollOK(2, "a", r(0, 1))
		h.Poll(1, histories.OK, map[string][]histories.Record{"a": {r(1, 2)}, "b": {r(0, 3)}})
		return nil
	}, verdict.Valid},

	// int-send-skip
	{"int-send-skip: reported, verdict stays valid", func(h *histtest.Builder) map[string]want {
		w := h.Send(0, histories.OK, at("a", 0, 1), at("a", 2, 2))
		h.SendOK(1, "a", 1, 3)
		h.ReadAll(2, "a", 1, 3, 2)
		return map[string]want{anomaly.IntSendSkip: {1, []int64{w}}}
	}, verdict.Valid},
	{"int-send-skip twin: adjacent sends", func(h *histtest.Builder) map[string]want {
		h.Send(0, histories.OK, at("a", 0, 1), at("a", 1, 2))
		h.ReadAll(2, "a", 1, 2)
		return nil
	}, verdict.Valid},

	// int-nonmonotonic-send
	{"int-nonmonotonic-send: one op's sends go backwards", func(h *histtest.Builder) map[string]want {
		w := h.Send(0, histories.OK, at("a", 1, 1), at("a", 0, 2))
		h.ReadAll(1, "a", 2, 1)
		return map[string]want{anomaly.IntNonmonotonicSend: {1, []int64{w}}}
	}, verdict.Invalid},
	{"int-nonmonotonic-send twin: lower offset in another key", func(h *histtest.Builder) map[string]want {
		h.Send(0, histories.OK, at("a", 1, 1), at("b", 0, 2))
		h.SendOK(1, "a", 0, 3)
		h.ReadAll(2, "a", 3, 1)
		h.ReadAll(3, "b", 2)
		return nil
	}, verdict.Valid},

	// Which ops count as writers, readers and positions.
	{"uncommitted info offset does not enter the log", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		h.Add(1, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 1, 2)})})
		h.Add(1, histories.Info, histories.FSend, histories.Value{Mops: []histories.Mop{at("a", 1, 2)}})
		h.SendOK(0, "a", 2, 3)
		h.PollOK(2, "a", r(0, 1), r(2, 3))
		return nil
	}, verdict.Valid},
	{"info send with an offset claims no send order", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 1, 1)
		h.Add(0, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 2)})})
		h.Add(0, histories.Info, histories.FSend, histories.Value{Mops: []histories.Mop{at("a", 0, 2)}})
		h.PollOK(1, "a", r(1, 1))
		return nil
	}, verdict.Valid},
	{"failed send claims no send order", func(h *histtest.Builder) map[string]want {
		h.SendOK(1, "a", 0, 3)
		h.SendOK(0, "a", 1, 1)
		h.Add(0, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 2)})})
		h.Add(0, histories.Fail, histories.FSend, histories.Value{Mops: []histories.Mop{at("a", 0, 2)}})
		h.ReadAll(2, "a", 3, 1)
		return nil
	}, verdict.Valid},
	{"failed send shown only by a failed poll is neither lost nor G1a", func(h *histtest.Builder) map[string]want {
		h.Send(0, histories.Fail, at("a", 0, 1))
		h.Poll(1, histories.Fail, map[string][]histories.Record{"a": {r(0, 1)}})
		h.SendOK(0, "a", 2, 2)
		h.PollOK(2, "a", r(2, 2))
		return nil
	}, verdict.Valid},
	{"a record shown only by a failed poll is not read", func(h *histtest.Builder) map[string]want {
		w := h.SendOK(0, "a", 0, 1)
		h.Poll(1, histories.Fail, map[string][]histories.Record{"a": {r(0, 1)}})
		return map[string]want{anomaly.Unseen: {1, []int64{w}}}
	}, verdict.Invalid},
	{"a value sent again after failing keeps the ok writer", func(h *histtest.Builder) map[string]want {
		h.Send(0, histories.Fail, at("a", 0, 1))
		w := h.SendOK(0, "a", 0, 1)
		return map[string]want{anomaly.Unseen: {1, []int64{w}}}
	}, verdict.Invalid},

	{"values outside the direct table and values in two keys", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, -5)
		h.SendOK(0, "a", 1, 1<<40)
		w := h.SendOK(0, "a", 2, 7)
		h.SendOK(0, "b", 0, 8)
		h.ReadAll(1, "a", -5, 1<<40)
		p := h.PollOK(2, "b", r(0, 8), r(1, 7), r(2, 1<<40)) // 7 and 1<<40 misrouted to b
		return map[string]want{anomaly.Unseen: {1, []int64{w}}, anomaly.GarbageRead: {2, []int64{p}}}
	}, verdict.Invalid},

	// G1a
	{"G1a: an ok poll reads the value of a failed send", func(h *histtest.Builder) map[string]want {
		w := h.Send(0, histories.Fail, at("a", 0, 1))
		p := h.PollOK(1, "a", r(0, 1))
		return map[string]want{anomaly.G1a: {1, []int64{w, p}}}
	}, verdict.Invalid},
	{"G1a twin: the value of an info send read is proof it committed", func(h *histtest.Builder) map[string]want {
		h.Send(0, histories.Info, at("a", 0, 1))
		h.PollOK(1, "a", r(0, 1))
		return nil
	}, verdict.Valid},

	// garbage-read
	{"garbage-read: a poll reads a value nobody sent", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		p := h.PollOK(1, "a", r(0, 1), r(1, 99))
		return map[string]want{anomaly.GarbageRead: {1, []int64{p}}}
	}, verdict.Invalid},
	{"garbage-read: even a failed poll must not return one", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		p := h.Poll(1, histories.Fail, map[string][]histories.Record{"a": {r(1, 99)}})
		h.PollOK(2, "a", r(0, 1))
		return map[string]want{anomaly.GarbageRead: {1, []int64{p}}}
	}, verdict.Invalid},
	{"garbage-read: a value sent to another key", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		h.PollOK(1, "a", r(0, 1))
		p := h.PollOK(1, "b", r(0, 1))
		return map[string]want{anomaly.GarbageRead: {1, []int64{p}}}
	}, verdict.Invalid},
	{"garbage-read twin: a value read whose send never completed", func(h *histtest.Builder) map[string]want {
		h.Invoke(0, histories.FSend, at("a", histories.OffsetPending, 1))
		h.PollOK(1, "a", r(0, 1))
		return nil
	}, verdict.Valid},

	// Committed offsets: a register per group and key.
	{"lost-offset-commit: an acknowledged commit, then a fetch of an older offset", func(h *histtest.Builder) map[string]want {
		h.Commit(0, histories.OK, "g", o("a", 5))
		c := h.Commit(0, histories.OK, "g", o("a", 9), o("b", 1))
		f := h.Committed(1, "g", o("a", 5), o("b", 1))
		return map[string]want{anomaly.LostOffsetCommit: {1, []int64{c, f}}}
	}, verdict.Invalid},
	{"lost-offset-commit: an acknowledged commit, then a fetch of none", func(h *histtest.Builder) map[string]want {
		c := h.Commit(0, histories.OK, "g", o("a", 5))
		f := h.Committed(1, "g", o("a", unknown))
		return map[string]want{anomaly.LostOffsetCommit: {1, []int64{c, f}}}
	}, verdict.Invalid},
	{"lost-offset-commit twin: the fetch began before the commit was acknowledged", func(h *histtest.Builder) map[string]want {
		h.Commit(0, histories.OK, "g", o("a", 5))
		h.CommitInv(0, "g", o("a", 9))
		h.CommittedInv(1, "g", o("a", 5))
		h.CommitDone(0, histories.OK, "g", o("a", 9))
		h.CommittedDone(1, "g", o("a", 5))
		return nil
	}, verdict.Valid},
	{"lost-offset-commit twin: an indeterminate commit of the older offset may take effect late", func(h *histtest.Builder) map[string]want {
		h.Commit(2, histories.Info, "g", o("a", 5))
		h.Commit(0, histories.OK, "g", o("a", 9))
		h.Committed(1, "g", o("a", 5))
		return nil
	}, verdict.Valid},
	{"lost-offset-commit twin: another member committed the older offset afterwards", func(h *histtest.Builder) map[string]want {
		h.Commit(0, histories.OK, "g", o("a", 9))
		h.Commit(2, histories.OK, "g", o("a", 5))
		h.Committed(1, "g", o("a", 5))
		return nil
	}, verdict.Valid},
	{"lost-offset-commit twin: another group, and a fetch before any commit", func(h *histtest.Builder) map[string]want {
		h.Committed(1, "g", o("a", unknown))
		h.Commit(0, histories.OK, "g", o("a", 9))
		h.Committed(1, "h", o("a", unknown))
		h.Committed(1, "g", o("a", 9))
		return nil
	}, verdict.Valid},
	{"lost-offset-commit: a fetch saw an indeterminate commit, a later fetch an older offset", func(h *histtest.Builder) map[string]want {
		h.Commit(0, histories.OK, "g", o("a", 5))
		h.Commit(2, histories.Info, "g", o("a", 9))
		f1 := h.Committed(1, "g", o("a", 9))
		f2 := h.Committed(1, "g", o("a", 5))
		return map[string]want{anomaly.LostOffsetCommit: {1, []int64{f1, f2}}}
	}, verdict.Invalid},
	{"lost-offset-commit: the offset fetched after an acknowledged commit is a failed commit's", func(h *histtest.Builder) map[string]want {
		c := h.Commit(0, histories.OK, "g", o("a", 5))
		h.Commit(2, histories.Fail, "g", o("a", 9))
		f := h.Committed(1, "g", o("a", 9))
		return map[string]want{anomaly.LostOffsetCommit: {1, []int64{c, f}}}
	}, verdict.Invalid},

	// Logs as real Kafka leaves them: gaps, a start other than 0.
	{"log starting at offset 1000 with gaps is fine", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 1000, 1)
		h.SendOK(0, "a", 1003, 2)
		h.SendOK(0, "a", 1010, 3)
		h.PollOK(1, "a", r(1000, 1), r(1003, 2))
		h.PollOK(1, "a", r(1010, 3))
		return nil
	}, verdict.Valid},
	{"offsets 0 and 2^63-1 in one key", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", 0, 1)
		w := h.SendOK(0, "a", math.MaxInt64, 2)
		h.PollOK(1, "a", r(0, 1))
		return map[string]want{anomaly.Unseen: {1, []int64{w}}}
	}, verdict.Invalid},

	// Records without offsets, as Jepsen allows.
	{"a record without an offset is placed by its value", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		p1 := h.PollOK(1, "a", r(0, 1))
		p2 := h.PollOK(1, "a", r(unknown, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return map[string]want{anomaly.PollSkip: {1, []int64{p1, p2}}}
	}, verdict.Invalid},
	{"a record without an offset whose value has no place is not compared", func(h *histtest.Builder) map[string]want {
		h.SendOK(0, "a", unknown, 1)
		h.SendOK(0, "a", unknown, 2)
		h.PollOK(1, "a", r(unknown, 2), r(unknown, 1))
		return nil
	}, verdict.Valid},

	// Jepsen's rebalance log.
	{"int-poll-skip twin: the key was rebalanced during the poll", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		h.Assign(1, histories.FSubscribe, "a")
		h.Invoke(1, histories.FPoll, histtest.PollMop(nil))
		h.Ops = append(h.Ops, histories.Op{Index: int64(len(h.Ops)), Time: 1000 * int64(len(h.Ops)), Process: 1, Type: histories.OK, F: histories.FPoll,
			Value:        histories.Value{Mops: []histories.Mop{histtest.PollMop(map[string][]histories.Record{"a": {r(0, 1), r(2, 3)}})}},
			RebalanceLog: []histories.Rebalance{{Keys: []string{"b"}}, {Keys: []string{"a"}}}})
		h.ReadAll(2, "a", 1, 2, 3)
		return nil
	}, verdict.Valid},
	{"int-poll-skip: a rebalance of another key excuses nothing", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		h.Invoke(1, histories.FPoll, histtest.PollMop(nil))
		p := int64(len(h.Ops))
		h.Ops = append(h.Ops, histories.Op{Index: p, Time: 1000 * p, Process: 1, Type: histories.OK, F: histories.FPoll,
			Value:        histories.Value{Mops: []histories.Mop{histtest.PollMop(map[string][]histories.Record{"a": {r(0, 1), r(2, 3)}})}},
			RebalanceLog: []histories.Rebalance{{Keys: []string{"b"}}}})
		h.ReadAll(2, "a", 1, 2, 3)
		return map[string]want{anomaly.IntPollSkip: {1, []int64{p}}}
	}, verdict.Invalid},

	// Subscriptions excuse only the subscribed process.
	{"poll-skip: another process's failed subscribe excuses nothing", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		h.Add(3, histories.Invoke, histories.FSubscribe, histories.Value{Keys: []string{"a"}})
		h.Add(3, histories.Fail, histories.FSubscribe, histories.Value{Keys: []string{"a"}})
		p1 := h.PollOK(1, "a", r(0, 1))
		p2 := h.PollOK(1, "a", r(2, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return map[string]want{anomaly.PollSkip: {1, []int64{p1, p2}}}
	}, verdict.Invalid},
	{"poll-skip: another process's subscribe excuses nothing", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		h.Assign(3, histories.FSubscribe, "a")
		p1 := h.PollOK(1, "a", r(0, 1))
		p2 := h.PollOK(1, "a", r(2, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return map[string]want{anomaly.PollSkip: {1, []int64{p1, p2}}}
	}, verdict.Invalid},
	{"poll-skip: an assign after a subscribe ends the excuse", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		h.Assign(1, histories.FSubscribe, "a")
		h.Assign(1, histories.FAssign, "a")
		p1 := h.PollOK(1, "a", r(0, 1))
		p2 := h.PollOK(1, "a", r(2, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return map[string]want{anomaly.PollSkip: {1, []int64{p1, p2}}}
	}, verdict.Invalid},
	{"poll-skip twin: an assign after a subscribe starts afresh, even of a key it names", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		h.Assign(1, histories.FSubscribe, "a")
		h.PollOK(1, "a", r(0, 1))
		h.Assign(1, histories.FAssign, "a")
		h.PollOK(1, "a", r(2, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return nil
	}, verdict.Valid},
	{"poll-skip: an assign after an assign keeps the position of a key it names", func(h *histtest.Builder) map[string]want {
		threeSends(h)
		h.Assign(1, histories.FAssign, "a")
		p1 := h.PollOK(1, "a", r(0, 1))
		h.Assign(1, histories.FAssign, "a")
		p2 := h.PollOK(1, "a", r(2, 3))
		h.ReadAll(2, "a", 1, 2, 3)
		return map[string]want{anomaly.PollSkip: {1, []int64{p1, p2}}}
	}, verdict.Invalid},

	// Verdict edge cases.
	{"empty history proves nothing", func(h *histtest.Builder) map[string]want { return nil }, verdict.Unknown},
	{"only failed sends and nemesis events prove nothing", func(h *histtest.Builder) map[string]want {
		h.Add(histories.NemesisProcess, histories.Info, "start-partition", histories.Value{Raw: []byte(`"majority"`)})
		h.Send(0, histories.Fail, at("a", 0, 1))
		return nil
	}, verdict.Unknown},
}

// threeSends acknowledges values 1, 2, 3 at offsets 0, 1, 2 of key "a".
func threeSends(h *histtest.Builder) {
	h.SendOK(0, "a", 0, 1)
	h.SendOK(0, "a", 1, 2)
	h.SendOK(0, "a", 2, 3)
}

func TestCheckCases(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &histtest.Builder{}
			wants := tc.build(h)
			res := checkOps(t, h.Ops, Options{})
			if res.Valid != tc.valid {
				t.Errorf("valid = %v, want %v", res.Valid, tc.valid)
			}
			var names []string
			for name := range wants {
				names = append(names, name)
			}
			slices.Sort(names)
			if names == nil {
				names = []string{}
			}
			if !slices.Equal(res.AnomalyTypes, names) {
				t.Errorf("anomaly types = %v, want %v", res.AnomalyTypes, names)
			}
			for name, w := range wants {
				a := res.Anomalies[name]
				if a == nil {
					continue // reported above
				}
				if a.Count != w.n || len(a.Examples) != w.n {
					t.Errorf("%s: count %d with %d examples, want %d", name, a.Count, len(a.Examples), w.n)
					continue
				}
				ex := a.Examples[0]
				var got []int64
				for _, op := range ex.Ops {
					got = append(got, op.Index)
				}
				if !slices.Equal(got, w.ops) {
					t.Errorf("%s: example cites ops %v, want %v (%s)", name, got, w.ops, ex.Explanation)
				}
				if ex.Key == "" || ex.Explanation == "" {
					t.Errorf("%s: example without key or explanation: %+v", name, ex)
				}
			}
			if t.Failed() {
				b, _ := json.MarshalIndent(res, "", "  ")
				t.Logf("result: %s", b)
			}
		})
	}
}

// OpRefs must copy the cited event exactly, and int-send-skip must show
// up among the allowed types.
func TestExampleFields(t *testing.T) {
	h := &histtest.Builder{}
	w := h.Send(7, histories.OK, at("a", 0, 1), at("a", 3, 2))
	h.SendOK(1, "a", 1, 3)
	h.SendOK(1, "a", 2, 4)
	h.ReadAll(2, "a", 1, 3, 4, 2)
	res := checkOps(t, h.Ops, Options{})
	if res.Valid != verdict.Valid || !slices.Equal(res.AllowedTypes, []string{anomaly.IntSendSkip}) {
		t.Fatalf("valid %v, allowed %v; want valid with int-send-skip allowed", res.Valid, res.AllowedTypes)
	}
	ex := res.Anomalies[anomaly.IntSendSkip].Examples[0]
	wantRef := OpRef{Index: w, Process: 7, Time: 1000 * w, Type: histories.OK, F: histories.FSend}
	if len(ex.Ops) != 1 || ex.Ops[0] != wantRef {
		t.Errorf("ops = %+v, want [%+v]", ex.Ops, wantRef)
	}
	if *ex.Delta != 3 || !slices.Equal(ex.Skipped, ints(3, 4)) || !slices.Equal(ex.Offsets, []int64{0, 3}) || !slices.Equal(ex.Values, ints(1, 2)) {
		t.Errorf("example = %+v, want delta 3, skipped [3 4], offsets [0 3], values [1 2]", ex)
	}
}

func TestLostWriteExample(t *testing.T) {
	h := &histtest.Builder{}
	h.SendOK(0, "k", 10, 1)
	h.SendOK(0, "k", 11, 2)
	h.SendOK(0, "k", 12, 3)
	h.PollOK(1, "k", r(10, 1))
	h.PollOK(2, "k", r(12, 3))
	res := checkOps(t, h.Ops, Options{})
	ex := res.Anomalies[anomaly.LostWrite].Examples[0]
	if *ex.Value != (histories.Val{Int: 2}) || *ex.Offset != 11 || *ex.MaxReadOffset != 12 {
		t.Errorf("example = %+v, want value 2 at offset 11 lost below max read 12", ex)
	}
	if !strings.Contains(ex.Explanation, "never read") {
		t.Errorf("explanation %q does not say the value was never read", ex.Explanation)
	}
	// Lost values are not also unseen.
	if res.Counts.Lost != 1 || res.Counts.Unseen != 0 {
		t.Errorf("counts = %+v, want 1 lost, 0 unseen", res.Counts)
	}
}

func TestCounts(t *testing.T) {
	h := &histtest.Builder{}
	h.SendOK(0, "a", 0, 1)                                                                                      // acknowledged, read
	h.SendOK(0, "a", 1, 2)                                                                                      // acknowledged, lost
	h.SendOK(0, "a", unknown, 3)                                                                                // acknowledged (acks=0), read at 3 and 4: duplicated
	h.Send(0, histories.Fail, at("a", 0, 4))                                                                    // failed
	h.Send(0, histories.Info, at("a", 0, 5), at("b", 0, 6))                                                     // indeterminate x2, 5 read
	h.SendOK(1, "b", 0, 7)                                                                                      // acknowledged, unseen
	h.Add(2, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("b", 0, 8)})}) // never completed
	h.PollOK(3, "a", r(0, 1), r(2, 5), r(3, 3), r(4, 3))
	res := checkOps(t, h.Ops, Options{})
	want := Counts{
		Sent: 8, Acknowledged: 4, Failed: 1, Indeterminate: 3, IndeterminateRead: 1,
		Read: 3, Lost: 1, Unseen: 1, Duplicated: 1,
	}
	if res.Counts != want {
		t.Errorf("counts = %+v\nwant     %+v", res.Counts, want)
	}
}

func TestPendingOpsAreIndeterminate(t *testing.T) {
	h := &histtest.Builder{}
	// Processes 0 and 4 invoke and never complete (the history ends): both
	// sends are indeterminate.
	h.Add(0, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 1)})})
	h.Add(4, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 2)})})
	h.SendOK(1, "a", 0, 3)
	h.ReadAll(2, "a", 3)
	res := checkOps(t, h.Ops, Options{})
	if res.Counts.Indeterminate != 2 || res.Valid != verdict.Valid {
		t.Errorf("indeterminate %d, valid %v; want 2, valid", res.Counts.Indeterminate, res.Valid)
	}
}

func TestMaxExamples(t *testing.T) {
	h := &histtest.Builder{}
	for v := range int64(20) {
		h.SendOK(0, "a", v, v)
	}
	for _, tc := range []struct{ max, want int }{{0, DefaultMaxExamples}, {3, 3}, {-1, 20}, {50, 20}} {
		res := checkOps(t, h.Ops, Options{MaxExamples: tc.max})
		a := res.Anomalies[anomaly.Unseen]
		if a.Count != 20 || len(a.Examples) != tc.want {
			t.Errorf("MaxExamples %d: count %d, %d examples; want 20, %d", tc.max, a.Count, len(a.Examples), tc.want)
			continue
		}
		// The first examples are kept, in log order.
		for i, ex := range a.Examples {
			if ex.Value.Int != int64(i) {
				t.Errorf("MaxExamples %d: example %d is value %s, want %d", tc.max, i, ex.Value, i)
			}
		}
	}
}

func TestResultJSON(t *testing.T) {
	h := &histtest.Builder{}
	h.SendOK(0, "a", 0, 1)
	b, err := json.Marshal(checkOps(t, h.Ops, Options{}))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["valid"] != false {
		t.Errorf("valid = %v, want false in %s", got["valid"], b)
	}
	for _, k := range []string{"anomaly-types", "anomalies", "counts"} {
		if _, ok := got[k]; !ok {
			t.Errorf("missing %q in %s", k, b)
		}
	}
	ex := got["anomalies"].(map[string]any)["unseen"].(map[string]any)["examples"].([]any)[0].(map[string]any)
	for _, k := range []string{"key", "value", "offset", "explanation", "ops"} {
		if _, ok := ex[k]; !ok {
			t.Errorf("example lacks %q: %v", k, ex)
		}
	}
}

// ints makes integer values.
func ints(vs ...int64) []histories.Val {
	out := make([]histories.Val, len(vs))
	for i, v := range vs {
		out[i] = histories.Val{Int: v}
	}
	return out
}

// Every anomaly of the one table has a case above that shows it, and a
// one-line description: an anomaly added to the table without a test of
// its rule fails here.
func TestEveryAnomalyHasACase(t *testing.T) {
	shown := map[string]bool{}
	for _, tc := range cases {
		for name := range tc.build(&histtest.Builder{}) {
			shown[name] = true
		}
	}
	for _, a := range anomaly.Table {
		if !shown[a.Name] {
			t.Errorf("no case in cases shows %s", a.Name)
		}
		if a.Description == "" || strings.Contains(a.Description, "\n") {
			t.Errorf("description of %s = %q, want one non-empty line", a.Name, a.Description)
		}
	}
	for name := range shown {
		if !anomaly.Known(name) {
			t.Errorf("case expects %q, which the anomaly table does not name", name)
		}
	}
}

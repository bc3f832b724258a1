package queue

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

const unknown = histories.OffsetUnknown

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
	build func(h *hist) map[string]want
	valid verdict.Verdict
}{
	// lost-write
	{"lost-write: acked, never read, a later offset read", func(h *hist) map[string]want {
		w := h.sendOK(0, "a", 0, 1)
		h.sendOK(0, "a", 1, 2)
		p := h.pollOK(1, "a", r(1, 2))
		return map[string]want{LostWrite: {1, []int64{w, p}}}
	}, verdict.Invalid},
	{"lost-write twin: read after the later offset was read", func(h *hist) map[string]want {
		h.sendOK(0, "a", 0, 1)
		h.sendOK(0, "a", 1, 2)
		h.pollOK(1, "a", r(1, 2))
		h.pollOK(2, "a", r(0, 1))
		return nil
	}, verdict.Valid},
	{"lost-write twin: info send never read", func(h *hist) map[string]want {
		h.send(0, histories.Info, at("a", 0, 1))
		h.sendOK(1, "a", 1, 2)
		h.pollOK(2, "a", r(1, 2))
		return nil
	}, verdict.Valid},
	{"lost-write twin: info send reporting an offset, never read", func(h *hist) map[string]want {
		// Without proof it committed, its offset does not enter the log
		// either: offset 1 is the first position, so no skip.
		h.add(0, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 1)})})
		h.add(0, histories.Info, histories.FSend, histories.Value{Mops: []histories.Mop{at("a", 0, 1)}})
		h.sendOK(1, "a", 1, 2)
		h.pollOK(2, "a", r(1, 2))
		return nil
	}, verdict.Valid},
	{"lost-write: info send proven committed by another of its values", func(h *hist) map[string]want {
		h.add(0, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 1), at("b", 0, 3)})})
		w := h.add(0, histories.Info, histories.FSend, histories.Value{Mops: []histories.Mop{at("a", 0, 1), at("b", 0, 3)}})
		h.sendOK(1, "a", 1, 2)
		h.pollOK(2, "b", r(0, 3))
		p := h.pollOK(2, "a", r(1, 2))
		return map[string]want{LostWrite: {1, []int64{w, p}}}
	}, verdict.Invalid},

	// unseen
	{"unseen: acked, never read, nothing read", func(h *hist) map[string]want {
		w := h.sendOK(0, "a", 0, 1)
		return map[string]want{Unseen: {1, []int64{w}}}
	}, verdict.Invalid},
	{"unseen: acked, nothing after it read", func(h *hist) map[string]want {
		h.sendOK(0, "a", 0, 1)
		w := h.sendOK(0, "a", 1, 2)
		h.pollOK(1, "a", r(0, 1))
		return map[string]want{Unseen: {1, []int64{w}}}
	}, verdict.Invalid},
	{"unseen: acks=0 send never read", func(h *hist) map[string]want {
		w := h.sendOK(0, "a", unknown, 1)
		h.sendOK(0, "a", unknown, 2)
		h.pollOK(1, "a", r(0, 2))
		return map[string]want{Unseen: {1, []int64{w}}}
	}, verdict.Invalid},
	{"unseen twin: acks=0 send read", func(h *hist) map[string]want {
		h.sendOK(0, "a", unknown, 1)
		h.pollOK(1, "a", r(0, 1))
		return nil
	}, verdict.Valid},
	{"unseen twin: failed send never read", func(h *hist) map[string]want {
		h.send(0, histories.Fail, at("a", 0, 1))
		h.sendOK(1, "a", 0, 2)
		h.readAll(2, "a", 2)
		return nil
	}, verdict.Valid},
	{"unseen twin: send never completed (harness crashed)", func(h *hist) map[string]want {
		h.sendOK(0, "a", 0, 1)
		h.add(1, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 1, 2)})})
		h.readAll(2, "a", 1)
		return nil
	}, verdict.Valid},

	// duplicate
	{"duplicate: one value at two offsets", func(h *hist) map[string]want {
		w := h.sendOK(0, "a", 0, 1)
		p := h.pollOK(1, "a", r(0, 1), r(1, 1))
		return map[string]want{Duplicate: {1, []int64{w, p}}}
	}, verdict.Invalid},
	{"duplicate: acks=0 value read at two offsets", func(h *hist) map[string]want {
		h.sendOK(0, "a", unknown, 1)
		p := h.pollOK(1, "a", r(0, 1), r(1, 1))
		return map[string]want{Duplicate: {1, []int64{p}}}
	}, verdict.Invalid},
	{"duplicate twin: one record read by two polls", func(h *hist) map[string]want {
		h.sendOK(0, "a", 0, 1)
		h.pollOK(1, "a", r(0, 1))
		h.pollOK(2, "a", r(0, 1))
		return nil
	}, verdict.Valid},

	// inconsistent-offsets
	{"inconsistent-offsets: two acked values at one offset", func(h *hist) map[string]want {
		w1 := h.sendOK(0, "a", 0, 1)
		w2 := h.sendOK(1, "a", 0, 2)
		p := h.pollOK(2, "a", r(0, 2))
		return map[string]want{
			InconsistentOffsets: {1, []int64{w1, w2}},
			LostWrite:           {1, []int64{w1, p}}, // value 1 was overwritten
		}
	}, verdict.Invalid},
	{"inconsistent-offsets twin: distinct offsets", func(h *hist) map[string]want {
		h.sendOK(0, "a", 0, 1)
		h.sendOK(1, "a", 1, 2)
		h.readAll(2, "a", 1, 2)
		return nil
	}, verdict.Valid},

	// poll-skip
	{"poll-skip: next poll jumps a record", func(h *hist) map[string]want {
		threeSends(h)
		p1 := h.pollOK(1, "a", r(0, 1))
		p2 := h.pollOK(1, "a", r(2, 3))
		h.readAll(2, "a", 1, 2, 3)
		return map[string]want{PollSkip: {1, []int64{p1, p2}}}
	}, verdict.Invalid},
	{"poll-skip: assign keeps the position of a key still assigned", func(h *hist) map[string]want {
		threeSends(h)
		p1 := h.pollOK(1, "a", r(0, 1))
		h.assign(1, histories.FAssign, "a", "b")
		p2 := h.pollOK(1, "a", r(2, 3))
		h.readAll(2, "a", 1, 2, 3)
		return map[string]want{PollSkip: {1, []int64{p1, p2}}}
	}, verdict.Invalid},
	{"poll-skip twin: key unassigned and assigned again starts anywhere", func(h *hist) map[string]want {
		threeSends(h)
		h.pollOK(1, "a", r(0, 1))
		h.assign(1, histories.FAssign, "b")
		h.assign(1, histories.FAssign, "a")
		h.pollOK(1, "a", r(2, 3))
		h.readAll(2, "a", 1, 2, 3)
		return nil
	}, verdict.Valid},
	{"poll-skip twin: another process reads further", func(h *hist) map[string]want {
		threeSends(h)
		h.pollOK(1, "a", r(0, 1))
		h.pollOK(3, "a", r(2, 3))
		h.readAll(2, "a", 1, 2, 3)
		return nil
	}, verdict.Valid},
	{"poll-skip: reported but allowed when the history subscribes", func(h *hist) map[string]want {
		threeSends(h)
		h.assign(1, histories.FSubscribe, "a")
		p1 := h.pollOK(1, "a", r(0, 1))
		p2 := h.pollOK(1, "a", r(2, 3))
		h.readAll(2, "a", 1, 2, 3)
		return map[string]want{PollSkip: {1, []int64{p1, p2}}}
	}, verdict.Valid},

	// nonmonotonic-poll
	{"nonmonotonic-poll: next poll starts where the last ended", func(h *hist) map[string]want {
		threeSends(h)
		p1 := h.pollOK(1, "a", r(0, 1), r(1, 2))
		p2 := h.pollOK(1, "a", r(1, 2), r(2, 3))
		return map[string]want{NonmonotonicPoll: {1, []int64{p1, p2}}}
	}, verdict.Invalid},
	{"nonmonotonic-poll twin: a failed poll does not move the position", func(h *hist) map[string]want {
		threeSends(h)
		h.pollOK(1, "a", r(0, 1))
		h.poll(1, histories.Fail, map[string][]histories.Record{"a": {r(1, 2)}})
		h.pollOK(1, "a", r(1, 2), r(2, 3))
		return nil
	}, verdict.Valid},

	// nonmonotonic-send
	{"nonmonotonic-send: a producer's next send lands before its last", func(h *hist) map[string]want {
		w1 := h.sendOK(0, "a", 1, 1)
		w2 := h.sendOK(0, "a", 0, 2)
		h.readAll(1, "a", 2, 1)
		return map[string]want{NonmonotonicSend: {1, []int64{w1, w2}}}
	}, verdict.Invalid},
	{"nonmonotonic-send: a producer's next send lands on the same offset", func(h *hist) map[string]want {
		w1 := h.sendOK(0, "a", 0, 1)
		w2 := h.sendOK(0, "a", 0, 2)
		p := h.readAll(1, "a", 2)
		return map[string]want{
			NonmonotonicSend:    {1, []int64{w1, w2}},
			InconsistentOffsets: {1, []int64{w1, w2}},
			LostWrite:           {1, []int64{w1, p}},
		}
	}, verdict.Invalid},
	{"nonmonotonic-send twin: two producers", func(h *hist) map[string]want {
		h.sendOK(0, "a", 1, 1)
		h.sendOK(1, "a", 0, 2)
		h.readAll(2, "a", 2, 1)
		return nil
	}, verdict.Valid},
	{"nonmonotonic-send twin: acks=0 send claims no position", func(h *hist) map[string]want {
		h.sendOK(0, "a", 1, 1)
		h.sendOK(0, "a", unknown, 2)
		h.readAll(1, "a", 2, 1)
		return nil
	}, verdict.Valid},

	// int-poll-skip
	{"int-poll-skip: one poll jumps a record", func(h *hist) map[string]want {
		threeSends(h)
		p := h.pollOK(1, "a", r(0, 1), r(2, 3))
		h.readAll(2, "a", 1, 2, 3)
		return map[string]want{IntPollSkip: {1, []int64{p}}}
	}, verdict.Invalid},
	{"int-poll-skip twin: offset gaps nobody saw are not skips", func(h *hist) map[string]want {
		h.sendOK(0, "a", 0, 1)
		h.sendOK(0, "a", 5, 2)
		h.pollOK(1, "a", r(0, 1), r(5, 2))
		return nil
	}, verdict.Valid},

	// int-nonmonotonic-poll
	{"int-nonmonotonic-poll: one poll goes backwards", func(h *hist) map[string]want {
		h.sendOK(0, "a", 0, 1)
		h.sendOK(0, "a", 1, 2)
		p := h.pollOK(1, "a", r(1, 2), r(0, 1))
		return map[string]want{IntNonmonotonicPoll: {1, []int64{p}}}
	}, verdict.Invalid},
	{"int-nonmonotonic-poll twin: lower offset in another key", func(h *hist) map[string]want {
		h.sendOK(0, "a", 0, 1)
		h.sendOK(0, "a", 1, 2)
		h.sendOK(0, "b", 0, 3)
		h.pollOK(2, "a", r(0, 1))
		h.poll(1, histories.OK, map[string][]histories.Record{"a": {r(1, 2)}, "b": {r(0, 3)}})
		return nil
	}, verdict.Valid},

	// int-send-skip
	{"int-send-skip: reported, verdict stays valid", func(h *hist) map[string]want {
		w := h.send(0, histories.OK, at("a", 0, 1), at("a", 2, 2))
		h.sendOK(1, "a", 1, 3)
		h.readAll(2, "a", 1, 3, 2)
		return map[string]want{IntSendSkip: {1, []int64{w}}}
	}, verdict.Valid},
	{"int-send-skip twin: adjacent sends", func(h *hist) map[string]want {
		h.send(0, histories.OK, at("a", 0, 1), at("a", 1, 2))
		h.readAll(2, "a", 1, 2)
		return nil
	}, verdict.Valid},

	// int-nonmonotonic-send
	{"int-nonmonotonic-send: one op's sends go backwards", func(h *hist) map[string]want {
		w := h.send(0, histories.OK, at("a", 1, 1), at("a", 0, 2))
		h.readAll(1, "a", 2, 1)
		return map[string]want{IntNonmonotonicSend: {1, []int64{w}}}
	}, verdict.Invalid},
	{"int-nonmonotonic-send twin: lower offset in another key", func(h *hist) map[string]want {
		h.send(0, histories.OK, at("a", 1, 1), at("b", 0, 2))
		h.sendOK(1, "a", 0, 3)
		h.readAll(2, "a", 3, 1)
		h.readAll(3, "b", 2)
		return nil
	}, verdict.Valid},

	// Which ops count as writers, readers and positions.
	{"uncommitted info offset does not enter the log", func(h *hist) map[string]want {
		h.sendOK(0, "a", 0, 1)
		h.add(1, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 1, 2)})})
		h.add(1, histories.Info, histories.FSend, histories.Value{Mops: []histories.Mop{at("a", 1, 2)}})
		h.sendOK(0, "a", 2, 3)
		h.pollOK(2, "a", r(0, 1), r(2, 3))
		return nil
	}, verdict.Valid},
	{"info send with an offset claims no send order", func(h *hist) map[string]want {
		h.sendOK(0, "a", 1, 1)
		h.add(0, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 2)})})
		h.add(0, histories.Info, histories.FSend, histories.Value{Mops: []histories.Mop{at("a", 0, 2)}})
		h.pollOK(1, "a", r(1, 1))
		return nil
	}, verdict.Valid},
	{"failed send claims no send order", func(h *hist) map[string]want {
		h.sendOK(1, "a", 0, 3)
		h.sendOK(0, "a", 1, 1)
		h.add(0, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 2)})})
		h.add(0, histories.Fail, histories.FSend, histories.Value{Mops: []histories.Mop{at("a", 0, 2)}})
		h.readAll(2, "a", 3, 1)
		return nil
	}, verdict.Valid},
	{"failed send and phantom value shown only by a failed poll are not lost", func(h *hist) map[string]want {
		h.send(0, histories.Fail, at("a", 0, 1))
		h.poll(1, histories.Fail, map[string][]histories.Record{"a": {r(0, 1), r(1, 9)}})
		h.sendOK(0, "a", 2, 2)
		h.pollOK(2, "a", r(2, 2))
		return nil
	}, verdict.Valid},
	{"a record shown only by a failed poll is not read", func(h *hist) map[string]want {
		w := h.sendOK(0, "a", 0, 1)
		h.poll(1, histories.Fail, map[string][]histories.Record{"a": {r(0, 1)}})
		return map[string]want{Unseen: {1, []int64{w}}}
	}, verdict.Invalid},
	{"a value sent again after failing keeps the ok writer", func(h *hist) map[string]want {
		h.send(0, histories.Fail, at("a", 0, 1))
		w := h.sendOK(0, "a", 0, 1)
		return map[string]want{Unseen: {1, []int64{w}}}
	}, verdict.Invalid},

	{"values outside the direct table and values in two keys", func(h *hist) map[string]want {
		h.sendOK(0, "a", 0, -5)
		h.sendOK(0, "a", 1, 1<<40)
		w := h.sendOK(0, "a", 2, 7)
		h.sendOK(0, "b", 0, 8)
		h.readAll(1, "a", -5, 1<<40)
		h.pollOK(2, "b", r(0, 8), r(1, 7), r(2, 1<<40)) // 7 and 1<<40 misrouted to b
		return map[string]want{Unseen: {1, []int64{w}}}
	}, verdict.Invalid},

	// Verdict edge cases.
	{"empty history proves nothing", func(h *hist) map[string]want { return nil }, verdict.Unknown},
	{"only failed sends and nemesis events prove nothing", func(h *hist) map[string]want {
		h.add(histories.NemesisProcess, histories.Info, "start-partition", histories.Value{Raw: []byte(`"majority"`)})
		h.send(0, histories.Fail, at("a", 0, 1))
		return nil
	}, verdict.Unknown},
}

// threeSends acknowledges values 1, 2, 3 at offsets 0, 1, 2 of key "a".
func threeSends(h *hist) {
	h.sendOK(0, "a", 0, 1)
	h.sendOK(0, "a", 1, 2)
	h.sendOK(0, "a", 2, 3)
}

func TestCheckCases(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &hist{}
			wants := tc.build(h)
			res := Check(h.ops, Options{})
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
	h := &hist{}
	w := h.send(7, histories.OK, at("a", 0, 1), at("a", 3, 2))
	h.sendOK(1, "a", 1, 3)
	h.sendOK(1, "a", 2, 4)
	h.readAll(2, "a", 1, 3, 4, 2)
	res := Check(h.ops, Options{})
	if res.Valid != verdict.Valid || !slices.Equal(res.AllowedTypes, []string{IntSendSkip}) {
		t.Fatalf("valid %v, allowed %v; want valid with int-send-skip allowed", res.Valid, res.AllowedTypes)
	}
	ex := res.Anomalies[IntSendSkip].Examples[0]
	wantRef := OpRef{Index: w, Process: 7, Time: 1000 * w, Type: histories.OK, F: histories.FSend}
	if len(ex.Ops) != 1 || ex.Ops[0] != wantRef {
		t.Errorf("ops = %+v, want [%+v]", ex.Ops, wantRef)
	}
	if *ex.Delta != 3 || !slices.Equal(ex.Skipped, []int64{3, 4}) || !slices.Equal(ex.Offsets, []int64{0, 3}) || !slices.Equal(ex.Values, []int64{1, 2}) {
		t.Errorf("example = %+v, want delta 3, skipped [3 4], offsets [0 3], values [1 2]", ex)
	}
}

func TestLostWriteExample(t *testing.T) {
	h := &hist{}
	h.sendOK(0, "k", 10, 1)
	h.sendOK(0, "k", 11, 2)
	h.sendOK(0, "k", 12, 3)
	h.pollOK(1, "k", r(10, 1))
	h.pollOK(2, "k", r(12, 3))
	res := Check(h.ops, Options{})
	ex := res.Anomalies[LostWrite].Examples[0]
	if *ex.Value != 2 || *ex.Offset != 11 || *ex.MaxReadOffset != 12 {
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
	h := &hist{}
	h.sendOK(0, "a", 0, 1)                                                                                      // acknowledged, read
	h.sendOK(0, "a", 1, 2)                                                                                      // acknowledged, lost
	h.sendOK(0, "a", unknown, 3)                                                                                // acknowledged (acks=0), read at 3 and 4: duplicated
	h.send(0, histories.Fail, at("a", 0, 4))                                                                    // failed
	h.send(0, histories.Info, at("a", 0, 5), at("b", 0, 6))                                                     // indeterminate x2, 5 read
	h.sendOK(1, "b", 0, 7)                                                                                      // acknowledged, unseen
	h.add(2, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("b", 0, 8)})}) // never completed
	h.pollOK(3, "a", r(0, 1), r(2, 5), r(3, 3), r(4, 3))
	res := Check(h.ops, Options{})
	want := Counts{
		Sent: 8, Acknowledged: 4, Failed: 1, Indeterminate: 3, IndeterminateRead: 1,
		Read: 3, Lost: 1, Unseen: 1, Duplicated: 1,
	}
	if res.Counts != want {
		t.Errorf("counts = %+v\nwant     %+v", res.Counts, want)
	}
}

func TestPendingOpsAreIndeterminate(t *testing.T) {
	h := &hist{}
	// Process 0 invokes twice without completing: the first send is
	// indeterminate, and so is the second (history ends).
	h.add(0, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 1)})})
	h.add(0, histories.Invoke, histories.FSend, histories.Value{Mops: invoked([]histories.Mop{at("a", 0, 2)})})
	h.sendOK(1, "a", 0, 3)
	h.readAll(2, "a", 3)
	res := Check(h.ops, Options{})
	if res.Counts.Indeterminate != 2 || res.Valid != verdict.Valid {
		t.Errorf("indeterminate %d, valid %v; want 2, valid", res.Counts.Indeterminate, res.Valid)
	}
}

func TestMaxExamples(t *testing.T) {
	h := &hist{}
	for v := range int64(20) {
		h.sendOK(0, "a", v, v)
	}
	for _, tc := range []struct{ max, want int }{{0, DefaultMaxExamples}, {3, 3}, {-1, 20}, {50, 20}} {
		res := Check(h.ops, Options{MaxExamples: tc.max})
		a := res.Anomalies[Unseen]
		if a.Count != 20 || len(a.Examples) != tc.want {
			t.Errorf("MaxExamples %d: count %d, %d examples; want 20, %d", tc.max, a.Count, len(a.Examples), tc.want)
			continue
		}
		// The first examples are kept, in log order.
		for i, ex := range a.Examples {
			if *ex.Value != int64(i) {
				t.Errorf("MaxExamples %d: example %d is value %d, want %d", tc.max, i, *ex.Value, i)
			}
		}
	}
}

func TestResultJSON(t *testing.T) {
	h := &hist{}
	h.sendOK(0, "a", 0, 1)
	b, err := json.Marshal(Check(h.ops, Options{}))
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

func TestDescriptionsNameEveryAnomaly(t *testing.T) {
	all := []string{LostWrite, Unseen, Duplicate, InconsistentOffsets, PollSkip, NonmonotonicPoll,
		NonmonotonicSend, IntPollSkip, IntNonmonotonicPoll, IntSendSkip, IntNonmonotonicSend}
	if len(Descriptions) != len(all) {
		t.Errorf("%d descriptions, want %d", len(Descriptions), len(all))
	}
	for _, name := range all {
		if d := Descriptions[name]; d == "" || strings.Contains(d, "\n") {
			t.Errorf("description of %s = %q, want one non-empty line", name, d)
		}
	}
}

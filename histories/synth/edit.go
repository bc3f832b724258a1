package synth

import (
	"slices"

	"github.com/garantia/garantia/histories"
)

// editor rewrites a history without touching the caller's copy: ops is a
// shallow copy, and an op is deep-copied the first time its records change.
// Events can be inserted before any position and a completion can be
// replaced by a sequence of events; finish lays them out, spreads their
// times between their neighbours and renumbers every index.
type editor struct {
	ops     []histories.Op
	cloned  map[int]bool
	before  map[int][]histories.Op // events to insert before position i (i may be len(ops))
	replace map[int][]histories.Op // events that stand in for the completion at i
	partner []int                  // invoke <-> completion position, or -1
	nextPID int64                  // an unused process id
	nextVal int64                  // an unused value
}

func newEditor(in []histories.Op) *editor {
	e := &editor{
		ops:     slices.Clone(in),
		cloned:  map[int]bool{},
		before:  map[int][]histories.Op{},
		replace: map[int][]histories.Op{},
		partner: make([]int, len(in)),
	}
	pairing, _ := histories.Pair(e.ops) // a generated history pairs up
	for i := range e.ops {
		op := &e.ops[i]
		e.partner[i] = -1
		if op.IsClient() {
			if j := pairing.Completion[i]; j >= 0 {
				e.partner[i] = j
			} else if j := pairing.Invocation[i]; j >= 0 {
				e.partner[i] = j
			}
		}
		e.nextPID = max(e.nextPID, op.Process+1)
		for _, m := range op.Value.Mops {
			e.nextVal = max(e.nextVal, m.Value+1)
			for _, recs := range m.Polls {
				for _, r := range recs {
					e.nextVal = max(e.nextVal, r.Value+1)
				}
			}
		}
	}
	return e
}

// pollRecs returns what the completed poll at i read, or nil.
func (e *editor) pollRecs(i int) map[string][]histories.Record {
	op := &e.ops[i]
	if op.Type == histories.Invoke || (op.F != histories.FPoll && op.F != histories.FTxn) {
		return nil
	}
	for _, m := range op.Value.Mops {
		if m.F == histories.MopPoll && m.Polls != nil {
			return m.Polls
		}
	}
	return nil
}

// isOKPoll reports whether i is an ok completion of a poll (or txn) that
// read something or nothing.
func (e *editor) isOKPoll(i int) bool {
	return e.ops[i].Type == histories.OK && e.pollRecs(i) != nil
}

// own deep-copies op i's value the first time it is about to change.
func (e *editor) own(i int) {
	if e.cloned[i] {
		return
	}
	e.cloned[i] = true
	e.ops[i].Value = cloneValue(e.ops[i].Value)
}

func cloneValue(v histories.Value) histories.Value {
	out := histories.Value{Keys: slices.Clone(v.Keys), Raw: slices.Clone(v.Raw)}
	if v.Mops != nil {
		out.Mops = make([]histories.Mop, len(v.Mops))
		for j, m := range v.Mops {
			if m.Polls != nil {
				p := make(map[string][]histories.Record, len(m.Polls))
				for k, recs := range m.Polls {
					p[k] = recs // record slices are replaced, never written
				}
				m.Polls = p
			}
			out.Mops[j] = m
		}
	}
	return out
}

// setRecs makes the poll at i have read recs of key k; an empty recs
// removes the key, as a Kafka poll returns no entry for a partition it got
// nothing from.
func (e *editor) setRecs(i int, k string, recs []histories.Record) {
	e.own(i)
	for j := range e.ops[i].Value.Mops {
		m := &e.ops[i].Value.Mops[j]
		if m.F == histories.MopPoll && m.Polls != nil {
			if len(recs) == 0 {
				delete(m.Polls, k)
			} else {
				m.Polls[k] = recs
			}
			return
		}
	}
}

// mapRecs rewrites key k's records of every completed poll with f; f gets
// a copy it may modify.
func (e *editor) mapRecs(k string, f func(i int, recs []histories.Record) []histories.Record) {
	for i := range e.ops {
		recs, ok := e.pollRecs(i)[k]
		if !ok {
			continue
		}
		out := f(i, slices.Clone(recs))
		if !slices.Equal(out, recs) {
			e.setRecs(i, k, out)
		}
	}
}

// sendMop finds the send micro-op of (k, v) in op i.
func (e *editor) sendMop(i int, k string, v int64) *histories.Mop {
	for j := range e.ops[i].Value.Mops {
		m := &e.ops[i].Value.Mops[j]
		if m.F == histories.MopSend && m.Key == k && m.Value == v {
			return m
		}
	}
	return nil
}

// resetEvents are the four events of a consumer that gives up partition k
// and takes it back: Jepsen forgets a process's position in a partition it
// unassigns, so reads after this never count as skipping or going back.
func resetEvents(p int64, assigned []string, k string) []histories.Op {
	without := make([]string, 0, len(assigned))
	with := make([]string, 0, len(assigned)+1)
	for _, a := range assigned {
		if a != k {
			without = append(without, a)
		}
		with = append(with, a)
	}
	if !slices.Contains(with, k) {
		with = append(with, k)
	}
	ev := func(t histories.Type, keys []string) histories.Op {
		return histories.Op{Process: p, Type: t, F: histories.FAssign, Value: histories.Value{Keys: slices.Clone(keys)}}
	}
	return []histories.Op{
		ev(histories.Invoke, without), ev(histories.OK, without),
		ev(histories.Invoke, with), ev(histories.OK, with),
	}
}

// cut makes sure no process visibly reads key k across a boundary: wherever
// a process read an offset below some b in bounds and then (in the same
// poll or a later one, with k still assigned) an offset at or above b, it
// now unassigns and reassigns k in between, splitting the poll in two if
// need be. Jepsen's poll-skip and nonmonotonic-poll rules then have nothing
// to compare across the boundary. Reads must already be in their final form
// (cut looks at the records as they are now).
func (e *editor) cut(k string, bounds ...int64) int {
	crosses := func(x, y int64) bool {
		for _, b := range bounds {
			if x < b && b <= y {
				return true
			}
		}
		return false
	}
	type state struct {
		assigned []string
		last     int64 // last offset of k read since k was (re)assigned; -1 none
	}
	procs := map[int64]*state{}
	resets := 0
	for i := range e.ops {
		op := &e.ops[i]
		if !op.IsClient() || op.Type == histories.Invoke {
			continue
		}
		st := procs[op.Process]
		if st == nil {
			st = &state{last: -1}
			procs[op.Process] = st
		}
		if (op.F == histories.FAssign || op.F == histories.FSubscribe) && (op.Type == histories.OK || op.Type == histories.Info) {
			st.assigned = op.Value.Keys
			if !slices.Contains(st.assigned, k) {
				st.last = -1
			}
			continue
		}
		if !e.isOKPoll(i) {
			continue
		}
		recs := e.pollRecs(i)[k]
		if len(recs) == 0 {
			continue
		}
		if st.last >= 0 && crosses(st.last, recs[0].Offset) && e.partner[i] >= 0 {
			inv := e.partner[i]
			e.before[inv] = append(e.before[inv], resetEvents(op.Process, st.assigned, k)...)
			resets++
		}
		var segs [][]histories.Record
		from := 0
		for j := 1; j < len(recs); j++ {
			if crosses(recs[j-1].Offset, recs[j].Offset) {
				segs = append(segs, recs[from:j])
				from = j
			}
		}
		segs = append(segs, recs[from:])
		st.last = recs[len(recs)-1].Offset
		if len(segs) == 1 {
			continue
		}
		// Split the poll: the first part completes with everything else it
		// read; each later part is a poll of its own after a reassign.
		e.setRecs(i, k, slices.Clone(segs[0]))
		seq := []histories.Op{e.ops[i]}
		for _, seg := range segs[1:] {
			seq = append(seq, resetEvents(op.Process, st.assigned, k)...)
			resets++
			seq = append(seq,
				histories.Op{Process: op.Process, Type: histories.Invoke, F: histories.FPoll, Value: histories.Value{Mops: []histories.Mop{{F: histories.MopPoll}}}},
				histories.Op{Process: op.Process, Type: histories.OK, F: histories.FPoll, Value: histories.Value{Mops: []histories.Mop{{F: histories.MopPoll, Polls: map[string][]histories.Record{k: slices.Clone(seg)}}}}},
			)
		}
		e.replace[i] = seq
	}
	return resets
}

// finish lays out the edited history: inserted events take times spread
// evenly between their neighbours (so time never goes backwards) and every
// index is renumbered.
func (e *editor) finish() []histories.Op {
	extra := 0
	for _, b := range e.before {
		extra += len(b)
	}
	for _, r := range e.replace {
		extra += len(r)
	}
	out := make([]histories.Op, 0, len(e.ops)+extra)
	var prevT int64
	if len(e.ops) > 0 {
		prevT = e.ops[0].Time
	}
	var seq []histories.Op
	for i := 0; i <= len(e.ops); i++ {
		seq = append(seq[:0], e.before[i]...)
		var t int64
		if i < len(e.ops) {
			t = e.ops[i].Time
			if r, ok := e.replace[i]; ok {
				seq = append(seq, r...)
			} else {
				seq = append(seq, e.ops[i])
			}
		} else {
			t = prevT + int64(len(seq))*1000 // appended at the end: 1µs apart
		}
		t = max(t, prevT)
		n := int64(len(seq))
		for j := range seq {
			op := seq[j]
			op.Time = prevT + (t-prevT)*int64(j+1)/n
			op.Index = int64(len(out))
			out = append(out, op)
		}
		if n > 0 {
			prevT = t
		}
	}
	return out
}

package linear

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/anishathalye/porcupine"
)

// state is the model's state: the log's length and how many polls have
// been linearized. The log's content is not stored: it is a function of its
// length (see doc.go), recovered by keyModel.content. Two small integers
// make porcupine's clone, compare and hash nearly free.
type state struct {
	n     int64 // log length: the offset the next append gets
	polls int   // polls linearized so far: the next poll must have this rank
}

// conflictsMax bounds the conflicts kept for a key's reason: enough to see
// the pattern, small enough for results.json.
const conflictsMax = 3

// keyModel is the log model of one key, built from the key's history. It
// holds what every step needs: who owns each offset and where the offsets
// nobody claims are.
type keyModel struct {
	key string
	ops []*kop
	// owner maps each offset that some ack or some poll claims to the value
	// that claim puts there (the first claim; later different ones are
	// conflicts).
	owner map[int64]int64
	// pinned are the owner's offsets, sorted: offsets only their owner's
	// send may fill. Every other offset is filled by fillers, in order.
	pinned []int64
	// fillers are the filler sends, by rank; polls the polls, by rank.
	fillers, polls []*kop
	// conflicts describe claims that no log can satisfy, for the reason.
	conflicts []string
	nConflict int
}

// newKeyModel builds the model of one key and annotates its ops (offset,
// ok, rank) in place.
func newKeyModel(key string, ops []*kop) *keyModel {
	m := &keyModel{key: key, ops: ops, owner: make(map[int64]int64)}
	claimedBy := make(map[int64]*kop) // offset -> op whose claim made the owner
	claim := func(off, val int64, by *kop) {
		if cur, ok := m.owner[off]; ok {
			if cur != val {
				m.conflict("offset %d holds %d (%s) and %d (%s)", off, cur, cite(claimedBy[off]), val, cite(by))
			}
			return
		}
		m.owner[off] = val
		claimedBy[off] = by
	}
	// Acks claim first, then reads: when they disagree the history is
	// invalid either way (doc.go); this order only decides which op the
	// visualization shows as the one that cannot take effect.
	for _, o := range ops {
		if o.kind == kindSend {
			claim(o.offset, o.value, o)
		}
	}
	observed := make(map[int64]int64) // value -> first offset a poll read it at
	sends := make(map[int64]*kop)     // value -> its send
	for _, o := range ops {
		if o.isSend() {
			sends[o.value] = o
		}
	}
	for _, o := range ops {
		if o.kind != kindPoll {
			continue
		}
		if !o.contiguous {
			m.conflict("%s read offsets that are not contiguous", cite(o))
		}
		for _, r := range o.recs {
			claim(r.Offset, r.Value, o)
			if at, seen := observed[r.Value]; !seen {
				observed[r.Value] = r.Offset
			} else if at != r.Offset {
				m.conflict("value %d read at offsets %d and %d (the second by %s)", r.Value, at, r.Offset, cite(o))
			}
			if _, sent := sends[r.Value]; !sent {
				m.conflict("%s read value %d, which no send to this key wrote", cite(o), r.Value)
			}
		}
	}
	for off := range m.owner {
		m.pinned = append(m.pinned, off)
	}
	sort.Slice(m.pinned, func(i, j int) bool { return m.pinned[i] < m.pinned[j] })

	// Indeterminate sends that some poll read took effect, exactly where
	// they were read; the rest are fillers.
	var fillers, polls []*kop
	for _, o := range ops {
		switch o.kind {
		case kindSend:
			if at, seen := observed[o.value]; seen && at != o.offset {
				m.conflict("%s was read at offset %d", cite(o), at)
			}
		case kindFiller:
			if at, seen := observed[o.value]; seen {
				o.kind, o.offset = kindPinned, at
			} else {
				fillers = append(fillers, o)
			}
		case kindPoll:
			polls = append(polls, o)
		}
	}
	for _, o := range ops {
		switch o.kind {
		case kindSend, kindPinned:
			v, ok := m.owner[o.offset]
			o.ok = ok && v == o.value
		case kindPoll:
			o.ok = o.contiguous
			for _, r := range o.recs {
				if m.owner[r.Offset] != r.Value {
					o.ok = false
				}
			}
		}
	}
	// Fillers are interchangeable (nobody read them), so they take the
	// free offsets in invocation order; polls do not change the log, so
	// they linearize in return order. Both cut porcupine's search down to
	// one order per state (doc.go).
	sort.SliceStable(fillers, func(i, j int) bool { return fillers[i].call < fillers[j].call })
	for i, o := range fillers {
		o.rank = i
	}
	m.fillers = fillers
	sort.SliceStable(polls, func(i, j int) bool {
		if polls[i].ret != polls[j].ret {
			return polls[i].ret < polls[j].ret
		}
		return polls[i].call < polls[j].call
	})
	for i, o := range polls {
		o.rank = i
	}
	m.polls = polls
	return m
}

func (m *keyModel) conflict(format string, args ...any) {
	m.nConflict++
	if len(m.conflicts) < conflictsMax {
		m.conflicts = append(m.conflicts, fmt.Sprintf(format, args...))
	}
}

// pinnedBelow is how many pinned offsets are < n.
func (m *keyModel) pinnedBelow(n int64) int {
	return sort.Search(len(m.pinned), func(i int) bool { return m.pinned[i] >= n })
}

// isPinned reports whether some ack or read claims offset n.
func (m *keyModel) isPinned(n int64) bool {
	i := m.pinnedBelow(n)
	return i < len(m.pinned) && m.pinned[i] == n
}

// step is the sequential specification. It never mutates s.
func (m *keyModel) step(s state, o *kop) (bool, state) {
	switch o.kind {
	case kindSend, kindPinned:
		if o.ok && s.n == o.offset {
			return true, state{s.n + 1, s.polls}
		}
	case kindFiller:
		// The free offsets, in order, go to the fillers, in order: filler
		// r may append only at the r-th free offset.
		if !m.isPinned(s.n) && s.n-int64(m.pinnedBelow(s.n)) == int64(o.rank) {
			return true, state{s.n + 1, s.polls}
		}
	case kindPoll:
		if o.ok && s.polls == o.rank && o.hi < s.n {
			return true, state{s.n, s.polls + 1}
		}
	}
	return false, s
}

// content is the value at offset off of a log of any length > off: the
// owner if pinned, else the filler whose rank is off's rank among free
// offsets. ok is false when there is no such filler (never in a reachable
// state).
func (m *keyModel) content(off int64) (v int64, filler, ok bool) {
	if v, pinned := m.owner[off]; pinned {
		return v, false, true
	}
	r := off - int64(m.pinnedBelow(off))
	if r < 0 || r >= int64(len(m.fillers)) {
		return 0, true, false
	}
	return m.fillers[r].value, true, true
}

// model is the porcupine model of a segment starting in state init.
// stopped, when non-nil, makes every step fail once set: the caller then
// discards the result (see checkKey). Visualization replays steps and must
// use stopped == nil.
func (m *keyModel) model(init state, stopped *atomic.Bool) porcupine.Model {
	step := func(s, in, _ any) (bool, any) {
		ok, next := m.step(s.(state), in.(*kop))
		return ok, next
	}
	pm := porcupine.Model{
		Init: func() any { return init },
		Step: step,
		Hash: func(s any) uint64 {
			st := s.(state)
			return uint64(st.n)*0x9e3779b97f4a7c15 ^ uint64(st.polls)
		},
		DescribeOperation: func(in, _ any) string { return describe(in.(*kop)) },
		DescribeState:     func(s any) string { return m.describeState(s.(state)) },
		DescribeOperationMetadata: func(md any) string {
			o, _ := md.(*kop)
			if o == nil {
				return ""
			}
			return describeWhere(o)
		},
	}
	if stopped != nil {
		pm.StepContext = func(_ context.Context, s, in, out any) (bool, any) {
			if stopped.Load() {
				return false, s
			}
			return step(s, in, out)
		}
	}
	return pm
}

// operations is a segment's history for porcupine. Clients are the
// processes renumbered 0, 1, ... in order of first appearance, since
// porcupine draws one row per client id.
func operations(ops []*kop) []porcupine.Operation {
	client := make(map[int64]int)
	hist := make([]porcupine.Operation, len(ops))
	for i, o := range ops {
		c, ok := client[o.process]
		if !ok {
			c = len(client)
			client[o.process] = c
		}
		hist[i] = porcupine.Operation{ClientId: c, Input: o, Call: o.call, Return: o.ret, Metadata: o}
	}
	return hist
}

// describe is an op as a person reads it: "send 1042 -> 88",
// "poll [87..88] 1041,1042".
func describe(o *kop) string {
	if o == nil {
		return "?"
	}
	switch o.kind {
	case kindSend:
		return fmt.Sprintf("send %d -> %d", o.value, o.offset)
	case kindPinned:
		return fmt.Sprintf("send %d -> ? (%s; read at %d)", o.value, o.why, o.offset)
	case kindFiller:
		return fmt.Sprintf("send %d -> ? (%s; never read)", o.value, o.why)
	}
	var b strings.Builder
	const shown = 8
	if o.contiguous {
		fmt.Fprintf(&b, "poll [%d..%d] ", o.lo, o.hi)
		for i, r := range o.recs {
			if i == shown {
				fmt.Fprintf(&b, ",… (%d)", len(o.recs))
				break
			}
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, r.Value)
		}
		return b.String()
	}
	b.WriteString("poll (not contiguous)")
	for i, r := range o.recs {
		if i == shown {
			fmt.Fprintf(&b, " … (%d)", len(o.recs))
			break
		}
		fmt.Fprintf(&b, " %d:%d", r.Offset, r.Value)
	}
	return b.String()
}

// cite is an op and where it is: "send 1042 -> 88 at index 12..15".
func cite(o *kop) string {
	if o.compIndex < 0 {
		return fmt.Sprintf("%s at index %d", describe(o), o.invIndex)
	}
	return fmt.Sprintf("%s at index %d..%d", describe(o), o.invIndex, o.compIndex)
}

// describeWhere says where an op is in the history file.
func describeWhere(o *kop) string {
	var b strings.Builder
	if o.compIndex >= 0 {
		fmt.Fprintf(&b, "history index %d..%d", o.invIndex, o.compIndex)
	} else {
		fmt.Fprintf(&b, "history index %d (never completed)", o.invIndex)
	}
	fmt.Fprintf(&b, ", process %d", o.process)
	if o.node != "" {
		fmt.Fprintf(&b, ", node %s", o.node)
	}
	if o.err != "" {
		fmt.Fprintf(&b, ", error %q", o.err)
	}
	return b.String()
}

// describeState shows the log's length and its last few entries:
// "len 89: … 87:1041 88:1042".
func (m *keyModel) describeState(s state) string {
	const tail = 3
	var b strings.Builder
	fmt.Fprintf(&b, "len %d", s.n)
	if s.n > 0 {
		b.WriteByte(':')
		from := max(s.n-tail, 0)
		if from > 0 {
			b.WriteString(" …")
		}
		for off := from; off < s.n; off++ {
			v, filler, ok := m.content(off)
			switch {
			case !ok:
				fmt.Fprintf(&b, " %d:?", off)
			case filler:
				fmt.Fprintf(&b, " %d:%d?", off, v)
			default:
				fmt.Fprintf(&b, " %d:%d", off, v)
			}
		}
	}
	fmt.Fprintf(&b, " (reads done: %d)", s.polls)
	return b.String()
}

package linear

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/anishathalye/porcupine"
	"github.com/garantia/garantia/histories"
)

// state is the model's state: how many records the log holds and how many
// polls have been linearized. The log's content is not stored: it is the
// first n claimed offsets with their owners (doc.go), recovered by
// keyModel.content. Two small integers make porcupine's clone, compare and
// hash nearly free.
type state struct {
	n     int32 // records in the log: the rank the next append must have
	polls int32 // polls linearized so far: the next poll must have this rank
}

// conflictsMax bounds the conflicts kept for a key's reason: enough to see
// the pattern, small enough for results.json.
const conflictsMax = 3

// keyModel is the log model of one key, built from the key's history. It
// holds what every step needs: the offsets some ack or read claims, in
// order, and who owns each.
type keyModel struct {
	h   *histories.History
	key string
	ops []*kop
	// offs are the claimed offsets, ascending: offs[r] is the offset of
	// rank r, the r-th record of the log. owner[r] is the value the first
	// claim of offs[r] put there.
	offs  []int64
	owner []histories.ValueID
	// polls are the polls, by rank.
	polls []*kop
	// conflicts describe claims that no log can satisfy, for the reason.
	conflicts []string
	nConflict int
}

// rankOf returns the rank of a claimed offset, or -1.
func (m *keyModel) rankOf(off int64) int32 {
	i := sort.Search(len(m.offs), func(i int) bool { return m.offs[i] >= off })
	if i < len(m.offs) && m.offs[i] == off {
		return int32(i)
	}
	return -1
}

// newKeyModel builds the model of one key and annotates its ops (ok, rank,
// lo, hi) in place.
func newKeyModel(h *histories.History, k *keyOps) *keyModel {
	m := &keyModel{h: h, key: k.key, ops: k.ops}
	// Every offset an ack or a read claims, with the value each claim puts
	// there. Acks claim first, then reads: when they disagree the history
	// is invalid either way (doc.go); this order only decides which op the
	// visualization shows as the one that cannot take effect.
	type claim struct {
		off int64
		val histories.ValueID
		by  *kop
	}
	var claims []claim
	for _, o := range k.ops {
		if o.kind == kindSend {
			claims = append(claims, claim{o.offset, o.value, o})
		}
	}
	for _, o := range k.ops {
		if o.kind == kindPoll {
			for _, r := range h.Recs[o.recs.Start:o.recs.End()] {
				claims = append(claims, claim{r.Offset, r.Value, o})
			}
		}
	}
	// Stable: for each offset the first claim (acks before reads, then
	// history order) makes the owner.
	slices.SortStableFunc(claims, func(a, b claim) int {
		switch {
		case a.off < b.off:
			return -1
		case a.off > b.off:
			return 1
		}
		return 0
	})
	var ownerBy []*kop
	for i, c := range claims {
		if i > 0 && c.off == claims[i-1].off {
			if r := len(m.offs) - 1; c.val != m.owner[r] {
				m.conflict("offset %d holds %s (%s) and %s (%s)", c.off, m.val(m.owner[r]), m.cite(ownerBy[r]), m.val(c.val), m.cite(c.by))
			}
			continue
		}
		m.offs = append(m.offs, c.off)
		m.owner = append(m.owner, c.val)
		ownerBy = append(ownerBy, c.by)
	}

	// Reads: each value read at one offset only, written by some send of
	// this key, and the records of one read at consecutive ranks.
	observed := make(map[histories.ValueID]int64) // value -> first offset a poll read it at
	for _, o := range k.ops {
		if o.kind != kindPoll {
			continue
		}
		recs := h.Recs[o.recs.Start:o.recs.End()]
		o.lo, o.hi, o.contiguous = m.rankOf(recs[0].Offset), m.rankOf(recs[len(recs)-1].Offset), true
		for i, r := range recs {
			if i > 0 && m.rankOf(r.Offset) != m.rankOf(recs[i-1].Offset)+1 {
				o.contiguous = false
			}
			if at, seen := observed[r.Value]; !seen {
				observed[r.Value] = r.Offset
			} else if at != r.Offset {
				m.conflict("value %s read at offsets %d and %d (the second by %s)", m.val(r.Value), at, r.Offset, m.cite(o))
			}
			if _, sent := k.sent[r.Value]; !sent {
				m.conflict("%s read value %s, which no send to this key wrote", m.cite(o), m.val(r.Value))
			}
		}
		if !o.contiguous {
			m.conflict("%s read records that are not consecutive in the log: it skipped a claimed offset or went back", m.cite(o))
		}
	}
	for _, o := range k.ops {
		switch o.kind {
		case kindSend:
			if at, seen := observed[o.value]; seen && at != o.offset {
				m.conflict("%s was read at offset %d", m.cite(o), at)
			}
			fallthrough
		case kindPinned:
			o.rank = m.rankOf(o.offset)
			o.ok = o.rank >= 0 && m.owner[o.rank] == o.value
		case kindPoll:
			o.ok = o.contiguous
			for _, r := range h.Recs[o.recs.Start:o.recs.End()] {
				if m.owner[m.rankOf(r.Offset)] != r.Value {
					o.ok = false
				}
			}
			m.polls = append(m.polls, o)
		}
	}
	// Polls do not change the log, so they linearize in return order: one
	// order per state for porcupine (doc.go).
	sort.SliceStable(m.polls, func(i, j int) bool {
		if m.polls[i].ret != m.polls[j].ret {
			return m.polls[i].ret < m.polls[j].ret
		}
		return m.polls[i].call < m.polls[j].call
	})
	for i, o := range m.polls {
		o.rank = int32(i)
	}
	return m
}

func (m *keyModel) conflict(format string, args ...any) {
	m.nConflict++
	if len(m.conflicts) < conflictsMax {
		m.conflicts = append(m.conflicts, fmt.Sprintf(format, args...))
	}
}

func (m *keyModel) val(v histories.ValueID) string { return m.h.Val(v).String() }

// step is the sequential specification. It never mutates s.
func (m *keyModel) step(s state, o *kop) (bool, state) {
	switch o.kind {
	case kindSend, kindPinned:
		if o.ok && s.n == o.rank {
			return true, state{s.n + 1, s.polls}
		}
	case kindPoll:
		if o.ok && s.polls == o.rank && o.hi < s.n {
			return true, state{s.n, s.polls + 1}
		}
	}
	return false, s
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
		DescribeOperation: func(in, _ any) string { return m.describe(in.(*kop)) },
		DescribeState:     func(s any) string { return m.describeState(s.(state)) },
		DescribeOperationMetadata: func(md any) string {
			o, _ := md.(*kop)
			if o == nil {
				return ""
			}
			return m.describeWhere(o)
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
func (m *keyModel) operations(ops []*kop) []porcupine.Operation {
	client := make(map[int64]int)
	hist := make([]porcupine.Operation, len(ops))
	for i, o := range ops {
		p := m.process(o)
		c, ok := client[p]
		if !ok {
			c = len(client)
			client[p] = c
		}
		hist[i] = porcupine.Operation{ClientId: c, Input: o, Call: int64(o.call), Return: int64(o.ret), Metadata: o}
	}
	return hist
}

// event is the event that stands for an op: its completion, else its
// invocation.
func (m *keyModel) event(o *kop) *histories.Event {
	if o.cmp >= 0 {
		return &m.h.Events[o.cmp]
	}
	return &m.h.Events[o.inv]
}

func (m *keyModel) process(o *kop) int64 { return m.event(o).Process }

// why says why a send's outcome is unknown.
func (m *keyModel) why(o *kop) string {
	switch {
	case o.cmp < 0:
		return "never completed"
	case m.h.Events[o.cmp].Kind == histories.KindOK:
		return "acks=0"
	}
	return "info"
}

// describe is an op as a person reads it: "send 1042 -> 88",
// "poll [87..88] 1041,1042".
func (m *keyModel) describe(o *kop) string {
	if o == nil {
		return "?"
	}
	switch o.kind {
	case kindSend:
		return fmt.Sprintf("send %s -> %d", m.val(o.value), o.offset)
	case kindPinned:
		return fmt.Sprintf("send %s -> ? (%s; read at %d)", m.val(o.value), m.why(o), o.offset)
	}
	recs := m.h.Recs[o.recs.Start:o.recs.End()]
	var b strings.Builder
	const shown = 8
	if o.contiguous {
		fmt.Fprintf(&b, "poll [%d..%d] ", recs[0].Offset, recs[len(recs)-1].Offset)
		for i, r := range recs {
			if i == shown {
				fmt.Fprintf(&b, ",… (%d)", len(recs))
				break
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(m.val(r.Value))
		}
		return b.String()
	}
	b.WriteString("poll (not consecutive)")
	for i, r := range recs {
		if i == shown {
			fmt.Fprintf(&b, " … (%d)", len(recs))
			break
		}
		fmt.Fprintf(&b, " %d:%s", r.Offset, m.val(r.Value))
	}
	return b.String()
}

// cite is an op and where it is: "send 1042 -> 88 at index 12..15".
func (m *keyModel) cite(o *kop) string {
	switch {
	case o.inv < 0:
		return fmt.Sprintf("%s at index %d", m.describe(o), m.h.Events[o.cmp].Index)
	case o.cmp < 0:
		return fmt.Sprintf("%s at index %d", m.describe(o), m.h.Events[o.inv].Index)
	}
	return fmt.Sprintf("%s at index %d..%d", m.describe(o), m.h.Events[o.inv].Index, m.h.Events[o.cmp].Index)
}

// describeWhere says where an op is in the history file.
func (m *keyModel) describeWhere(o *kop) string {
	var b strings.Builder
	switch {
	case o.inv < 0:
		fmt.Fprintf(&b, "history index %d (invoked before the fragment began)", m.h.Events[o.cmp].Index)
	case o.cmp < 0:
		fmt.Fprintf(&b, "history index %d (never completed)", m.h.Events[o.inv].Index)
	default:
		fmt.Fprintf(&b, "history index %d..%d", m.h.Events[o.inv].Index, m.h.Events[o.cmp].Index)
	}
	e := m.event(o)
	fmt.Fprintf(&b, ", process %d", e.Process)
	if e.Node != 0 {
		fmt.Fprintf(&b, ", node %s", m.h.Text(e.Node))
	} else if o.inv >= 0 && m.h.Events[o.inv].Node != 0 {
		fmt.Fprintf(&b, ", node %s", m.h.Text(m.h.Events[o.inv].Node))
	}
	if e.Error != 0 {
		fmt.Fprintf(&b, ", error %q", m.h.Text(e.Error))
	}
	return b.String()
}

// describeState shows the log's size and its last few records:
// "89 records: … 87:1041 88:1042".
func (m *keyModel) describeState(s state) string {
	const tail = 3
	var b strings.Builder
	fmt.Fprintf(&b, "%d record(s)", s.n)
	if s.n > 0 {
		b.WriteByte(':')
		from := max(s.n-tail, 0)
		if from > 0 {
			b.WriteString(" …")
		}
		for r := from; r < s.n && int(r) < len(m.offs); r++ {
			fmt.Fprintf(&b, " %d:%s", m.offs[r], m.val(m.owner[r]))
		}
	}
	fmt.Fprintf(&b, " (reads done: %d)", s.polls)
	return b.String()
}

package linear

import (
	"cmp"
	"context"
	"fmt"
	"math"
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
	// log is the claimed offsets, ascending, each with its owner: log[r]
	// is the r-th record of the log, its offset and the value the first
	// claim of that offset put there. ownerBy[r] is the op (an index of the
	// key's ops) that claimed it, or -1 when not kept (see claimant); nil
	// when none was kept.
	log     []logEntry
	ownerBy []int32
	// polls are the polls, by rank.
	polls []*kop
	// conflicts describe claims that no log can satisfy, for the reason.
	conflicts []string
	nConflict int
}

// logEntry is one record of a key's log: a claimed offset and its owner.
type logEntry struct {
	off   int64
	owner histories.ValueID
}

// rankOf returns the rank of a claimed offset, or -1.
func (m *keyModel) rankOf(off int64) int32 {
	i := sort.Search(len(m.log), func(i int) bool { return m.log[i].off >= off })
	if i < len(m.log) && m.log[i].off == off {
		return int32(i)
	}
	return -1
}

// by returns who claimed rank r's owner, or -1.
func (m *keyModel) by(r int32) int32 {
	if m.ownerBy == nil {
		return -1
	}
	return m.ownerBy[r]
}

// rank returns the rank of offset off, looking first at guess (the rank
// after the previous record's, where the next record of a read usually
// sits), or -1.
func (m *keyModel) rank(off int64, guess int32) int32 {
	if guess >= 0 && int(guess) < len(m.log) && m.log[guess].off == off {
		return guess
	}
	return m.rankOf(off)
}

// claim is one claim that an offset holds a value, made by op by of the
// key's ops (-1: not kept, see ownerOf). Of an ack's claims, the first of
// an offset makes its owner.
type claim struct {
	off int64
	val histories.ValueID
	by  int32
}

// newKeyModel builds the model of one key: who owns each claimed offset,
// the pinned sends, the polls' ranks. It annotates the ops (ok, rank, lo,
// hi) in place and adds the pinned sends to them.
//
// Reads repeat what acks claim many times over (every consumer reads
// every record), so acks are sorted first and each read record is looked
// up among them; only records at offsets no ack claims (acks=0, info
// sends, garbage) are sorted in, 16 bytes each, without the op that made
// them (found again for the few conflicts put in words). Work and memory
// follow the distinct offsets plus one lookup per record.
func newKeyModel(h *histories.History, k *keyOps) *keyModel {
	m := &keyModel{h: h, key: k.key}
	var claims []claim
	for i, o := range k.ops {
		if o.kind == kindSend {
			claims = append(claims, claim{o.offset, o.value, int32(i)})
		}
	}
	slices.SortFunc(claims, func(a, b claim) int {
		if a.off != b.off {
			return cmp.Compare(a.off, b.off)
		}
		return int(a.by - b.by) // the first ack in history order
	})
	m.mergeAcks(k, claims)

	// Reads: records at claimed offsets must hold their owner; the rest
	// are claims of their own. They are counted first, so that the slice
	// that holds them is made once, of the right size.
	var extra []logEntry
	for pass := range 2 {
		n := 0
		for _, o := range k.ops {
			if o.kind != kindPoll {
				continue
			}
			rs := h.RecsOf(&h.Reads[o.read])
			r := int32(-1)
			for j, v := range rs.Vals {
				off := rs.Offset(j)
				switch r = m.rank(off, r+1); {
				case r < 0 && pass == 0:
					n++
				case r < 0:
					extra = append(extra, logEntry{off, v})
				case pass == 0 && m.log[r].owner != v:
					m.conflict(func() string {
						return fmt.Sprintf("offset %d holds %s (%s) and %s (%s)", off, m.val(m.log[r].owner), m.cite(m.ownerOf(k, r)), m.val(v), m.cite(o))
					})
				}
			}
		}
		if pass == 0 {
			if n == 0 {
				break
			}
			extra = make([]logEntry, 0, n)
		}
	}
	if len(extra) > 0 {
		// Several values read at one offset no ack claims conflict, and
		// make the key not linearizable whichever owns it: the smallest.
		slices.SortFunc(extra, func(a, b logEntry) int {
			if a.off != b.off {
				return cmp.Compare(a.off, b.off)
			}
			return cmp.Compare(int64(a.owner), int64(b.owner))
		})
		extra = slices.Compact(extra)
		m.mergeReads(k, extra)
	}

	// Each value owns one offset, and some send of the key wrote it. An
	// indeterminate send whose value owns an offset took effect there
	// (pinned); it returns at infinity.
	byValue := make([]int32, len(m.log)) // ranks, sorted by owner value, then rank
	for r := range byValue {
		byValue[r] = int32(r)
	}
	slices.SortFunc(byValue, func(a, b int32) int {
		if va, vb := m.log[a].owner, m.log[b].owner; va != vb {
			if va < vb {
				return -1
			}
			return 1
		}
		return int(a - b)
	})
	inf := int32(len(h.Events))
	for i, r := range byValue {
		v := m.log[r].owner
		if i > 0 && m.log[byValue[i-1]].owner == v {
			prev := byValue[i-1]
			m.conflict(func() string {
				return fmt.Sprintf("value %s is at offsets %d and %d (%s; %s)", m.val(v), m.log[prev].off, m.log[r].off, m.cite(m.ownerOf(k, prev)), m.cite(m.ownerOf(k, r)))
			})
			continue
		}
		si := k.sent[v]
		switch {
		case si == nil && h.Fragment:
			// Sent before the fragment began: it took effect at some time,
			// as far as anyone can tell.
			k.ops = append(k.ops, &kop{kind: kindPinned, value: v, offset: m.log[r].off, call: -1, ret: inf, inv: -1, cmp: -1, seq: int32(len(k.ops))})
		case si == nil:
			m.conflict(func() string {
				return fmt.Sprintf("%s read value %s, which no send to this key wrote", m.cite(m.ownerOf(k, r)), m.val(v))
			})
		case si.op == nil:
			p := &kop{kind: kindPinned, value: v, offset: m.log[r].off, call: si.inv, ret: inf, inv: si.inv, cmp: si.cmp, seq: int32(len(k.ops))}
			if si.inv < 0 {
				p.call = -1
			}
			si.op = p
			k.ops = append(k.ops, p)
		}
	}
	m.ops = k.ops

	for _, o := range k.ops {
		switch o.kind {
		case kindSend, kindPinned:
			o.rank = m.rankOf(o.offset)
			o.ok = o.rank >= 0 && m.log[o.rank].owner == o.value
		case kindPoll:
			rs := h.RecsOf(&h.Reads[o.read])
			o.contiguous, o.ok = true, true
			r := int32(-1)
			for j, v := range rs.Vals {
				next := m.rank(rs.Offset(j), r+1)
				if j == 0 {
					o.lo = next
				} else if next != r+1 {
					o.contiguous = false
				}
				r = next
				o.ok = o.ok && m.log[r].owner == v
			}
			o.hi = r
			if !o.contiguous {
				o.ok = false
				m.conflict(func() string {
					return fmt.Sprintf("%s read records that are not consecutive in the log: it skipped a claimed offset or went back", m.cite(o))
				})
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

// mergeAcks makes the log of the acks' claims, sorted: each offset's
// first claim makes its owner, and a later claim of another value there is
// a conflict.
func (m *keyModel) mergeAcks(k *keyOps, cs []claim) {
	m.log = make([]logEntry, 0, len(cs))
	m.ownerBy = make([]int32, 0, len(cs))
	for j, c := range cs {
		if j > 0 && c.off == cs[j-1].off {
			if r := int32(len(m.log) - 1); c.val != m.log[r].owner {
				m.conflict(func() string {
					return fmt.Sprintf("offset %d holds %s (%s) and %s (%s)", c.off, m.val(m.log[r].owner), m.cite(m.ownerOf(k, r)), m.val(c.val), m.cite(k.ops[c.by]))
				})
			}
			continue
		}
		m.log = append(m.log, logEntry{c.off, c.val})
		m.ownerBy = append(m.ownerBy, c.by)
	}
}

// mergeReads adds the sorted, distinct claims of reads at offsets no ack
// claims: for each offset the smallest value owns it, any other conflicts.
// When the acks claimed nothing the reads' claims become the log as they
// are, without a copy: a corrupt history can claim as many offsets as it
// has records.
func (m *keyModel) mergeReads(k *keyOps, cs []logEntry) {
	for j := 1; j < len(cs); j++ {
		if cs[j].off == cs[j-1].off {
			a, b := cs[j-1], cs[j]
			m.conflict(func() string {
				return fmt.Sprintf("offset %d holds %s (%s) and %s (%s)", a.off, m.val(a.owner), m.cite(m.claimant(k, -1, a.off, a.owner)), m.val(b.owner), m.cite(m.claimant(k, -1, b.off, b.owner)))
			})
		}
	}
	cs = slices.CompactFunc(cs, func(a, b logEntry) bool { return a.off == b.off })
	if len(m.log) == 0 {
		m.log, m.ownerBy = cs, nil
		return
	}
	log := make([]logEntry, 0, len(m.log)+len(cs))
	by := make([]int32, 0, cap(log))
	i := 0
	for _, c := range cs {
		for i < len(m.log) && m.log[i].off < c.off {
			log, by = append(log, m.log[i]), append(by, m.by(int32(i)))
			i++
		}
		log, by = append(log, c), append(by, -1)
	}
	for ; i < len(m.log); i++ {
		log, by = append(log, m.log[i]), append(by, m.by(int32(i)))
	}
	m.log, m.ownerBy = log, by
}

// ownerOf returns the op whose claim made rank r's owner.
func (m *keyModel) ownerOf(k *keyOps, r int32) *kop {
	return m.claimant(k, m.by(r), m.log[r].off, m.log[r].owner)
}

// claimant returns op by of k, or, when by is -1 (not kept), the first op
// that claims value v at offset off.
func (m *keyModel) claimant(k *keyOps, by int32, off int64, v histories.ValueID) *kop {
	if by >= 0 {
		return k.ops[by]
	}
	for _, o := range k.ops {
		switch o.kind {
		case kindSend, kindPinned:
			if o.offset == off && o.value == v {
				return o
			}
		case kindPoll:
			rs := m.h.RecsOf(&m.h.Reads[o.read])
			for i, x := range rs.Vals {
				if x == v && rs.Offset(i) == off {
					return o
				}
			}
		}
	}
	return nil
}

// conflict counts one claim that no log can satisfy and keeps the first
// few in words; say is called only for those, since a corrupt history can
// have millions.
func (m *keyModel) conflict(say func() string) {
	m.nConflict++
	if len(m.conflicts) < conflictsMax {
		m.conflicts = append(m.conflicts, say())
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
// invocation; nil for a send from before a fragment began.
func (m *keyModel) event(o *kop) *histories.Event {
	switch {
	case o.cmp >= 0:
		return &m.h.Events[o.cmp]
	case o.inv >= 0:
		return &m.h.Events[o.inv]
	}
	return nil
}

// beforeProcess stands for the process of sends from before a fragment
// began.
const beforeProcess = math.MinInt64

func (m *keyModel) process(o *kop) int64 {
	if e := m.event(o); e != nil {
		return e.Process
	}
	return beforeProcess
}

// why says why a send's outcome is unknown.
func (m *keyModel) why(o *kop) string {
	switch {
	case o.cmp < 0 && o.inv < 0:
		return "sent before the fragment began"
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
	rs := m.h.RecsOf(&m.h.Reads[o.read])
	var b strings.Builder
	const shown = 8
	if o.contiguous {
		fmt.Fprintf(&b, "poll [%d..%d] ", rs.Offset(0), rs.Offset(rs.Len()-1))
		for i, v := range rs.Vals {
			if i == shown {
				fmt.Fprintf(&b, ",… (%d)", rs.Len())
				break
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(m.val(v))
		}
		return b.String()
	}
	b.WriteString("poll (not consecutive)")
	for i, v := range rs.Vals {
		if i == shown {
			fmt.Fprintf(&b, " … (%d)", rs.Len())
			break
		}
		fmt.Fprintf(&b, " %d:%s", rs.Offset(i), m.val(v))
	}
	return b.String()
}

// cite is an op and where it is: "send 1042 -> 88 at index 12..15".
func (m *keyModel) cite(o *kop) string {
	switch {
	case o == nil:
		return "?"
	case o.inv < 0 && o.cmp < 0:
		return m.describe(o)
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
	case o.inv < 0 && o.cmp < 0:
		return "before the fragment began"
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
		for r := from; r < s.n && int(r) < len(m.log); r++ {
			fmt.Fprintf(&b, " %d:%s", m.log[r].off, m.val(m.log[r].owner))
		}
	}
	fmt.Fprintf(&b, " (reads done: %d)", s.polls)
	return b.String()
}

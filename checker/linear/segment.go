package linear

import (
	"math"
	"sort"
)

// segmentOps is the least number of operations worth a porcupine run of
// its own. Porcupine's cost grows with the square of a history's length
// (every step clones a bitset of all ops), so a long key is cut into
// segments of a few thousand ops; much shorter ones would only add
// per-run overhead.
const segmentOps = 2048

// segment is a stretch of one key's history that porcupine checks on its
// own, starting from state init: the appends at offsets init.n, ... and
// the polls of rank init.polls, ... that belong to it.
type segment struct {
	ops  []*kop
	init state
}

// segments cuts the key's history where doc.go shows a cut is sound: the
// history is linearizable if and only if every segment is, each from the
// state the previous one ends in. The cuts follow the chain of appends.
func (m *keyModel) segments(minOps int) []segment {
	whole := []segment{{ops: m.ops}}
	if minOps <= 0 || len(m.ops) < 2*minOps {
		return whole
	}
	chain, dead, hole := m.chain()
	polls := m.polls
	nA, nP := len(chain), len(polls)
	// For a cut (a, p): the first a appends and first p polls go before
	// it. ca/cp: the latest invocation before the cut; ra/rp: the earliest
	// return after it; hp: the highest offset read before it.
	ca, ra := prefixMaxCall(chain), suffixMinRet(chain)
	cp, rp := prefixMaxCall(polls), suffixMinRet(polls)
	hp := make([]int32, nP+1)
	hp[0] = -1
	for i, o := range polls {
		hp[i+1] = max(hp[i], o.hi)
	}
	type cut struct{ a, p int }
	var cuts []cut
	p := 0
	// No cut after a hole: the segment holding it must also hold what
	// cannot happen without it, and fail.
	for a := 1; a < nA && a <= hole; a++ {
		if ca[a] >= ra[a] {
			continue
		}
		// The smallest p that the conditions bounding it from below allow.
		// ca only grows with a and each condition on p alone is fixed, so
		// p never has to move back.
		for p <= nP && !(rp[p] > ca[a] && cp[p] < rp[p]) {
			p++
		}
		if p > nP {
			break
		}
		if cp[p] < ra[a] && hp[p] < int32(a) {
			cuts = append(cuts, cut{a, p})
		}
	}
	var segs []segment
	from := cut{0, 0}
	add := func(to cut) {
		ops := make([]*kop, 0, to.a-from.a+to.p-from.p)
		for _, o := range chain[from.a:to.a] {
			if o != nil {
				ops = append(ops, o)
			}
		}
		ops = append(ops, polls[from.p:to.p]...)
		segs = append(segs, segment{ops: ops, init: state{int32(from.a), int32(from.p)}})
		from = to
	}
	for _, c := range cuts {
		if c.a-from.a+c.p-from.p >= minOps && nA-c.a+nP-c.p >= minOps {
			add(c)
		}
	}
	add(cut{nA, nP})
	// A dead send never takes effect, so whichever segment holds it fails,
	// as the whole history does. Put it beside the op that owns the offset
	// it claims, where a person looks for it.
	for _, o := range dead {
		i := sort.Search(len(segs), func(i int) bool { return segs[i].init.n > o.rank }) - 1
		if i < 0 || o.rank < 0 || int(o.rank) >= nA {
			i = len(segs) - 1
		}
		segs[i].ops = append(segs[i].ops, o)
	}
	for _, seg := range segs {
		sort.Slice(seg.ops, func(i, j int) bool { return seg.ops[i].seq < seg.ops[j].seq })
	}
	return segs
}

// chain returns the appends in the order they must happen: chain[r] is
// the op that appends the record of rank r, nil where no op can (a hole: a
// claimed offset whose value no send of the key wrote; the key is then not
// linearizable, doc.go). hole is the first such rank, or len(chain). dead
// are the sends that can never take effect because their offset holds
// another value. The chain has one entry per claimed offset, whatever
// their span.
func (m *keyModel) chain() (chain, dead []*kop, hole int) {
	chain = make([]*kop, len(m.log))
	for _, o := range m.ops {
		if !o.isSend() {
			continue
		}
		if !o.ok || chain[o.rank] != nil {
			// An offset has one owner value and, values being unique, one
			// send; a second send of the value (which makes the key
			// unknown before it gets here) cannot take its place.
			dead = append(dead, o)
			continue
		}
		chain[o.rank] = o
	}
	hole = len(chain)
	for r, o := range chain {
		if o == nil {
			hole = r
			break
		}
	}
	return chain, dead, hole
}

// prefixMaxCall: out[i] is the latest invocation among ops[:i]. Holes
// (nil) count as nothing.
func prefixMaxCall(ops []*kop) []int32 {
	out := make([]int32, len(ops)+1)
	out[0] = math.MinInt32
	for i, o := range ops {
		out[i+1] = out[i]
		if o != nil {
			out[i+1] = max(out[i], o.call)
		}
	}
	return out
}

// suffixMinRet: out[i] is the earliest return among ops[i:].
func suffixMinRet(ops []*kop) []int32 {
	out := make([]int32, len(ops)+1)
	out[len(ops)] = math.MaxInt32
	for i := len(ops) - 1; i >= 0; i-- {
		out[i] = out[i+1]
		if ops[i] != nil {
			out[i] = min(out[i+1], ops[i].ret)
		}
	}
	return out
}

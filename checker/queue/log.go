package queue

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// valEntry is what the history says about one value of one key.
type valEntry struct {
	value int64
	// off is the first offset the value was seen at (-1: none yet) and
	// offCop the op that showed it there. Further offsets go to
	// keyState.extra.
	off    int64
	offCop int32
	// writer is the op that sent the value (-1: none did), reader the
	// first ok poll that returned it (-1: never read).
	writer, reader int32
	// first and last are the lowest and highest log positions the value
	// occupies (-1: it has no known offset).
	first, last int32
	// multi: the value sits at more than one offset.
	multi bool
}

// keyState is one key's values and, once built, its version order.
type keyState struct {
	name string
	// ids finds values that valueTable cannot hold; nil until needed.
	ids  map[int64]int32
	vals []valEntry
	// extra holds (offset, value) pairs beyond each value's first offset:
	// the rare duplicates. extraSeen dedups them, lazily allocated.
	extra     []obs
	extraSeen map[[2]int64]struct{}
	// maxReadOff is the highest offset an ok poll read (-1: none), first
	// read by maxReadCop. It bounds lost writes.
	maxReadOff int64
	maxReadCop int32

	// The version order, set by build. pairs are all distinct (offset,
	// value) pairs sorted by offset then value; offs the distinct offsets,
	// whose index is the log position; posVal a value at each position.
	pairs  []obs
	offs   []int64
	posVal []int64
	// table maps offset-minOff to a position (-1 for none) when offsets
	// are dense enough; otherwise position binary-searches offs.
	table  []int32
	minOff int64
}

func newKeyState(name string) *keyState {
	return &keyState{name: name, maxReadOff: -1, maxReadCop: -1}
}

// add appends a new value and returns its index in vals.
func (ks *keyState) add(v int64) int32 {
	ks.vals = append(ks.vals, valEntry{value: v, off: -1, offCop: -1, writer: -1, reader: -1, first: -1, last: -1})
	return int32(len(ks.vals) - 1)
}

// observe records that op ci showed value vid at offset off (off >= 0).
func (ks *keyState) observe(vid int32, off int64, ci int32) {
	e := &ks.vals[vid]
	if e.off < 0 {
		e.off, e.offCop = off, ci
		return
	}
	if e.off == off {
		return
	}
	k := [2]int64{int64(vid), off}
	if _, seen := ks.extraSeen[k]; seen {
		return
	}
	if ks.extraSeen == nil {
		ks.extraSeen = make(map[[2]int64]struct{})
	}
	ks.extraSeen[k] = struct{}{}
	ks.extra = append(ks.extra, obs{off: off, vid: vid, cop: ci})
}

// build sorts the key's (offset, value) pairs into its version order and
// gives every value its positions. O(n log n) in distinct pairs.
func (ks *keyState) build() {
	pairs := make([]obs, 0, len(ks.vals)+len(ks.extra))
	for vid := range ks.vals {
		if e := &ks.vals[vid]; e.off >= 0 {
			pairs = append(pairs, obs{off: e.off, vid: int32(vid), cop: e.offCop})
		}
	}
	for _, x := range ks.extra {
		ks.vals[x.vid].multi = true
	}
	pairs = append(pairs, ks.extra...)
	slices.SortFunc(pairs, func(a, b obs) int {
		if a.off != b.off {
			if a.off < b.off {
				return -1
			}
			return 1
		}
		va, vb := ks.vals[a.vid].value, ks.vals[b.vid].value
		if va < vb {
			return -1
		}
		if va > vb {
			return 1
		}
		return 0
	})
	ks.pairs = pairs
	for i, p := range pairs {
		if i == 0 || p.off != pairs[i-1].off {
			ks.offs = append(ks.offs, p.off)
			ks.posVal = append(ks.posVal, ks.vals[p.vid].value)
		}
		pos := int32(len(ks.offs) - 1)
		e := &ks.vals[p.vid]
		if e.first < 0 {
			e.first = pos
		}
		e.last = pos
	}
	if n := len(ks.offs); n > 0 {
		ks.minOff = ks.offs[0]
		// A direct table costs 4 bytes per offset of span; use it unless
		// offsets are very sparse (a corrupt or compacted log).
		if span := ks.offs[n-1] - ks.minOff + 1; span <= 4*int64(n)+4096 {
			ks.table = make([]int32, span)
			for i := range ks.table {
				ks.table[i] = -1
			}
			for pos, off := range ks.offs {
				ks.table[off-ks.minOff] = int32(pos)
			}
		}
	}
}

// position is the log position of an offset, -1 if none was observed.
func (ks *keyState) position(off int64) int32 {
	if off < 0 {
		return -1
	}
	if ks.table != nil {
		d := off - ks.minOff
		if d < 0 || d >= int64(len(ks.table)) {
			return -1
		}
		return ks.table[d]
	}
	i := sort.Search(len(ks.offs), func(i int) bool { return ks.offs[i] >= off })
	if i < len(ks.offs) && ks.offs[i] == off {
		return int32(i)
	}
	return -1
}

// logAnomalies reports offsets holding several values and values at
// several offsets.
func (c *analysis) logAnomalies(ks *keyState) {
	pairs := ks.pairs
	for i := 0; i < len(pairs); {
		j := i + 1
		for j < len(pairs) && pairs[j].off == pairs[i].off {
			j++
		}
		if j-i > 1 && c.col.hit(InconsistentOffsets) {
			off := pairs[i].off
			ex := Example{Key: ks.name, Offset: &off}
			var b strings.Builder
			fmt.Fprintf(&b, "offset %d of key %q holds %d different values:", off, ks.name, j-i)
			for _, p := range pairs[i:j] {
				v := ks.vals[p.vid].value
				ex.Values = append(ex.Values, v)
				ex.Ops = appendOp(ex.Ops, c.opRef(p.cop))
				fmt.Fprintf(&b, " %d (op #%d)", v, c.op(p.cop).Index)
			}
			ex.Explanation = b.String()
			c.col.add(InconsistentOffsets, ex)
		}
		i = j
	}
	if len(ks.extra) == 0 {
		return
	}
	// Duplicates are rare: gather each one's pairs, in position order.
	dups := make(map[int32][]obs)
	var order []int32
	for _, p := range pairs {
		if !ks.vals[p.vid].multi {
			continue
		}
		if _, ok := dups[p.vid]; !ok {
			order = append(order, p.vid)
		}
		dups[p.vid] = append(dups[p.vid], p)
	}
	for _, vid := range order {
		if !c.col.hit(Duplicate) {
			continue
		}
		v := ks.vals[vid].value
		ex := Example{Key: ks.name, Value: &v}
		var b strings.Builder
		fmt.Fprintf(&b, "value %d appears at %d offsets of key %q:", v, len(dups[vid]), ks.name)
		for _, p := range dups[vid] {
			ex.Offsets = append(ex.Offsets, p.off)
			ex.Ops = appendOp(ex.Ops, c.opRef(p.cop))
			fmt.Fprintf(&b, " %d (op #%d)", p.off, c.op(p.cop).Index)
		}
		ex.Explanation = b.String()
		c.col.add(Duplicate, ex)
	}
}

// durability finds lost and unseen values: committed values no ok poll
// read. A value is lost when an ok poll read the key at or past its last
// position (something after it was seen, it never was); otherwise an ok
// send is unseen. Values are visited in log order, then those without an
// offset in history order.
func (c *analysis) durability(ks *keyState) {
	bound := int32(-1)
	if ks.maxReadOff >= 0 {
		bound = ks.position(ks.maxReadOff)
	}
	pos := int32(-1)
	for i, p := range ks.pairs {
		if i == 0 || p.off != ks.pairs[i-1].off {
			pos++
		}
		if ks.vals[p.vid].first == pos {
			c.durable(ks, p.vid, bound)
		}
	}
	for vid := range ks.vals {
		if ks.vals[vid].first < 0 {
			c.durable(ks, int32(vid), bound)
		}
	}
}

func (c *analysis) durable(ks *keyState, vid int32, bound int32) {
	e := &ks.vals[vid]
	if e.reader >= 0 || e.writer < 0 {
		return
	}
	w := &c.cops[e.writer]
	var name string
	switch {
	case w.committed && e.last >= 0 && e.last <= bound:
		name = LostWrite
	case w.out == outOK:
		name = Unseen
	default:
		// Failed, or indeterminate without proof it committed: it may
		// never have happened.
		return
	}
	if !c.col.hit(name) {
		return
	}
	v := e.value
	ex := Example{Key: ks.name, Value: &v, Ops: []OpRef{c.opRef(e.writer)}}
	var at string
	switch {
	case e.last < 0:
		at = "acknowledged without an offset"
	case w.out == outInfo:
		at = fmt.Sprintf("from an indeterminate send proven committed (another of its values was read), at offset %d", ks.offs[e.last])
	default:
		at = fmt.Sprintf("acknowledged at offset %d", ks.offs[e.last])
	}
	if e.last >= 0 {
		off := ks.offs[e.last]
		ex.Offset = &off
	}
	if ks.maxReadOff >= 0 {
		mr := ks.maxReadOff
		ex.MaxReadOffset = &mr
	}
	subject := fmt.Sprintf("value %d of key %q, %s, was never read", v, ks.name, at)
	switch {
	case name == LostWrite && e.last == bound:
		ex.Ops = append(ex.Ops, c.opRef(ks.maxReadCop))
		ex.Explanation = fmt.Sprintf("%s, though op #%d read another value at offset %d", subject, c.op(ks.maxReadCop).Index, ks.maxReadOff)
	case name == LostWrite:
		ex.Ops = append(ex.Ops, c.opRef(ks.maxReadCop))
		ex.Explanation = fmt.Sprintf("%s, though op #%d read offset %d after it", subject, c.op(ks.maxReadCop).Index, ks.maxReadOff)
	case ks.maxReadOff < 0:
		ex.Explanation = subject + ": no poll read that key"
	case e.last < 0:
		ex.Explanation = fmt.Sprintf("%s (highest offset read: %d)", subject, ks.maxReadOff)
	default:
		ex.Explanation = fmt.Sprintf("%s, and no poll read past it (highest offset read: %d)", subject, ks.maxReadOff)
	}
	c.col.add(name, ex)
}

// appendOp adds r unless the list names it already: one poll may show a
// value at two offsets.
func appendOp(ops []OpRef, r OpRef) []OpRef {
	for _, o := range ops {
		if o.Index == r.Index {
			return ops
		}
	}
	return append(ops, r)
}

package queue

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/anomaly"
)

// outcome is how an op ended, ranked so that a value sent twice keeps its
// most definite writer.
type outcome uint8

const (
	outFail outcome = iota
	outInfo
	outOK
)

// cop is one client op: its invocation and completion. Positions index
// the history's events; -1 is absent (no completion: the history ended
// first; no invocation: a fragment's first completion).
type cop struct {
	inv, cmp int32
	out      outcome
	// committed: ok, or info with one of its values read by an ok poll.
	committed bool
}

// obs is one (offset, value) pair of a key's log and the first op that
// showed it.
type obs struct {
	off int64
	vid int32
	cop int32
}

// valEntry is what the history says about one value of one key.
type valEntry struct {
	value histories.ValueID
	// off is the first offset the value was seen at in the log (-1: none
	// yet) and offCop the op that showed it there. Further offsets go to
	// keyState.extra.
	off    int64
	offCop int32
	// writer is the most definite op that sent the value (-1: none did);
	// reader the first ok op that read it (-1: never read); polled the
	// first op of any outcome that read it.
	writer, reader, polled int32
	// first and last are the lowest and highest log positions the value
	// occupies (-1: it has no known offset); they differ when it sits at
	// several offsets.
	first, last int32
}

// keyState is one key's values and, once built, its version order.
type keyState struct {
	name string
	// ids finds values that the direct table cannot hold; nil until needed.
	ids  map[histories.ValueID]int32
	vals chunks[valEntry]
	// extra holds (offset, value) pairs beyond each value's first offset:
	// the rare duplicates. It may hold a pair twice; build sorts the pairs
	// and keeps each once, without a map of them.
	extra chunks[obs]

	// The version order, set by build. pairs are all distinct (offset,
	// value) pairs sorted by offset then value, each as a pairRef; offs the
	// distinct offsets, whose index is the log position (nil when dense:
	// minOff, minOff+1, ...); posVid a value (its index in vals) at each
	// position.
	pairs  []pairRef
	offs   []int64
	dense  bool
	posVid []int32
	// table maps offset-minOff to a position (-1 for none) when offsets
	// are dense enough; otherwise position binary-searches offs. Its size
	// follows the number of offsets, never their span.
	table  []int32
	minOff int64
}

// analysis is the state of one Check. Everything is indexed by int32
// positions into flat slices; maps are used only to look values up.
type analysis struct {
	h    *histories.History
	opts Options
	cops []cop
	// keyOf maps a Sym to its key id (-1: not a key).
	keyOf []int32
	keys  []*keyState
	// deferredInfo are offsets reported by info sends: they enter the log
	// only once the send is proven committed.
	deferredInfo []deferred
	// valueTable maps a value v in [0, valueTableMax) straight to its
	// entry: (key id+1)<<32 | index in that key's vals, 0 when unseen.
	// Workloads number values 0, 1, 2, ..., so this replaces almost every
	// map lookup; other values, or one value in a second key, use
	// keyState.ids.
	valueTable    sparse
	valueTableMax int64
	counts        Counts
	col           collector
	drain         Drain
	// drainStart is the position before which an acknowledgement is
	// covered by the final drain (-1: none is).
	drainStart int
}

type deferred struct {
	key int32
	obs obs
}

func newAnalysis(h *histories.History, opts Options, max int) *analysis {
	a := &analysis{
		h:             h,
		opts:          opts,
		keyOf:         make([]int32, h.Syms()),
		col:           collector{max: max, m: make(map[string]*Anomaly)},
		valueTableMax: 4*int64(len(h.Events)+h.Records()) + 4096,
		drain:         drainInfo(h, opts.AssumeDrained),
		drainStart:    -1,
	}
	for i := range a.keyOf {
		a.keyOf[i] = -1
	}
	switch {
	case opts.AssumeDrained:
		a.drainStart = len(h.Events)
	case h.Drain.State == histories.DrainCompleted:
		a.drainStart = h.Drain.Start
	}
	return a
}

// gather pairs each client op (an invocation with its completion, or
// either alone) and collects what it wrote and read, in history order of
// completions; invocations that never completed come last, as info.
func (a *analysis) gather() {
	h := a.h
	a.cops = make([]cop, 0, len(h.Events)/2+16)
	var open []int32
	for i := range h.Events {
		e := &h.Events[i]
		if !e.IsClient() {
			continue
		}
		if e.Kind == histories.KindInvoke {
			if e.Partner < 0 {
				open = append(open, int32(i))
			}
			continue
		}
		out := outOK
		switch e.Kind {
		case histories.KindFail:
			out = outFail
		case histories.KindInfo:
			out = outInfo
		}
		a.complete(e.Partner, int32(i), out)
	}
	for _, inv := range open {
		a.complete(inv, -1, outInfo)
	}
}

func (a *analysis) complete(inv, cmp int32, out outcome) {
	a.cops = append(a.cops, cop{inv: inv, cmp: cmp, out: out})
	a.collect(int32(len(a.cops) - 1))
}

// event is the event that stands for op ci: its completion, or its
// invocation when it never completed.
func (a *analysis) event(ci int32) *histories.Event {
	cp := &a.cops[ci]
	if cp.cmp >= 0 {
		return &a.h.Events[cp.cmp]
	}
	return &a.h.Events[cp.inv]
}

// micros are the micro-ops of op ci: the completion's, or the
// invocation's when the completion carries none (info, or never
// completed).
func (a *analysis) micros(ci int32) []histories.Micro {
	cp := &a.cops[ci]
	if cp.cmp >= 0 {
		if m := a.h.MicrosOf(&a.h.Events[cp.cmp]); len(m) > 0 {
			return m
		}
	}
	if cp.inv >= 0 {
		return a.h.MicrosOf(&a.h.Events[cp.inv])
	}
	return nil
}

// assigned are the keys of an assign or subscribe, found as micros are.
func (a *analysis) assigned(ci int32) []histories.Sym {
	cp := &a.cops[ci]
	if cp.cmp >= 0 {
		if e := &a.h.Events[cp.cmp]; e.Form == histories.FormKeys {
			return a.h.KeysOf(e)
		}
	}
	if cp.inv >= 0 {
		return a.h.KeysOf(&a.h.Events[cp.inv])
	}
	return nil
}

func (a *analysis) opRef(ci int32) OpRef {
	e := a.event(ci)
	return OpRef{Index: e.Index, Process: e.Process, Time: e.Time, Type: e.Kind.Type(), F: a.h.Text(e.F)}
}

// key returns the id and state of key sym, adding it if new.
func (a *analysis) key(sym histories.Sym) (int32, *keyState) {
	id := a.keyOf[sym]
	if id < 0 {
		id = int32(len(a.keys))
		a.keyOf[sym] = id
		a.keys = append(a.keys, &keyState{name: a.h.Text(sym)})
	}
	return id, a.keys[id]
}

// valueID returns the index of value v in key kid's vals, adding it if new.
func (a *analysis) valueID(kid int32, ks *keyState, v histories.ValueID) int32 {
	if v >= 0 && int64(v) < a.valueTableMax {
		e := a.valueTable.get(int64(v))
		if e == 0 {
			vid := ks.add(v)
			a.valueTable.set(int64(v), uint64(kid+1)<<32|uint64(vid))
			return vid
		}
		if int32(e>>32) == kid+1 {
			return int32(uint32(e))
		}
	}
	if id, ok := ks.ids[v]; ok {
		return id
	}
	if ks.ids == nil {
		ks.ids = make(map[histories.ValueID]int32)
	}
	id := ks.add(v)
	ks.ids[v] = id
	return id
}

// lookup returns the index of value v in key kid's vals, or -1.
func (a *analysis) lookup(kid int32, ks *keyState, v histories.ValueID) int32 {
	if v >= 0 && int64(v) < a.valueTableMax {
		if e := a.valueTable.get(int64(v)); int32(e>>32) == kid+1 {
			return int32(uint32(e))
		}
	}
	if id, ok := ks.ids[v]; ok {
		return id
	}
	return -1
}

// add appends a new value and returns its index in vals.
func (ks *keyState) add(v histories.ValueID) int32 {
	return ks.vals.add(valEntry{value: v, off: -1, offCop: -1, writer: -1, reader: -1, polled: -1, first: -1, last: -1})
}

// keyOrder lists key ids by key name, so output does not depend on the
// order keys first appeared in.
func (a *analysis) keyOrder() []int32 {
	ids := make([]int32, len(a.keys))
	for i := range ids {
		ids[i] = int32(i)
	}
	slices.SortFunc(ids, func(x, y int32) int { return strings.Compare(a.keys[x].name, a.keys[y].name) })
	return ids
}

// collect records what op ci wrote and read: writers, log observations,
// reads and send counts.
func (a *analysis) collect(ci int32) {
	out := a.cops[ci].out
	h := a.h
	for _, m := range a.micros(ci) {
		if !m.Poll {
			kid, ks := a.key(m.Key)
			vid := a.valueID(kid, ks, m.Value)
			e := ks.vals.at(vid)
			if e.writer < 0 || out > a.cops[e.writer].out {
				e.writer = ci
			}
			switch out {
			case outOK:
				a.counts.Acknowledged++
				if m.Offset >= 0 {
					ks.observe(vid, m.Offset, ci)
				}
			case outFail:
				a.counts.Failed++
			case outInfo:
				a.counts.Indeterminate++
				if m.Offset >= 0 {
					a.deferredInfo = append(a.deferredInfo, deferred{kid, obs{off: m.Offset, vid: vid, cop: ci}})
				}
			}
			a.counts.Sent++
			continue
		}
		for _, kr := range h.Reads[m.Reads.Start:m.Reads.End()] {
			if kr.Recs.Len == 0 {
				continue
			}
			kid, ks := a.key(kr.Key)
			rs := h.RecsOf(&kr)
			for i, v := range rs.Vals {
				off := rs.Offset(i)
				vid := a.valueID(kid, ks, v)
				if off >= 0 {
					// A poll of any outcome places values in the log: a
					// poll only ever shows what the log held.
					ks.observe(vid, off, ci)
				}
				e := ks.vals.at(vid)
				if e.polled < 0 {
					e.polled = ci
				}
				if out == outOK && e.reader < 0 {
					e.reader = ci
				}
			}
		}
	}
}

// observe records that op ci showed value vid at offset off (off >= 0).
func (ks *keyState) observe(vid int32, off int64, ci int32) {
	e := ks.vals.at(vid)
	if e.off < 0 {
		e.off, e.offCop = off, ci
		return
	}
	if e.off == off {
		return
	}
	ks.extra.add(obs{off: off, vid: vid, cop: ci})
}

// commitInfo decides which info sends are proven committed (an ok poll
// read one of their values, in any key), lets their reported offsets into
// the logs, and counts reads.
func (a *analysis) commitInfo() {
	for ci := range a.cops {
		cp := &a.cops[ci]
		switch cp.out {
		case outOK:
			cp.committed = true
		case outInfo:
			for _, m := range a.micros(int32(ci)) {
				if m.Poll {
					continue
				}
				kid := a.keyOf[m.Key]
				ks := a.keys[kid]
				if ks.vals.at(a.lookup(kid, ks, m.Value)).reader >= 0 {
					cp.committed = true
					a.counts.IndeterminateRead++
				}
			}
		}
	}
	for _, d := range a.deferredInfo {
		if a.cops[d.obs.cop].committed {
			a.keys[d.key].observe(d.obs.vid, d.obs.off, d.obs.cop)
		}
	}
	for _, ks := range a.keys {
		for i := range int32(ks.vals.len()) {
			if ks.vals.at(i).reader >= 0 {
				a.counts.Read++
			}
		}
	}
}

// pairRef names one (offset, value) pair of a key's log without copying
// it: r >= 0 is value r's first offset (vals[r].off), r < 0 is extra[-r-1].
// Four bytes a pair, since a corrupt log can hold as many pairs as the
// history holds records.
type pairRef int32

func (ks *keyState) pair(r pairRef) obs {
	if r >= 0 {
		e := ks.vals.at(int32(r))
		return obs{off: e.off, vid: int32(r), cop: e.offCop}
	}
	return *ks.extra.at(int32(-r - 1))
}

// build sorts the key's (offset, value) pairs into its version order and
// gives every value its positions. O(n log n) in distinct pairs.
func (ks *keyState) build() {
	n := ks.extra.len()
	for vid := range int32(ks.vals.len()) {
		if ks.vals.at(vid).off >= 0 {
			n++
		}
	}
	pairs := make([]pairRef, 0, n)
	for vid := range int32(ks.vals.len()) {
		if ks.vals.at(vid).off >= 0 {
			pairs = append(pairs, pairRef(vid))
		}
	}
	for i := range ks.extra.len() {
		pairs = append(pairs, pairRef(-i-1))
	}
	// By offset, value, then op: a pair shown twice keeps the first op
	// that showed it (ops are numbered in history order).
	slices.SortFunc(pairs, func(x, y pairRef) int {
		px, py := ks.pair(x), ks.pair(y)
		switch {
		case px.off != py.off:
			return cmp.Compare(px.off, py.off)
		case px.vid != py.vid:
			return int(px.vid - py.vid)
		}
		return int(px.cop - py.cop)
	})
	pairs = slices.CompactFunc(pairs, func(x, y pairRef) bool {
		px, py := ks.pair(x), ks.pair(y)
		return px.off == py.off && px.vid == py.vid
	})
	ks.pairs = pairs
	// Offsets are nearly always dense (the log's records one after
	// another): then a position is its offset less the first, and neither
	// the offsets nor a table of them is kept.
	npos, last := 0, int64(-1)
	for i, r := range pairs {
		if off := ks.pair(r).off; i == 0 || off != last {
			npos, last = npos+1, off
		}
	}
	if npos > 0 {
		ks.minOff = ks.pair(pairs[0]).off
		ks.dense = last-ks.minOff == int64(npos-1)
	}
	if !ks.dense {
		ks.offs = make([]int64, 0, npos)
	}
	ks.posVid = make([]int32, 0, npos)
	for i, r := range pairs {
		p := ks.pair(r)
		if i == 0 || p.off != last {
			last = p.off
			if !ks.dense {
				ks.offs = append(ks.offs, p.off)
			}
			ks.posVid = append(ks.posVid, p.vid)
		}
		pos := int32(len(ks.posVid) - 1)
		e := ks.vals.at(p.vid)
		if e.first < 0 {
			e.first = pos
		}
		e.last = pos
	}
	if n := len(ks.offs); n > 0 {
		// A direct table costs 4 bytes per offset of span: use it only
		// when offsets are not too sparse, so that memory follows what was
		// observed. (Offsets are >= 0, so the difference cannot overflow.)
		if span := ks.offs[n-1] - ks.minOff; span < 4*int64(n)+4096 {
			ks.table = make([]int32, span+1)
			for i := range ks.table {
				ks.table[i] = -1
			}
			for pos, off := range ks.offs {
				ks.table[off-ks.minOff] = int32(pos)
			}
		}
	}
}

// offAt is the offset of a log position.
func (ks *keyState) offAt(pos int32) int64 {
	if ks.dense {
		return ks.minOff + int64(pos)
	}
	return ks.offs[pos]
}

// position is the log position of an offset, -1 if none was observed.
func (ks *keyState) position(off int64) int32 {
	if off < 0 {
		return -1
	}
	if ks.dense {
		if d := off - ks.minOff; d >= 0 && d < int64(len(ks.posVid)) {
			return int32(d)
		}
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

func (a *analysis) val(v histories.ValueID) histories.Val { return a.h.Val(v) }

// logAnomalies reports offsets holding several values and values at
// several offsets.
func (a *analysis) logAnomalies(ks *keyState) {
	pairs := ks.pairs
	for i := 0; i < len(pairs); {
		off := ks.pair(pairs[i]).off
		j := i + 1
		for j < len(pairs) && ks.pair(pairs[j]).off == off {
			j++
		}
		if j-i > 1 && a.col.hit(anomaly.InconsistentOffsets, false, false) {
			ex := Example{Key: ks.name, Offset: &off}
			var b strings.Builder
			fmt.Fprintf(&b, "offset %d of key %q holds %d different values:", off, ks.name, j-i)
			for _, r := range pairs[i:j] {
				p := ks.pair(r)
				v := a.val(ks.vals.at(p.vid).value)
				ex.Values = append(ex.Values, v)
				ex.Ops = appendOp(ex.Ops, a.opRef(p.cop))
				fmt.Fprintf(&b, " %s (op #%d)", v, a.event(p.cop).Index)
			}
			ex.Explanation = b.String()
			a.col.add(anomaly.InconsistentOffsets, ex)
		}
		i = j
	}
	// Duplicates: each value at several offsets, its first offsets in
	// order (a corrupt log can put one value at millions).
	type dup struct {
		vid   int32
		n     int
		first []obs
	}
	var dups []*dup
	byVid := map[int32]*dup{}
	for _, r := range pairs {
		p := ks.pair(r)
		if e := ks.vals.at(p.vid); e.first == e.last {
			continue
		}
		d := byVid[p.vid]
		if d == nil {
			d = &dup{vid: p.vid}
			byVid[p.vid] = d
			dups = append(dups, d)
		}
		d.n++
		if len(d.first) < skippedMax {
			d.first = append(d.first, p)
		}
	}
	for _, d := range dups {
		if !a.col.hit(anomaly.Duplicate, false, false) {
			continue
		}
		v := a.val(ks.vals.at(d.vid).value)
		ex := Example{Key: ks.name, Value: &v}
		var b strings.Builder
		fmt.Fprintf(&b, "value %s appears at %d offsets of key %q:", v, d.n, ks.name)
		for _, p := range d.first {
			ex.Offsets = append(ex.Offsets, p.off)
			ex.Ops = appendOp(ex.Ops, a.opRef(p.cop))
			fmt.Fprintf(&b, " %d (op #%d)", p.off, a.event(p.cop).Index)
		}
		if d.n > len(d.first) {
			fmt.Fprintf(&b, " … and %d more", d.n-len(d.first))
		}
		ex.Explanation = b.String()
		a.col.add(anomaly.Duplicate, ex)
	}
}

// durability finds, for one key, lost and unseen values (committed values
// no ok poll read), values read whose sends failed (G1a) and values read
// that nobody sent (garbage-read). Values are visited in log order, then
// those without an offset in the order they first appeared.
//
// A value is lost, as Jepsen has it, when ok polls read the key at or
// past its last position: the bound is the furthest first position of any
// value an ok poll read.
func (a *analysis) durability(ks *keyState) {
	bound, boundVid := int32(-1), int32(-1)
	for vid := range int32(ks.vals.len()) {
		if e := ks.vals.at(vid); e.reader >= 0 && e.first > bound {
			bound, boundVid = e.first, int32(vid)
		}
	}
	pos, last := int32(-1), int64(-1)
	for i, r := range ks.pairs {
		p := ks.pair(r)
		if i == 0 || p.off != last {
			pos, last = pos+1, p.off
		}
		if ks.vals.at(p.vid).first == pos {
			a.valueAnomalies(ks, p.vid, bound, boundVid)
		}
	}
	for vid := range int32(ks.vals.len()) {
		if ks.vals.at(vid).first < 0 {
			a.valueAnomalies(ks, int32(vid), bound, boundVid)
		}
	}
}

func (a *analysis) valueAnomalies(ks *keyState, vid, bound, boundVid int32) {
	e := ks.vals.at(vid)
	switch {
	case e.writer < 0:
		if e.polled >= 0 && !a.h.Fragment {
			a.garbageRead(ks, e)
		}
		return
	case e.reader >= 0:
		if a.cops[e.writer].out == outFail {
			a.abortedRead(ks, e)
		}
		return
	}
	w := &a.cops[e.writer]
	var name string
	inconclusive := false
	switch {
	case w.committed && e.last >= 0 && e.last <= bound:
		name = anomaly.LostWrite
	case w.out == outOK:
		name = anomaly.Unseen
		inconclusive = a.drainStart < 0 || int(w.cmp) >= a.drainStart
	default:
		// Failed, or indeterminate without proof it committed: it may
		// never have happened.
		return
	}
	if !a.col.hit(name, false, inconclusive) {
		return
	}
	v := a.val(e.value)
	ex := Example{Key: ks.name, Value: &v, Ops: []OpRef{a.opRef(e.writer)}, Inconclusive: inconclusive}
	var at string
	switch {
	case e.last < 0:
		at = "acknowledged without an offset"
	case w.out == outInfo:
		at = fmt.Sprintf("from an indeterminate send proven committed (another of its values was read), at offset %d", ks.offAt(e.last))
	default:
		at = fmt.Sprintf("acknowledged at offset %d", ks.offAt(e.last))
	}
	if e.last >= 0 {
		off := ks.offAt(e.last)
		ex.Offset = &off
	}
	var boundOff int64 = -1
	if bound >= 0 {
		boundOff = ks.offAt(bound)
		ex.MaxReadOffset = &boundOff
	}
	subject := fmt.Sprintf("value %s of key %q, %s, was never read", v, ks.name, at)
	switch {
	case name == anomaly.LostWrite:
		reader := ks.vals.at(boundVid).reader
		ex.Ops = append(ex.Ops, a.opRef(reader))
		ex.Explanation = fmt.Sprintf("%s, though op #%d read value %s at offset %d, at or after it", subject,
			a.event(reader).Index, a.val(ks.vals.at(boundVid).value), boundOff)
	case bound < 0:
		ex.Explanation = subject + ": no poll read that key"
	case e.last < 0:
		ex.Explanation = fmt.Sprintf("%s (ok polls read up to offset %d)", subject, boundOff)
	default:
		ex.Explanation = fmt.Sprintf("%s, and no poll read past it (ok polls read up to offset %d)", subject, boundOff)
	}
	if inconclusive {
		ex.Explanation += "; inconclusive: no completed final drain covers it"
	}
	a.col.add(name, ex)
}

// abortedRead reports an ok read of a value whose send failed: G1a.
func (a *analysis) abortedRead(ks *keyState, e *valEntry) {
	if !a.col.hit(anomaly.G1a, false, false) {
		return
	}
	v := a.val(e.value)
	ex := Example{Key: ks.name, Value: &v, Ops: []OpRef{a.opRef(e.writer), a.opRef(e.reader)}}
	ex.Explanation = fmt.Sprintf("op #%d read value %s of key %q, whose send failed (op #%d): a failed send must never be seen",
		a.event(e.reader).Index, v, ks.name, a.event(e.writer).Index)
	a.col.add(anomaly.G1a, ex)
}

// garbageRead reports a value some poll read that no send wrote to the
// key.
func (a *analysis) garbageRead(ks *keyState, e *valEntry) {
	if !a.col.hit(anomaly.GarbageRead, false, false) {
		return
	}
	v := a.val(e.value)
	ex := Example{Key: ks.name, Value: &v, Ops: []OpRef{a.opRef(e.polled)}}
	at := "without an offset"
	if off := a.offsetRead(e.polled, ks, e.value); off >= 0 {
		ex.Offset = &off
		at = fmt.Sprintf("at offset %d", off)
	}
	ex.Explanation = fmt.Sprintf("op #%d read value %s of key %q %s, but no send in the history wrote it to that key",
		a.event(e.polled).Index, v, ks.name, at)
	a.col.add(anomaly.GarbageRead, ex)
}

// offsetRead is the offset at which op ci first read value v of key ks
// (-1: without one): for examples, so looked up rather than stored.
func (a *analysis) offsetRead(ci int32, ks *keyState, v histories.ValueID) int64 {
	h := a.h
	for _, m := range a.micros(ci) {
		if !m.Poll {
			continue
		}
		for _, kr := range h.Reads[m.Reads.Start:m.Reads.End()] {
			if h.Text(kr.Key) != ks.name {
				continue
			}
			rs := h.RecsOf(&kr)
			for i, x := range rs.Vals {
				if x == v {
					return rs.Offset(i)
				}
			}
		}
	}
	return -1
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

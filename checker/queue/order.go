package queue

import (
	"fmt"

	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/anomaly"
)

// rec is one record an op sent or read, placed in its key's log.
type rec struct {
	off int64 // -1 when unknown
	val histories.ValueID
	pos int32 // log position, -1 when unknown
	cop int32
}

// proc is one process's state for the order checks: per key id, the last
// record its last ok poll of that key read and its last send there, and
// whether it is subscribed. Maps, so that memory follows the keys a
// process touched, not every key times every process.
type proc struct {
	read, send map[int32]rec
	subscribed bool
}

// slot tracks, per key, the records of the op being checked. A slot
// belongs to the current op only when its epoch matches, so nothing is
// cleared between ops.
type slot struct {
	epoch uint32
	last  rec
}

// orderState is order's working memory, reused across ops.
type orderState struct {
	procs map[int64]*proc
	slots []slot
	// mark stamps key ids with the current epoch: the keys an assign
	// names, or an op's rebalance log names.
	mark    []uint32
	epoch   uint32
	touched []int32
}

func (st *orderState) next() uint32 {
	st.epoch++
	return st.epoch
}

// order checks every op, in history order, against its own earlier
// records (int-*) and its process's previous ops (poll-skip,
// nonmonotonic-*).
func (a *analysis) order() {
	nk := len(a.keys)
	st := &orderState{procs: make(map[int64]*proc), slots: make([]slot, nk), mark: make([]uint32, nk)}
	for ci := range a.cops {
		ci := int32(ci)
		p := a.event(ci).Process
		ps := st.procs[p]
		if ps == nil {
			ps = &proc{read: make(map[int32]rec), send: make(map[int32]rec)}
			st.procs[p] = ps
		}
		a.orderOp(ci, ps, st)
		if a.cops[ci].out == outInfo {
			// The process is retired (a client starts afresh under a new
			// id), so its state can go.
			delete(st.procs, p)
		}
	}
}

// sendPos is where a send of op ci sits in the log: at its offset when the
// op is committed (its offset is then in the log), else where polls saw
// its value (first position), else unknown.
func (a *analysis) sendPos(ks *keyState, kid int32, ci int32, m *histories.Micro) rec {
	r := rec{off: m.Offset, val: m.Value, pos: -1, cop: ci}
	if m.Offset >= 0 && a.cops[ci].committed {
		r.pos = ks.position(m.Offset)
	}
	if r.pos < 0 {
		if vid := a.lookup(kid, ks, m.Value); vid >= 0 && ks.vals.at(vid).first >= 0 {
			r.pos = ks.vals.at(vid).first
			r.off = ks.offAt(r.pos)
		}
	}
	return r
}

// recPos is where a record sits: at its offset, or, when the record has no
// offset, where its value first sits.
func (a *analysis) recPos(ks *keyState, kid int32, ci int32, r histories.Rec) rec {
	out := rec{off: r.Offset, val: r.Value, pos: -1, cop: ci}
	if r.Offset >= 0 {
		out.pos = ks.position(r.Offset)
	} else if vid := a.lookup(kid, ks, r.Value); vid >= 0 && ks.vals.at(vid).first >= 0 {
		out.pos = ks.vals.at(vid).first
		out.off = ks.offAt(out.pos)
	}
	return out
}

func (a *analysis) orderOp(ci int32, ps *proc, st *orderState) {
	cp := &a.cops[ci]
	h := a.h
	e := a.event(ci)
	if f := h.Text(e.F); f == histories.FAssign || f == histories.FSubscribe {
		if cp.out != outFail && cp.cmp >= 0 {
			// Only keys still assigned keep their poll position; an assign
			// after a subscribe keeps none (Kafka's consumer unsubscribes
			// first, which drops its positions).
			ep := st.next()
			if !(f == histories.FAssign && ps.subscribed) {
				for _, k := range a.assigned(ci) {
					if id := a.keyOf[k]; id >= 0 {
						st.mark[id] = ep
					}
				}
			}
			for id := range ps.read {
				if st.mark[id] != ep {
					delete(ps.read, id)
				}
			}
			ps.subscribed = f == histories.FSubscribe
		}
		return
	}
	if cp.cmp < 0 {
		return // never completed: it read nothing and claims no order
	}
	ms := a.micros(ci)

	// Sends, in op order: every completed op's sends are compared within
	// the op; ok and info ones (which may have happened) against the
	// process's previous send to the key.
	ep := st.next()
	st.touched = st.touched[:0]
	for i := range ms {
		m := &ms[i]
		if m.Poll {
			continue
		}
		id := a.keyOf[m.Key]
		ks := a.keys[id]
		cur := a.sendPos(ks, id, ci, m)
		sl := &st.slots[id]
		if sl.epoch == ep {
			if sl.last.pos >= 0 && cur.pos >= 0 {
				a.step(ks, sl.last, cur, anomaly.IntSendSkip, anomaly.IntNonmonotonicSend, true)
			}
		} else {
			sl.epoch = ep
			st.touched = append(st.touched, id)
			if prev, ok := ps.send[id]; ok && cp.out != outFail && prev.pos >= 0 && cur.pos >= 0 && cur.pos <= prev.pos {
				a.backwards(ks, prev, cur, anomaly.NonmonotonicSend, false)
			}
		}
		sl.last = cur
	}
	if cp.out != outFail {
		for _, id := range st.touched {
			ps.send[id] = st.slots[id].last
		}
	}

	// Polls: every completed op with records is compared, only ok ones
	// move the process's position. Keys the op's rebalance log names are
	// exempt from the in-op checks (the consumer was moved meanwhile).
	ep = st.next()
	st.touched = st.touched[:0]
	rebalanced := false
	if e.Rebalance != 0 {
		for _, rb := range h.Rebalances(e) {
			for _, k := range h.Lists[rb.Keys.Start:rb.Keys.End()] {
				if id := a.keyOf[k]; id >= 0 {
					st.mark[id] = ep
					rebalanced = true
				}
			}
		}
	}
	for i := range ms {
		m := &ms[i]
		if !m.Poll {
			continue
		}
		for _, kr := range h.Reads[m.Reads.Start:m.Reads.End()] {
			if kr.Recs.Len == 0 {
				continue
			}
			id := a.keyOf[kr.Key]
			ks := a.keys[id]
			sl := &st.slots[id]
			rs := h.RecsOf(&kr)
			for i := range rs.Vals {
				cur := a.recPos(ks, id, ci, rs.At(i))
				if sl.epoch == ep {
					if sl.last.pos >= 0 && cur.pos >= 0 && !(rebalanced && st.mark[id] == ep) {
						a.step(ks, sl.last, cur, anomaly.IntPollSkip, anomaly.IntNonmonotonicPoll, false)
					}
				} else {
					sl.epoch = ep
					st.touched = append(st.touched, id)
					if prev, ok := ps.read[id]; ok && prev.pos >= 0 && cur.pos >= 0 {
						a.stepPoll(ks, prev, cur, allowedPoll(ps.subscribed))
					}
				}
				sl.last = cur
			}
		}
	}
	if cp.out == outOK {
		for _, id := range st.touched {
			ps.read[id] = st.slots[id].last
		}
	}
}

// step reports a move within one op from prev to cur (both placed) that is
// not to the next position: skip when it jumps ahead, nonmono when it does
// not advance. skipAllowed says whether skips are within the contract.
func (a *analysis) step(ks *keyState, prev, cur rec, skip, nonmono string, skipAllowed bool) {
	switch d := cur.pos - prev.pos; {
	case d > 1:
		a.skip(ks, prev, cur, skip, skipAllowed)
	case d < 1:
		a.backwards(ks, prev, cur, nonmono, false)
	}
}

// stepPoll reports a move between a process's polls.
func (a *analysis) stepPoll(ks *keyState, prev, cur rec, allowed bool) {
	switch d := cur.pos - prev.pos; {
	case d > 1:
		a.skip(ks, prev, cur, anomaly.PollSkip, allowed)
	case d < 1:
		a.backwards(ks, prev, cur, anomaly.NonmonotonicPoll, allowed)
	}
}

func (a *analysis) skip(ks *keyState, prev, cur rec, name string, allowed bool) {
	if !a.col.hit(name, allowed, false) {
		return
	}
	d := cur.pos - prev.pos
	ex := a.moveExample(ks, prev, cur, allowed)
	hi := min(cur.pos, prev.pos+1+skippedMax)
	for _, vid := range ks.posVid[prev.pos+1 : hi] {
		ex.Skipped = append(ex.Skipped, a.val(ks.vals.at(vid).value))
	}
	ex.Explanation = fmt.Sprintf("%s, skipping %d record(s) that exist", a.moveText(ks, prev, cur), d-1)
	if allowed {
		ex.Explanation += " (allowed: a subscribed consumer may be rebalanced)"
	}
	a.col.add(name, ex)
}

func (a *analysis) backwards(ks *keyState, prev, cur rec, name string, allowed bool) {
	if !a.col.hit(name, allowed, false) {
		return
	}
	ex := a.moveExample(ks, prev, cur, allowed)
	if back := prev.pos - cur.pos; back == 0 {
		ex.Explanation = a.moveText(ks, prev, cur) + ", not advancing"
	} else {
		ex.Explanation = fmt.Sprintf("%s, %d record(s) back", a.moveText(ks, prev, cur), back)
	}
	if allowed {
		ex.Explanation += " (allowed: a subscribed consumer may be rebalanced)"
	}
	a.col.add(name, ex)
}

func (a *analysis) moveExample(ks *keyState, prev, cur rec, allowed bool) Example {
	d := int64(cur.pos - prev.pos)
	ex := Example{
		Key:     ks.name,
		Values:  []histories.Val{a.val(prev.val), a.val(cur.val)},
		Offsets: []int64{prev.off, cur.off},
		Delta:   &d,
		Ops:     []OpRef{a.opRef(prev.cop)},
		Allowed: allowed,
	}
	if cur.cop != prev.cop {
		ex.Ops = append(ex.Ops, a.opRef(cur.cop))
	}
	return ex
}

func (a *analysis) moveText(ks *keyState, prev, cur rec) string {
	if prev.cop == cur.cop {
		return fmt.Sprintf("in op #%d, key %q went from offset %d (value %s) to offset %d (value %s)",
			a.event(cur.cop).Index, ks.name, prev.off, a.val(prev.val), cur.off, a.val(cur.val))
	}
	return fmt.Sprintf("key %q went from offset %d (value %s, op #%d) to offset %d (value %s, op #%d)",
		ks.name, prev.off, a.val(prev.val), a.event(prev.cop).Index, cur.off, a.val(cur.val), a.event(cur.cop).Index)
}

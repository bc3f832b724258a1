package queue

import (
	"fmt"
	"slices"

	"github.com/garantia/garantia/histories"
)

// rec is one record an op sent or read, placed in its key's log.
type rec struct {
	pos      int32 // log position, -1 when unknown
	off, val int64
	cop      int32 // the op; -1 marks an empty slot
}

var noRec = rec{pos: -1, cop: -1}

// keyRecs are the records one poll returned for one key.
type keyRecs struct {
	id   int32
	recs []histories.Record
}

// proc is one process's last poll and send per key (indexed by key id).
type proc struct {
	read, send []rec
}

// scratch tracks, per key, the records of the op being checked. A slot
// belongs to the current op only when its epoch matches, so nothing is
// cleared between ops.
type scratch struct {
	epoch uint32
	last  rec
}

// orderState is order's working memory, reused across ops.
type orderState struct {
	procs map[int64]*proc
	free  []*proc // retired processes' state, for reuse
	slots []scratch
	epoch uint32
	// rank maps a key id to its rank by name, to visit a poll's keys in a
	// deterministic order.
	rank    []int32
	touched []int32
	keyed   []keyRecs
}

// order checks every op, in history order, against its own earlier records
// (int-*) and its process's previous op (poll-skip, nonmonotonic-*).
func (c *analysis) order() {
	nk := len(c.keys)
	st := &orderState{procs: make(map[int64]*proc), slots: make([]scratch, nk), rank: make([]int32, nk)}
	for r, id := range c.keyOrder() {
		st.rank[id] = int32(r)
	}
	for ci := range c.cops {
		ci := int32(ci)
		p := c.op(ci).Process
		ps := st.procs[p]
		if ps == nil {
			if n := len(st.free); n > 0 {
				ps, st.free = st.free[n-1], st.free[:n-1]
			} else {
				ps = &proc{read: make([]rec, nk), send: make([]rec, nk)}
			}
			for i := range nk {
				ps.read[i], ps.send[i] = noRec, noRec
			}
			st.procs[p] = ps
		}
		c.orderOp(ci, ps, st)
		if c.cops[ci].out == outInfo {
			// The process is retired (a client starts afresh under a new
			// id), so its state can go: memory stays proportional to the
			// processes running at once, not to every process ever used.
			delete(st.procs, p)
			st.free = append(st.free, ps)
		}
	}
}

func (c *analysis) orderOp(ci int32, ps *proc, st *orderState) {
	cp := &c.cops[ci]
	op := c.op(ci)
	if op.F == histories.FAssign || op.F == histories.FSubscribe {
		if cp.out != outFail {
			// Only keys still assigned keep their poll position.
			keys := c.assigned(ci)
			for id := range ps.read {
				if ps.read[id].cop >= 0 && !slices.Contains(keys, c.keys[id].name) {
					ps.read[id] = noRec
				}
			}
		}
		return
	}
	ms := c.mops(ci)

	// Sends, in op order, of ops that may have happened.
	if cp.out != outFail {
		st.epoch++
		st.touched = st.touched[:0]
		for mi := range ms {
			m := &ms[mi]
			if m.F != histories.MopSend || m.Offset < 0 {
				continue
			}
			id := c.keyIDs[m.Key]
			ks := c.keys[id]
			cur := rec{pos: ks.position(m.Offset), off: m.Offset, val: m.Value, cop: ci}
			if cur.pos < 0 {
				continue // an info send not proven committed
			}
			sl := &st.slots[id]
			if sl.epoch == st.epoch {
				c.step(ks, sl.last, cur, IntSendSkip, IntNonmonotonicSend)
			} else {
				sl.epoch = st.epoch
				st.touched = append(st.touched, id)
				if prev := ps.send[id]; prev.cop >= 0 && cur.pos <= prev.pos {
					c.backwards(ks, prev, cur, NonmonotonicSend)
				}
			}
			sl.last = cur
		}
		for _, id := range st.touched {
			ps.send[id] = st.slots[id].last
		}
	}

	// Polls: any op with records is compared, only ok ones move the
	// process's position.
	st.epoch++
	st.touched = st.touched[:0]
	for mi := range ms {
		m := &ms[mi]
		if m.F != histories.MopPoll || len(m.Polls) == 0 {
			continue
		}
		st.keyed = st.keyed[:0]
		for k, recs := range m.Polls {
			if len(recs) > 0 {
				st.keyed = append(st.keyed, keyRecs{c.keyIDs[k], recs})
			}
		}
		slices.SortFunc(st.keyed, func(a, b keyRecs) int { return int(st.rank[a.id] - st.rank[b.id]) })
		for _, kr := range st.keyed {
			id := kr.id
			ks := c.keys[id]
			sl := &st.slots[id]
			for _, r := range kr.recs {
				cur := rec{pos: ks.position(r.Offset), off: r.Offset, val: r.Value, cop: ci}
				if sl.epoch == st.epoch {
					if sl.last.pos >= 0 && cur.pos >= 0 {
						c.step(ks, sl.last, cur, IntPollSkip, IntNonmonotonicPoll)
					}
				} else {
					sl.epoch = st.epoch
					st.touched = append(st.touched, id)
					if prev := ps.read[id]; prev.cop >= 0 && prev.pos >= 0 && cur.pos >= 0 {
						c.step(ks, prev, cur, PollSkip, NonmonotonicPoll)
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

// step reports a move from prev to cur (both placed) that is not to the
// next position: skip when it jumps ahead, nonmono when it does not advance.
func (c *analysis) step(ks *keyState, prev, cur rec, skip, nonmono string) {
	switch d := cur.pos - prev.pos; {
	case d > 1:
		if !c.col.hit(skip) {
			return
		}
		ex := c.moveExample(ks, prev, cur)
		hi := min(cur.pos, prev.pos+1+skippedMax)
		ex.Skipped = slices.Clone(ks.posVal[prev.pos+1 : hi])
		ex.Explanation = fmt.Sprintf("%s, skipping %d record(s) that exist", c.moveText(ks, prev, cur), d-1)
		c.col.add(skip, ex)
	case d < 1:
		c.backwards(ks, prev, cur, nonmono)
	}
}

func (c *analysis) backwards(ks *keyState, prev, cur rec, name string) {
	if !c.col.hit(name) {
		return
	}
	ex := c.moveExample(ks, prev, cur)
	if back := prev.pos - cur.pos; back == 0 {
		ex.Explanation = c.moveText(ks, prev, cur) + ", not advancing"
	} else {
		ex.Explanation = fmt.Sprintf("%s, %d record(s) back", c.moveText(ks, prev, cur), back)
	}
	c.col.add(name, ex)
}

func (c *analysis) moveExample(ks *keyState, prev, cur rec) Example {
	d := int64(cur.pos - prev.pos)
	ex := Example{
		Key:     ks.name,
		Values:  []int64{prev.val, cur.val},
		Offsets: []int64{prev.off, cur.off},
		Delta:   &d,
		Ops:     []OpRef{c.opRef(prev.cop)},
	}
	if cur.cop != prev.cop {
		ex.Ops = append(ex.Ops, c.opRef(cur.cop))
	}
	return ex
}

func (c *analysis) moveText(ks *keyState, prev, cur rec) string {
	if prev.cop == cur.cop {
		return fmt.Sprintf("in op #%d, key %q went from offset %d (value %d) to offset %d (value %d)",
			c.op(cur.cop).Index, ks.name, prev.off, prev.val, cur.off, cur.val)
	}
	return fmt.Sprintf("key %q went from offset %d (value %d, op #%d) to offset %d (value %d, op #%d)",
		ks.name, prev.off, prev.val, c.op(prev.cop).Index, cur.off, cur.val, c.op(cur.cop).Index)
}

package queue

import (
	"slices"

	"github.com/garantia/garantia/histories"
)

// outcome is how an op ended, ranked so that a value sent twice (against
// the rules) keeps its most definite writer.
type outcome uint8

const (
	outFail outcome = iota
	outInfo
	outOK
)

// cop is one client op: its invocation and completion paired. Positions
// index the ops slice given to Check; -1 is absent.
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

// analysis is the state of one Check. Everything is indexed by int32
// positions into flat slices; maps are used only to look values and keys up.
type analysis struct {
	ops    []histories.Op
	cops   []cop
	keyIDs map[string]int32
	keys   []*keyState
	// deferredInfo are offsets reported by info sends: they enter the log
	// only once the send is proven committed.
	deferredInfo []struct {
		key int32
		obs obs
	}
	// valueTable maps a value v in [0, valueTableMax) straight to its
	// entry: (key id+1)<<32 | index in that key's vals, 0 when unseen.
	// Workloads number values 0, 1, 2, ..., so this replaces almost every
	// map lookup; other values, or one value in a second key, use
	// keyState.ids.
	valueTable    []uint64
	valueTableMax int64
	subscribed    bool
	counts        Counts
	col           collector
}

// pair walks the history once, pairs invocations with completions per
// process, and feeds every paired op to collect as it completes.
func (c *analysis) pair() {
	c.cops = make([]cop, 0, len(c.ops)/2+16)
	c.valueTableMax = 4*int64(len(c.ops)) + 4096
	pending := make(map[int64]int32)
	for i := range c.ops {
		op := &c.ops[i]
		if !op.IsClient() {
			continue
		}
		if op.F == histories.FSubscribe {
			c.subscribed = true
		}
		switch op.Type {
		case histories.Invoke:
			if prev, ok := pending[op.Process]; ok {
				// Invoking again without completing: the earlier op's
				// outcome is unknown.
				c.complete(prev, -1, outInfo)
			}
			pending[op.Process] = int32(i)
		case histories.OK, histories.Fail, histories.Info:
			inv, ok := pending[op.Process]
			if ok {
				delete(pending, op.Process)
			} else {
				inv = -1
			}
			out := outOK
			switch op.Type {
			case histories.Fail:
				out = outFail
			case histories.Info:
				out = outInfo
			}
			c.complete(inv, int32(i), out)
		}
	}
	// A harness that crashed leaves invocations open: their outcome is
	// unknown. Close them in history order so results are deterministic.
	left := make([]int32, 0, len(pending))
	for _, inv := range pending {
		left = append(left, inv)
	}
	slices.Sort(left)
	for _, inv := range left {
		c.complete(inv, -1, outInfo)
	}
}

func (c *analysis) complete(inv, cmp int32, out outcome) {
	c.cops = append(c.cops, cop{inv: inv, cmp: cmp, out: out})
	c.collect(int32(len(c.cops) - 1))
}

// op is the event that stands for a paired op: its completion, or its
// invocation when it never completed.
func (c *analysis) op(ci int32) *histories.Op {
	cp := &c.cops[ci]
	if cp.cmp >= 0 {
		return &c.ops[cp.cmp]
	}
	return &c.ops[cp.inv]
}

// mops are the micro-operations of a paired op: the completion's, or the
// invocation's when the completion carries none (info, or never completed).
func (c *analysis) mops(ci int32) []histories.Mop {
	cp := &c.cops[ci]
	if cp.cmp >= 0 {
		if m := c.ops[cp.cmp].Value.Mops; len(m) > 0 {
			return m
		}
	}
	if cp.inv >= 0 {
		return c.ops[cp.inv].Value.Mops
	}
	return nil
}

// assigned are the keys of an assign or subscribe, found as mops are.
func (c *analysis) assigned(ci int32) []string {
	cp := &c.cops[ci]
	if cp.cmp >= 0 {
		if k := c.ops[cp.cmp].Value.Keys; k != nil {
			return k
		}
	}
	if cp.inv >= 0 {
		return c.ops[cp.inv].Value.Keys
	}
	return nil
}

func (c *analysis) opRef(ci int32) OpRef {
	op := c.op(ci)
	return OpRef{Index: op.Index, Process: op.Process, Time: op.Time, Type: op.Type, F: op.F}
}

func (c *analysis) key(name string) (int32, *keyState) {
	id, ok := c.keyIDs[name]
	if !ok {
		id = int32(len(c.keys))
		c.keyIDs[name] = id
		c.keys = append(c.keys, newKeyState(name))
	}
	return id, c.keys[id]
}

// valueID returns the index of value v in key kid's vals, adding it if new.
func (c *analysis) valueID(kid int32, ks *keyState, v int64) int32 {
	if v >= 0 && v < c.valueTableMax {
		if v >= int64(len(c.valueTable)) {
			n := min(max(2*int64(len(c.valueTable)), v+1, 1024), c.valueTableMax)
			c.valueTable = append(c.valueTable, make([]uint64, n-int64(len(c.valueTable)))...)
		}
		e := c.valueTable[v]
		if e == 0 {
			vid := ks.add(v)
			c.valueTable[v] = uint64(kid+1)<<32 | uint64(vid)
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
		ks.ids = make(map[int64]int32)
	}
	id := ks.add(v)
	ks.ids[v] = id
	return id
}

// keyOrder lists key ids by key name, so output does not depend on the
// order keys first appeared in or on map iteration.
func (c *analysis) keyOrder() []int32 {
	ids := make([]int32, len(c.keys))
	for i := range ids {
		ids[i] = int32(i)
	}
	slices.SortFunc(ids, func(a, b int32) int {
		if c.keys[a].name < c.keys[b].name {
			return -1
		}
		if c.keys[a].name > c.keys[b].name {
			return 1
		}
		return 0
	})
	return ids
}

// collect records what one paired op wrote and read: writers, log
// observations, reads and send counts.
func (c *analysis) collect(ci int32) {
	out := c.cops[ci].out
	ms := c.mops(ci)
	for mi := range ms {
		m := &ms[mi]
		switch m.F {
		case histories.MopSend:
			kid, ks := c.key(m.Key)
			vid := c.valueID(kid, ks, m.Value)
			e := &ks.vals[vid]
			if e.writer < 0 || out > c.cops[e.writer].out {
				e.writer = ci
			}
			switch out {
			case outOK:
				c.counts.Acknowledged++
				if m.Offset >= 0 {
					ks.observe(vid, m.Offset, ci)
				}
			case outFail:
				c.counts.Failed++
			case outInfo:
				c.counts.Indeterminate++
				if m.Offset >= 0 {
					c.deferredInfo = append(c.deferredInfo, struct {
						key int32
						obs obs
					}{kid, obs{off: m.Offset, vid: vid, cop: ci}})
				}
			}
			c.counts.Sent++
		case histories.MopPoll:
			for k, recs := range m.Polls {
				if len(recs) == 0 {
					continue
				}
				kid, ks := c.key(k)
				for _, r := range recs {
					vid := c.valueID(kid, ks, r.Value)
					if r.Offset >= 0 {
						ks.observe(vid, r.Offset, ci)
					}
					if out != outOK {
						// Info and fail polls place values in the log
						// (a poll only shows what was there) but do not
						// count as reads, as in Jepsen.
						continue
					}
					e := &ks.vals[vid]
					if e.reader < 0 {
						e.reader = ci
					}
					if r.Offset > ks.maxReadOff {
						ks.maxReadOff = r.Offset
						ks.maxReadCop = ci
					}
				}
			}
		}
	}
}

// commitInfo decides which info sends are proven committed (an ok poll read
// one of their values, in any key), lets their reported offsets into the
// logs, and counts reads.
func (c *analysis) commitInfo() {
	for ci := range c.cops {
		cp := &c.cops[ci]
		switch cp.out {
		case outOK:
			cp.committed = true
		case outInfo:
			for _, m := range c.mops(int32(ci)) {
				if m.F != histories.MopSend {
					continue
				}
				kid := c.keyIDs[m.Key]
				ks := c.keys[kid]
				if ks.vals[c.valueID(kid, ks, m.Value)].reader >= 0 {
					cp.committed = true
					c.counts.IndeterminateRead++
				}
			}
		}
	}
	for _, d := range c.deferredInfo {
		if c.cops[d.obs.cop].committed {
			c.keys[d.key].observe(d.obs.vid, d.obs.off, d.obs.cop)
		}
	}
	for _, ks := range c.keys {
		for i := range ks.vals {
			if ks.vals[i].reader >= 0 {
				c.counts.Read++
			}
		}
	}
}

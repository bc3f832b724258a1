package queue

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/anomaly"
)

// A second reading of the rules in doc.go (Jepsen's kafka.clj, with the
// deviations doc.go names), written the slow and obvious way: maps of
// keys and values, whole-history scans, no positions packed into tables.
// TestAgainstReference compares it with Check on thousands of small random
// histories, full of every anomaly.

var (
	refSeed  = flag.Uint64("queue.refseed", 0, "run the reference comparison with this seed only")
	refCases = flag.Int("queue.refcases", 3000, "random histories compared with the reference")
)

type refOp struct {
	inv, cmp *histories.Op
	invPos   int // position of the invocation in the history, -1
	cmpPos   int // position of the completion in the history, -1
	out      outcome
	mops     []histories.Mop
}

func (o *refOp) event() *histories.Op {
	if o.cmp != nil {
		return o.cmp
	}
	return o.inv
}

type kv struct {
	k string
	v histories.Val
}

type refRecord struct {
	off int64
	v   histories.Val
}

// refCounts are, per anomaly, its cases, allowed cases and inconclusive
// cases.
type refCounts map[string][3]int

func (c refCounts) add(name string, allowed, inconclusive bool) {
	x := c[name]
	x[0]++
	if allowed {
		x[1]++
	}
	if inconclusive {
		x[2]++
	}
	c[name] = x
}

func refCheck(ops []histories.Op, assumeDrained, fragment bool) (refCounts, verdict.Verdict) {
	// Pair ops: completions in history order, then invocations that never
	// completed, as info.
	var rops []*refOp
	open := map[int64]int{}
	drainStart, drainOpen := -1, -1
	for i := range ops {
		op := &ops[i]
		if !op.IsClient() {
			if op.F == histories.FDrain {
				switch op.Type {
				case histories.Invoke:
					drainOpen = i
				case histories.OK:
					drainStart, drainOpen = drainOpen, -1
				default:
					drainOpen = -1
				}
			}
			continue
		}
		if op.Type == histories.Invoke {
			open[op.Process] = i
			continue
		}
		o := &refOp{cmp: op, cmpPos: i, invPos: -1, out: outOK}
		if j, ok := open[op.Process]; ok {
			o.inv, o.invPos = &ops[j], j
			delete(open, op.Process)
		}
		switch op.Type {
		case histories.Info:
			o.out = outInfo
		case histories.Fail:
			o.out = outFail
		}
		rops = append(rops, o)
	}
	var left []int
	for _, j := range open {
		left = append(left, j)
	}
	sort.Ints(left)
	for _, j := range left {
		rops = append(rops, &refOp{inv: &ops[j], invPos: j, cmpPos: -1, out: outInfo})
	}
	for _, o := range rops {
		if o.cmp != nil && len(o.cmp.Value.Mops) > 0 {
			o.mops = o.cmp.Value.Mops
		} else if o.inv != nil {
			o.mops = o.inv.Value.Mops
		}
	}
	if assumeDrained {
		drainStart = len(ops)
	}

	sends := func(o *refOp) (out []histories.Mop) {
		for _, m := range o.mops {
			if m.F == histories.MopSend {
				out = append(out, m)
			}
		}
		return out
	}
	// reads: key -> records, in the op's order.
	reads := func(o *refOp) (keys []string, recs map[string][]refRecord) {
		recs = map[string][]refRecord{}
		for _, m := range o.mops {
			if m.F != histories.MopPoll {
				continue
			}
			ks := make([]string, 0, len(m.Polls))
			for k := range m.Polls {
				ks = append(ks, k)
			}
			slices.SortFunc(ks, histories.CompareKeys)
			for _, k := range ks {
				for _, r := range m.Polls[k] {
					if _, seen := recs[k]; !seen {
						keys = append(keys, k)
					}
					recs[k] = append(recs[k], refRecord{r.Offset, histories.RecordVal(&r)})
				}
			}
		}
		return keys, recs
	}

	writer := map[kv]*refOp{}
	for _, o := range rops {
		for _, m := range sends(o) {
			p := kv{m.Key, histories.MopVal(&m)}
			if w := writer[p]; w == nil || o.out > w.out {
				writer[p] = o
			}
		}
	}
	read := map[kv]bool{}
	polled := map[kv]bool{}
	for _, o := range rops {
		_, recs := reads(o)
		for k, rs := range recs {
			for _, r := range rs {
				polled[kv{k, r.v}] = true
				if o.out == outOK {
					read[kv{k, r.v}] = true
				}
			}
		}
	}
	committed := func(o *refOp) bool {
		if o.out == outOK {
			return true
		}
		if o.out == outInfo {
			for _, m := range sends(o) {
				if read[kv{m.Key, histories.MopVal(&m)}] {
					return true
				}
			}
		}
		return false
	}

	// The log of each key: offset -> values.
	logs := map[string]map[int64]map[histories.Val]bool{}
	put := func(k string, off int64, v histories.Val) {
		if off < 0 {
			return
		}
		if logs[k] == nil {
			logs[k] = map[int64]map[histories.Val]bool{}
		}
		if logs[k][off] == nil {
			logs[k][off] = map[histories.Val]bool{}
		}
		logs[k][off][v] = true
	}
	for _, o := range rops {
		if committed(o) {
			for _, m := range sends(o) {
				put(m.Key, m.Offset, histories.MopVal(&m))
			}
		}
		_, recs := reads(o)
		for k, rs := range recs {
			for _, r := range rs {
				put(k, r.off, r.v)
			}
		}
	}
	position := func(k string, off int64) int {
		if _, ok := logs[k][off]; !ok || off < 0 {
			return -1
		}
		n := 0
		for o := range logs[k] {
			if o < off {
				n++
			}
		}
		return n
	}
	firstLast := func(k string, v histories.Val) (int, int) {
		first, last := -1, -1
		for off, vs := range logs[k] {
			if vs[v] {
				p := position(k, off)
				if first < 0 || p < first {
					first = p
				}
				last = max(last, p)
			}
		}
		return first, last
	}
	counts := refCounts{}

	for k, log := range logs {
		for _, vs := range log {
			if len(vs) > 1 {
				counts.add(anomaly.InconsistentOffsets, false, false)
			}
		}
		seen := map[histories.Val]int{}
		for _, vs := range log {
			for v := range vs {
				seen[v]++
			}
		}
		for _, n := range seen {
			if n > 1 {
				counts.add(anomaly.Duplicate, false, false)
			}
		}
		_ = k
	}

	values := map[kv]bool{}
	for p := range writer {
		values[p] = true
	}
	for p := range polled {
		values[p] = true
	}
	bound := map[string]int{}
	for p := range read {
		if first, _ := firstLast(p.k, p.v); first >= 0 {
			if b, ok := bound[p.k]; !ok || first > b {
				bound[p.k] = first
			}
		}
	}
	for p := range values {
		w := writer[p]
		switch {
		case w == nil:
			if polled[p] && !fragment {
				counts.add(anomaly.GarbageRead, false, false)
			}
			continue
		case read[p]:
			if w.out == outFail {
				counts.add(anomaly.G1a, false, false)
			}
			continue
		}
		b, hasBound := bound[p.k]
		_, last := firstLast(p.k, p.v)
		switch {
		case committed(w) && last >= 0 && hasBound && last <= b:
			counts.add(anomaly.LostWrite, false, false)
		case w.out == outOK:
			counts.add(anomaly.Unseen, false, drainStart < 0 || w.cmpPos >= drainStart)
		}
	}

	// Order.
	recPos := func(k string, r refRecord) int {
		if r.off >= 0 {
			return position(k, r.off)
		}
		first, _ := firstLast(k, r.v)
		return first
	}
	sendPos := func(o *refOp, m histories.Mop) int {
		if m.Offset >= 0 && committed(o) {
			return position(m.Key, m.Offset)
		}
		first, _ := firstLast(m.Key, histories.MopVal(&m))
		return first
	}
	type proc struct {
		reads, sends map[string]int // key -> position of the last record or send (-1: not placed)
		subscribed   bool
	}
	procs := map[int64]*proc{}
	for _, o := range rops {
		e := o.event()
		ps := procs[e.Process]
		if ps == nil {
			ps = &proc{reads: map[string]int{}, sends: map[string]int{}}
			procs[e.Process] = ps
		}
		retire := func() {
			if o.out == outInfo {
				delete(procs, e.Process)
			}
		}
		if e.F == histories.FAssign || e.F == histories.FSubscribe {
			if o.cmp != nil && o.out != outFail {
				keys := o.cmp.Value.Keys
				if keys == nil && o.inv != nil {
					keys = o.inv.Value.Keys
				}
				for k := range ps.reads {
					if !slices.Contains(keys, k) || (e.F == histories.FAssign && ps.subscribed) {
						delete(ps.reads, k)
					}
				}
				ps.subscribed = e.F == histories.FSubscribe
			}
			retire()
			continue
		}
		if o.cmp == nil {
			retire()
			continue
		}
		// Sends within the op, and against the process's previous ones.
		lastSend := map[string]int{}
		for _, m := range sends(o) {
			cur := sendPos(o, m)
			if prev, ok := lastSend[m.Key]; ok {
				if prev >= 0 && cur >= 0 {
					switch d := cur - prev; {
					case d > 1:
						counts.add(anomaly.IntSendSkip, true, false)
					case d < 1:
						counts.add(anomaly.IntNonmonotonicSend, false, false)
					}
				}
			} else if prev, ok := ps.sends[m.Key]; ok && o.out != outFail && prev >= 0 && cur >= 0 && cur <= prev {
				counts.add(anomaly.NonmonotonicSend, false, false)
			}
			lastSend[m.Key] = cur
		}
		if o.out != outFail {
			for k, p := range lastSend {
				ps.sends[k] = p
			}
		}
		// Reads.
		rebalanced := map[string]bool{}
		for _, rb := range o.cmp.RebalanceLog {
			for _, k := range rb.Keys {
				rebalanced[k] = true
			}
		}
		keys, recs := reads(o)
		lastRead := map[string]int{}
		for _, k := range keys {
			for i, r := range recs[k] {
				cur := recPos(k, r)
				if i > 0 {
					prev := recPos(k, recs[k][i-1])
					if prev >= 0 && cur >= 0 && !rebalanced[k] {
						switch d := cur - prev; {
						case d > 1:
							counts.add(anomaly.IntPollSkip, false, false)
						case d < 1:
							counts.add(anomaly.IntNonmonotonicPoll, false, false)
						}
					}
				} else if prev, ok := ps.reads[k]; ok && prev >= 0 && cur >= 0 {
					switch d := cur - prev; {
					case d > 1:
						counts.add(anomaly.PollSkip, ps.subscribed, false)
					case d < 1:
						counts.add(anomaly.NonmonotonicPoll, ps.subscribed, false)
					}
				}
				lastRead[k] = cur
			}
		}
		if o.out == outOK {
			for k, p := range lastRead {
				ps.reads[k] = p
			}
		}
		retire()
	}

	fetched := refCommits(rops, counts)

	bad, inconclusive := false, false
	for _, c := range counts {
		if c[0] > c[1]+c[2] {
			bad = true
		}
		inconclusive = inconclusive || c[2] > 0
	}
	acked, anyRead := false, len(read) > 0
	for _, o := range rops {
		acked = acked || (o.out == outOK && len(sends(o)) > 0)
	}
	switch {
	case bad:
		return counts, verdict.Invalid
	case inconclusive, !acked && !anyRead && !fetched:
		return counts, verdict.Unknown
	}
	return counts, verdict.Valid
}

// refCommits counts lost-offset-commit by doc.go's words, pair by pair:
// for every offset an ok committed F fetched (o, or none), every piece of
// evidence E that a commit of another offset took effect before F began
// (an ok commit completed before F was invoked; an ok committed completed
// before F was invoked that fetched o' >= 0, with the commits of o' that
// did not fail invoked before that fetch returned as its possible
// writers) must be followed by some commit W of o that did not fail, was
// invoked before F returned, and whose effect (its completion when ok,
// never when info or never completed) comes after (one of) E's commit(s)
// was invoked. It reports whether the history has an ok committed.
func refCommits(rops []*refOp, counts refCounts) bool {
	type commit struct {
		o      *refOp
		group  string
		offs   []histories.KeyOffset
		inv    int
		effect int // position of its completion when ok; else "never"
	}
	const neverPos = 1 << 62
	groupOf := func(o *refOp) string {
		if o.inv != nil && o.inv.Group != "" {
			return o.inv.Group
		}
		if o.cmp != nil {
			return o.cmp.Group
		}
		return ""
	}
	var commits []commit
	fetchedAny := false
	for _, o := range rops {
		e := o.event()
		if e.F != histories.FCommit || o.out == outFail {
			continue
		}
		c := commit{o: o, group: groupOf(o), inv: max(o.invPos, 0), effect: neverPos}
		if o.out == outOK && o.cmp != nil {
			c.effect = o.cmpPos
		}
		if o.cmp != nil && o.cmp.Value.Offsets != nil {
			c.offs = o.cmp.Value.Offsets
		} else if o.inv != nil {
			c.offs = o.inv.Value.Offsets
		}
		commits = append(commits, c)
	}
	writes := func(c commit, g, k string, off int64) bool {
		if c.group != g {
			return false
		}
		for _, ko := range c.offs {
			if ko.Key == k && ko.Offset == off {
				return true
			}
		}
		return false
	}
	type ev struct {
		invs []int // the possible writers' invocations
		off  int64
	}
	for _, f := range rops {
		if f.event().F != histories.FCommitted || f.out != outOK || f.cmp == nil {
			continue
		}
		g := groupOf(f)
		for _, got := range f.cmp.Value.Offsets {
			fetchedAny = true
			k, o := got.Key, got.Offset
			fInv := max(f.invPos, 0)
			var evs []ev
			for _, c := range commits {
				if c.o.out == outOK && c.o.cmp != nil && c.o.cmpPos < fInv {
					for _, ko := range c.offs {
						if c.group == g && ko.Key == k && ko.Offset != o {
							evs = append(evs, ev{invs: []int{c.inv}, off: ko.Offset})
						}
					}
				}
			}
			for _, f1 := range rops {
				if f1.event().F != histories.FCommitted || f1.out != outOK || f1.cmp == nil || f1.cmpPos >= fInv || groupOf(f1) != g {
					continue
				}
				for _, seen := range f1.cmp.Value.Offsets {
					if seen.Key != k || seen.Offset < 0 || seen.Offset == o {
						continue
					}
					var invs []int
					for _, c := range commits {
						if writes(c, g, k, seen.Offset) && c.inv < f1.cmpPos {
							invs = append(invs, c.inv)
						}
					}
					if invs != nil {
						evs = append(evs, ev{invs: invs, off: seen.Offset})
					}
				}
			}
			lost := false
			for _, e := range evs {
				followed := false
				for _, w := range commits {
					if !writes(w, g, k, o) || w.inv >= f.cmpPos {
						continue
					}
					for _, inv := range e.invs {
						followed = followed || w.effect > inv
					}
				}
				lost = lost || !followed
			}
			if lost {
				counts.add(anomaly.LostOffsetCommit, false, false)
			}
		}
	}
	return fetchedAny
}

// randomHistory makes a small well-formed history with every kind of event
// and every anomaly: offsets that collide and jump, values sent twice,
// unknown offsets, garbage reads, assigns and subscribes, rebalance logs,
// drains, processes retired by info, invocations never completed.
//
// A sane history comes from a correct log (unique values, offsets given
// in order, polls reading stretches of it) with now and then one thing
// gone wrong; the others are chaos.
func randomHistory(rnd *rand.Rand, sane bool) []histories.Op {
	var ops []histories.Op
	keys := []string{"a", "b", "c"}[:1+rnd.IntN(3)]
	nextValue := int64(1)
	logs := map[string][]int64{} // sane: each key's log, by offset
	pos := map[[2]int64]int{}    // sane: a process's read position per key index
	oops := func() bool { return rnd.IntN(40) == 0 }
	val := func() (int64, string) {
		if sane && !oops() {
			nextValue++
			return nextValue - 1, ""
		}
		switch rnd.IntN(12) {
		case 0:
			return 0, `"s"` // a text value, sometimes repeated
		case 1:
			return max(1, nextValue-1-int64(rnd.IntN(3))), "" // sent before
		}
		nextValue++
		return nextValue - 1, ""
	}
	off := func() int64 {
		if rnd.IntN(6) == 0 {
			return histories.OffsetUnknown
		}
		return int64(rnd.IntN(8))
	}
	emit := func(p int64, t histories.Type, f string, v histories.Value) *histories.Op {
		ops = append(ops, histories.Op{Index: int64(len(ops)), Time: int64(len(ops)), Process: p, Type: t, F: f, Value: v})
		return &ops[len(ops)-1]
	}
	nProc := 2 + rnd.IntN(3)
	procs := make([]int64, nProc)
	for i := range procs {
		procs[i] = int64(i)
	}
	nextProc := int64(nProc)
	type pending struct {
		f     string
		mops  []histories.Mop
		keys  []string
		offs  []histories.KeyOffset
		group string
	}
	// sane: each group's committed offsets, as acknowledged commits left
	// them.
	committed := map[[2]string]int64{}
	inflight := map[int]*pending{}
	drain := rnd.IntN(4) // 0 none, 1 completed, 2 cut short, 3 completed mid-way
	steps := 6 + rnd.IntN(24)
	for step := 0; step < steps; step++ {
		if drain == 3 && step == steps/2 {
			emit(histories.NemesisProcess, histories.Invoke, histories.FDrain, histories.Value{})
			emit(histories.NemesisProcess, histories.OK, histories.FDrain, histories.Value{})
		}
		if (drain == 1 || drain == 2) && step == steps-3 {
			emit(histories.NemesisProcess, histories.Invoke, histories.FDrain, histories.Value{})
		}
		t := rnd.IntN(nProc)
		p := procs[t]
		if pd, busy := inflight[t]; busy {
			typ := []histories.Type{histories.OK, histories.OK, histories.OK, histories.Info, histories.Fail}[rnd.IntN(5)]
			var v histories.Value
			switch pd.f {
			case histories.FAssign, histories.FSubscribe:
				v.Keys = pd.keys
			case histories.FCommit:
				if typ == histories.OK || rnd.IntN(2) == 0 {
					v.Offsets = pd.offs
				}
				if sane && typ == histories.OK && !oops() {
					for _, o := range pd.offs {
						committed[[2]string{pd.group, o.Key}] = o.Offset
					}
				}
			case histories.FCommitted:
				if typ != histories.OK {
					break
				}
				v.Offsets = []histories.KeyOffset{}
				for _, k := range pd.keys {
					o, ok := committed[[2]string{pd.group, k}]
					if !sane || oops() {
						o, ok = int64(rnd.IntN(4)), rnd.IntN(5) != 0
					}
					if !ok {
						o = histories.OffsetUnknown
					}
					v.Offsets = append(v.Offsets, histories.KeyOffset{Key: k, Offset: o})
				}
			default:
				if typ != histories.OK && rnd.IntN(3) == 0 {
					break // a completion that carries nothing
				}
				done := make([]histories.Mop, len(pd.mops))
				for i, m := range pd.mops {
					if m.F == histories.MopSend {
						switch {
						case sane && (typ == histories.OK || (typ == histories.Info && rnd.IntN(2) == 0)) && !oops():
							// Applied: it lands at the end of its key's log.
							m.Offset = int64(len(logs[m.Key]))
							logs[m.Key] = append(logs[m.Key], m.Value)
							if typ != histories.OK && rnd.IntN(2) == 0 {
								m.Offset = histories.OffsetPending
							}
						case typ == histories.OK || rnd.IntN(3) == 0:
							m.Offset = off()
						}
						done[i] = m
						continue
					}
					if sane && !oops() {
						polls := map[string][]histories.Record{}
						for ki, k := range keys {
							at := pos[[2]int64{p, int64(ki)}]
							if rnd.IntN(2) == 0 || at >= len(logs[k]) {
								continue
							}
							n := min(1+rnd.IntN(3), len(logs[k])-at)
							var rs []histories.Record
							for o := at; o < at+n; o++ {
								rs = append(rs, histories.Record{Offset: int64(o), Value: logs[k][o]})
							}
							polls[k] = rs
							if typ == histories.OK {
								pos[[2]int64{p, int64(ki)}] = at + n
							}
						}
						done[i] = histories.Mop{F: histories.MopPoll, Polls: polls}
						continue
					}
					polls := map[string][]histories.Record{}
					for _, k := range keys {
						if rnd.IntN(2) == 0 {
							continue
						}
						var rs []histories.Record
						start := int64(rnd.IntN(6))
						for j := range int64(rnd.IntN(4)) {
							n, txt := int64(1+rnd.IntN(int(nextValue))), ""
							if rnd.IntN(10) == 0 {
								n, txt = 0, `"s"`
							}
							o := start + j
							if rnd.IntN(8) == 0 {
								o = off()
							}
							rs = append(rs, histories.Record{Offset: o, Value: n, Text: txt})
						}
						polls[k] = rs
					}
					done[i] = histories.Mop{F: histories.MopPoll, Polls: polls}
				}
				v.Mops = done
			}
			op := emit(p, typ, pd.f, v)
			op.Group = pd.group
			if pd.f == histories.FPoll && typ == histories.OK && rnd.IntN(5) == 0 {
				op.RebalanceLog = []histories.Rebalance{{Type: histories.RebalanceAssigned, Keys: []string{keys[rnd.IntN(len(keys))]}}}
			}
			delete(inflight, t)
			if typ == histories.Info {
				procs[t] = nextProc
				nextProc++
			}
			continue
		}
		switch r := rnd.IntN(12); {
		case r >= 10:
			// A commit or a committed of a group's offsets, small ones so
			// that commits of one offset collide.
			g := []string{"g", "g", "h"}[rnd.IntN(3)]
			var ks []string
			for _, k := range keys {
				if rnd.IntN(2) == 0 {
					ks = append(ks, k)
				}
			}
			if ks == nil {
				ks = []string{keys[0]}
			}
			if r == 10 {
				var offs []histories.KeyOffset
				for _, k := range ks {
					o := int64(rnd.IntN(4))
					if sane {
						o = committed[[2]string{g, k}] + int64(rnd.IntN(3))
					}
					offs = append(offs, histories.KeyOffset{Key: k, Offset: o})
				}
				emit(p, histories.Invoke, histories.FCommit, histories.Value{Offsets: offs}).Group = g
				inflight[t] = &pending{f: histories.FCommit, offs: offs, group: g}
				break
			}
			emit(p, histories.Invoke, histories.FCommitted, histories.Value{Keys: ks}).Group = g
			inflight[t] = &pending{f: histories.FCommitted, keys: ks, group: g}
		case r < 4:
			var mops []histories.Mop
			for range 1 + rnd.IntN(3) {
				n, txt := val()
				mops = append(mops, histories.Mop{F: histories.MopSend, Key: keys[rnd.IntN(len(keys))], Value: n, Text: txt, Offset: histories.OffsetPending})
			}
			emit(p, histories.Invoke, histories.FSend, histories.Value{Mops: mops})
			inflight[t] = &pending{f: histories.FSend, mops: mops}
		case r < 8:
			mops := []histories.Mop{{F: histories.MopPoll}}
			if rnd.IntN(4) == 0 {
				mops = append(mops, histories.Mop{F: histories.MopPoll})
			}
			emit(p, histories.Invoke, histories.FPoll, histories.Value{Mops: mops})
			inflight[t] = &pending{f: histories.FPoll, mops: mops}
		default:
			f := histories.FAssign
			if rnd.IntN(2) == 0 {
				f = histories.FSubscribe
			}
			var ks []string
			for _, k := range keys {
				if rnd.IntN(2) == 0 {
					ks = append(ks, k)
				}
			}
			if ks == nil {
				ks = []string{}
			}
			emit(p, histories.Invoke, f, histories.Value{Keys: ks})
			inflight[t] = &pending{f: f, keys: ks}
		}
	}
	switch drain {
	case 1:
		emit(histories.NemesisProcess, histories.OK, histories.FDrain, histories.Value{})
	case 2:
		emit(histories.NemesisProcess, histories.Info, histories.FDrain, histories.Value{})
	}
	return ops
}

func TestAgainstReference(t *testing.T) {
	seeds := make([]uint64, 0, *refCases)
	if *refSeed != 0 {
		seeds = append(seeds, *refSeed)
	} else {
		for i := range *refCases {
			seeds = append(seeds, uint64(i+1))
		}
	}
	seen := map[string]int{}
	verdicts := map[verdict.Verdict]int{}
	for _, seed := range seeds {
		rnd := rand.New(rand.NewPCG(seed, 0x9e37))
		ops := randomHistory(rnd, seed%2 == 0)
		h, err := histories.FromOps(ops, histories.LoadOptions{})
		if err != nil {
			t.Fatalf("seed %d: the generator made a malformed history: %v", seed, err)
		}
		assumed := rnd.IntN(4) == 0
		res := Check(h, Options{MaxExamples: NoExamples, AssumeDrained: assumed})
		want, wantValid := refCheck(ops, assumed, false)
		got := refCounts{}
		for name, a := range res.Anomalies {
			got[name] = [3]int{a.Count, a.Allowed, a.Inconclusive}
			seen[name]++
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || res.Valid != wantValid {
			var b strings.Builder
			for _, op := range ops {
				fmt.Fprintln(&b, op)
			}
			t.Fatalf("seed %d (rerun with -queue.refseed %d, assume drained %v): Check says %v %v, the reference %v %v\n%s",
				seed, seed, assumed, res.Valid, got, wantValid, want, b.String())
		}
		verdicts[res.Valid]++
	}
	t.Logf("%d histories agree; verdicts %v; anomalies seen in how many: %v", len(seeds), verdicts, seen)
	if len(seeds) > 100 {
		for _, a := range anomaly.Table {
			if seen[a.Name] == 0 {
				t.Errorf("no random history shows %s: the comparison proves nothing about it", a.Name)
			}
		}
	}
}

package queue

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/anomaly"
)

// CommitCounts are the totals of a history's consumer group offsets: the
// commit ops per outcome and the committed ops that fetched offsets back.
// Offsets are counted per key: a commit of two keys counts two.
type CommitCounts struct {
	// Acknowledged, Failed and Indeterminate count committed offsets by
	// their commit's outcome (never completed counts as indeterminate).
	Acknowledged  int `json:"acknowledged"`
	Failed        int `json:"failed"`
	Indeterminate int `json:"indeterminate"`
	// Fetched counts the offsets (or their absence) ok committed ops
	// returned, each one compared with the commits before it.
	Fetched int `json:"fetched"`
	// Lost is the count of lost-offset-commit.
	Lost int `json:"lost"`
}

// never stands for the position of a completion that never came, or of
// an effect that may come at any later time (info).
const never = math.MaxInt32

// register is what the history says about one key's committed offset in
// one group: the commits that may have written it and the evidence, in
// the order it became available, of commits that took effect.
type register struct {
	group, key histories.Sym
	// byOffset holds, per committed offset, the commits that did not fail,
	// sorted by invocation.
	byOffset map[int64]*writers
	fetches  []fetch
	evidence []evidence
}

// writers are the commits of one offset that did not fail, sorted by
// invocation; reach[i] is the latest effect (completion, or never) of the
// first i+1 of them.
type writers struct {
	inv, reach []int32
	// cops are the commits, for examples.
	cops []int32
}

// fetch is one offset an ok committed returned.
type fetch struct {
	inv, cmp int32
	off      int64 // histories.OffsetUnknown: none committed
	cop      int32
}

// evidence says a commit of off took effect before position avail: an
// acknowledged commit (avail its completion, inv its invocation) or an ok
// fetch that returned off (avail its completion, inv the earliest
// invocation of a commit that may have written off).
type evidence struct {
	avail, inv int32
	off        int64
	cop        int32 // the commit or the fetch that shows it
	fetched    bool  // shown by a fetch
}

// commits checks the consumer groups' committed offsets, a register per
// group and key (see doc.go, "Committed offsets"): lost-offset-commit.
func (a *analysis) commits() {
	h := a.h
	fCommit, hasCommit := h.Lookup(histories.FCommit)
	fCommitted, hasCommitted := h.Lookup(histories.FCommitted)
	if !hasCommit && !hasCommitted {
		return
	}
	type regKey struct{ group, key histories.Sym }
	regs := map[regKey]*register{}
	reg := func(g, k histories.Sym) *register {
		r := regs[regKey{g, k}]
		if r == nil {
			r = &register{group: g, key: k, byOffset: map[int64]*writers{}}
			regs[regKey{g, k}] = r
		}
		return r
	}
	counts := &CommitCounts{}
	for ci := range a.cops {
		ci := int32(ci)
		cp := &a.cops[ci]
		e := a.event(ci)
		if !(hasCommit && e.F == fCommit) && !(hasCommitted && e.F == fCommitted) {
			continue
		}
		group := a.groupOf(ci)
		inv, done := cp.inv, cp.cmp
		if inv < 0 {
			inv = 0 // a fragment's first completion: invoked before it began
		}
		if e.F == fCommit {
			effect := int32(never)
			if cp.out == outOK && done >= 0 {
				effect = done
			}
			for _, o := range a.offsetsOf(ci) {
				switch {
				case cp.out == outFail:
					counts.Failed++
					continue
				case cp.out == outOK && done >= 0:
					counts.Acknowledged++
				default:
					counts.Indeterminate++
				}
				r := reg(group, o.Key)
				w := r.byOffset[o.Offset]
				if w == nil {
					w = &writers{}
					r.byOffset[o.Offset] = w
				}
				w.inv = append(w.inv, inv)
				w.reach = append(w.reach, effect)
				w.cops = append(w.cops, ci)
				if cp.out == outOK && done >= 0 {
					r.evidence = append(r.evidence, evidence{avail: done, inv: inv, off: o.Offset, cop: ci})
				}
			}
			continue
		}
		if cp.out != outOK || done < 0 {
			continue
		}
		for _, o := range h.OffsetsOf(&h.Events[done]) {
			counts.Fetched++
			r := reg(group, o.Key)
			r.fetches = append(r.fetches, fetch{inv: inv, cmp: done, off: o.Offset, cop: ci})
		}
	}
	a.counts.Commits = counts

	var cases []commitCase
	for _, r := range regs {
		cases = append(cases, r.check()...)
	}
	slices.SortFunc(cases, func(x, y commitCase) int {
		return cmp.Or(cmp.Compare(x.fetch.cmp, y.fetch.cmp), histories.CompareKeys(h.Text(x.key), h.Text(y.key)),
			cmp.Compare(h.Text(x.group), h.Text(y.group)))
	})
	for _, c := range cases {
		counts.Lost++
		if a.col.hit(anomaly.LostOffsetCommit, false, false) {
			a.col.add(anomaly.LostOffsetCommit, a.commitExample(c))
		}
	}
}

// groupOf is the consumer group op ci names: its invocation's, else its
// completion's.
func (a *analysis) groupOf(ci int32) histories.Sym {
	cp := &a.cops[ci]
	if cp.inv >= 0 {
		if g := a.h.GroupOf(&a.h.Events[cp.inv]); g != 0 {
			return g
		}
	}
	if cp.cmp >= 0 {
		return a.h.GroupOf(&a.h.Events[cp.cmp])
	}
	return 0
}

// offsetsOf are a commit's offsets: its completion's, or its invocation's
// when the completion carries none.
func (a *analysis) offsetsOf(ci int32) []histories.OffsetEntry {
	cp := &a.cops[ci]
	if cp.cmp >= 0 {
		if os := a.h.OffsetsOf(&a.h.Events[cp.cmp]); os != nil {
			return os
		}
	}
	if cp.inv >= 0 {
		return a.h.OffsetsOf(&a.h.Events[cp.inv])
	}
	return nil
}

// commitCase is one lost-offset-commit: a fetch that returned an offset no
// commit could have written after the commit that evidence shows took
// effect before the fetch began.
type commitCase struct {
	group, key histories.Sym
	fetch      fetch
	ev         evidence
}

// check finds the fetches of r that contradict the evidence before them.
//
// A fetch F that returned o is consistent with evidence E (of a commit of
// o' != o that took effect before F began) when some commit W of o that
// did not fail may take effect after E's commit and before F returned: W
// was invoked before F completed, and W's effect (its completion if ok,
// else never: an info commit may take effect at any later time) comes
// after E's commit was invoked. So F contradicts the evidence exactly when
// the latest effect of the commits of o invoked before F completed is at
// or before the latest invocation among the evidence of offsets other
// than o available before F began.
func (r *register) check() []commitCase {
	for _, w := range r.byOffset {
		w.sort()
	}
	// Evidence from fetches: the fetched offset was written by one of the
	// commits of it invoked before the fetch returned; all that is known
	// is that the write began no earlier than the first of them.
	for _, f := range r.fetches {
		w := r.byOffset[f.off]
		if f.off < 0 || w == nil || len(w.inv) == 0 || w.inv[0] >= f.cmp {
			continue // none: no write; or no recorded commit wrote it
		}
		r.evidence = append(r.evidence, evidence{avail: f.cmp, inv: w.inv[0], off: f.off, cop: f.cop, fetched: true})
	}
	if len(r.evidence) == 0 {
		return nil
	}
	slices.SortFunc(r.evidence, func(x, y evidence) int { return cmp.Compare(x.avail, y.avail) })
	// best[i] and second[i]: among evidence[:i+1], the latest invocation,
	// and the latest invocation of an offset other than best's.
	best := make([]int, len(r.evidence))
	second := make([]int, len(r.evidence))
	b, s := -1, -1
	for i, ev := range r.evidence {
		switch {
		case b < 0 || ev.inv > r.evidence[b].inv:
			if b >= 0 && r.evidence[b].off != ev.off {
				s = b // else s, of an offset other than b's, is still right
			}
			b = i
		case ev.off != r.evidence[b].off && (s < 0 || ev.inv > r.evidence[s].inv):
			s = i
		}
		best[i], second[i] = b, s
	}
	var out []commitCase
	for _, f := range r.fetches {
		// The evidence available before f was invoked.
		n, _ := slices.BinarySearchFunc(r.evidence, f.inv, func(ev evidence, pos int32) int { return cmp.Compare(ev.avail, pos) })
		if n == 0 {
			continue
		}
		e := best[n-1]
		if r.evidence[e].off == f.off {
			e = second[n-1]
		}
		if e < 0 {
			continue
		}
		if r.latestEffect(f.off, f.cmp) > r.evidence[e].inv {
			continue
		}
		out = append(out, commitCase{group: r.group, key: r.key, fetch: f, ev: r.evidence[e]})
	}
	return out
}

// latestEffect is the latest effect of a commit of off that did not fail
// and was invoked before position before; -1 when there is none.
func (r *register) latestEffect(off int64, before int32) int32 {
	if off < 0 {
		return -1 // no commit writes "none"
	}
	w := r.byOffset[off]
	if w == nil {
		return -1
	}
	n, _ := slices.BinarySearch(w.inv, before)
	if n == 0 {
		return -1
	}
	return w.reach[n-1]
}

// sort orders the commits by invocation and computes reach.
func (w *writers) sort() {
	idx := make([]int, len(w.inv))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(x, y int) int { return cmp.Compare(w.inv[x], w.inv[y]) })
	inv, reach, cops := make([]int32, len(idx)), make([]int32, len(idx)), make([]int32, len(idx))
	latest := int32(-1)
	for i, j := range idx {
		inv[i], cops[i] = w.inv[j], w.cops[j]
		latest = max(latest, w.reach[j])
		reach[i] = latest
	}
	w.inv, w.reach, w.cops = inv, reach, cops
}

func (a *analysis) commitExample(c commitCase) Example {
	h := a.h
	key, group := h.Text(c.key), h.Text(c.group)
	fetched := "no committed offset"
	if c.fetch.off >= 0 {
		fetched = fmt.Sprintf("offset %d", c.fetch.off)
	}
	inGroup := ""
	if group != "" {
		inGroup = fmt.Sprintf(" of group %q", group)
	}
	fetchRef := a.opRef(c.fetch.cop)
	evRef := a.opRef(c.ev.cop)
	var why string
	if c.ev.fetched {
		why = fmt.Sprintf("op #%d had fetched offset %d%s for key %s, so a commit of it had taken effect; op #%d, invoked after that, fetched %s",
			evRef.Index, c.ev.off, inGroup, key, fetchRef.Index, fetched)
	} else {
		why = fmt.Sprintf("commit op #%d of offset %d%s for key %s was acknowledged; op #%d, invoked after that, fetched %s",
			evRef.Index, c.ev.off, inGroup, key, fetchRef.Index, fetched)
	}
	why += ", which no commit that could have taken effect after it wrote: the committed offset was lost"
	off := c.fetch.off
	return Example{
		Key:         key,
		Group:       group,
		Offsets:     []int64{c.ev.off, off},
		Explanation: why,
		Ops:         []OpRef{evRef, fetchRef},
	}
}

package synth

import (
	"fmt"
	"slices"
	"sort"

	"github.com/garantia/garantia/histories"
)

// jepsen is a small, slow, literal transcription of the non-cycle analyses
// of Jepsen's jepsen/tests/kafka.clj (version-orders, lost-write-cases,
// unseen, duplicate-cases, poll-skip+nonmonotonic-cases, nonmonotonic-send-
// cases, int-poll/int-send cases, g1a-cases). It is the oracle these tests
// hold the generator and Inject to; it is not the product's checker (that is
// checker/queue) and it trades speed for closeness to the Clojure.
//
// It returns the count of each anomaly found, keyed by Jepsen's name, plus
// "no-writer" when a value is read that nobody sent (Jepsen throws).
func jepsen(history []histories.Op) map[string]int {
	var ops []*histories.Op // client ops only (h/client-ops)
	for i := range history {
		if history[i].IsClient() {
			ops = append(ops, &history[i])
		}
	}
	found := map[string]int{}

	reads := func(op *histories.Op) map[string][]histories.Record {
		if op.F != histories.FPoll && op.F != histories.FTxn {
			return nil
		}
		var out map[string][]histories.Record
		for _, m := range op.Value.Mops {
			if m.F != histories.MopPoll || m.Polls == nil {
				continue
			}
			if out == nil {
				out = map[string][]histories.Record{}
			}
			for k, recs := range m.Polls {
				out[k] = append(out[k], recs...)
			}
		}
		return out
	}
	type write struct {
		key string
		val int64
		off int64
	}
	writes := func(op *histories.Op) []write {
		if op.F != histories.FSend && op.F != histories.FTxn {
			return nil
		}
		var out []write
		for _, m := range op.Value.Mops {
			if m.F == histories.MopSend {
				out = append(out, write{m.Key, m.Value, m.Offset})
			}
		}
		return out
	}
	type kv struct {
		k string
		v int64
	}
	// reads-by-type / writes-by-type, completions only.
	okRead := map[kv]bool{}
	failedWrite := map[kv]bool{}
	okWrite := map[kv]bool{}
	writerOf := map[kv]*histories.Op{}
	for _, op := range ops {
		if op.Type == histories.Invoke {
			continue
		}
		if op.Type == histories.OK {
			for k, recs := range reads(op) {
				for _, r := range recs {
					okRead[kv{k, r.Value}] = true
				}
			}
		}
		for _, w := range writes(op) {
			writerOf[kv{w.key, w.val}] = op
			switch op.Type {
			case histories.Fail:
				failedWrite[kv{w.key, w.val}] = true
			case histories.OK:
				okWrite[kv{w.key, w.val}] = true
			}
		}
	}
	mustHaveCommitted := func(op *histories.Op) bool {
		if op.Type == histories.OK {
			return true
		}
		if op.Type != histories.Info {
			return false
		}
		for _, w := range writes(op) {
			if okRead[kv{w.key, w.val}] {
				return true
			}
		}
		return false
	}

	// version-orders: key -> offset -> set of values.
	logs := map[string]map[int64]map[int64]bool{}
	add := func(k string, off, v int64) {
		if logs[k] == nil {
			logs[k] = map[int64]map[int64]bool{}
		}
		if logs[k][off] == nil {
			logs[k][off] = map[int64]bool{}
		}
		logs[k][off][v] = true
	}
	for _, op := range ops {
		if op.F != histories.FSend && op.F != histories.FPoll && op.F != histories.FTxn {
			continue
		}
		if mustHaveCommitted(op) {
			for _, w := range writes(op) {
				if w.off >= 0 {
					add(w.key, w.off, w.val)
				}
			}
		}
		for k, recs := range reads(op) {
			for _, r := range recs {
				add(k, r.Offset, r.Value)
			}
		}
	}
	type order struct {
		log      [][]int64     // dense: non-empty offsets in order, sorted values
		byValue  map[int64]int // value -> last dense index where it is the set's "first"
		firstIdx map[int64]int // value -> first dense index it appears at
		lastIdx  map[int64]int // value -> last dense index it appears at
		byIndex  map[int]int64 // dense index -> the set's "first"
	}
	orders := map[string]*order{}
	for k, offs := range logs {
		o := &order{byValue: map[int64]int{}, firstIdx: map[int64]int{}, lastIdx: map[int64]int{}, byIndex: map[int]int64{}}
		keys := make([]int64, 0, len(offs))
		for off := range offs {
			keys = append(keys, off)
		}
		slices.Sort(keys)
		for i, off := range keys {
			vals := make([]int64, 0, len(offs[off]))
			for v := range offs[off] {
				vals = append(vals, v)
			}
			slices.Sort(vals)
			if len(vals) > 1 {
				found["inconsistent-offsets"]++
			}
			o.log = append(o.log, vals)
			// Clojure's (first set) is arbitrary; the smallest stands in.
			o.byValue[vals[0]] = i
			o.byIndex[i] = vals[0]
			for _, v := range vals {
				if _, ok := o.firstIdx[v]; !ok {
					o.firstIdx[v] = i
				}
				o.lastIdx[v] = i
			}
		}
		orders[k] = o
	}
	// duplicate-cases: a value at more than one offset.
	for _, o := range orders {
		count := map[int64]int{}
		for _, vals := range o.log {
			for _, v := range vals {
				count[v]++
			}
		}
		for _, c := range count {
			if c > 1 {
				found["duplicate"]++
			}
		}
	}
	// Every value read or written must have a writer.
	for k, offs := range logs {
		for _, vals := range offs {
			for v := range vals {
				if writerOf[kv{k, v}] == nil {
					found["no-writer"]++
				}
			}
		}
	}
	// lost-write-cases.
	okReadsByKey := map[string]map[int64]bool{}
	for x := range okRead {
		if okReadsByKey[x.k] == nil {
			okReadsByKey[x.k] = map[int64]bool{}
		}
		okReadsByKey[x.k][x.v] = true
	}
	for k, vs := range okReadsByKey {
		o := orders[k]
		if o == nil {
			continue
		}
		bound := -1
		for v := range vs {
			if i, ok := o.firstIdx[v]; ok && i > bound {
				bound = i
			}
		}
		for v, li := range o.lastIdx {
			if li <= bound && !vs[v] {
				if w := writerOf[kv{k, v}]; w != nil && mustHaveCommitted(w) {
					found["lost-write"]++
				}
			}
		}
	}
	// unseen: ok-sent values no ok op polled.
	for x := range okWrite {
		if !okRead[x] {
			found["unseen"]++
		}
	}
	// G1a: an ok poll read a failed write.
	for _, op := range ops {
		if op.Type != histories.OK {
			continue
		}
		for k, recs := range reads(op) {
			for _, r := range recs {
				if failedWrite[kv{k, r.Value}] {
					found["G1a"]++
				}
			}
		}
	}
	delta := func(k string, v1, v2 int64, have1, have2 bool) int {
		o := orders[k]
		if o == nil || !have1 || !have2 {
			return 1
		}
		i1, ok1 := o.byValue[v1]
		i2, ok2 := o.byValue[v2]
		if !ok1 || !ok2 {
			return 1
		}
		return i2 - i1
	}
	classify := func(prefix string, d int) {
		if d > 1 {
			found[prefix+"skip"]++
		}
		if d < 1 {
			found[prefix+"nonmonotonic"]++
		}
	}
	// int-poll-skip / int-nonmonotonic-poll and int-send-skip /
	// int-nonmonotonic-send.
	for _, op := range ops {
		for k, recs := range reads(op) {
			for j := 1; j < len(recs); j++ {
				classify("int-poll-", delta(k, recs[j-1].Value, recs[j].Value, true, true))
			}
		}
		if op.Type == histories.Invoke {
			continue
		}
		per := map[string][]int64{}
		for _, w := range writes(op) {
			per[w.key] = append(per[w.key], w.val)
		}
		for k, vs := range per {
			for j := 1; j < len(vs); j++ {
				classify("int-send-", delta(k, vs[j-1], vs[j], true, true))
			}
		}
	}
	// poll-skip / nonmonotonic-poll and nonmonotonic-send, per process.
	byProcess := map[int64][]*histories.Op{}
	for _, op := range ops {
		byProcess[op.Process] = append(byProcess[op.Process], op)
	}
	for _, pops := range byProcess {
		lastReads := map[string]*histories.Op{}
		lastSends := map[string]*histories.Op{}
		for _, op := range pops {
			switch op.F {
			case histories.FAssign, histories.FSubscribe:
				if op.Type == histories.OK || op.Type == histories.Info {
					for k := range lastReads {
						if !slices.Contains(op.Value.Keys, k) {
							delete(lastReads, k)
						}
					}
					for k := range lastSends {
						if !slices.Contains(op.Value.Keys, k) {
							delete(lastSends, k)
						}
					}
				}
			case histories.FPoll, histories.FTxn:
				rs := reads(op)
				for k, recs := range rs {
					last, ok := lastReads[k]
					if !ok {
						continue
					}
					prev := reads(last)[k]
					var v1, v2 int64
					if len(prev) > 0 {
						v1 = prev[len(prev)-1].Value
					}
					if len(recs) > 0 {
						v2 = recs[0].Value
					}
					d := delta(k, v1, v2, len(prev) > 0, len(recs) > 0)
					if d > 1 {
						found["poll-skip"]++
					}
					if d < 1 {
						found["nonmonotonic-poll"]++
					}
				}
				if op.Type == histories.OK {
					for k := range rs {
						lastReads[k] = op
					}
				}
			}
			if (op.F == histories.FSend || op.F == histories.FTxn) && (op.Type == histories.OK || op.Type == histories.Info) {
				per := map[string][]int64{}
				for _, w := range writes(op) {
					per[w.key] = append(per[w.key], w.val)
				}
				for k, vs := range per {
					if last, ok := lastSends[k]; ok {
						var lv []int64
						for _, w := range writes(last) {
							if w.key == k {
								lv = append(lv, w.val)
							}
						}
						if delta(k, lv[len(lv)-1], vs[0], true, true) < 1 {
							found["nonmonotonic-send"]++
						}
					}
					lastSends[k] = op
				}
			}
		}
	}
	for n := lostOffsetCommits(history); n > 0; n-- {
		found["lost-offset-commit"]++
	}
	// Rename the int- prefixes to Jepsen's names.
	for from, to := range map[string]string{
		"int-poll-skip": "int-poll-skip", "int-poll-nonmonotonic": "int-nonmonotonic-poll",
		"int-send-skip": "int-send-skip", "int-send-nonmonotonic": "int-nonmonotonic-send",
	} {
		if n, ok := found[from]; ok && from != to {
			delete(found, from)
			found[to] += n
		}
	}
	return found
}

// anomalyNames lists found's keys in order.
func anomalyNames(found map[string]int) []string {
	names := make([]string, 0, len(found))
	for k := range found {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func describe(found map[string]int) string {
	s := ""
	for _, k := range anomalyNames(found) {
		s += fmt.Sprintf("%s=%d ", k, found[k])
	}
	return s
}

// lostOffsetCommits is not Jepsen's (its Kafka workload records no
// commits): it counts, in the words of the rule, the offsets an ok
// committed fetched that contradict an acknowledged commit of another
// offset of the same group and key completed before the fetch was invoked:
// no commit of the fetched offset that did not fail was invoked before the
// fetch completed and may have taken effect (ok: its completion; info or
// never completed: any time) after that commit was invoked.
func lostOffsetCommits(history []histories.Op) int {
	type commit struct {
		inv, cmp int // positions; cmp -1 when it never completed
		typ      histories.Type
		group    string
		offs     []histories.KeyOffset
	}
	var commits []commit
	type fetch struct {
		inv, cmp int
		group    string
		got      []histories.KeyOffset
	}
	var fetches []fetch
	open := map[int64]int{}
	for i := range history {
		op := &history[i]
		if !op.IsClient() {
			continue
		}
		if op.Type == histories.Invoke {
			open[op.Process] = i
			continue
		}
		inv := open[op.Process]
		delete(open, op.Process)
		switch {
		case op.F == histories.FCommit:
			commits = append(commits, commit{inv, i, op.Type, op.Group, history[inv].Value.Offsets})
		case op.F == histories.FCommitted && op.Type == histories.OK:
			fetches = append(fetches, fetch{inv, i, op.Group, op.Value.Offsets})
		}
	}
	for _, inv := range open {
		if op := &history[inv]; op.F == histories.FCommit {
			commits = append(commits, commit{inv, -1, histories.Info, op.Group, op.Value.Offsets})
		}
	}
	n := 0
	for _, f := range fetches {
		for _, got := range f.got {
			lost := false
			for _, c := range commits {
				if c.typ != histories.OK || c.group != f.group || c.cmp > f.inv {
					continue
				}
				for _, o := range c.offs {
					if o.Key != got.Key || o.Offset == got.Offset {
						continue
					}
					followed := false
					for _, w := range commits {
						if w.typ == histories.Fail || w.group != f.group || w.inv > f.cmp {
							continue
						}
						for _, wo := range w.offs {
							late := w.typ != histories.OK || w.cmp < 0 || w.cmp > c.inv
							followed = followed || (wo.Key == got.Key && wo.Offset == got.Offset && got.Offset >= 0 && late)
						}
					}
					lost = lost || !followed
				}
			}
			if lost {
				n++
			}
		}
	}
	return n
}

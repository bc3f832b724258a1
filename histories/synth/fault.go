package synth

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/anomaly"
)

// Fault names one anomaly that [Inject] can put into a correct history. Its
// value is the anomaly's name in the one table of them, histories/anomaly.
type Fault string

// The faults Inject knows.
const (
	// LostWrite: an acknowledged send (with a known offset) is never read,
	// although later offsets of its key are. Every reader that passes over
	// its offset reassigns the partition there, so no poll visibly skips.
	LostWrite Fault = anomaly.LostWrite
	// Duplicate: a value that was read at its offset shows up again at the
	// end of its key, as a retried produce without idempotence would.
	Duplicate Fault = anomaly.Duplicate
	// InconsistentOffsets: one poll reads, at an offset, the value of a
	// timed-out send instead of the value every other reader saw there, as a
	// consumer fetching from a divergent replica would.
	InconsistentOffsets Fault = anomaly.InconsistentOffsets
	// Unseen: the last few records of a key, among them an acknowledged
	// send, are never delivered to any poll.
	Unseen Fault = anomaly.Unseen
	// NonmonotonicPoll: a poll starts with records its process had already
	// read in its previous poll of that key (its position moved back).
	NonmonotonicPoll Fault = anomaly.NonmonotonicPoll
	// PollSkip: a poll starts past the next record its process should have
	// read (its position jumped ahead); the skipped records are read by
	// others.
	PollSkip Fault = anomaly.PollSkip
	// NonmonotonicSend: two successive acknowledged sends of one process to
	// a key land in the log in the opposite order.
	NonmonotonicSend Fault = anomaly.NonmonotonicSend
	// IntPollSkip: one poll leaves out a record in the middle of what it
	// read (others read it).
	IntPollSkip Fault = anomaly.IntPollSkip
	// IntNonmonotonicPoll: one poll delivers a record twice in a row.
	IntNonmonotonicPoll Fault = anomaly.IntNonmonotonicPoll
	// AbortedRead: the value of a failed send is read (appended to its key
	// after the end), Jepsen's G1a.
	AbortedRead Fault = anomaly.G1a
	// LostOffsetCommit: right after an acknowledged commit of the group's
	// offset of a key, a fetch by a fresh process returns the offset the
	// commit before it left (or none, when there was none), as a
	// coordinator that lost the acknowledged commit in a failover would.
	// The history must record commits: see Config.WithCommits.
	LostOffsetCommit Fault = anomaly.LostOffsetCommit
)

// Faults lists every fault, in a fixed order.
func Faults() []Fault {
	return []Fault{LostWrite, Duplicate, InconsistentOffsets, Unseen, NonmonotonicPoll,
		PollSkip, NonmonotonicSend, IntPollSkip, IntNonmonotonicPoll, AbortedRead, LostOffsetCommit}
}

// ParseFault returns the fault with that name (case-insensitive).
func ParseFault(name string) (Fault, error) {
	for _, f := range Faults() {
		if strings.EqualFold(string(f), name) {
			return f, nil
		}
	}
	names := make([]string, 0, len(Faults()))
	for _, f := range Faults() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("synth: unknown fault %q; known: %s", name, strings.Join(names, ", "))
}

// Expect returns the anomalies a checker following Jepsen's kafka.clj must
// report for the fault (want), and those it may report as well because
// Jepsen's own rules produce them too (also). For lost-write that is
// unseen: Jepsen counts an acknowledged value that no poll returned as
// unseen whether or not it is also provably lost.
func (f Fault) Expect() (want, also []string) {
	switch f {
	case LostWrite:
		return []string{string(f)}, []string{string(Unseen)}
	case "":
		return nil, nil
	}
	return []string{string(f)}, nil
}

// Config returns cfg with what the fault needs to have a place in the
// history: commits and fetches of the group's offsets for
// LostOffsetCommit (Config.WithCommits); cfg itself for the others.
func (f Fault) Config(cfg Config) Config {
	if f == LostOffsetCommit {
		return cfg.WithCommits()
	}
	return cfg
}

// ErrNoCandidate means the history has nowhere to put the fault: it is too
// short, or lacks what the fault needs (failed sends for G1a, known offsets
// for lost-write, ...).
var ErrNoCandidate = errors.New("no place in the history for this fault")

// Inject returns a copy of ops with fault put in at a place chosen with rng,
// and a sentence saying what it changed. ops itself is not modified. ops is
// expected to be a correct history (as [Generate] makes); the result then
// shows exactly the anomalies of [Fault.Expect].
//
// Where a fault needs extra events (a reassign so that a reader does not
// visibly skip, a timed-out send from a fresh process), they are inserted
// with times between their neighbours, and all indices are renumbered.
func Inject(ops []histories.Op, fault Fault, rng *rand.Rand) ([]histories.Op, string, error) {
	e := newEditor(ops)
	var desc string
	var err error
	switch fault {
	case LostWrite:
		desc, err = e.lostWrite(rng)
	case Duplicate:
		desc, err = e.duplicate(rng)
	case InconsistentOffsets:
		desc, err = e.inconsistentOffsets(rng)
	case Unseen:
		desc, err = e.unseen(rng)
	case NonmonotonicPoll, PollSkip:
		desc, err = e.pollPair(rng, fault)
	case NonmonotonicSend:
		desc, err = e.nonmonotonicSend(rng)
	case IntPollSkip, IntNonmonotonicPoll:
		desc, err = e.intPoll(rng, fault)
	case AbortedRead:
		desc, err = e.abortedRead(rng)
	case LostOffsetCommit:
		desc, err = e.lostOffsetCommit(rng)
	default:
		_, err = ParseFault(string(fault))
	}
	if err != nil {
		return nil, "", fmt.Errorf("synth: inject %s: %w", fault, err)
	}
	return e.finish(), string(fault) + ": " + desc, nil
}

func noCandidate(why string) error {
	return fmt.Errorf("%w: %s", ErrNoCandidate, why)
}

// sortedKeys returns m's keys in order, so that random picks made while
// walking a map do not depend on Go's map iteration order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// reservoir picks one of a stream of candidates uniformly at random.
type reservoir[T any] struct {
	n    int
	pick T
}

func (r *reservoir[T]) offer(rng *rand.Rand, c T) {
	r.n++
	if rng.IntN(r.n) == 0 {
		r.pick = c
	}
}

// keyFacts is what the history says about one key.
type keyFacts struct {
	maxRead  int64           // highest offset an ok poll read, -1 none
	maxSent  int64           // highest offset a completed send reported, -1 none
	lastRead int             // position of the last ok poll that read maxRead
	readers  map[int64]int   // offset -> how many completed polls read it
	at       map[int64]int64 // offset -> value read there (first seen)
}

func (e *editor) facts(k string) keyFacts {
	f := keyFacts{maxRead: -1, maxSent: -1, lastRead: -1, readers: map[int64]int{}, at: map[int64]int64{}}
	for i := range e.ops {
		if e.ops[i].Type != histories.Invoke {
			for _, m := range e.ops[i].Value.Mops {
				if m.F == histories.MopSend && m.Key == k {
					f.maxSent = max(f.maxSent, m.Offset)
				}
			}
		}
		recs := e.pollRecs(i)[k]
		for _, r := range recs {
			f.readers[r.Offset]++
			if _, ok := f.at[r.Offset]; !ok {
				f.at[r.Offset] = r.Value
			}
			if e.ops[i].Type == histories.OK && r.Offset >= f.maxRead {
				f.maxRead, f.lastRead = r.Offset, i
			}
		}
	}
	return f
}

// writerOf finds the completion of the send that wrote (k, v).
func (e *editor) writerOf(k string, v int64) int {
	for i := range e.ops {
		op := &e.ops[i]
		if op.Type != histories.Invoke && (op.F == histories.FSend || op.F == histories.FTxn) && e.sendMop(i, k, v) != nil {
			return i
		}
	}
	return -1
}

type sendRef struct {
	pos int
	key string
	val int64
	off int64
}

// sends lists every completed send micro-op of the given types.
func (e *editor) sends(types ...histories.Type) []sendRef {
	var out []sendRef
	for i := range e.ops {
		op := &e.ops[i]
		if (op.F != histories.FSend && op.F != histories.FTxn) || !slices.Contains(types, op.Type) {
			continue
		}
		for _, m := range op.Value.Mops {
			if m.F == histories.MopSend {
				out = append(out, sendRef{i, m.Key, m.Value, m.Offset})
			}
		}
	}
	return out
}

func (e *editor) lostWrite(rng *rand.Rand) (string, error) {
	maxRead := map[string]int64{}
	for i := range e.ops {
		if !e.isOKPoll(i) {
			continue
		}
		for k, recs := range e.pollRecs(i) {
			if len(recs) > 0 {
				if o, ok := maxRead[k]; !ok || recs[len(recs)-1].Offset > o {
					maxRead[k] = recs[len(recs)-1].Offset
				}
			}
		}
	}
	var r reservoir[sendRef]
	for _, s := range e.sends(histories.OK) {
		if m, ok := maxRead[s.key]; ok && s.off >= 0 && s.off < m {
			r.offer(rng, s)
		}
	}
	if r.n == 0 {
		return "", noCandidate("needs an ok send with a known offset below the highest offset read of its key (acks=0 histories have none)")
	}
	s := r.pick
	dropped := 0
	e.mapRecs(s.key, func(_ int, recs []histories.Record) []histories.Record {
		return slices.DeleteFunc(recs, func(r histories.Record) bool {
			if r.Offset == s.off {
				dropped++
				return true
			}
			return false
		})
	})
	resets := e.cut(s.key, s.off)
	return fmt.Sprintf("value %d of key %s (offset %d, acknowledged to process %d at time %d) removed from the %d polls that read it, although offsets up to %d were read; %d reassigns inserted so that no reader visibly skips offset %d",
		s.val, s.key, s.off, e.ops[s.pos].Process, e.ops[s.pos].Time, dropped, maxRead[s.key], resets, s.off), nil
}

func (e *editor) duplicate(rng *rand.Rand) (string, error) {
	// The last ok/info send of each (process, key), if it sends that key once.
	type pk struct {
		p int64
		k string
	}
	last := map[pk]sendRef{}
	count := map[pk]int{}
	for i := range e.ops {
		op := &e.ops[i]
		if (op.F != histories.FSend && op.F != histories.FTxn) || (op.Type != histories.OK && op.Type != histories.Info) {
			continue
		}
		per := map[string]int{}
		for _, m := range op.Value.Mops {
			if m.F == histories.MopSend {
				per[m.Key]++
			}
		}
		for _, m := range op.Value.Mops {
			if m.F == histories.MopSend {
				id := pk{op.Process, m.Key}
				last[id] = sendRef{i, m.Key, m.Value, m.Offset}
				count[id] = per[m.Key]
			}
		}
	}
	facts := map[string]keyFacts{}
	offsetOf := map[string]map[int64]int64{} // key -> value -> offset read at
	var r reservoir[sendRef]
	ids := make([]pk, 0, len(last))
	for id := range last {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b pk) int {
		if d := last[a].pos - last[b].pos; d != 0 {
			return d
		}
		return strings.Compare(a.k, b.k)
	})
	for _, id := range ids {
		s := last[id]
		if count[id] != 1 {
			continue
		}
		f, ok := facts[s.key]
		if !ok {
			f = e.facts(s.key)
			facts[s.key] = f
			m := map[int64]int64{}
			for o, v := range f.at {
				m[v] = o
			}
			offsetOf[s.key] = m
		}
		o, read := offsetOf[s.key][s.val]
		if !read || f.lastRead < 0 || f.maxSent > f.maxRead {
			continue
		}
		s.off = o
		r.offer(rng, s)
	}
	if r.n == 0 {
		return "", noCandidate("needs a read value whose send was its process's last send to that key")
	}
	s := r.pick
	f := facts[s.key]
	n := f.maxRead + 1
	tail := f.lastRead
	recs := slices.Clone(e.pollRecs(tail)[s.key])
	recs = append(recs, histories.Record{Offset: n, Value: s.val})
	e.setRecs(tail, s.key, recs)
	resets := e.cut(s.key, s.off, s.off+1)
	return fmt.Sprintf("value %d of key %s (offset %d, sent by process %d) appended again at offset %d, read by process %d's last poll; %d reassigns inserted so that readers of offset %d do not visibly skip",
		s.val, s.key, s.off, e.ops[s.pos].Process, n, e.ops[tail].Process, resets, s.off), nil
}

func (e *editor) inconsistentOffsets(rng *rand.Rand) (string, error) {
	type cand struct {
		pos int
		key string
		j   int // index into the poll's records of key
	}
	facts := map[string]keyFacts{}
	var r reservoir[cand]
	for i := range e.ops {
		if !e.isOKPoll(i) {
			continue
		}
		polls := e.pollRecs(i)
		for _, k := range sortedKeys(polls) {
			recs := polls[k]
			f, ok := facts[k]
			if !ok {
				f = e.facts(k)
				facts[k] = f
			}
			for j, rec := range recs {
				if f.readers[rec.Offset] >= 2 {
					r.offer(rng, cand{i, k, j})
				}
			}
		}
	}
	if r.n == 0 {
		return "", noCandidate("needs an offset read by two polls")
	}
	c := r.pick
	recs := slices.Clone(e.pollRecs(c.pos)[c.key])
	w := recs[c.j]
	wpos := e.writerOf(c.key, w.Value)
	if wpos < 0 || e.partner[wpos] < 0 {
		return "", noCandidate(fmt.Sprintf("value %d of key %s has no send in the history", w.Value, c.key))
	}
	// A fresh process sent x just before w's send and timed out; a replica
	// that took x at w's offset and was later truncated served this poll.
	q, x := e.nextPID, e.nextVal
	inv := histories.Op{Process: q, Type: histories.Invoke, F: histories.FSend,
		Value: histories.Value{Mops: []histories.Mop{{F: histories.MopSend, Key: c.key, Value: x, Offset: histories.OffsetPending}}}}
	info := inv
	info.Type, info.Error = histories.Info, "request timed out"
	info.Value = cloneValue(inv.Value)
	winv := e.partner[wpos]
	e.before[winv] = append(e.before[winv], inv)
	e.before[wpos+1] = append(e.before[wpos+1], info)
	recs[c.j].Value = x
	e.setRecs(c.pos, c.key, recs)
	return fmt.Sprintf("process %d's poll reads value %d at offset %d of key %s, where every other reader saw %d; %d was sent by a fresh process %d whose send timed out",
		e.ops[c.pos].Process, x, w.Offset, c.key, w.Value, x, q), nil
}

func (e *editor) unseen(rng *rand.Rand) (string, error) {
	okSent := map[string]map[int64]bool{}
	for _, s := range e.sends(histories.OK) {
		if okSent[s.key] == nil {
			okSent[s.key] = map[int64]bool{}
		}
		okSent[s.key][s.val] = true
	}
	keys := make([]string, 0, len(okSent))
	for k := range okSent {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, k := range keys {
		f := e.facts(k)
		n := f.maxRead + 1
		if n == 0 {
			continue
		}
		// The shortest tail (of at least a random 1..5 records) that holds
		// an acknowledged value.
		t := int64(1 + rng.IntN(5))
		t = min(t, n)
		for ; t <= n; t++ {
			if okSent[k][f.at[n-t]] {
				break
			}
		}
		if t > n {
			continue
		}
		from := n - t
		dropped := 0
		e.mapRecs(k, func(_ int, recs []histories.Record) []histories.Record {
			return slices.DeleteFunc(recs, func(r histories.Record) bool {
				if r.Offset >= from {
					dropped++
					return true
				}
				return false
			})
		})
		return fmt.Sprintf("the last %d records of key %s (offsets %d..%d, with acknowledged value %d) never delivered: %d records removed from polls",
			t, k, from, n-1, f.at[from], dropped), nil
	}
	return "", noCandidate("needs an acknowledged value that was read")
}

// pollPairs calls f with each pair of ok polls (a, b) of one process that
// Jepsen compares for key k: b is the next ok poll after a that read k,
// with k assigned all along.
func (e *editor) pollPairs(f func(a, b int, k string)) {
	last := map[int64]map[string]int{}
	for i := range e.ops {
		op := &e.ops[i]
		if !op.IsClient() || op.Type == histories.Invoke {
			continue
		}
		lr := last[op.Process]
		if lr == nil {
			lr = map[string]int{}
			last[op.Process] = lr
		}
		if (op.F == histories.FAssign || op.F == histories.FSubscribe) && (op.Type == histories.OK || op.Type == histories.Info) {
			for k := range lr {
				if !slices.Contains(op.Value.Keys, k) {
					delete(lr, k)
				}
			}
			continue
		}
		if !e.isOKPoll(i) {
			continue
		}
		for _, k := range sortedKeys(e.pollRecs(i)) {
			if a, ok := lr[k]; ok {
				f(a, i, k)
			}
			lr[k] = i
		}
	}
}

func (e *editor) pollPair(rng *rand.Rand, fault Fault) (string, error) {
	type cand struct {
		a, b int
		k    string
	}
	facts := map[string]keyFacts{}
	var r reservoir[cand]
	e.pollPairs(func(a, b int, k string) {
		ra, rb := e.pollRecs(a)[k], e.pollRecs(b)[k]
		if len(ra) == 0 || len(rb) == 0 || rb[0].Offset != ra[len(ra)-1].Offset+1 {
			return
		}
		if fault == PollSkip {
			f, ok := facts[k]
			if !ok {
				f = e.facts(k)
				facts[k] = f
			}
			// The record it skips must be read elsewhere, else it is lost.
			if len(rb) < 2 || f.readers[rb[0].Offset] < 2 {
				return
			}
		}
		r.offer(rng, cand{a, b, k})
	})
	if r.n == 0 {
		return "", noCandidate("needs a process that polled a key twice in a row")
	}
	c := r.pick
	ra, rb := e.pollRecs(c.a)[c.k], e.pollRecs(c.b)[c.k]
	p := e.ops[c.b].Process
	if fault == NonmonotonicPoll {
		n := 1 + rng.IntN(min(3, len(ra)))
		recs := append(slices.Clone(ra[len(ra)-n:]), rb...)
		e.setRecs(c.b, c.k, recs)
		return fmt.Sprintf("process %d's poll of key %s starts again at offset %d although its previous poll ended at offset %d (%d records re-delivered)",
			p, c.k, recs[0].Offset, ra[len(ra)-1].Offset, n), nil
	}
	f := facts[c.k]
	n := 1
	for n < min(3, len(rb)-1) && f.readers[rb[n].Offset] >= 2 && rng.IntN(2) == 0 {
		n++
	}
	e.setRecs(c.b, c.k, slices.Clone(rb[n:]))
	return fmt.Sprintf("process %d's poll of key %s starts at offset %d although its previous poll ended at offset %d (%d records skipped; others read them)",
		p, c.k, rb[n].Offset, ra[len(ra)-1].Offset, n), nil
}

func (e *editor) nonmonotonicSend(rng *rand.Rand) (string, error) {
	type one struct {
		pos int
		val int64
		ok  bool // ok, with exactly one micro-op for the key
	}
	type cand struct {
		s1, s2 one
		k      string
		a, b   int64
	}
	offsets := map[string]map[int64]int64{} // key -> value -> offset
	offsetOf := func(k string, v int64) (int64, bool) {
		m, ok := offsets[k]
		if !ok {
			m = map[int64]int64{}
			for o, val := range e.facts(k).at {
				m[val] = o
			}
			offsets[k] = m
		}
		o, ok := m[v]
		return o, ok
	}
	// Reads of each (key, offset): the earliest position a completed poll
	// read it at, to keep the swap free of reads from the future.
	firstRead := map[string]map[int64]int{}
	var clean, dirty reservoir[cand]
	last := map[int64]map[string]one{}
	for i := range e.ops {
		op := &e.ops[i]
		if !op.IsClient() || (op.Type != histories.OK && op.Type != histories.Info) {
			continue
		}
		ls := last[op.Process]
		if ls == nil {
			ls = map[string]one{}
			last[op.Process] = ls
		}
		if op.F == histories.FAssign || op.F == histories.FSubscribe {
			for k := range ls {
				if !slices.Contains(op.Value.Keys, k) {
					delete(ls, k)
				}
			}
			continue
		}
		if op.F != histories.FSend && op.F != histories.FTxn {
			continue
		}
		per := map[string][]int64{}
		for _, m := range op.Value.Mops {
			if m.F == histories.MopSend {
				per[m.Key] = append(per[m.Key], m.Value)
			}
		}
		for _, k := range sortedKeys(per) {
			vs := per[k]
			cur := one{i, vs[0], op.Type == histories.OK && len(vs) == 1}
			prev, had := ls[k]
			ls[k] = cur
			if !had || !prev.ok || !cur.ok {
				continue
			}
			a, ok1 := offsetOf(k, prev.val)
			b, ok2 := offsetOf(k, cur.val)
			if !ok1 || !ok2 || a >= b {
				continue
			}
			c := cand{prev, cur, k, a, b}
			fr, ok := firstRead[k]
			if !ok {
				fr = map[int64]int{}
				for j := range e.ops {
					for _, rec := range e.pollRecs(j)[k] {
						if _, seen := fr[rec.Offset]; !seen {
							fr[rec.Offset] = j
						}
					}
				}
				firstRead[k] = fr
			}
			if fr[a] > e.partner[i] {
				clean.offer(rng, c)
			} else {
				dirty.offer(rng, c)
			}
		}
	}
	c, note := clean.pick, ""
	if clean.n == 0 {
		if dirty.n == 0 {
			return "", noCandidate("needs a process with two ok sends to one key")
		}
		c = dirty.pick
		note = fmt.Sprintf("; note: offset %d was read before the second send was invoked, a read from the future that Jepsen's Elle would call G1c-realtime", c.a)
	}
	if m := e.sendMop(c.s1.pos, c.k, c.s1.val); m.Offset >= 0 {
		e.own(c.s1.pos)
		e.sendMop(c.s1.pos, c.k, c.s1.val).Offset = c.b
	}
	if m := e.sendMop(c.s2.pos, c.k, c.s2.val); m.Offset >= 0 {
		e.own(c.s2.pos)
		e.sendMop(c.s2.pos, c.k, c.s2.val).Offset = c.a
	}
	e.mapRecs(c.k, func(_ int, recs []histories.Record) []histories.Record {
		for j := range recs {
			switch recs[j].Offset {
			case c.a:
				recs[j].Value = c.s2.val
			case c.b:
				recs[j].Value = c.s1.val
			}
		}
		return recs
	})
	return fmt.Sprintf("process %d sent %d then %d to key %s, but the log holds %d at offset %d before %d at offset %d%s",
		e.ops[c.s1.pos].Process, c.s1.val, c.s2.val, c.k, c.s2.val, c.a, c.s1.val, c.b, note), nil
}

func (e *editor) intPoll(rng *rand.Rand, fault Fault) (string, error) {
	type cand struct {
		pos int
		k   string
		j   int
	}
	facts := map[string]keyFacts{}
	var r reservoir[cand]
	for i := range e.ops {
		if !e.isOKPoll(i) {
			continue
		}
		polls := e.pollRecs(i)
		for _, k := range sortedKeys(polls) {
			recs := polls[k]
			if fault == IntNonmonotonicPoll {
				for j := range recs {
					r.offer(rng, cand{i, k, j})
				}
				continue
			}
			if len(recs) < 3 {
				continue
			}
			f, ok := facts[k]
			if !ok {
				f = e.facts(k)
				facts[k] = f
			}
			for j := 1; j < len(recs)-1; j++ {
				if f.readers[recs[j].Offset] >= 2 {
					r.offer(rng, cand{i, k, j})
				}
			}
		}
	}
	if r.n == 0 {
		return "", noCandidate("needs a poll that read enough records")
	}
	c := r.pick
	recs := e.pollRecs(c.pos)[c.k]
	rec := recs[c.j]
	p := e.ops[c.pos].Process
	if fault == IntNonmonotonicPoll {
		e.setRecs(c.pos, c.k, slices.Insert(slices.Clone(recs), c.j+1, rec))
		return fmt.Sprintf("process %d's poll of key %s delivers offset %d (value %d) twice in a row", p, c.k, rec.Offset, rec.Value), nil
	}
	e.setRecs(c.pos, c.k, slices.Delete(slices.Clone(recs), c.j, c.j+1))
	return fmt.Sprintf("process %d's poll of key %s leaves out offset %d (value %d) between offsets %d and %d; others read it",
		p, c.k, rec.Offset, rec.Value, recs[c.j-1].Offset, recs[c.j+1].Offset), nil
}

func (e *editor) abortedRead(rng *rand.Rand) (string, error) {
	facts := map[string]keyFacts{}
	var r reservoir[sendRef]
	for _, s := range e.sends(histories.Fail) {
		f, ok := facts[s.key]
		if !ok {
			f = e.facts(s.key)
			facts[s.key] = f
		}
		if f.lastRead >= 0 && f.maxSent <= f.maxRead {
			r.offer(rng, s)
		}
	}
	if r.n == 0 {
		return "", noCandidate("needs a failed send to a key that was read")
	}
	s := r.pick
	f := facts[s.key]
	recs := append(slices.Clone(e.pollRecs(f.lastRead)[s.key]), histories.Record{Offset: f.maxRead + 1, Value: s.val})
	e.setRecs(f.lastRead, s.key, recs)
	return fmt.Sprintf("value %d of key %s, whose send failed (process %d), is read at offset %d by process %d's last poll",
		s.val, s.key, e.ops[s.pos].Process, f.maxRead+1, e.ops[f.lastRead].Process), nil
}

// commitRef is one offset a commit op wrote: the positions of its
// invocation and completion (-1: none) and its outcome.
type commitRef struct {
	inv, cmp int
	typ      histories.Type
	group    string
	key      string
	off      int64
}

// commits lists the offsets every commit op of the history wrote, in the
// order of their completions (never completed last).
func (e *editor) commits() []commitRef {
	var out []commitRef
	for i := range e.ops {
		op := &e.ops[i]
		if op.F != histories.FCommit || !op.IsClient() {
			continue
		}
		c := commitRef{inv: i, cmp: -1, typ: histories.Info, group: op.Group}
		if op.Type != histories.Invoke {
			c = commitRef{inv: e.partner[i], cmp: i, typ: op.Type, group: op.Group}
		} else if e.partner[i] >= 0 {
			continue // counted at its completion
		}
		for _, o := range op.Value.Offsets {
			c.key, c.off = o.Key, o.Offset
			out = append(out, c)
		}
		if op.Value.Offsets == nil && c.inv >= 0 {
			for _, o := range e.ops[c.inv].Value.Offsets {
				c.key, c.off = o.Key, o.Offset
				out = append(out, c)
			}
		}
	}
	return out
}

func (e *editor) lostOffsetCommit(rng *rand.Rand) (string, error) {
	all := e.commits()
	// effect is when a commit may take effect at the latest: its completion
	// if ok, else any time.
	effect := func(c commitRef) int {
		if c.typ == histories.OK && c.cmp >= 0 {
			return c.cmp
		}
		return len(e.ops) + 1
	}
	type plan struct {
		c    commitRef
		prev int64 // the offset the fetch returns; OffsetUnknown: none
	}
	var r reservoir[plan]
	for _, c := range all {
		if c.typ != histories.OK || c.cmp < 0 {
			continue
		}
		// The offset the commits before c left: the latest ok commit of the
		// key completed before c was invoked, or none.
		prev, prevAt := histories.OffsetUnknown, -1
		for _, w := range all {
			if w.group == c.group && w.key == c.key && w.typ == histories.OK && w.cmp >= 0 && w.cmp < c.inv && w.cmp > prevAt {
				prev, prevAt = w.off, w.cmp
			}
		}
		if prev == c.off {
			continue
		}
		// The fetch goes right after c's completion: no commit of prev
		// that did not fail may take effect after c was invoked, or the
		// fetch would be consistent (it may have read that one).
		fine := true
		for _, w := range all {
			if w.group == c.group && w.key == c.key && w.off == prev && prev >= 0 && w.typ != histories.Fail && w.inv <= c.cmp && effect(w) > c.inv {
				fine = false
			}
		}
		if fine {
			r.offer(rng, plan{c, prev})
		}
	}
	if r.n == 0 {
		return "", noCandidate("needs an acknowledged commit of a group's offset (generate with Config.WithCommits)")
	}
	p := r.pick
	pid := e.nextPID
	e.nextPID++
	fetch := func(t histories.Type, v histories.Value) histories.Op {
		return histories.Op{Process: pid, Type: t, F: histories.FCommitted, Group: p.c.group, Value: v}
	}
	e.before[p.c.cmp+1] = append(e.before[p.c.cmp+1],
		fetch(histories.Invoke, histories.Value{Keys: []string{p.c.key}}),
		fetch(histories.OK, histories.Value{Offsets: []histories.KeyOffset{{Key: p.c.key, Offset: p.prev}}}))
	was := "none"
	if p.prev >= 0 {
		was = fmt.Sprintf("offset %d", p.prev)
	}
	return fmt.Sprintf("right after process %d's commit of offset %d of key %s (group %q) was acknowledged, process %d fetches %s, what the commits before it had left",
		e.ops[p.c.cmp].Process, p.c.off, p.c.key, p.c.group, pid, was), nil
}

package linear

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

var (
	seedFlag  = flag.Int64("linear.seed", 0, "run the reference and generator tests with this seed only")
	casesFlag = flag.Int("linear.cases", 1500, "random histories compared with the reference model")
	sizeFlag  = flag.Int("linear.size", 12, "most operations in a history compared with the reference model")
)

// The reference is the log model written the obvious way, with none of
// Check's encoding: the state is the whole log, a list of (offset, value)
// records whose offsets increase but need not be dense or start at 0. An
// acked send appends its record when its offset is past the log's last;
// an indeterminate send either does nothing or appends its value past the
// last, at an offset some read saw it at (porcupine's power-set
// construction explores every choice); a poll needs its records to be
// consecutive records of the log. (An indeterminate send could also land
// at an offset no read shows; that never helps, since nothing can read it
// and it only takes a place between records a read must see side by side
// or before a later acked offset, so the reference leaves it out to stay
// fast enough to compare on thousands of histories.) It is exponential, so only for tiny
// histories; comparing the two on many random histories tests doc.go's
// claim that Check's encoding accepts exactly the same histories.

type refOp struct {
	optional bool  // indeterminate send: may append, or not
	value    int64 // sends
	offset   int64 // ok sends with a reported offset; else -1
	seenAt   []int64
	poll     bool
	recs     []histories.Record
}

type refRec struct{ off, val int64 }

// A log state is its records as a string, 16 bytes each: comparable, as
// porcupine needs, and cheap to read back.
func decodeLog(s string) []refRec {
	log := make([]refRec, len(s)/16)
	for i := range log {
		log[i].off = int64(binary.LittleEndian.Uint64([]byte(s[16*i:])))
		log[i].val = int64(binary.LittleEndian.Uint64([]byte(s[16*i+8:])))
	}
	return log
}

func appendRec(s string, r refRec) string {
	b := binary.LittleEndian.AppendUint64([]byte(s), uint64(r.off))
	return string(binary.LittleEndian.AppendUint64(b, uint64(r.val)))
}

func refModel() porcupine.Model {
	return (&porcupine.NondeterministicModel{
		Init: func() []any { return []any{""} },
		Step: func(s, in, _ any) []any {
			log := decodeLog(s.(string))
			last := int64(-1)
			if len(log) > 0 {
				last = log[len(log)-1].off
			}
			app := func(off, v int64) any { return appendRec(s.(string), refRec{off, v}) }
			o := in.(*refOp)
			switch {
			case o.optional:
				out := []any{s}
				for _, at := range o.seenAt {
					if at > last {
						out = append(out, app(at, o.value))
					}
				}
				return out
			case !o.poll:
				if o.offset > last {
					return []any{app(o.offset, o.value)}
				}
				return nil
			}
			for j := range log {
				if log[j].off != o.recs[0].Offset {
					continue
				}
				for i, r := range o.recs {
					if j+i >= len(log) || log[j+i] != (refRec{r.Offset, r.Value}) {
						return nil
					}
				}
				return []any{s}
			}
			return nil
		},
	}).ToModel()
}

// refCheck returns the keys the reference finds not linearizable.
func refCheck(ops []histories.Op) []string {
	inf := int64(len(ops))
	byKey := make(map[string][]porcupine.Operation)
	seen := make(map[string]map[int64][]int64) // key -> value -> offsets reads saw it at
	for _, op := range ops {
		if op.Type != histories.OK {
			continue
		}
		for _, m := range op.Value.Mops {
			for k, rs := range m.Polls {
				for _, r := range rs {
					if seen[k] == nil {
						seen[k] = make(map[int64][]int64)
					}
					seen[k][r.Value] = append(seen[k][r.Value], r.Offset)
				}
			}
		}
	}
	open := make(map[int64]int)
	add := func(inv int, comp int, typ histories.Type) {
		in := ops[inv]
		mops := in.Value.Mops
		if typ == histories.OK {
			mops = ops[comp].Value.Mops
		}
		for _, m := range mops {
			switch {
			case typ == histories.Fail:
			case m.F == histories.MopSend && typ == histories.OK && m.Offset >= 0:
				byKey[m.Key] = append(byKey[m.Key], porcupine.Operation{Input: &refOp{value: m.Value, offset: m.Offset}, Call: int64(inv), Return: int64(comp)})
			case m.F == histories.MopSend:
				byKey[m.Key] = append(byKey[m.Key], porcupine.Operation{Input: &refOp{optional: true, value: m.Value, offset: -1, seenAt: seen[m.Key][m.Value]}, Call: int64(inv), Return: inf})
			case typ == histories.OK:
				for k, rs := range m.Polls {
					if len(rs) > 0 {
						byKey[k] = append(byKey[k], porcupine.Operation{Input: &refOp{poll: true, recs: rs}, Call: int64(inv), Return: int64(comp)})
					}
				}
			}
		}
	}
	for i, op := range ops {
		if !op.IsClient() {
			continue
		}
		if op.Type == histories.Invoke {
			open[op.Process] = i
			continue
		}
		add(open[op.Process], i, op.Type)
		delete(open, op.Process)
	}
	for _, inv := range open {
		add(inv, -1, histories.Info)
	}
	var bad []string
	for k, h := range byKey {
		if !porcupine.CheckOperations(refModel(), h) {
			bad = append(bad, k)
		}
	}
	sort.Strings(bad)
	return bad
}

// mutate applies one random change that a broken broker or a confused
// harness could produce; the result may or may not stay linearizable.
func mutate(ops []histories.Op, rnd *rand.Rand) ([]histories.Op, string) {
	out := make([]histories.Op, len(ops))
	copy(out, ops)
	var sends, polls []int // ok sends with an offset, ok polls that read
	maxValue := int64(0)
	for i, op := range out {
		for _, m := range op.Value.Mops {
			maxValue = max(maxValue, m.Value)
			if op.Type == histories.OK && m.F == histories.MopSend && m.Offset >= 0 {
				sends = append(sends, i)
			}
			if op.Type == histories.OK && len(m.Polls) > 0 {
				polls = append(polls, i)
			}
		}
	}
	cloneMops := func(i int) []histories.Mop {
		mops := make([]histories.Mop, len(out[i].Value.Mops))
		for j, m := range out[i].Value.Mops {
			if m.Polls != nil {
				p := make(map[string][]histories.Record, len(m.Polls))
				for k, rs := range m.Polls {
					p[k] = append([]histories.Record(nil), rs...)
				}
				m.Polls = p
			}
			mops[j] = m
		}
		out[i].Value.Mops = mops
		return mops
	}
	pollRecs := func(i int) (string, []histories.Record) {
		mops := cloneMops(i)
		keys := make([]string, 0)
		for k := range mops[0].Polls {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		k := keys[rnd.Intn(len(keys))]
		return k, mops[0].Polls[k]
	}
	switch rnd.Intn(6) {
	case 0:
		if len(sends) > 0 {
			i := sends[rnd.Intn(len(sends))]
			m := &cloneMops(i)[0]
			m.Offset = max(0, m.Offset+int64(rnd.Intn(5))-2)
			return out, fmt.Sprintf("send at %d acked at %d", i, m.Offset)
		}
	case 1:
		if len(sends) > 0 {
			i := sends[rnd.Intn(len(sends))]
			out[i].Type = histories.Info
			return out, fmt.Sprintf("send at %d info", i)
		}
	case 2:
		if len(sends) > 0 {
			i := sends[rnd.Intn(len(sends))]
			cloneMops(i)[0].Offset = histories.OffsetUnknown
			return out, fmt.Sprintf("send at %d acks=0", i)
		}
	case 3:
		if len(polls) > 0 {
			i := polls[rnd.Intn(len(polls))]
			_, rs := pollRecs(i)
			j := rnd.Intn(len(rs))
			rs[j].Value = rnd.Int63n(maxValue + 2)
			return out, fmt.Sprintf("poll at %d read %d at %d", i, rs[j].Value, rs[j].Offset)
		}
	case 4:
		if len(polls) > 0 {
			i := polls[rnd.Intn(len(polls))]
			k, rs := pollRecs(i)
			if len(rs) > 1 {
				j := rnd.Intn(len(rs))
				out[i].Value.Mops[0].Polls[k] = append(rs[:j:j], rs[j+1:]...)
				return out, fmt.Sprintf("poll at %d dropped its record %d", i, j)
			}
		}
	case 5:
		// Swap two adjacent events of different processes: the real-time
		// order changes.
		for range 10 {
			i := rnd.Intn(len(out) - 1)
			if out[i].Process != out[i+1].Process {
				out[i], out[i+1] = out[i+1], out[i]
				out[i].Index, out[i+1].Index = int64(i), int64(i+1)
				out[i].Time, out[i+1].Time = out[i+1].Time, out[i].Time
				return out, fmt.Sprintf("swapped events %d and %d", i, i+1)
			}
		}
	}
	return out, "unchanged"
}

// TestAgainstReference compares Check with the reference on many tiny
// random histories, correct and mutated.
func TestAgainstReference(t *testing.T) {
	seeds := make([]int64, 0, *casesFlag)
	if *seedFlag != 0 {
		seeds = append(seeds, *seedFlag)
	} else {
		for i := range *casesFlag {
			seeds = append(seeds, int64(i+1))
		}
	}
	valid, invalid := 0, 0
	for _, seed := range seeds {
		rnd := rand.New(rand.NewSource(seed))
		cfg := genConfig{Ops: 4 + rnd.Intn(*sizeFlag-3), Keys: 1 + rnd.Intn(2), Processes: 2 + rnd.Intn(4), PollRate: 0.4,
			InfoRate: 0.2, FailRate: 0.1, Acks0Rate: 0.2, Cut: rnd.Intn(3) == 0, Gaps: rnd.Intn(2) == 0, Seed: seed}
		ops := generate(cfg)
		var what []string
		for range rnd.Intn(4) { // 0 to 3 mutations: a quarter stay as generated
			var w string
			ops, w = mutate(ops, rnd)
			what = append(what, w)
		}
		want := refCheck(ops)
		h := mustHistory(t, ops)
		// Whole keys, and keys cut into as many segments as sound.
		for _, segOps := range []int{0, 1} {
			res, err := check(context.Background(), h, Options{}, config{segmentOps: segOps})
			if err != nil {
				t.Fatalf("seed %d (-linear.seed=%d): %v", seed, seed, err)
			}
			var got []string
			for k, kr := range res.Keys {
				if kr.Valid == verdict.Unknown && strings.Contains(kr.Reason, "twice") {
					got = nil // a value sent twice: the reference's answer is not comparable
					want = nil
					break
				}
				if kr.Valid != verdict.Invalid {
					t.Fatalf("seed %d: key %s is %v: %s", seed, k, kr.Valid, kr.Reason)
				}
				got = append(got, k)
			}
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("seed %d (rerun with -linear.seed=%d), segments of %d ops: invalid keys %v, reference says %v; mutations %v\n%s",
					seed, seed, segOps, got, want, what, show(ops))
			}
		}
		if len(want) == 0 {
			valid++
		} else {
			invalid++
		}
	}
	t.Logf("%d histories agree: %d valid, %d invalid", len(seeds), valid, invalid)
	if len(seeds) > 100 && (valid < len(seeds)/10 || invalid < len(seeds)/10) {
		t.Errorf("the mix is lopsided (%d valid, %d invalid): the comparison proves little", valid, invalid)
	}
}

func show(ops []histories.Op) string {
	var b strings.Builder
	for i, op := range ops {
		fmt.Fprintf(&b, "%3d p%d %-6s %-4s", i, op.Process, op.Type, op.F)
		for _, m := range op.Value.Mops {
			if m.F == histories.MopSend {
				fmt.Fprintf(&b, " [send %s %d @%d]", m.Key, m.Value, m.Offset)
			} else if m.Polls != nil {
				fmt.Fprintf(&b, " [poll %v]", m.Polls)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

package linear

import (
	"fmt"
	"math/rand"
	"sort"
	"strconv"

	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/histtest"
)

// genConfig shapes a simulated history of a correct log.
type genConfig struct {
	Ops       int     // operations invoked
	Keys      int     // keys "0", "1", ...
	Processes int     // concurrent client threads
	PollRate  float64 // fraction of ops that are polls; the rest are sends
	InfoRate  float64 // fraction of ops that end info (half of info sends take effect, maybe late)
	FailRate  float64 // fraction of ops that fail (no effect)
	Acks0Rate float64 // fraction of ok sends that report no offset (they may land after their ok)
	Cut       bool    // end the history with the last invoked ops still open
	// Gaps makes each key's offsets start at a random base and leave
	// holes, as transaction markers, compaction and retention do.
	Gaps bool
	Seed int64
}

// genOp is an operation in flight in the simulation.
type genOp struct {
	proc     int64
	poll     bool
	key      string // sends
	value    int64  // sends
	outcome  histories.Type
	acks0    bool
	effect   bool // whether it takes effect (sends) or reads (polls)
	applyAt  int  // tick of its effect
	doneAt   int  // tick of its completion
	offset   int64
	reads    map[string][]histories.Record
	slot     *genSlot
	complete bool
}

type genSlot struct {
	proc   int64
	busy   *genOp
	keys   []string         // assigned keys it polls
	pos    map[string]int64 // its position per key
	assign int              // ops until it reassigns
}

// generate simulates cfg.Processes threads against a correct log of
// cfg.Keys keys in discrete ticks. Within a tick, invocations come first,
// then effects (appends happen, polls read), then completions, so every
// effect lies within its operation's interval, except the late effects of
// info and acks=0 sends, which is what those may do.
func generate(cfg genConfig) []histories.Op {
	rnd := rand.New(rand.NewSource(cfg.Seed))
	logs := make(map[string][]histories.Record) // each key's log: offset, value
	nextOff := make(map[string]int64)
	keyName := func(i int) string { return strconv.Itoa(i) }
	var out []histories.Op
	var now int
	seq := 0
	emit := func(p int64, t histories.Type, f string, mops ...histories.Mop) {
		out = append(out, histories.Op{Index: int64(len(out)), Time: int64(now)*1_000_000 + int64(seq), Process: p, Type: t, F: f, Value: histories.Value{Mops: mops}})
		seq++
	}
	slots := make([]*genSlot, cfg.Processes)
	nextProc := int64(cfg.Processes)
	for i := range slots {
		slots[i] = &genSlot{proc: int64(i), pos: make(map[string]int64)}
	}
	var inflight []*genOp // ops whose effect or completion is still ahead
	value := int64(0)
	invoked := 0
	for {
		seq = 0
		// Invocations.
		for _, s := range slots {
			if s.busy != nil || invoked >= cfg.Ops || rnd.Intn(2) == 0 {
				continue
			}
			invoked++
			o := &genOp{proc: s.proc, slot: s, outcome: histories.OK, effect: true}
			o.applyAt = now + rnd.Intn(3)
			o.doneAt = o.applyAt + rnd.Intn(3)
			switch x := rnd.Float64(); {
			case x < cfg.InfoRate:
				o.outcome = histories.Info
				o.effect = rnd.Intn(2) == 0
				o.applyAt = now + rnd.Intn(8) // maybe after its completion
			case x < cfg.InfoRate+cfg.FailRate:
				o.outcome, o.effect = histories.Fail, false
			}
			if rnd.Float64() < cfg.PollRate {
				o.poll = true
				if s.assign <= 0 || len(s.keys) == 0 {
					s.keys = s.keys[:0]
					for _, k := range rnd.Perm(cfg.Keys)[:1+rnd.Intn(min(3, cfg.Keys))] {
						s.keys = append(s.keys, keyName(k))
					}
					s.assign = 20 + rnd.Intn(40)
				}
				s.assign--
				emit(s.proc, histories.Invoke, histories.FPoll, histories.Mop{F: histories.MopPoll})
			} else {
				o.key, o.value = keyName(rnd.Intn(cfg.Keys)), value
				value++
				if o.outcome == histories.OK && rnd.Float64() < cfg.Acks0Rate {
					o.acks0 = true
					o.applyAt = now + rnd.Intn(8) // the append may land after the ok
				}
				emit(s.proc, histories.Invoke, histories.FSend, histtest.SendMop(o.key, histories.OffsetPending, o.value))
			}
			s.busy = o
			inflight = append(inflight, o)
		}
		// Effects.
		for _, o := range inflight {
			if o.applyAt != now || !o.effect {
				continue
			}
			if !o.poll {
				off, ok := nextOff[o.key]
				if !ok && cfg.Gaps {
					off = rnd.Int63n(1000)
				}
				o.offset = off
				logs[o.key] = append(logs[o.key], histories.Record{Offset: off, Value: o.value})
				nextOff[o.key] = off + 1
				if cfg.Gaps && rnd.Intn(3) == 0 {
					nextOff[o.key] += 1 + rnd.Int63n(4)
				}
				continue
			}
			o.reads = make(map[string][]histories.Record)
			for _, k := range o.slot.keys {
				log := logs[k]
				end := int64(len(log))
				pos := o.slot.pos[k]
				if rnd.Intn(10) == 0 || pos > end {
					pos = rnd.Int63n(end + 1) // seek: re-read or skip ahead
				}
				n := min(int64(rnd.Intn(5)), end-pos)
				var rs []histories.Record
				rs = append(rs, log[pos:pos+n]...)
				if len(rs) > 0 {
					o.reads[k] = rs
				}
				o.slot.pos[k] = pos + n
			}
		}
		// Completions.
		if cfg.Cut && invoked >= cfg.Ops {
			break // leave the ops in flight open
		}
		for _, o := range inflight {
			if o.doneAt != now || o.complete {
				continue
			}
			o.complete = true
			o.slot.busy = nil
			f := histories.FSend
			mop := histtest.SendMop(o.key, histories.OffsetPending, o.value)
			if o.poll {
				f, mop = histories.FPoll, histories.Mop{F: histories.MopPoll}
				if o.outcome == histories.OK {
					mop.Polls = o.reads
				}
			} else if o.outcome == histories.OK {
				mop.Offset = o.offset
				if o.acks0 {
					mop.Offset = histories.OffsetUnknown
				}
			}
			emit(o.proc, o.outcome, f, mop)
			if o.outcome == histories.Info {
				o.slot.proc = nextProc // Jepsen retires the process
				nextProc++
			}
		}
		keep := inflight[:0]
		for _, o := range inflight {
			if !o.complete || o.applyAt > now {
				keep = append(keep, o)
			}
		}
		inflight = keep
		now++
		if invoked >= cfg.Ops && len(inflight) == 0 {
			break
		}
	}
	return out
}

// benchConfig is the history the performance goal names: 100,000
// operations, 10 keys, 20 processes, about 1% info, mostly acked sends.
func benchConfig(seed int64) genConfig {
	return genConfig{Ops: 100_000, Keys: 10, Processes: 20, PollRate: 0.4, InfoRate: 0.01, FailRate: 0.01, Acks0Rate: 0.005, Seed: seed}
}

// corrupt returns a copy of ops with one ok send's acked offset moved onto
// the offset of another send of the same key, a fault every correct
// checker must reject. It panics if ops has no such pair.
func corrupt(ops []histories.Op, rnd *rand.Rand) ([]histories.Op, string) {
	type at struct{ op, mop int }
	byKey := make(map[string][]at)
	for i, op := range ops {
		if op.Type != histories.OK || op.F != histories.FSend {
			continue
		}
		for j, m := range op.Value.Mops {
			if m.Offset >= 0 {
				byKey[m.Key] = append(byKey[m.Key], at{i, j})
			}
		}
	}
	keys := make([]string, 0, len(byKey))
	for k, v := range byKey {
		if len(v) >= 2 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		panic("corrupt: no key with two acked sends")
	}
	// Map order is random: sort for a reproducible choice.
	sort.Strings(keys)
	k := keys[rnd.Intn(len(keys))]
	sends := byKey[k]
	a, b := sends[rnd.Intn(len(sends))], sends[rnd.Intn(len(sends))]
	for a == b {
		b = sends[rnd.Intn(len(sends))]
	}
	out := make([]histories.Op, len(ops))
	copy(out, ops)
	mops := append([]histories.Mop(nil), out[a.op].Value.Mops...)
	mops[a.mop].Offset = out[b.op].Value.Mops[b.mop].Offset
	out[a.op].Value.Mops = mops
	return out, fmt.Sprintf("key %s: send at index %d now acked at offset %d", k, out[a.op].Index, mops[a.mop].Offset)
}

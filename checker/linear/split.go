package linear

import (
	"fmt"
	"sort"

	"github.com/garantia/garantia/histories"
)

// opKind says how an operation of one key's history acts on the log model.
type opKind uint8

const (
	// kindSend is an ok send whose offset the broker reported: a mandatory
	// append that must land exactly at that offset.
	kindSend opKind = iota
	// kindPinned is an indeterminate send (info, acks=0, never completed)
	// whose value some poll read: it took effect, at the offset it was read.
	kindPinned
	// kindFiller is an indeterminate send nobody read: it may fill an
	// offset no one else claims, or never take effect.
	kindFiller
	// kindPoll is the records one ok poll read of the key.
	kindPoll
)

// kop is one operation of one key's history, as the model sees it. It is
// porcupine's Input; porcupine never looks inside.
type kop struct {
	kind opKind

	// Sends.
	value  int64 // the value written
	offset int64 // where it may append: acked or observed offset; -1 for fillers
	why    string

	// Polls.
	recs       []histories.Record
	lo, hi     int64 // first and last offset read
	contiguous bool  // recs are at lo, lo+1, ..., hi

	// ok is precomputed from the key's claims (see keyModel): a send may
	// append at offset only if ok; a poll may linearize only if ok.
	ok bool
	// rank orders fillers (by invocation) and polls (by return); see doc.go.
	rank int

	// Where it sits in the history: positions in the ops slice, used as
	// porcupine's time; ret is infinity for indeterminate sends.
	call, ret int64
	// For people: the history's Index of the invocation and completion
	// (-1 when it never completed), the process, node and error.
	invIndex, compIndex int64
	process             int64
	node, err           string
	// seq is the creation order, a tie breaker that keeps sorting stable.
	seq int
}

// isSend reports whether the op appends.
func (o *kop) isSend() bool { return o.kind != kindPoll }

// split pairs invocations with completions (Jepsen's rule: a process runs
// one operation at a time) and returns each key's operations, in creation
// order. Fail completions are dropped (the op definitely did not happen),
// polls that did not complete ok are dropped (they read nothing), and
// sends whose outcome is unknown (info, acks=0, never completed) return at
// infinity (the position len(ops)).
func split(ops []histories.Op) (map[string][]*kop, error) {
	s := splitter{
		ops:    ops,
		keys:   make(map[string][]*kop),
		sentBy: make(map[string]map[int64]*kop),
		inf:    int64(len(ops)),
	}
	pending := make(map[int64]int) // process -> position of its open invocation
	for i := range ops {
		op := &ops[i]
		if !op.Type.Valid() {
			return nil, fmt.Errorf("linear: op index %d: unknown type %q", op.Index, op.Type)
		}
		if !op.IsClient() {
			continue
		}
		if op.Type == histories.Invoke {
			if j, busy := pending[op.Process]; busy {
				return nil, fmt.Errorf("linear: op index %d: process %d invokes %s while its %s invoked at index %d has not completed: a process runs one operation at a time",
					op.Index, op.Process, op.F, ops[j].F, ops[j].Index)
			}
			pending[op.Process] = i
			continue
		}
		j, open := pending[op.Process]
		if !open {
			return nil, fmt.Errorf("linear: op index %d: %s %s completes an operation process %d never invoked", op.Index, op.Type, op.F, op.Process)
		}
		delete(pending, op.Process)
		if ops[j].F != op.F {
			return nil, fmt.Errorf("linear: op index %d: %s completes %q but process %d invoked %q at index %d",
				op.Index, op.Type, op.F, op.Process, ops[j].F, ops[j].Index)
		}
		if err := s.add(j, i, op.Type); err != nil {
			return nil, err
		}
	}
	// A history cut short leaves invocations open: their outcome is as
	// unknown as an info's. Add them in invocation order, for determinism.
	open := make([]int, 0, len(pending))
	for _, j := range pending {
		open = append(open, j)
	}
	sort.Ints(open)
	for _, j := range open {
		if err := s.add(j, -1, histories.Info); err != nil {
			return nil, err
		}
	}
	return s.keys, nil
}

type splitter struct {
	ops    []histories.Op
	keys   map[string][]*kop
	sentBy map[string]map[int64]*kop // key -> value -> its send, to reject duplicates
	inf    int64
	seq    int
}

// add records the operation invoked at position inv and completed at
// position comp (-1: never) with type typ.
func (s *splitter) add(inv, comp int, typ histories.Type) error {
	in := &s.ops[inv]
	switch in.F {
	case histories.FSend, histories.FPoll, histories.FTxn:
	default:
		return nil // assign, subscribe, crash: no effect on the log
	}
	if typ == histories.Fail {
		return nil
	}
	mops := in.Value.Mops
	base := kop{call: int64(inv), invIndex: in.Index, compIndex: -1, process: in.Process, node: in.Node}
	if comp >= 0 {
		out := &s.ops[comp]
		base.compIndex = out.Index
		base.err = out.Error
		if out.Node != "" {
			base.node = out.Node
		}
		// An ok completion carries the results (offsets, records); fall
		// back to the invocation's mops if it carries none.
		if typ == histories.OK && len(out.Value.Mops) > 0 {
			if len(out.Value.Mops) != len(in.Value.Mops) {
				return fmt.Errorf("linear: op index %d: ok %s has %d micro-ops but its invocation at index %d has %d",
					out.Index, out.F, len(out.Value.Mops), in.Index, len(in.Value.Mops))
			}
			mops = out.Value.Mops
		}
	}
	at := base.compIndex
	if at < 0 {
		at = base.invIndex
	}
	for m := range mops {
		mop := &mops[m]
		switch mop.F {
		case histories.MopSend:
			o := base
			o.value = mop.Value
			if typ == histories.OK && mop.Offset >= 0 {
				o.kind, o.offset, o.ret = kindSend, mop.Offset, int64(comp)
			} else {
				// Unknown outcome: it may append at any time after its
				// invocation, or never. See doc.go for acks=0.
				switch {
				case mop.Offset < histories.OffsetPending:
					return fmt.Errorf("linear: op index %d: micro-op %d: send of %d to key %q has offset %d, want >= 0 or null", at, m, mop.Value, mop.Key, mop.Offset)
				case typ == histories.OK && mop.Offset == histories.OffsetUnknown:
					o.why = "acks=0"
				case typ == histories.OK:
					o.why = "ok without offset"
				case comp < 0:
					o.why = "never completed"
				default:
					o.why = "info"
				}
				o.kind, o.offset, o.ret = kindFiller, -1, s.inf
			}
			sent := s.sentBy[mop.Key]
			if sent == nil {
				sent = make(map[int64]*kop)
				s.sentBy[mop.Key] = sent
			}
			if prev, dup := sent[mop.Value]; dup {
				return fmt.Errorf("linear: op index %d: value %d sent to key %q twice (first invoked at index %d): values must be unique", at, mop.Value, mop.Key, prev.invIndex)
			}
			s.push(mop.Key, &o)
			sent[mop.Value] = s.keys[mop.Key][len(s.keys[mop.Key])-1]
		case histories.MopPoll:
			if typ != histories.OK {
				continue // an unfinished poll read nothing
			}
			// Map order is random; visit keys sorted for determinism.
			keys := make([]string, 0, len(mop.Polls))
			for k := range mop.Polls {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				recs := mop.Polls[k]
				if len(recs) == 0 {
					continue // an empty read is consistent with every log
				}
				for _, r := range recs {
					if r.Offset < 0 {
						return fmt.Errorf("linear: op index %d: micro-op %d: poll of key %q read value %d at offset %d, want an offset >= 0", at, m, k, r.Value, r.Offset)
					}
				}
				o := base
				o.kind, o.ret, o.recs = kindPoll, int64(comp), recs
				o.lo, o.hi, o.contiguous = recs[0].Offset, recs[len(recs)-1].Offset, true
				for i := 1; i < len(recs); i++ {
					if recs[i].Offset != recs[i-1].Offset+1 {
						o.contiguous = false
					}
				}
				s.push(k, &o)
			}
		default:
			return fmt.Errorf("linear: op index %d: micro-op %d: unknown function %q, want send or poll", at, m, mop.F)
		}
	}
	return nil
}

func (s *splitter) push(key string, o *kop) {
	o.seq = s.seq
	s.seq++
	s.keys[key] = append(s.keys[key], o)
}

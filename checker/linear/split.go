package linear

import (
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
	// kindPoll is the records one ok poll read of the key.
	kindPoll
)

// kop is one operation of one key's history, as the model sees it. It is
// porcupine's Input; porcupine never looks inside. Indeterminate sends
// nobody read have none: they may take effect last, or never, and change
// nothing anyone observed (doc.go).
type kop struct {
	kind opKind
	// ok is precomputed from the key's claims (see keyModel): a send may
	// append only if ok; a poll may linearize only if ok.
	ok bool

	// Sends: the value and the offset it appends at (acked or read).
	value  histories.ValueID
	offset int64
	// rank: for a send, the rank of its offset among the key's claimed
	// offsets (its place in the log); for a poll, its rank among the polls
	// by return. lo and hi are a poll's first and last record's ranks;
	// contiguous says its records sit at consecutive ranks.
	rank, lo, hi int32
	contiguous   bool
	// read is a poll's records: an index of History.Reads.
	read uint32

	// Where it sits in the history, in event positions, as porcupine's
	// time: call is the invocation (-1: before the history began, in a
	// fragment), ret the completion (the history's length, "infinity",
	// for indeterminate sends). inv and cmp are the events (-1: none).
	call, ret int32
	inv, cmp  int32
	// seq is the creation order, a tie breaker that keeps sorting stable.
	seq int32
}

// isSend reports whether the op appends.
func (o *kop) isSend() bool { return o.kind != kindPoll }

// keyOps is the operations of one key, and what split left out of them.
type keyOps struct {
	key string
	ops []*kop
	// sent are the key's sends, by value; a value sent twice breaks the
	// model's premise (values are unique).
	sent      map[histories.ValueID]*sendInfo
	sentTwice bool
	twice     histories.ValueID
}

// sendInfo is what split knows of one send of a key: its op (nil for an
// indeterminate send, until the model pins it where a read saw its value)
// and the events it came from.
type sendInfo struct {
	op       *kop
	inv, cmp int32
	acked    bool
}

// keyIndex lists, per key, the ops of the history that send to or read
// it (failed ones left out): the positions of their completions, in history
// order, then of the invocations that never completed. It is all that
// stays in memory for every key at once; a key's operations are built
// (splitKey) only when its turn comes, so that memory follows the keys
// being checked, not the whole history twice.
func keyIndex(h *histories.History) map[histories.Sym][]int32 {
	idx := make(map[histories.Sym][]int32)
	sendF, sendOK := h.Lookup(histories.FSend)
	pollF, pollOK := h.Lookup(histories.FPoll)
	txnF, txnOK := h.Lookup(histories.FTxn)
	isRW := func(f histories.Sym) bool {
		return (sendOK && f == sendF) || (pollOK && f == pollF) || (txnOK && f == txnF)
	}
	var lastSym histories.Sym
	var lastPos int32 = -1
	note := func(k histories.Sym, p int32) {
		if k == lastSym && p == lastPos {
			return // the op touched this key already
		}
		if l := idx[k]; len(l) == 0 || l[len(l)-1] != p {
			idx[k] = append(l, p)
		}
		lastSym, lastPos = k, p
	}
	visit := func(p int32) {
		inv, cmp := opEvents(h, p)
		kind := histories.KindInfo
		if cmp >= 0 {
			kind = h.Events[cmp].Kind
		}
		if kind == histories.KindFail {
			return
		}
		for _, m := range opMicros(h, inv, cmp, kind) {
			if !m.Poll {
				note(m.Key, p)
				continue
			}
			if kind != histories.KindOK {
				continue
			}
			for _, kr := range h.Reads[m.Reads.Start:m.Reads.End()] {
				if kr.Recs.Len > 0 {
					note(kr.Key, p)
				}
			}
		}
	}
	var open []int32
	for i := range h.Events {
		e := &h.Events[i]
		if !e.IsClient() || !isRW(e.F) {
			continue
		}
		if e.Kind == histories.KindInvoke {
			if e.Partner < 0 {
				open = append(open, int32(i))
			}
			continue
		}
		visit(int32(i))
	}
	// A history cut short leaves invocations open: their outcome is as
	// unknown as an info's. They come last, in invocation order.
	for _, p := range open {
		visit(p)
	}
	return idx
}

// opEvents returns the invocation and completion of the op at position p
// (a completion, or an invocation that never completed); -1 for none.
func opEvents(h *histories.History, p int32) (inv, cmp int32) {
	if h.Events[p].Kind == histories.KindInvoke {
		return p, -1
	}
	return h.Events[p].Partner, p
}

// opMicros returns an op's micro-ops: an ok completion's (it carries the
// results: offsets, records), else the invocation's, falling back on the
// completion's when the invocation has none (or is not in a fragment).
func opMicros(h *histories.History, inv, cmp int32, kind histories.Kind) []histories.Micro {
	var ms []histories.Micro
	if cmp >= 0 && (kind == histories.KindOK || inv < 0) {
		ms = h.MicrosOf(&h.Events[cmp])
	}
	if len(ms) == 0 && inv >= 0 {
		ms = h.MicrosOf(&h.Events[inv])
	}
	return ms
}

// splitKey returns the operations of key sym, whose ops are at, in
// creation order. Failed ops are dropped (they definitely did not happen),
// polls that did not complete ok read nothing, and sends whose outcome is
// unknown (info, acks=0, never completed) return at infinity, the
// position len(events).
func splitKey(h *histories.History, sym histories.Sym, at []int32) *keyOps {
	s := splitter{h: h, inf: int32(len(h.Events)), k: &keyOps{key: h.Text(sym), sent: make(map[histories.ValueID]*sendInfo)}, sym: sym}
	for _, p := range at {
		s.add(opEvents(h, p))
	}
	return s.k
}

type splitter struct {
	h   *histories.History
	k   *keyOps
	sym histories.Sym
	inf int32
	seq int32
}

// add records the key's part of the op invoked at event inv and completed
// at event cmp (either may be -1).
func (s *splitter) add(inv, cmp int32) {
	h, k := s.h, s.k
	kind := histories.KindInfo
	if cmp >= 0 {
		kind = h.Events[cmp].Kind
	}
	base := kop{call: inv, ret: cmp, inv: inv, cmp: cmp}
	if inv < 0 {
		base.call = -1
	}
	for _, m := range opMicros(h, inv, cmp, kind) {
		if !m.Poll {
			if m.Key != s.sym {
				continue
			}
			if _, dup := k.sent[m.Value]; dup && !k.sentTwice {
				k.sentTwice, k.twice = true, m.Value
			}
			si := &sendInfo{inv: inv, cmp: cmp}
			if kind == histories.KindOK && m.Offset >= 0 {
				o := base
				o.kind, o.value, o.offset = kindSend, m.Value, m.Offset
				si.op, si.acked = s.push(&o), true
			}
			if prev, dup := k.sent[m.Value]; !dup || (si.acked && !prev.acked) {
				k.sent[m.Value] = si
			}
			continue
		}
		if kind != histories.KindOK {
			continue // an unfinished poll read nothing
		}
		for r := m.Reads.Start; r < m.Reads.End(); r++ {
			kr := &h.Reads[r]
			if kr.Key != s.sym || kr.Recs.Len == 0 {
				continue // an empty read is consistent with every log
			}
			rs := h.RecsOf(kr)
			placed := true
			for i := range rs.Vals {
				placed = placed && rs.Offset(i) >= 0
			}
			if !placed {
				// Where a record without an offset sits is not known: the
				// read is left out, which can hide a violation, never
				// invent one.
				continue
			}
			o := base
			o.kind, o.read = kindPoll, r
			s.push(&o)
		}
	}
}

func (s *splitter) push(o *kop) *kop {
	o.seq = s.seq
	s.seq++
	s.k.ops = append(s.k.ops, o)
	return o
}

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
	// recs are a poll's records (a span of History.Recs).
	recs histories.Span

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
	sent       map[histories.ValueID]*sendInfo
	sentTwice  bool
	twice      histories.ValueID
	unreadIndt int // indeterminate sends nobody read: not in ops
	unplaced   int // ok polls with a record of unknown offset: not in ops
}

// sendInfo is what split knows of one send of a key: its op (nil for an
// indeterminate send, until a read pins it) and the events it came from.
type sendInfo struct {
	op       *kop
	inv, cmp int32
	acked    bool
}

// split returns each key's operations, in creation order, for the keys
// wanted (all when wanted is nil). Failed ops are dropped (they definitely
// did not happen), polls that did not complete ok read nothing, and sends
// whose outcome is unknown (info, acks=0, never completed) return at
// infinity, the position len(events).
func split(h *histories.History, wanted map[string]bool) map[string]*keyOps {
	s := splitter{h: h, keys: make(map[histories.Sym]*keyOps), inf: int32(len(h.Events)), wanted: wanted}
	sendF, sendOK := h.Lookup(histories.FSend)
	pollF, pollOK := h.Lookup(histories.FPoll)
	txnF, txnOK := h.Lookup(histories.FTxn)
	isRW := func(f histories.Sym) bool {
		return (sendOK && f == sendF) || (pollOK && f == pollF) || (txnOK && f == txnF)
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
		s.add(e.Partner, int32(i))
	}
	// A history cut short leaves invocations open: their outcome is as
	// unknown as an info's. They come last, in invocation order.
	for _, inv := range open {
		s.add(inv, -1)
	}
	s.pin()
	out := make(map[string]*keyOps, len(s.keys))
	for _, k := range s.keys {
		out[k.key] = k
	}
	return out
}

type splitter struct {
	h      *histories.History
	keys   map[histories.Sym]*keyOps
	inf    int32
	seq    int32
	wanted map[string]bool
}

func (s *splitter) keyOps(sym histories.Sym) *keyOps {
	k := s.keys[sym]
	if k == nil {
		name := s.h.Text(sym)
		if s.wanted != nil && !s.wanted[name] {
			return nil
		}
		k = &keyOps{key: name, sent: make(map[histories.ValueID]*sendInfo)}
		s.keys[sym] = k
	}
	return k
}

// add records the op invoked at event inv and completed at event cmp
// (either may be -1).
func (s *splitter) add(inv, cmp int32) {
	h := s.h
	kind := histories.KindInfo
	if cmp >= 0 {
		kind = h.Events[cmp].Kind
	}
	if kind == histories.KindFail {
		return
	}
	// An ok completion carries the results (offsets, records); fall back to
	// the invocation's micro-ops when it carries none.
	var ms []histories.Micro
	if cmp >= 0 && (kind == histories.KindOK || inv < 0) {
		ms = h.MicrosOf(&h.Events[cmp])
	}
	if len(ms) == 0 && inv >= 0 {
		ms = h.MicrosOf(&h.Events[inv])
	}
	base := kop{call: inv, ret: cmp, inv: inv, cmp: cmp}
	if inv < 0 {
		base.call = -1
	}
	for i := range ms {
		m := &ms[i]
		if !m.Poll {
			k := s.keyOps(m.Key)
			if k == nil {
				continue
			}
			if _, dup := k.sent[m.Value]; dup && !k.sentTwice {
				k.sentTwice, k.twice = true, m.Value
			}
			si := &sendInfo{inv: inv, cmp: cmp}
			if kind == histories.KindOK && m.Offset >= 0 {
				o := base
				o.kind, o.value, o.offset = kindSend, m.Value, m.Offset
				si.op, si.acked = s.push(k, &o), true
			} else {
				k.unreadIndt++ // until a read pins it
			}
			if prev, dup := k.sent[m.Value]; !dup || (si.acked && !prev.acked) {
				k.sent[m.Value] = si
			}
			continue
		}
		if kind != histories.KindOK {
			continue // an unfinished poll read nothing
		}
		for _, kr := range h.Reads[m.Reads.Start:m.Reads.End()] {
			if kr.Recs.Len == 0 {
				continue // an empty read is consistent with every log
			}
			k := s.keyOps(kr.Key)
			if k == nil {
				continue
			}
			recs := h.Recs[kr.Recs.Start:kr.Recs.End()]
			placed := true
			for _, r := range recs {
				placed = placed && r.Offset >= 0
			}
			if !placed {
				// Where a record without an offset sits is not known: the
				// read is left out, which can hide a violation, never
				// invent one.
				k.unplaced++
				continue
			}
			o := base
			o.kind, o.recs = kindPoll, kr.Recs
			s.push(k, &o)
		}
	}
}

func (s *splitter) push(k *keyOps, o *kop) *kop {
	o.seq = s.seq
	s.seq++
	k.ops = append(k.ops, o)
	return o
}

// pin turns each indeterminate send whose value a poll read into an
// append at the offset it was read at (the first such read), returning at
// infinity.
func (s *splitter) pin() {
	for _, k := range s.keys {
		var pinned []*kop
		for _, o := range k.ops {
			if o.kind != kindPoll {
				continue
			}
			for _, r := range s.h.Recs[o.recs.Start:o.recs.End()] {
				si := k.sent[r.Value]
				if si == nil || si.op != nil {
					continue
				}
				p := &kop{kind: kindPinned, value: r.Value, offset: r.Offset, call: si.inv, ret: s.inf, inv: si.inv, cmp: si.cmp}
				if si.inv < 0 {
					p.call = -1
				}
				si.op = p
				k.unreadIndt--
				pinned = append(pinned, p)
			}
		}
		for _, p := range pinned {
			s.push(k, p)
		}
	}
}

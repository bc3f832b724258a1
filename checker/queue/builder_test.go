package queue

import "github.com/garantia/garantia/histories"

// hist builds a history in memory, one event at a time. Every method
// returns the index of the event it appended (the completion, for the
// helpers that append an invocation and its completion), so tests can name
// the ops an example must cite.
type hist struct {
	ops []histories.Op
}

func (h *hist) add(p int64, typ histories.Type, f string, v histories.Value) int64 {
	i := int64(len(h.ops))
	h.ops = append(h.ops, histories.Op{Index: i, Time: 1000 * i, Process: p, Type: typ, F: f, Value: v})
	return i
}

// at is a completed send micro-op: value v at offset off (or
// histories.OffsetUnknown).
func at(k string, off, v int64) histories.Mop {
	return histories.Mop{F: histories.MopSend, Key: k, Value: v, Offset: off}
}

// invoked turns completed send micro-ops back into their invocation form.
func invoked(ms []histories.Mop) []histories.Mop {
	out := make([]histories.Mop, len(ms))
	for i, m := range ms {
		out[i] = histories.Mop{F: histories.MopSend, Key: m.Key, Value: m.Value, Offset: histories.OffsetPending}
	}
	return out
}

// send appends a send invocation and its completion of type typ. An ok
// completion carries ms as given; info and fail completions carry the
// invocation form unless keepOffsets.
func (h *hist) send(p int64, typ histories.Type, ms ...histories.Mop) int64 {
	h.add(p, histories.Invoke, histories.FSend, histories.Value{Mops: invoked(ms)})
	if typ != histories.OK {
		ms = invoked(ms)
	}
	return h.add(p, typ, histories.FSend, histories.Value{Mops: ms})
}

// sendOK appends one acknowledged send of v at off.
func (h *hist) sendOK(p int64, k string, off, v int64) int64 {
	return h.send(p, histories.OK, at(k, off, v))
}

// poll appends a poll invocation and a completion of type typ that read
// reads.
func (h *hist) poll(p int64, typ histories.Type, reads map[string][]histories.Record) int64 {
	h.add(p, histories.Invoke, histories.FPoll, histories.Value{Mops: []histories.Mop{{F: histories.MopPoll}}})
	return h.add(p, typ, histories.FPoll, histories.Value{Mops: []histories.Mop{{F: histories.MopPoll, Polls: reads}}})
}

// pollOK appends an ok poll of one key.
func (h *hist) pollOK(p int64, k string, recs ...histories.Record) int64 {
	return h.poll(p, histories.OK, map[string][]histories.Record{k: recs})
}

// assign appends an ok assign (or subscribe, by f) of keys.
func (h *hist) assign(p int64, f string, keys ...string) int64 {
	h.add(p, histories.Invoke, f, histories.Value{Keys: keys})
	return h.add(p, histories.OK, f, histories.Value{Keys: keys})
}

// r is a record: value v at offset off.
func r(off, v int64) histories.Record { return histories.Record{Offset: off, Value: v} }

// readAll appends an ok poll by process p of records at offsets 0..len(vs)-1.
func (h *hist) readAll(p int64, k string, vs ...int64) int64 {
	recs := make([]histories.Record, len(vs))
	for i, v := range vs {
		recs[i] = r(int64(i), v)
	}
	return h.pollOK(p, k, recs...)
}

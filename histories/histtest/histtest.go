// Package histtest builds histories in memory for tests: one builder, so
// that every checker's tests write ops, micro-ops and records the same way
// (offset before value everywhere, as history lines have them:
// ["send", k, [offset, value]] and [offset, value] records).
package histtest

import "github.com/garantia/garantia/histories"

// Builder appends events in the order they happened. Index is the
// position; Time is 1000 times the position. Every method returns the
// index of the event it appended (the completion, for the helpers that
// append an invocation and its completion), so tests can name the ops an
// example must cite.
type Builder struct {
	Ops []histories.Op
}

// Add appends one event.
func (b *Builder) Add(p int64, t histories.Type, f string, v histories.Value) int64 {
	i := int64(len(b.Ops))
	b.Ops = append(b.Ops, histories.Op{Index: i, Time: 1000 * i, Process: p, Type: t, F: f, Value: v})
	return i
}

// Invoke appends an invocation of f with micro-ops.
func (b *Builder) Invoke(p int64, f string, mops ...histories.Mop) int64 {
	return b.Add(p, histories.Invoke, f, histories.Value{Mops: mops})
}

// Complete appends a completion of type t of f with micro-ops.
func (b *Builder) Complete(p int64, t histories.Type, f string, mops ...histories.Mop) int64 {
	return b.Add(p, t, f, histories.Value{Mops: mops})
}

// Send appends a send invocation and its completion of type t. An ok
// completion carries mops as given; info and fail completions carry the
// invocation form, as clients record them.
func (b *Builder) Send(p int64, t histories.Type, mops ...histories.Mop) int64 {
	b.Invoke(p, histories.FSend, Invoked(mops)...)
	if t != histories.OK {
		mops = Invoked(mops)
	}
	return b.Complete(p, t, histories.FSend, mops...)
}

// SendOK appends one acknowledged send of value v at offset off (or
// histories.OffsetUnknown).
func (b *Builder) SendOK(p int64, k string, off, v int64) int64 {
	return b.Send(p, histories.OK, SendMop(k, off, v))
}

// Poll appends a poll invocation and a completion of type t that read
// reads.
func (b *Builder) Poll(p int64, t histories.Type, reads map[string][]histories.Record) int64 {
	b.Invoke(p, histories.FPoll, PollMop(nil))
	return b.Complete(p, t, histories.FPoll, PollMop(reads))
}

// PollOK appends an ok poll of one key.
func (b *Builder) PollOK(p int64, k string, recs ...histories.Record) int64 {
	return b.Poll(p, histories.OK, map[string][]histories.Record{k: recs})
}

// ReadAll appends an ok poll by process p of records at offsets
// 0..len(vs)-1.
func (b *Builder) ReadAll(p int64, k string, vs ...int64) int64 {
	recs := make([]histories.Record, len(vs))
	for i, v := range vs {
		recs[i] = R(int64(i), v)
	}
	return b.PollOK(p, k, recs...)
}

// Assign appends an ok assign (or subscribe, by f) of keys.
func (b *Builder) Assign(p int64, f string, keys ...string) int64 {
	b.Add(p, histories.Invoke, f, histories.Value{Keys: keys})
	return b.Add(p, histories.OK, f, histories.Value{Keys: keys})
}

// Commit appends a commit by process p of offsets to group, completing
// as t (every completion carries the offsets).
func (b *Builder) Commit(p int64, t histories.Type, group string, offs ...histories.KeyOffset) int64 {
	b.CommitInv(p, group, offs...)
	return b.CommitDone(p, t, group, offs...)
}

// CommitInv appends the invocation of a commit of offs to group.
func (b *Builder) CommitInv(p int64, group string, offs ...histories.KeyOffset) int64 {
	return b.AddGroup(p, histories.Invoke, histories.FCommit, group, histories.Value{Offsets: offs})
}

// CommitDone appends the completion of type t of a commit of offs.
func (b *Builder) CommitDone(p int64, t histories.Type, group string, offs ...histories.KeyOffset) int64 {
	return b.AddGroup(p, t, histories.FCommit, group, histories.Value{Offsets: offs})
}

// Committed appends an ok committed by process p of group's offsets that
// returned got (histories.OffsetUnknown: none).
func (b *Builder) Committed(p int64, group string, got ...histories.KeyOffset) int64 {
	b.CommittedInv(p, group, got...)
	return b.CommittedDone(p, group, got...)
}

// CommittedInv appends the invocation of a committed of the keys of got.
func (b *Builder) CommittedInv(p int64, group string, got ...histories.KeyOffset) int64 {
	keys := make([]string, len(got))
	for i, o := range got {
		keys[i] = o.Key
	}
	return b.AddGroup(p, histories.Invoke, histories.FCommitted, group, histories.Value{Keys: keys})
}

// CommittedDone appends the ok completion of a committed that returned got.
func (b *Builder) CommittedDone(p int64, group string, got ...histories.KeyOffset) int64 {
	return b.AddGroup(p, histories.OK, histories.FCommitted, group, histories.Value{Offsets: got})
}

// AddGroup appends one event of a consumer group.
func (b *Builder) AddGroup(p int64, t histories.Type, f, group string, v histories.Value) int64 {
	i := b.Add(p, t, f, v)
	b.Ops[i].Group = group
	return i
}

// O is key k's offset off (histories.OffsetUnknown: none), as commits and
// committed ops carry them.
func O(k string, off int64) histories.KeyOffset { return histories.KeyOffset{Key: k, Offset: off} }

// SendInv appends the invocation of a send of value v to key k.
func (b *Builder) SendInv(p int64, k string, v int64) int64 {
	return b.Invoke(p, histories.FSend, SendMop(k, histories.OffsetPending, v))
}

// SendDone appends the completion of type t of a send of value v to key k
// at offset off (histories.OffsetPending for the invocation form, which
// info and fail completions usually carry).
func (b *Builder) SendDone(p int64, t histories.Type, k string, off, v int64) int64 {
	return b.Complete(p, t, histories.FSend, SendMop(k, off, v))
}

// PollInv appends the invocation of a poll.
func (b *Builder) PollInv(p int64) int64 {
	return b.Invoke(p, histories.FPoll, PollMop(nil))
}

// PollDone appends the completion of type t of a poll that read reads.
func (b *Builder) PollDone(p int64, t histories.Type, reads map[string][]histories.Record) int64 {
	return b.Complete(p, t, histories.FPoll, PollMop(reads))
}

// SendMop is a send micro-op of value v to key k at offset off:
// histories.OffsetPending for the invocation form, OffsetUnknown for an
// ok send that reported no offset.
func SendMop(k string, off, v int64) histories.Mop {
	return histories.Mop{F: histories.MopSend, Key: k, Value: v, Offset: off}
}

// Invoked turns send micro-ops into their invocation form.
func Invoked(mops []histories.Mop) []histories.Mop {
	out := make([]histories.Mop, len(mops))
	for i, m := range mops {
		if m.F == histories.MopSend {
			m.Offset = histories.OffsetPending
		} else {
			m.Polls = nil
		}
		out[i] = m
	}
	return out
}

// PollMop is a poll micro-op; nil reads is its invocation form.
func PollMop(reads map[string][]histories.Record) histories.Mop {
	return histories.Mop{F: histories.MopPoll, Polls: reads}
}

// R is a record: value v at offset off.
func R(off, v int64) histories.Record { return histories.Record{Offset: off, Value: v} }

// Recs turns offset, value pairs into records: Recs(0, 10, 1, 11).
func Recs(ov ...int64) []histories.Record {
	out := make([]histories.Record, 0, len(ov)/2)
	for i := 0; i+1 < len(ov); i += 2 {
		out = append(out, R(ov[i], ov[i+1]))
	}
	return out
}

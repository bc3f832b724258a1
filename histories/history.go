package histories

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// History is a whole history, checked and held compactly: the form the
// checkers analyse. [LoadHistory] reads one from a file, [FromOps] makes
// one from ops in memory; both accept only a history whose lines are well
// formed, in the order they happened, and whose invocations and
// completions pair up (see [Pair]), so an analysis never meets a broken
// one.
//
// Its memory follows the size of the history, about 60 bytes per event
// plus 32 per micro-op and 16 per record read: strings (functions, keys,
// nodes, errors) are stored once and named by a [Sym]; an event's value
// is a [Span] of the flat arrays Micros (send and poll micro-ops), Reads
// (a poll's result, one entry per key, whose records RecsOf gives), Lists
// (the keys of an assign or subscribe) or Offsets (a commit's offsets, a
// committed's result); an event's consumer group is two bytes that name
// one of at most 65,535 groups ([History.GroupOf]). A read's records are stored
// as their values, 8 bytes each, and its first offset when the offsets run
// on one by one, as they nearly always do; otherwise each offset too. Message values are
// [ValueID]s: see [History.Val].
//
// A History is read-only once made: analyses may share it between
// goroutines.
type History struct {
	// Name is where the history came from (a file's path), for messages.
	Name string
	// Warnings say what the reader skipped (a torn last line).
	Warnings []string
	// Drain is what the history's drain markers say about its final drain.
	Drain Drain
	// Fragment is set when the history was read as a fragment cut from a
	// longer one (see [LoadOptions]): a process's first event may complete
	// an operation invoked before the history began.
	Fragment bool

	// Events are the history's ops, in order.
	Events []Event
	// Micros are the micro-ops of every send, poll and txn, op after op.
	Micros []Micro
	// Reads are the results of polls: per poll micro-op, one entry per key
	// it read, keys in [CompareKeys] order. RecsOf gives their records.
	Reads []KeyRead
	// Lists hold the keys of assigns and subscribes and of rebalance logs.
	Lists []Sym
	// Offsets hold the offsets of commits and of committed's results.
	Offsets []OffsetEntry

	// recVals are the values of every read's records, and recOffs the
	// offsets of the reads whose offsets do not run on one by one.
	recVals []ValueID
	recOffs []int64

	strs       []string
	symOf      map[string]Sym
	raws       [][]byte           // raw values (nemesis descriptions), by Event.Value.Start
	rebalances [][]RebalanceEntry // rebalance logs, by Event.Rebalance-1
	groups     []Sym              // consumer groups, by Event.Group-1
	// textValues is set once some value is not an integer: from then on a
	// ValueID is an index into vals rather than the integer itself.
	textValues bool
	valTable   []Val
	valOf      map[Val]ValueID
}

// Sym names a string of a [History]: a function, key, node or error.
// [History.Text] gives it back; 0 is the empty string.
type Sym uint32

// Span is a stretch [Start, Start+Len) of one of a History's arrays.
type Span struct{ Start, Len uint32 }

// End is Start+Len.
func (s Span) End() uint32 { return s.Start + s.Len }

// ValueID stands for a message value of a [History]. Equal values have
// equal ids, so analyses compare ids; [History.Val] gives the value. In a
// history whose values are all integers (every history Garantia records)
// the id is the integer itself.
type ValueID int64

// Kind is an event's [Type], in one byte.
type Kind uint8

// The kinds of event, as [Type] has them.
const (
	KindInvoke Kind = iota
	KindOK
	KindFail
	KindInfo
)

var kindTypes = [...]Type{Invoke, OK, Fail, Info}

// Type returns the kind as a [Type].
func (k Kind) Type() Type { return kindTypes[k] }

func kindOf(t Type) Kind {
	switch t {
	case OK:
		return KindOK
	case Fail:
		return KindFail
	case Info:
		return KindInfo
	}
	return KindInvoke
}

// Form says which of an event's value forms it has.
type Form uint8

// The forms of an event's value (see [Value]).
const (
	FormNull    Form = iota // null
	FormMops                // micro-ops: Event.Value spans Micros
	FormKeys                // keys: Event.Value spans Lists
	FormRaw                 // anything else, kept as JSON (History.Raw)
	FormOffsets             // a group's offsets: Event.Value spans Offsets
)

// Event is one op of a [History].
type Event struct {
	Index, Time, Process int64
	Kind                 Kind
	Form                 Form
	// Group is 0, or 1 + the index of the event's consumer group
	// (History.GroupOf). Two bytes, where the struct had padding.
	Group       uint16
	F           Sym
	Node, Error Sym
	// Value spans Micros (FormMops), Lists (FormKeys) or Offsets
	// (FormOffsets).
	Value Span
	// Partner is, for an invocation, the position of its completion and,
	// for a completion, the position of its invocation; -1 when there is
	// none (an invocation that never completed, a standalone nemesis
	// event, a fragment's first completion of a process).
	Partner int32
	// Rebalance is 0, or 1 + the index of the event's rebalance log
	// (History.Rebalances).
	Rebalance uint32
}

// OffsetEntry is one entry of a commit's offsets or of what a committed
// read: a key and its offset, or OffsetUnknown (none committed).
type OffsetEntry struct {
	Offset int64
	Key    Sym
}

// RebalanceEntry is one entry of a rebalance log: what happened (a
// [Rebalance] type, 0 for none) to which keys (a span of Lists).
type RebalanceEntry struct {
	Type Sym
	Keys Span
}

// IsClient reports whether the event was recorded by a client rather than
// the nemesis.
func (e *Event) IsClient() bool { return e.Process != NemesisProcess }

// Micro is one micro-op of a [History]: a send or a poll.
type Micro struct {
	// Offset is a send's offset, or OffsetPending or OffsetUnknown.
	Offset int64
	// Value is a send's value.
	Value ValueID
	// Reads is a poll's result: one entry of History.Reads per key read.
	Reads Span
	// Key is a send's key.
	Key Sym
	// Poll is true for a poll, false for a send.
	Poll bool
	// Result is true for a poll that carries its result (["poll", {...}]).
	Result bool
}

// KeyRead is what one poll read of one key (History.RecsOf gives its
// records).
type KeyRead struct {
	Key Sym
	// Recs spans the values of the records.
	Recs Span
	// Offs is 0 when the records' offsets are First, First+1, ...; else 1
	// + where their offsets start in the History's offsets.
	Offs  uint32
	First int64
}

// Rec is one record read: a value at an offset (or OffsetUnknown).
type Rec struct {
	Offset int64
	Value  ValueID
}

// Recs are the records of one read.
type Recs struct {
	// Vals are the records' values, in the order read.
	Vals  []ValueID
	first int64
	offs  []int64 // nil when the offsets run on from first
}

// Len is the number of records.
func (r Recs) Len() int { return len(r.Vals) }

// Offset is the offset of record i, or OffsetUnknown.
func (r Recs) Offset(i int) int64 {
	if r.offs != nil {
		return r.offs[i]
	}
	return r.first + int64(i)
}

// At is record i.
func (r Recs) At(i int) Rec { return Rec{Offset: r.Offset(i), Value: r.Vals[i]} }

// RecsOf returns the records of a read.
func (h *History) RecsOf(kr *KeyRead) Recs {
	rs := Recs{Vals: h.recVals[kr.Recs.Start:kr.Recs.End()], first: kr.First}
	if kr.Offs != 0 {
		rs.offs = h.recOffs[kr.Offs-1 : kr.Offs-1+kr.Recs.Len]
	}
	return rs
}

// Text returns the string s names.
func (h *History) Text(s Sym) string { return h.strs[s] }

// Lookup returns the Sym of a string, if the history has it.
func (h *History) Lookup(s string) (Sym, bool) {
	sym, ok := h.symOf[s]
	return sym, ok
}

// Records is the number of records all reads hold.
func (h *History) Records() int { return len(h.recVals) }

// Syms is the number of distinct strings: every Sym is below it.
func (h *History) Syms() int { return len(h.strs) }

// Val returns the value an id stands for.
func (h *History) Val(v ValueID) Val {
	if h.textValues {
		return h.valTable[v]
	}
	return Val{Int: int64(v)}
}

// IntValues reports whether every value is an integer, so that each
// ValueID is its value.
func (h *History) IntValues() bool { return !h.textValues }

// Raw returns a FormRaw event's value, as compact JSON.
func (h *History) Raw(e *Event) []byte {
	if e.Form != FormRaw {
		return nil
	}
	return h.raws[e.Value.Start]
}

// Rebalances returns the entries of an event's rebalance log.
func (h *History) Rebalances(e *Event) []RebalanceEntry {
	if e.Rebalance == 0 {
		return nil
	}
	return h.rebalances[e.Rebalance-1]
}

// OffsetsOf returns a FormOffsets event's offsets.
func (h *History) OffsetsOf(e *Event) []OffsetEntry {
	if e.Form != FormOffsets {
		return nil
	}
	return h.Offsets[e.Value.Start:e.Value.End()]
}

// GroupOf returns the consumer group an event names (0, the empty
// string, for none).
func (h *History) GroupOf(e *Event) Sym {
	if e.Group == 0 {
		return 0
	}
	return h.groups[e.Group-1]
}

// MicrosOf returns a FormMops event's micro-ops.
func (h *History) MicrosOf(e *Event) []Micro {
	if e.Form != FormMops {
		return nil
	}
	return h.Micros[e.Value.Start:e.Value.End()]
}

// KeysOf returns a FormKeys event's keys.
func (h *History) KeysOf(e *Event) []Sym {
	if e.Form != FormKeys {
		return nil
	}
	return h.Lists[e.Value.Start:e.Value.End()]
}

// Op returns event i as an [Op], as its history line has it.
func (h *History) Op(i int) Op {
	e := &h.Events[i]
	op := Op{Index: e.Index, Time: e.Time, Process: e.Process, Type: e.Kind.Type(),
		F: h.strs[e.F], Node: h.strs[e.Node], Error: h.strs[e.Error], Group: h.strs[h.GroupOf(e)]}
	switch e.Form {
	case FormMops:
		op.Value.Mops = make([]Mop, 0, e.Value.Len)
		for _, m := range h.MicrosOf(e) {
			if !m.Poll {
				v := h.Val(m.Value)
				op.Value.Mops = append(op.Value.Mops, Mop{F: MopSend, Key: h.strs[m.Key], Offset: m.Offset, Value: v.Int, Text: v.Text})
				continue
			}
			mop := Mop{F: MopPoll}
			if m.Result {
				mop.Polls = make(map[string][]Record, m.Reads.Len)
				for _, kr := range h.Reads[m.Reads.Start:m.Reads.End()] {
					var recs []Record
					rs := h.RecsOf(&kr)
					for i, id := range rs.Vals {
						v := h.Val(id)
						recs = append(recs, Record{Offset: rs.Offset(i), Value: v.Int, Text: v.Text})
					}
					mop.Polls[h.strs[kr.Key]] = recs
				}
			}
			op.Value.Mops = append(op.Value.Mops, mop)
		}
	case FormKeys:
		op.Value.Keys = make([]string, 0, e.Value.Len)
		for _, k := range h.KeysOf(e) {
			op.Value.Keys = append(op.Value.Keys, h.strs[k])
		}
	case FormRaw:
		op.Value.Raw = h.raws[e.Value.Start]
	case FormOffsets:
		op.Value.Offsets = make([]KeyOffset, 0, e.Value.Len)
		for _, o := range h.OffsetsOf(e) {
			op.Value.Offsets = append(op.Value.Offsets, KeyOffset{Key: h.strs[o.Key], Offset: o.Offset})
		}
	}
	if e.Rebalance != 0 {
		op.RebalanceLog = []Rebalance{}
	}
	for _, re := range h.Rebalances(e) {
		rb := Rebalance{Type: h.strs[re.Type], Keys: []string{}}
		for _, k := range h.Lists[re.Keys.Start:re.Keys.End()] {
			rb.Keys = append(rb.Keys, h.strs[k])
		}
		op.RebalanceLog = append(op.RebalanceLog, rb)
	}
	return op
}

// ErrTooLarge says a history has more events, micro-ops or records than a
// History can index (2^31 events, 2^32 of the others).
var ErrTooLarge = errors.New("history is too large to analyse: more than 2^31 events or 2^32 micro-ops or records")

// builder makes a History from ops arriving in order: it pairs them
// (failing at the first break of the rules) and stores them compactly.
// It is an opSink, so a reader can feed it block by block.
type builder struct {
	h      *History
	pairer *pairer
	// lines says whether the ops come with lines (from a file): errors
	// then name the file and line, else the op's index.
	lines   bool
	keysTmp []string
	groupOf map[Sym]uint16 // Event.Group by the group's name
}

func newBuilder(name string, fragment, lines bool, hint int) *builder {
	h := &History{
		Name:     name,
		Fragment: fragment,
		Events:   make([]Event, 0, hint),
		Micros:   make([]Micro, 0, hint),
		strs:     []string{""},
		symOf:    map[string]Sym{"": 0},
	}
	b := &builder{h: h, pairer: newPairer(fragment), lines: lines, groupOf: map[Sym]uint16{}}
	b.pairer.copies = new(slab[Mop]) // a reader reuses the ops' memory (keeps is false)
	return b
}

func (b *builder) keeps() bool { return false }

func (b *builder) add(ops []Op, lines []int32) error {
	for i := range ops {
		if err := b.addOp(&ops[i], lines[i]); err != nil {
			return err
		}
	}
	return nil
}

// reserve sizes the History's arrays for a history scale times what has
// been added so far (with a little room), so that they are not copied
// again and again as they grow, nor left much bigger than needed.
func (b *builder) reserve(scale float64) {
	h := b.h
	h.Events = resize(h.Events, scale)
	h.Micros = resize(h.Micros, scale)
	h.Reads = resize(h.Reads, scale)
	h.recVals = resize(h.recVals, scale)
	h.Lists = resize(h.Lists, scale)
}

func resize[T any](s []T, scale float64) []T {
	want := int(float64(len(s))*scale*1.04) + 1024
	if c := cap(s); c >= want && c <= want+want/4 {
		return s
	}
	out := make([]T, len(s), want)
	copy(out, s)
	return out
}

// finish returns the History once every op has been added.
func (b *builder) finish() *History {
	b.h.Drain = b.pairer.drain
	return b.h
}

// pairingError is a break of the pairing rules: its message says which
// op broke which rule, and errors.Is finds the rule.
type pairingError struct{ p *PairProblem }

func (e *pairingError) Error() string { return e.p.Msg }
func (e *pairingError) Unwrap() error { return e.p.Err }

func (b *builder) fail(op *Op, line int32, err error) error {
	if b.lines {
		return &ParseError{File: b.h.Name, Line: int(line), Err: err}
	}
	if b.h.Name != "" {
		return fmt.Errorf("%s: op index %d: %w", b.h.Name, op.Index, err)
	}
	return fmt.Errorf("op index %d: %w", op.Index, err)
}

func (b *builder) addOp(op *Op, line int32) error {
	h := b.h
	pos := len(h.Events)
	if pos >= math.MaxInt32 {
		return b.fail(op, line, ErrTooLarge)
	}
	inv, prob := b.pairer.step(pos, op)
	if prob != nil {
		return b.fail(op, line, &pairingError{prob})
	}
	e := Event{Index: op.Index, Time: op.Time, Process: op.Process, Kind: kindOf(op.Type),
		F: b.sym(op.F), Node: b.sym(op.Node), Error: b.sym(op.Error), Partner: -1}
	if err := CheckValueForm(op.F, &op.Value); err != nil {
		return b.fail(op, line, err)
	}
	if op.Group != "" {
		g, err := b.group(op.Group)
		if err != nil {
			return b.fail(op, line, err)
		}
		e.Group = g
	}
	var err error
	switch v := &op.Value; {
	case v.Mops != nil:
		e.Form = FormMops
		e.Value, err = b.addMops(v.Mops)
	case v.Keys != nil:
		e.Form = FormKeys
		e.Value, err = b.addList(v.Keys)
	case v.Raw != nil:
		e.Form = FormRaw
		e.Value = Span{Start: uint32(len(h.raws))}
		h.raws = append(h.raws, v.Raw)
	case v.Offsets != nil:
		e.Form = FormOffsets
		if e.Value, err = span(len(h.Offsets), len(v.Offsets)); err == nil {
			for _, o := range v.Offsets {
				h.Offsets = append(h.Offsets, OffsetEntry{Key: b.sym(o.Key), Offset: o.Offset})
			}
		}
	}
	if err != nil {
		return b.fail(op, line, err)
	}
	if op.RebalanceLog != nil {
		log := make([]RebalanceEntry, 0, len(op.RebalanceLog))
		for _, rb := range op.RebalanceLog {
			sp, err := b.addList(rb.Keys)
			if err != nil {
				return b.fail(op, line, err)
			}
			log = append(log, RebalanceEntry{Type: b.sym(rb.Type), Keys: sp})
		}
		h.rebalances = append(h.rebalances, log)
		e.Rebalance = uint32(len(h.rebalances))
	}
	if inv >= 0 {
		e.Partner = int32(inv)
		h.Events[inv].Partner = int32(pos)
	}
	h.Events = append(h.Events, e)
	return nil
}

// maxGroups is how many consumer groups a History can name: Event.Group
// has two bytes.
const maxGroups = math.MaxUint16

// group returns the Event.Group of a consumer group's name.
func (b *builder) group(name string) (uint16, error) {
	sym := b.sym(name)
	if i, ok := b.groupOf[sym]; ok {
		return i, nil
	}
	if len(b.h.groups) >= maxGroups {
		return 0, fmt.Errorf("%w: more than %d consumer groups", ErrTooLarge, maxGroups)
	}
	b.h.groups = append(b.h.groups, sym)
	i := uint16(len(b.h.groups))
	b.groupOf[sym] = i
	return i, nil
}

func (b *builder) sym(s string) Sym {
	if sym, ok := b.h.symOf[s]; ok {
		return sym
	}
	sym := Sym(len(b.h.strs))
	b.h.strs = append(b.h.strs, s)
	b.h.symOf[s] = sym
	return sym
}

// span returns the Span of n entries appended at start, or ErrTooLarge.
func span(start, n int) (Span, error) {
	if start+n > math.MaxUint32 {
		return Span{}, ErrTooLarge
	}
	return Span{Start: uint32(start), Len: uint32(n)}, nil
}

func (b *builder) addList(keys []string) (Span, error) {
	sp, err := span(len(b.h.Lists), len(keys))
	if err != nil {
		return sp, err
	}
	for _, k := range keys {
		b.h.Lists = append(b.h.Lists, b.sym(k))
	}
	return sp, nil
}

func (b *builder) addMops(mops []Mop) (Span, error) {
	h := b.h
	sp, err := span(len(h.Micros), len(mops))
	if err != nil {
		return sp, err
	}
	for i := range mops {
		m := &mops[i]
		if m.F == MopSend {
			if m.Offset < OffsetPending {
				return sp, fmt.Errorf("micro-op %d: send of %s to key %q has offset %d, want >= 0 or unknown", i, MopVal(m), m.Key, m.Offset)
			}
			if m.Text != "" {
				if _, err := appendMessage(nil, m.Value, m.Text, &jsonNotation); err != nil {
					return sp, fmt.Errorf("micro-op %d: %w", i, err)
				}
			}
			h.Micros = append(h.Micros, Micro{Key: b.sym(m.Key), Offset: m.Offset, Value: h.valueID(m.Value, m.Text)})
			continue
		}
		if m.F != MopPoll {
			return sp, fmt.Errorf("micro-op %d: f %q is neither send nor poll", i, m.F)
		}
		mi := Micro{Poll: true, Result: m.Polls != nil}
		if m.Polls != nil {
			keys := b.keysTmp[:0]
			for k := range m.Polls {
				keys = append(keys, k)
			}
			slices.SortFunc(keys, CompareKeys)
			b.keysTmp = keys
			if mi.Reads, err = span(len(h.Reads), len(keys)); err != nil {
				return sp, err
			}
			for _, k := range keys {
				recs := m.Polls[k]
				rs, err := span(len(h.recVals), len(recs))
				if err != nil {
					return sp, err
				}
				kr := KeyRead{Key: b.sym(k), Recs: rs}
				dense := true
				for j := range recs {
					if recs[j].Offset < 0 && recs[j].Offset != OffsetUnknown {
						return sp, fmt.Errorf("poll of key %q: record %d has offset %d, want >= 0 or unknown", k, j, recs[j].Offset)
					}
					if recs[j].Text != "" {
						if _, err := appendMessage(nil, recs[j].Value, recs[j].Text, &jsonNotation); err != nil {
							return sp, fmt.Errorf("poll of key %q: record %d: %w", k, j, err)
						}
					}
					dense = dense && recs[j].Offset >= 0 && recs[j].Offset == recs[0].Offset+int64(j)
					h.recVals = append(h.recVals, h.valueID(recs[j].Value, recs[j].Text))
				}
				if len(recs) > 0 {
					kr.First = recs[0].Offset
				}
				if !dense {
					if _, err := span(len(h.recOffs), len(recs)); err != nil {
						return sp, err
					}
					kr.Offs = uint32(len(h.recOffs)) + 1
					for j := range recs {
						h.recOffs = append(h.recOffs, recs[j].Offset)
					}
				}
				h.Reads = append(h.Reads, kr)
			}
		}
		h.Micros = append(h.Micros, mi)
	}
	return sp, nil
}

// valueID returns the id of a value. The first value that is not an
// integer turns every id into an index of the value table (once, over
// what was stored so far), so that a history of integers pays nothing.
func (h *History) valueID(n int64, text string) ValueID {
	if !h.textValues {
		if text == "" {
			return ValueID(n)
		}
		h.useValueTable()
	}
	v := Val{Int: n, Text: text}
	if id, ok := h.valOf[v]; ok {
		return id
	}
	id := ValueID(len(h.valTable))
	h.valTable = append(h.valTable, v)
	h.valOf[v] = id
	return id
}

func (h *History) useValueTable() {
	h.textValues = true
	h.valOf = make(map[Val]ValueID)
	for i := range h.Micros {
		if m := &h.Micros[i]; !m.Poll {
			m.Value = h.valueID(int64(m.Value), "")
		}
	}
	for i := range h.recVals {
		h.recVals[i] = h.valueID(int64(h.recVals[i]), "")
	}
}

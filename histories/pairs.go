package histories

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Pairing links each invocation in a history to the event that completed
// it. Positions are indexes into the ops slice given to [Pair], not
// Op.Index (which need not be dense).
type Pairing struct {
	// Completion[i] is the position of the event that completed the
	// invocation ops[i], or -1 when ops[i] is not an invocation or never
	// completed (the test ended first, or the process crashed).
	Completion []int
	// Invocation[j] is the position of the invocation that ops[j]
	// completed, or -1 when ops[j] is an invocation or completed nothing (a
	// standalone nemesis event, or a broken history's stray completion).
	Invocation []int
}

// The ways a history can break the rule that a client process runs one
// operation at a time, and that a completion reports on the operation its
// process invoked; [PairProblem.Err] is one of these.
var (
	// ErrDoubleInvoke: a process invoked an operation while its previous
	// one was still open. The earlier one is left uncompleted.
	ErrDoubleInvoke = errors.New("process invoked an operation before its previous one completed")
	// ErrOrphanCompletion: a completion with no open invocation on its
	// process.
	ErrOrphanCompletion = errors.New("completion without an invocation")
	// ErrCompletionF: a completion whose f differs from its invocation's.
	// The two are still paired.
	ErrCompletionF = errors.New("completion's f differs from its invocation's")
	// ErrCompletionMops: a completion whose micro-operations are not its
	// invocation's: another number of them, another function, or a send of
	// another value or key. The two are still paired.
	ErrCompletionMops = errors.New("completion's micro-operations differ from its invocation's")
	// ErrCompletionOffsets: a commit's completion whose offsets are not
	// the ones invoked, or a committed's whose keys are not the ones
	// asked for. The two are still paired.
	ErrCompletionOffsets = errors.New("completion's offsets differ from its invocation's")
	// ErrDrainMarker: a completed final drain with no drain invocation
	// before it, so nothing says where the drain began.
	ErrDrainMarker = errors.New("drain completion without a drain invocation")
)

// PairProblem is one place where a history breaks the one-operation-at-a-
// time rule.
type PairProblem struct {
	Err   error  // one of the Err variables above
	Pos   int    // position of the op that broke the rule
	Other int    // position of the invocation it conflicts with, or -1
	Msg   string // the problem in words, with indexes and processes
}

// PairError lists every problem [Pair] found.
type PairError struct {
	Problems []PairProblem
}

// pairErrorShown is how many problems PairError's message spells out.
const pairErrorShown = 5

func (e *PairError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "histories: %d operation(s) break the rule that a process runs one operation at a time: ", len(e.Problems))
	for i, p := range e.Problems {
		if i == pairErrorShown {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-pairErrorShown)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// Unwrap returns the kinds of problem found, for errors.Is.
func (e *PairError) Unwrap() []error {
	var kinds []error
	for _, p := range e.Problems {
		found := false
		for _, k := range kinds {
			found = found || k == p.Err
		}
		if !found {
			kinds = append(kinds, p.Err)
		}
	}
	return kinds
}

// Pair matches every client invocation with its completion: the next event
// of the same process. It checks that each client process runs one
// operation at a time and that each completion reports on the operation
// its process invoked, and reports every break of those rules in a
// *PairError; the Pairing it returns alongside is complete as far as the
// history allows, so a caller may go on with it after reporting the error.
// [Load], [LoadHistory] and [FromOps] pair by the same rules (they stop at
// the first problem and name its line).
//
// Nemesis events (process [NemesisProcess]) are not held to the rule: they
// may be standalone info events or invoke/completion pairs, and a nemesis
// completion is paired with the open nemesis invocation of the same f, if
// there is one. The drain markers ([FDrain]) are the exception: a
// completed drain must have been invoked.
func Pair(ops []Op) (*Pairing, error) {
	p := &Pairing{
		Completion: make([]int, len(ops)),
		Invocation: make([]int, len(ops)),
	}
	for i := range ops {
		p.Completion[i], p.Invocation[i] = -1, -1
	}
	pr := newPairer(false)
	var problems []PairProblem
	for i := range ops {
		j, prob := pr.step(i, &ops[i])
		if prob != nil {
			prob.Msg = describeOp(ops, i) + ": " + prob.Msg
			problems = append(problems, *prob)
		}
		if j >= 0 {
			p.Completion[j], p.Invocation[i] = i, j
		}
	}
	if problems != nil {
		return p, &PairError{Problems: problems}
	}
	return p, nil
}

// describeOp names ops[i] for an error message.
func describeOp(ops []Op, i int) string {
	op := &ops[i]
	return fmt.Sprintf("op %d (index %d, process %d, %s %s)", i, op.Index, op.Process, op.Type, op.F)
}

// pairer pairs invocations and completions as ops arrive in history order,
// and follows the drain markers. It is the one implementation of the
// pairing rules: [Pair], the loaders and [FromOps] all step through it.
type pairer struct {
	// fragment accepts completions whose invocation came before the
	// history began: a process's first event may be a completion.
	fragment bool
	open     map[int64]pendingInv // client process -> its open invocation
	nemesis  map[string]int       // nemesis f -> position of its open invocation
	seen     map[int64]struct{}   // processes met so far (fragment only)
	drain    Drain
	// drainOpen is the position of a drain invocation not yet completed,
	// or -1.
	drainOpen int
	// copies holds copies of open invocations' micro-ops when the ops'
	// memory is reused after each step (see arena); nil when it is not.
	copies *slab[Mop]
}

// pendingInv is what the pairer keeps of an open invocation to judge its
// completion.
type pendingInv struct {
	pos   int
	index int64
	f     string
	mops  []Mop
	// keys and offsets are a committed's or a commit's value (decoders
	// allocate them afresh, so they outlive the reader's arena).
	keys    []string
	offsets []KeyOffset
}

func newPairer(fragment bool) *pairer {
	p := &pairer{
		fragment:  fragment,
		open:      make(map[int64]pendingInv),
		nemesis:   make(map[string]int),
		drainOpen: -1,
		drain:     Drain{State: DrainNotRecorded, Start: -1, End: -1},
	}
	if fragment {
		p.seen = make(map[int64]struct{})
	}
	return p
}

// step takes the op at position pos. It returns the position of the
// invocation op completes (-1: none) and, when op breaks a rule, the
// problem (Msg without the op's own description; the caller adds where it
// is).
func (p *pairer) step(pos int, op *Op) (int, *PairProblem) {
	if !op.IsClient() {
		return p.stepNemesis(pos, op)
	}
	prev, isOpen := p.open[op.Process]
	first := false
	if p.fragment {
		if _, ok := p.seen[op.Process]; !ok {
			first = true
			p.seen[op.Process] = struct{}{}
		}
	}
	if op.Type == Invoke {
		mops := op.Value.Mops
		if p.copies != nil && len(mops) > 0 {
			mops = p.copies.copyOf(mops, slabMops, false)
		}
		inv := pendingInv{pos: pos, index: op.Index, f: op.F, mops: mops}
		if isOffsetsF(op.F) {
			inv.keys, inv.offsets = op.Value.Keys, op.Value.Offsets
		}
		p.open[op.Process] = inv
		if isOpen {
			return -1, &PairProblem{Err: ErrDoubleInvoke, Pos: pos, Other: prev.pos, Msg: fmt.Sprintf(
				"process %d invokes %s while its %s invoked at index %d has not completed: a process runs one operation at a time",
				op.Process, op.F, prev.f, prev.index)}
		}
		return -1, nil
	}
	if !isOpen {
		if first {
			return -1, nil // invoked before the fragment began
		}
		return -1, &PairProblem{Err: ErrOrphanCompletion, Pos: pos, Other: -1, Msg: fmt.Sprintf(
			"%s %s completes nothing: process %d has no operation open (every completion follows its process's invocation)",
			op.Type, op.F, op.Process)}
	}
	delete(p.open, op.Process)
	if prev.f != op.F {
		return prev.pos, &PairProblem{Err: ErrCompletionF, Pos: pos, Other: prev.pos, Msg: fmt.Sprintf(
			"%s %s completes the %s process %d invoked at index %d: a completion must have its invocation's f",
			op.Type, op.F, prev.f, op.Process, prev.index)}
	}
	if why := mopsDiffer(prev.mops, op.Value.Mops); why != "" {
		return prev.pos, &PairProblem{Err: ErrCompletionMops, Pos: pos, Other: prev.pos, Msg: fmt.Sprintf(
			"%s %s does not report on the micro-operations process %d invoked at index %d: %s",
			op.Type, op.F, op.Process, prev.index, why)}
	}
	if isOffsetsF(op.F) {
		if why := offsetsDiffer(&prev, &op.Value); why != "" {
			return prev.pos, &PairProblem{Err: ErrCompletionOffsets, Pos: pos, Other: prev.pos, Msg: fmt.Sprintf(
				"%s %s does not report on the offsets process %d invoked at index %d: %s",
				op.Type, op.F, op.Process, prev.index, why)}
		}
	}
	return prev.pos, nil
}

// offsetsDiffer says how a commit's or committed's completion differs from
// its invocation, or "" when it agrees: a commit completes with the
// offsets it invoked (or null); a committed with an offset for each key it
// asked for and no other (or null, or the keys again). A value left null
// on either side agrees with anything.
func offsetsDiffer(inv *pendingInv, done *Value) string {
	// The invocation's keys: a commit's offsets' keys, or a committed's.
	var want []string
	switch {
	case inv.offsets != nil:
		for _, o := range inv.offsets {
			want = append(want, o.Key)
		}
	case inv.keys != nil:
		want = inv.keys
	default:
		return ""
	}
	var got []string
	switch {
	case done.Offsets != nil:
		for _, o := range done.Offsets {
			got = append(got, o.Key)
		}
	case done.Keys != nil:
		got = done.Keys
	default:
		return ""
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d key(s) completed, %d invoked", len(got), len(want))
	}
	for _, k := range want {
		if !slices.Contains(got, k) {
			return fmt.Sprintf("key %q was invoked and is missing from the completion", k)
		}
	}
	if inv.offsets != nil && done.Offsets != nil {
		for _, o := range done.Offsets {
			for _, w := range inv.offsets {
				if w.Key == o.Key && w.Offset != o.Offset {
					return fmt.Sprintf("key %q completes with offset %d, invoked with %d", o.Key, o.Offset, w.Offset)
				}
			}
		}
	}
	return ""
}

// mopsDiffer says how a completion's micro-ops differ from its
// invocation's, or "" when they agree: as many of them, each of the same
// function, each send of the same value to the same key. A completion
// without micro-ops (null) reports nothing and agrees with any invocation.
func mopsDiffer(inv, done []Mop) string {
	if done == nil || inv == nil {
		return ""
	}
	if len(done) != len(inv) {
		return fmt.Sprintf("%d micro-op(s) completed, %d invoked", len(done), len(inv))
	}
	for i := range inv {
		a, b := &inv[i], &done[i]
		switch {
		case a.F != b.F:
			return fmt.Sprintf("micro-op %d completes as %s, invoked as %s", i, b.F, a.F)
		case a.F == MopSend && a.Key != b.Key:
			return fmt.Sprintf("micro-op %d completes as a send to key %q, invoked to key %q", i, b.Key, a.Key)
		case a.F == MopSend && (a.Value != b.Value || a.Text != b.Text):
			return fmt.Sprintf("micro-op %d completes as a send of %s, invoked with %s", i, mopValue(b), mopValue(a))
		}
	}
	return ""
}

func mopValue(m *Mop) string { return MopVal(m).String() }

// stepNemesis pairs a nemesis event and follows the drain markers.
func (p *pairer) stepNemesis(pos int, op *Op) (int, *PairProblem) {
	inv := -1
	if op.Type == Invoke {
		p.nemesis[op.F] = pos
	} else if j, ok := p.nemesis[op.F]; ok {
		inv = j
		delete(p.nemesis, op.F)
	}
	if op.F != FDrain {
		return inv, nil
	}
	switch op.Type {
	case Invoke:
		p.drainOpen = pos
		if p.drain.State != DrainCompleted {
			p.drain = Drain{State: DrainUnfinished, Start: pos, End: -1}
		}
	case OK:
		if p.drainOpen < 0 {
			return inv, &PairProblem{Err: ErrDrainMarker, Pos: pos, Other: -1, Msg: "the final drain completes, but no drain was invoked before it: the drain's invocation says from when every partition was read to its end"}
		}
		p.drain = Drain{State: DrainCompleted, Start: p.drainOpen, End: pos}
		p.drainOpen = -1
	default:
		if p.drainOpen >= 0 && p.drain.State != DrainCompleted {
			p.drain = Drain{State: DrainCutShort, Start: p.drainOpen, End: pos, Error: op.Error}
		}
		p.drainOpen = -1
	}
	return inv, nil
}

// DrainState says whether a history records a completed final drain.
type DrainState uint8

// The states of a history's final drain.
const (
	// DrainNotRecorded: the history has no drain markers.
	DrainNotRecorded DrainState = iota
	// DrainUnfinished: a drain was invoked and never completed (the
	// history ends inside it).
	DrainUnfinished
	// DrainCutShort: a drain was invoked and completed info (or fail): it
	// stopped before reading every partition to its end.
	DrainCutShort
	// DrainCompleted: a drain was invoked and completed ok: every
	// partition was read to the end offset it had when the drain began.
	DrainCompleted
)

var drainStateNames = [...]string{"not-recorded", "unfinished", "cut-short", "completed"}

// String is the state's name in results.json: not-recorded, unfinished,
// cut-short or completed.
func (s DrainState) String() string {
	if int(s) < len(drainStateNames) {
		return drainStateNames[s]
	}
	return fmt.Sprintf("DrainState(%d)", s)
}

// Drain is what a history's [FDrain] markers say about its final drain.
// With several drains, the last completed one counts, else the last one.
type Drain struct {
	State DrainState
	// Start and End are the positions of the drain's invocation and
	// completion, -1 when there is none.
	Start, End int
	// Error is why a drain was cut short, when its completion said.
	Error string
}

package histories

import (
	"errors"
	"fmt"
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
// operation at a time; [PairProblem.Err] is one of these.
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
)

// PairProblem is one place where a history breaks the one-operation-at-a-
// time rule.
type PairProblem struct {
	Err   error  // ErrDoubleInvoke, ErrOrphanCompletion or ErrCompletionF
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
// operation at a time, and reports every break of that rule in a
// *PairError; the Pairing it returns alongside is complete as far as the
// history allows, so a checker may go on with it after reporting the error.
//
// Nemesis events (process [NemesisProcess]) are not held to the rule: they
// may be standalone info events or invoke/completion pairs, and a nemesis
// completion is paired with the open nemesis invocation of the same f, if
// there is one.
func Pair(ops []Op) (*Pairing, error) {
	p := &Pairing{
		Completion: make([]int, len(ops)),
		Invocation: make([]int, len(ops)),
	}
	for i := range ops {
		p.Completion[i], p.Invocation[i] = -1, -1
	}
	open := make(map[int64]int)         // process -> position of its open invocation
	nemesisOpen := make(map[string]int) // f -> position of an open nemesis invocation
	var problems []PairProblem
	for i := range ops {
		op := &ops[i]
		if !op.IsClient() {
			if op.Type == Invoke {
				nemesisOpen[op.F] = i
			} else if j, ok := nemesisOpen[op.F]; ok {
				p.Completion[j], p.Invocation[i] = i, j
				delete(nemesisOpen, op.F)
			}
			continue
		}
		j, isOpen := open[op.Process]
		if op.Type == Invoke {
			if isOpen {
				problems = append(problems, PairProblem{Err: ErrDoubleInvoke, Pos: i, Other: j, Msg: fmt.Sprintf(
					"%s: process %d invoked again while its invocation %s was open",
					describeOp(ops, i), op.Process, describeOp(ops, j))})
			}
			open[op.Process] = i
			continue
		}
		if !isOpen {
			problems = append(problems, PairProblem{Err: ErrOrphanCompletion, Pos: i, Other: -1, Msg: fmt.Sprintf(
				"%s: completion without an invocation: process %d had no open operation",
				describeOp(ops, i), op.Process)})
			continue
		}
		if ops[j].F != op.F {
			problems = append(problems, PairProblem{Err: ErrCompletionF, Pos: i, Other: j, Msg: fmt.Sprintf(
				"%s: completes %s, invoked as %q",
				describeOp(ops, i), describeOp(ops, j), ops[j].F)})
		}
		p.Completion[j], p.Invocation[i] = i, j
		delete(open, op.Process)
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

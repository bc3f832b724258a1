package histories

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ErrNoOps says a file holds no operation at all: nothing to check.
var ErrNoOps = errors.New("no line is an operation: this is not a history (or only its torn last line was written)")

// LoadOptions configure [LoadHistory] and [FromOps].
type LoadOptions struct {
	// Fragment accepts a history cut from the middle of a longer one, as
	// people paste into bug reports: a process's first event may complete
	// an operation whose invocation came before the cut. Such a
	// completion is kept without an invocation (History.Events[i].Partner
	// is -1), and the analyses take it as invoked before the history
	// began. Every other rule of pairing still holds.
	Fragment bool
}

// isEDN reports whether path names a Jepsen EDN history: the one rule by
// which the loaders pick the format.
func isEDN(path string) bool { return strings.EqualFold(filepath.Ext(path), ".edn") }

// Load reads a history file of either format (Jepsen EDN when the name
// ends in .edn, JSON Lines otherwise) and checks it as [LoadHistory] does:
// well-formed lines in the order they happened, invocations and
// completions that pair up, at least one op. Errors name the file and
// line. Use [ResolveHistory] first to accept run folders and store links
// too. Analyses want the compact [History] of [LoadHistory]; Load keeps
// every op as an [Op], for reports and conversions.
func Load(path string) (ops []Op, warnings []string, err error) {
	var l *opList
	if isEDN(path) {
		l, warnings, err = readEDNFileInto(path)
	} else {
		l, warnings, err = readFileInto(path, func(hint int) *opList { return &opList{ops: make([]Op, 0, hint)} })
	}
	if err != nil {
		return nil, warnings, err
	}
	if len(l.ops) == 0 {
		return nil, warnings, fmt.Errorf("%s: %w", path, ErrNoOps)
	}
	pr := newPairer(false)
	for i := range l.ops {
		if _, prob := pr.step(i, &l.ops[i]); prob != nil {
			return nil, warnings, &ParseError{File: path, Line: l.lines.of(i), Err: &pairingError{prob}}
		}
	}
	return l.ops, warnings, nil
}

// LoadHistory reads a history file of either format, as [Load] does, into
// a compact [History] for analysis. A JSON Lines file is decoded on all
// CPUs and stored as it is read, so memory follows the History, not the
// file's ops.
func LoadHistory(path string, opts LoadOptions) (*History, error) {
	var b *builder
	var warnings []string
	var err error
	if isEDN(path) {
		var l *opList
		if l, warnings, err = readEDNFileInto(path); err == nil {
			b = newBuilder(path, opts.Fragment, true, len(l.ops))
			err = b.addAll(l)
		}
	} else {
		// No hint from the file's size: the builder sizes itself from the
		// first megabytes it sees (reserve), so that a wrong guess does not
		// cost a History's worth of memory up front.
		b, warnings, err = readFileInto(path, func(int) *builder { return newBuilder(path, opts.Fragment, true, 0) })
	}
	if err != nil {
		return nil, err
	}
	h := b.finish()
	h.Warnings = warnings
	if len(h.Events) == 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrNoOps)
	}
	return h, nil
}

// addAll adds every op of l, with its line.
func (b *builder) addAll(l *opList) error {
	for i := range l.ops {
		if err := b.addOp(&l.ops[i], int32(l.lines.of(i))); err != nil {
			return err
		}
	}
	return nil
}

// FromOps makes a compact [History] of ops already in memory (a harness's
// own record, a test's), checked as [LoadHistory] checks a file except
// that no op is required; errors name the op's index. The History keeps
// references to the ops' raw values: do not change them afterwards.
func FromOps(ops []Op, opts LoadOptions) (*History, error) {
	b := newBuilder("", opts.Fragment, false, len(ops))
	var ord order
	for i := range ops {
		if err := ord.check(&ops[i]); err != nil {
			return nil, b.fail(&ops[i], 0, err)
		}
		if err := b.addOp(&ops[i], 0); err != nil {
			return nil, err
		}
	}
	return b.finish(), nil
}

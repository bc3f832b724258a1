package linear

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

// DefaultTimeout bounds a whole check when Options.Timeout is 0. A
// 100,000-operation history takes well under a second (see the benchmark),
// so this leaves room for histories a hundred times larger.
const DefaultTimeout = 60 * time.Second

// Options configure Check.
type Options struct {
	// Timeout bounds the whole check; 0 means DefaultTimeout. A key whose
	// search it cuts short is unknown, never valid.
	Timeout time.Duration
	// Workers is how many keys are checked at once; 0 means GOMAXPROCS.
	Workers int
	// VisualizeDir receives porcupine's HTML visualization,
	// linear-<key>.html, of every key found not linearizable; "" writes
	// none. It is created when the first such key is found.
	VisualizeDir string
}

// Result is the linearizability section of results.json.
type Result struct {
	// Valid composes the keys' verdicts: invalid beats unknown beats
	// valid. A history with no sends or polls is valid.
	Valid verdict.Verdict `json:"valid"`
	// Keys holds only the keys that are not valid (invalid or unknown), to
	// keep results small when there are many keys.
	Keys map[string]*KeyResult `json:"keys"`
	// KeysChecked counts every key with at least one send or read; the
	// other three split it.
	KeysChecked int `json:"keys-checked"`
	KeysValid   int `json:"keys-valid"`
	KeysInvalid int `json:"keys-invalid"`
	KeysUnknown int `json:"keys-unknown"`
	// Ops counts the operations over all keys, as porcupine saw them (an
	// op touching two keys counts twice).
	Ops int `json:"ops"`
	// TimeoutMs is the time budget the check had.
	TimeoutMs int64 `json:"timeout-ms"`
	// ElapsedMs is how long the whole check took.
	ElapsedMs int64 `json:"elapsed-ms"`
}

// KeyResult is the outcome for one key.
type KeyResult struct {
	Valid verdict.Verdict `json:"valid"`
	// Ops is the number of operations in the key's history.
	Ops int `json:"ops"`
	// Visualization is the path of porcupine's HTML for this key, when
	// one was written.
	Visualization string `json:"visualization,omitempty"`
	// Reason says why the key is not valid.
	Reason string `json:"reason,omitempty"`
	// ElapsedMs is how long the key's search took.
	ElapsedMs int64 `json:"elapsed-ms"`
}

// Check decides, for every key of the history, whether the key's log is
// linearizable (doc.go has the model), in parallel over keys and within
// opts.Timeout.
//
// It returns an error and no Result for a malformed history (a completion
// without an invocation, a value sent twice, a negative offset read). It
// returns a complete Result and an error when ctx ended before the check
// did (unchecked keys are unknown) or a visualization could not be written
// (the verdicts stand).
func Check(ctx context.Context, ops []histories.Op, opts Options) (*Result, error) {
	return check(ctx, ops, opts, config{segmentOps: segmentOps})
}

// config is what Check fixes and tests vary.
type config struct {
	segmentOps int // see segmentOps; <= 0 checks every key whole
}

func check(ctx context.Context, ops []histories.Op, opts Options, c config) (*Result, error) {
	start := time.Now()
	byKey, err := split(ops)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// One deadline for the whole check. Porcupine takes a timeout, not a
	// context, so a cancellation by the caller reaches the search through
	// stopped, which makes every model step fail; results found while it
	// was set are discarded (unknown), since a failing step can fake a
	// violation but never a linearization.
	budget, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := budget.Deadline()
	var stopped atomic.Bool
	unhook := context.AfterFunc(budget, func() { stopped.Store(true) })
	defer unhook()

	// Largest keys first, so that the last one to finish is a small one.
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if a, b := len(byKey[keys[i]]), len(byKey[keys[j]]); a != b {
			return a > b
		}
		return keys[i] < keys[j]
	})
	results := make([]*KeyResult, len(keys))
	vizErrs := make([]error, len(keys))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i], vizErrs[i] = checkKey(keys[i], byKey[keys[i]], deadline, &stopped, c.segmentOps, opts.VisualizeDir)
			}
		}()
	}
	for i := range keys {
		next <- i
	}
	close(next)
	wg.Wait()

	res := &Result{Keys: make(map[string]*KeyResult), KeysChecked: len(keys), TimeoutMs: timeout.Milliseconds()}
	vs := make([]verdict.Verdict, len(keys))
	for i, kr := range results {
		vs[i] = kr.Valid
		res.Ops += kr.Ops
		switch kr.Valid {
		case verdict.Valid:
			res.KeysValid++
			continue
		case verdict.Invalid:
			res.KeysInvalid++
		default:
			res.KeysUnknown++
		}
		res.Keys[keys[i]] = kr
	}
	res.Valid = verdict.Compose(vs...)
	res.ElapsedMs = time.Since(start).Milliseconds()
	err = errors.Join(vizErrs...)
	if ctx.Err() != nil {
		err = errors.Join(fmt.Errorf("linear: check interrupted, unchecked keys are unknown: %w", ctx.Err()), err)
	}
	return res, err
}

// checkKey runs porcupine on one key, segment after segment, and stops at
// the first segment that is not linearizable or not decided. The error is
// only about writing the visualization; the verdict stands regardless.
func checkKey(key string, ops []*kop, deadline time.Time, stopped *atomic.Bool, segOps int, vizDir string) (*KeyResult, error) {
	start := time.Now()
	m := newKeyModel(key, ops)
	kr := &KeyResult{Valid: verdict.Valid, Ops: len(ops)}
	defer func() { kr.ElapsedMs = time.Since(start).Milliseconds() }()
	segs := m.segments(segOps)
	for i, seg := range segs {
		remaining := time.Until(deadline)
		if remaining <= 0 || stopped.Load() {
			kr.Valid = verdict.Unknown
			kr.Reason = fmt.Sprintf("unknown: the time budget ran out after %d of %d segments", i, len(segs))
			return kr, nil
		}
		res, info := porcupine.CheckOperationsVerbose(m.model(seg.init, stopped), operations(seg.ops), remaining)
		switch {
		case res == porcupine.Ok:
			// Sound even if stopped was set meanwhile: a failing step
			// never produces a linearization.
			continue
		case res == porcupine.Unknown || stopped.Load():
			kr.Valid = verdict.Unknown
			kr.Reason = fmt.Sprintf("unknown: the search was cut short after %d ms, in segment %d of %d (time budget exhausted or check cancelled)",
				time.Since(start).Milliseconds(), i+1, len(segs))
			return kr, nil
		}
		kr.Valid = verdict.Invalid
		kr.Reason = m.reason(seg, info)
		if len(segs) > 1 {
			kr.Reason += fmt.Sprintf(" [segment %d of %d, %d ops]", i+1, len(segs), len(seg.ops))
		}
		if vizDir == "" {
			return kr, nil
		}
		path, err := visualize(m, seg, info, vizDir)
		if err != nil {
			return kr, fmt.Errorf("linear: key %q is not linearizable but its visualization could not be written: %w", key, err)
		}
		kr.Visualization = path
		return kr, nil
	}
	return kr, nil
}

// reason explains an invalid key: the claims no log can satisfy, if any,
// else the first operation that no linearization could place.
func (m *keyModel) reason(seg segment, info porcupine.LinearizationInfo) string {
	if m.nConflict > 0 {
		more := ""
		if m.nConflict > len(m.conflicts) {
			more = fmt.Sprintf(" (and %d more)", m.nConflict-len(m.conflicts))
		}
		return fmt.Sprintf("not linearizable: %s%s", strings.Join(m.conflicts, "; "), more)
	}
	var longest []int
	for _, partition := range info.PartialLinearizations() {
		for _, p := range partition {
			if len(p) > len(longest) {
				longest = p
			}
		}
	}
	in := make([]bool, len(seg.ops))
	s := seg.init
	for _, id := range longest {
		in[id] = true
		_, s = m.step(s, seg.ops[id])
	}
	// The op left out that had to take effect first is the culprit.
	var stuck *kop
	for id, o := range seg.ops {
		if in[id] {
			continue
		}
		if stuck == nil || o.ret < stuck.ret || (o.ret == stuck.ret && o.call < stuck.call) {
			stuck = o
		}
	}
	if stuck == nil {
		return "not linearizable"
	}
	return fmt.Sprintf("not linearizable: %s (%s) cannot take effect before it returns; the longest linearization found places %d of %d ops and leaves the log at %s",
		describe(stuck), describeWhere(stuck), len(longest), len(seg.ops), m.describeState(s))
}

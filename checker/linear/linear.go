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
	"github.com/garantia/garantia/internal/crash"
)

// DefaultTimeout bounds a whole check when Options.Timeout is 0. A
// 100,000-operation history takes well under a second (see the benchmark),
// so this leaves room for histories a hundred times larger.
const DefaultTimeout = 60 * time.Second

// DefaultMaxVisualizations is how many keys get porcupine's visualization
// when Options.MaxVisualizations is 0: enough to study, few enough that a
// run with thousands of bad keys does not write thousands of files.
const DefaultMaxVisualizations = 20

// Options configure Check.
type Options struct {
	// Timeout bounds the whole check; 0 means DefaultTimeout. A key whose
	// search it cuts short is unknown, never valid.
	Timeout time.Duration
	// Workers is how many keys are checked at once; 0 means GOMAXPROCS.
	Workers int
	// VisualizeDir receives porcupine's HTML visualization,
	// linear-<key>.html, of keys found not linearizable; "" writes none.
	// It is created when the first one is written.
	VisualizeDir string
	// MaxVisualizations bounds the visualizations written: the first keys
	// by name of those not linearizable; 0 means
	// DefaultMaxVisualizations, a negative number none.
	MaxVisualizations int
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
	// Visualizations is how many visualizations were written, and
	// VisualizationsOmitted how many keys not linearizable got none
	// because of Options.MaxVisualizations.
	Visualizations        int `json:"visualizations"`
	VisualizationsOmitted int `json:"visualizations-omitted"`
	// Warnings say what went wrong around the verdict without changing it:
	// a visualization that could not be written.
	Warnings []string `json:"warnings,omitempty"`
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
// opts.Timeout, then draws the visualizations.
//
// It returns a complete Result, and an error only when ctx ended before
// the check did (unchecked keys are then unknown). A visualization that
// cannot be written is a warning in the Result: the verdicts stand.
func Check(ctx context.Context, h *histories.History, opts Options) (*Result, error) {
	return check(ctx, h, opts, config{segmentOps: segmentOps})
}

// config is what Check fixes and tests vary.
type config struct {
	segmentOps int // see segmentOps; <= 0 checks every key whole
}

func check(ctx context.Context, h *histories.History, opts Options, c config) (*Result, error) {
	start := time.Now()
	byKey := keyIndex(h)
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
	syms := make([]histories.Sym, 0, len(byKey))
	for k := range byKey {
		syms = append(syms, k)
	}
	sort.Slice(syms, func(i, j int) bool {
		if a, b := len(byKey[syms[i]]), len(byKey[syms[j]]); a != b {
			return a > b
		}
		return h.Text(syms[i]) < h.Text(syms[j])
	})
	keys := make([]string, len(syms))
	todo := make([][]int32, len(syms))
	for i, k := range syms {
		keys[i], todo[i] = h.Text(k), byKey[k]
	}
	byKey = nil
	results := make([]*KeyResult, len(keys))
	err := forEach(len(keys), workers, func(i int) {
		results[i], _ = checkKey(h, splitKey(h, syms[i], todo[i]), deadline, &stopped, c.segmentOps)
		todo[i] = nil // let the key's index go
	})
	if err != nil {
		return nil, err
	}

	res := &Result{Keys: make(map[string]*KeyResult), KeysChecked: len(keys), TimeoutMs: timeout.Milliseconds()}
	vs := make([]verdict.Verdict, len(keys))
	var invalid []string
	for i, kr := range results {
		vs[i] = kr.Valid
		res.Ops += kr.Ops
		switch kr.Valid {
		case verdict.Valid:
			res.KeysValid++
			continue
		case verdict.Invalid:
			res.KeysInvalid++
			invalid = append(invalid, keys[i])
		default:
			res.KeysUnknown++
		}
		res.Keys[keys[i]] = kr
	}
	res.Valid = verdict.Compose(vs...)
	if opts.VisualizeDir != "" && len(invalid) > 0 {
		if err := visualizeKeys(h, res, invalid, opts, c); err != nil {
			return nil, err
		}
	}
	res.ElapsedMs = time.Since(start).Milliseconds()
	if ctx.Err() != nil {
		return res, fmt.Errorf("linear: check interrupted, unchecked keys are unknown: %w", ctx.Err())
	}
	return res, nil
}

// forEach runs f(0..n-1) on workers goroutines. A panic in f (a bug)
// comes back as an error, rather than killing the process from a
// goroutine nobody can recover.
func forEach(n, workers int, f func(i int)) error {
	next := make(chan int)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					errs[w] = crash.Errorf(r, "linear")
					for range next { // let the feeder finish
					}
				}
			}()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// visualizeKeys draws the first opts.MaxVisualizations keys of invalid
// (by name) into opts.VisualizeDir, checking them again (without a time
// limit: they were decided within it before) for porcupine's
// linearization info. The rest are counted as omitted.
func visualizeKeys(h *histories.History, res *Result, invalid []string, opts Options, c config) error {
	limit := opts.MaxVisualizations
	switch {
	case limit == 0:
		limit = DefaultMaxVisualizations
	case limit < 0:
		limit = 0
	}
	sort.Strings(invalid)
	drawn := invalid[:min(limit, len(invalid))]
	res.VisualizationsOmitted = len(invalid) - len(drawn)
	if len(drawn) == 0 {
		return nil
	}
	byKey := keyIndex(h)
	// The models of the check are garbage now; collect them before these
	// are built again (one key's model can be as big as its records).
	runtime.GC()
	return forEach(len(drawn), 1, func(i int) {
		key := drawn[i]
		sym, _ := h.Lookup(key)
		path, err := drawKey(h, splitKey(h, sym, byKey[sym]), c.segmentOps, opts.VisualizeDir)
		switch {
		case err != nil:
			res.Warnings = append(res.Warnings, fmt.Sprintf("key %q is not linearizable but its visualization could not be written: %v", key, err))
		case path != "":
			res.Keys[key].Visualization = path
			res.Visualizations++
		}
	})
}

// checkKey runs porcupine on one key, segment after segment, and stops at
// the first segment that is not linearizable or not decided. It returns
// the failing segment and porcupine's info about it, for a visualization.
func checkKey(h *histories.History, k *keyOps, deadline time.Time, stopped *atomic.Bool, segOps int) (*KeyResult, *failure) {
	start := time.Now()
	kr := &KeyResult{Valid: verdict.Valid, Ops: len(k.ops)}
	defer func() { kr.ElapsedMs = time.Since(start).Milliseconds() }()
	if k.sentTwice {
		// The model rests on each value being appended at most once.
		kr.Valid = verdict.Unknown
		kr.Reason = fmt.Sprintf("unknown: value %s was sent to this key twice, and the log model needs values to be unique (the queue checker judges the duplicates)", h.Val(k.twice))
		return kr, nil
	}
	m := newKeyModel(h, k)
	segs := m.segments(segOps)
	for i, seg := range segs {
		remaining := time.Until(deadline)
		if remaining <= 0 || (stopped != nil && stopped.Load()) {
			kr.Valid = verdict.Unknown
			kr.Reason = fmt.Sprintf("unknown: the time budget ran out after %d of %d segments", i, len(segs))
			return kr, nil
		}
		res, info := porcupine.CheckOperationsVerbose(m.model(seg.init, stopped), m.operations(seg.ops), remaining)
		switch {
		case res == porcupine.Ok:
			// Sound even if stopped was set meanwhile: a failing step
			// never produces a linearization.
			continue
		case res == porcupine.Unknown || (stopped != nil && stopped.Load()):
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
		return kr, &failure{m: m, seg: seg, info: info}
	}
	return kr, nil
}

// failure is what a visualization of a key needs.
type failure struct {
	m    *keyModel
	seg  segment
	info porcupine.LinearizationInfo
}

// drawKey checks k again and writes the visualization of its failing
// segment, returning its path ("" when the key turned out linearizable,
// which cannot happen for a key found invalid).
func drawKey(h *histories.History, k *keyOps, segOps int, dir string) (string, error) {
	if k == nil {
		return "", nil
	}
	_, f := checkKey(h, k, time.Now().Add(DefaultTimeout), nil, segOps)
	if f == nil {
		return "", nil
	}
	return visualize(f.m, f.seg, f.info, dir)
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
		m.describe(stuck), m.describeWhere(stuck), len(longest), len(seg.ops), m.describeState(s))
}

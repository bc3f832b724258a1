package checker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/garantia/garantia/checker/linear"
	"github.com/garantia/garantia/checker/queue"
	"github.com/garantia/garantia/checker/stats"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/internal/atomicfile"
	"github.com/garantia/garantia/internal/crash"
)

// Options configure a check.
type Options struct {
	// MaxExamples bounds the examples kept per anomaly: 0 means the
	// default (8), queue.AllExamples all of them, queue.NoExamples none.
	MaxExamples int
	// LinearTimeout bounds the linearizability search; 0 means its
	// default. When it runs out that section is unknown, never valid.
	LinearTimeout time.Duration
	// SkipLinear leaves the linearizability analysis out (its verdict is
	// then absent, not valid).
	SkipLinear bool
	// VisualizeDir receives porcupine's HTML for non-linearizable keys;
	// "" writes none. MaxVisualizations bounds how many (see
	// linear.Options).
	VisualizeDir      string
	MaxVisualizations int
	// AssumeDrained judges unseen values as though the history ended with
	// a completed final drain (see queue.Options).
	AssumeDrained bool
	// Fragment checks ops as a fragment cut from a longer history (see
	// histories.LoadOptions); for Check only.
	Fragment bool
}

// Results is the content of results.json: the composed verdict at the top
// and one section per checker.
type Results struct {
	Valid   verdict.Verdict `json:"valid"`
	Queue   *queue.Result   `json:"queue"`
	Linear  *linear.Result  `json:"linearizable,omitempty"`
	Stats   *stats.Result   `json:"stats"`
	Timings Timings         `json:"timings"`
	// Warnings carry what the reader skipped (a torn last line) and what
	// went wrong around the verdict without changing it (a visualization
	// that could not be written).
	Warnings []string `json:"warnings,omitempty"`
}

// Timings say how long each analysis took, in milliseconds.
type Timings struct {
	QueueMs  int64 `json:"queue-ms"`
	LinearMs int64 `json:"linearizable-ms"`
	StatsMs  int64 `json:"stats-ms"`
}

// ErrMalformed marks a history that breaks the format's rules (see
// histories.FromOps): bad input, not a failed check.
var ErrMalformed = errors.New("malformed history")

// Check checks ops, a history in memory, with CheckHistory. An error
// wrapping ErrMalformed says which op breaks which rule.
func Check(ctx context.Context, ops []histories.Op, opts Options) (*Results, error) {
	h, err := histories.FromOps(ops, histories.LoadOptions{Fragment: opts.Fragment})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return CheckHistory(ctx, h, opts)
}

// CheckHistory runs every analysis over h and composes their verdicts:
// queue and stats, then linearizability, one after the other, so that the
// memory of one analysis is free before the next starts (each can be as
// big as the history; the linearizability check uses every CPU on its
// own). It fails only when ctx ends first or an analysis has a bug (a
// recovered panic, see package crash).
func CheckHistory(ctx context.Context, h *histories.History, opts Options) (r *Results, err error) {
	r = &Results{Warnings: append([]string(nil), h.Warnings...)}
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, crash.Errorf(p, "check")
		}
	}()

	start := time.Now()
	r.Queue = queue.Check(h, queue.Options{MaxExamples: opts.MaxExamples, AssumeDrained: opts.AssumeDrained})
	r.Timings.QueueMs = time.Since(start).Milliseconds()

	start = time.Now()
	r.Stats = stats.Check(h)
	r.Timings.StatsMs = time.Since(start).Milliseconds()

	vs := []verdict.Verdict{r.Queue.Valid, r.Stats.Valid}
	if !opts.SkipLinear {
		// The queue analysis's memory is garbage now: collect it before
		// the linearizability check allocates as much again.
		runtime.GC()
		start = time.Now()
		r.Linear, err = linear.Check(ctx, h, linear.Options{
			Timeout:           opts.LinearTimeout,
			VisualizeDir:      opts.VisualizeDir,
			MaxVisualizations: opts.MaxVisualizations,
		})
		r.Timings.LinearMs = time.Since(start).Milliseconds()
		if err != nil {
			return nil, fmt.Errorf("linearizability check: %w", err)
		}
		vs = append(vs, r.Linear.Valid)
		r.Warnings = append(r.Warnings, r.Linear.Warnings...)
	}
	r.Valid = verdict.Compose(vs...)
	return r, nil
}

// WriteFile writes results as indented JSON to path, atomically (a
// temporary file renamed into place), so a reader never sees half a file.
func (r *Results) WriteFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	b = append(b, '\n')
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

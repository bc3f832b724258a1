package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/garantia/garantia/internal/atomicfile"

	"github.com/garantia/garantia/checker/linear"
	"github.com/garantia/garantia/checker/queue"
	"github.com/garantia/garantia/checker/stats"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

// Options configure a check.
type Options struct {
	// MaxExamples bounds the examples kept per anomaly: 0 means the
	// default (8), a negative number means all of them.
	MaxExamples int
	// LinearTimeout bounds the linearizability search; 0 means its
	// default. When it runs out that section is unknown, never valid.
	LinearTimeout time.Duration
	// SkipLinear leaves the linearizability analysis out (its verdict is
	// then absent, not valid).
	SkipLinear bool
	// VisualizeDir receives porcupine's HTML for each non-linearizable
	// key; "" writes none.
	VisualizeDir string
}

// Results is the content of results.json: the composed verdict at the top
// and one section per checker.
type Results struct {
	Valid   verdict.Verdict `json:"valid"`
	Queue   *queue.Result   `json:"queue"`
	Linear  *linear.Result  `json:"linearizable,omitempty"`
	Stats   *stats.Result   `json:"stats"`
	Timings Timings         `json:"timings"`
	// Warnings carry what the reader skipped (a truncated last line).
	Warnings []string `json:"warnings,omitempty"`
}

// Timings say how long each analysis took, in milliseconds.
type Timings struct {
	QueueMs  int64 `json:"queue-ms"`
	LinearMs int64 `json:"linearizable-ms"`
	StatsMs  int64 `json:"stats-ms"`
}

// Check runs every analysis over ops and composes their verdicts. The
// queue, linearizability and stats analyses run concurrently: they only
// read ops.
func Check(ctx context.Context, ops []histories.Op, opts Options) (*Results, error) {
	r := &Results{}
	var linErr error
	linDone := make(chan struct{})
	go func() {
		defer close(linDone)
		if opts.SkipLinear {
			return
		}
		start := time.Now()
		r.Linear, linErr = linear.Check(ctx, ops, linear.Options{
			Timeout:      opts.LinearTimeout,
			VisualizeDir: opts.VisualizeDir,
		})
		r.Timings.LinearMs = time.Since(start).Milliseconds()
	}()

	start := time.Now()
	r.Queue = queue.Check(ops, queue.Options{MaxExamples: opts.MaxExamples})
	r.Timings.QueueMs = time.Since(start).Milliseconds()

	start = time.Now()
	r.Stats = stats.Check(ops)
	r.Timings.StatsMs = time.Since(start).Milliseconds()

	<-linDone
	if linErr != nil {
		return nil, fmt.Errorf("linearizability check: %w", linErr)
	}
	vs := []verdict.Verdict{r.Queue.Valid, r.Stats.Valid}
	if r.Linear != nil {
		vs = append(vs, r.Linear.Valid)
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

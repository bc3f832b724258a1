package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/linear"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

// FileName is the report's name in a run folder (or beside a history).
const FileName = "report.html"

// ErrInput marks errors about what the user pointed at (no such path, no
// history there, a malformed history): `garantia report` exits 254 on
// them, 255 on anything else. Test with errors.Is.
var ErrInput = errors.New("bad input")

// inputError wraps err so that errors.Is(err, ErrInput) holds while the
// message stays err's own.
type inputError struct{ err error }

func (e *inputError) Error() string   { return e.err.Error() }
func (e *inputError) Unwrap() []error { return []error{ErrInput, e.err} }

func badInput(err error) error { return &inputError{err} }

// Run is everything a report is made of: one history, the checkers'
// results for it and, when the run folder has one, its test.json.
type Run struct {
	// Dir is the folder the report is written to: the run folder, or the
	// folder of a history file given on its own.
	Dir string
	// HistoryPath is the history file.
	HistoryPath string
	// Ops is the whole history.
	Ops []histories.Op
	// Results are the checkers' results for Ops.
	Results *checker.Results
	// Info is test.json, nil when the folder has none or it does not
	// parse; Test is the file as stored, which the report shows field by
	// field, whatever the version that wrote it.
	Info *histories.TestInfo
	Test json.RawMessage
	// Notes say how the report's inputs were found: a results.json that
	// was missing or stale and re-checked, visualizations redrawn. They are
	// shown at the top of the report.
	Notes []string
}

// OpenOptions configure Open.
type OpenOptions struct {
	// Check configures the checker when results.json is missing or stale.
	// VisualizeDir is always the run's Dir.
	Check checker.Options
}

// Open gathers a run for a report from path, which is anything `garantia
// check` takes: a history file, a run folder, or a store folder whose
// latest link points at a run. It reads results.json and test.json from the
// history's folder. When results.json is missing, older than the history,
// or about a different history (its op count differs), the checkers run
// again; porcupine's visualizations of non-linearizable keys are redrawn
// into the folder when they are missing. Errors about path or the history
// itself wrap ErrInput.
func Open(ctx context.Context, path string, opts OpenOptions) (*Run, error) {
	at, err := locate(path)
	if err != nil {
		return nil, err
	}
	ops, warnings, err := histories.Load(at.historyPath)
	if err != nil {
		return nil, badInput(fmt.Errorf("report: %w", err))
	}
	run := &Run{Dir: at.dir, HistoryPath: at.historyPath, Ops: ops, Info: at.info, Test: at.test}
	if at.testNote != "" {
		run.Notes = append(run.Notes, at.testNote)
	}
	copts := opts.Check
	copts.VisualizeDir = at.dir
	results, why, err := at.results(ctx, ops, warnings, copts)
	if err != nil {
		return nil, err
	}
	if why != "" {
		run.Notes = append(run.Notes, why+"; the checkers ran again for this report (results.json was not rewritten: run garantia check to save them)")
	}
	run.Results = results
	if err := run.ensureVisualizations(ctx, opts.Check.LinearTimeout); err != nil {
		return nil, err
	}
	return run, nil
}

// located is the run a path stands for: its history, its folder and its
// test.json.
type located struct {
	historyPath string
	historyTime time.Time
	dir         string
	info        *histories.TestInfo
	test        json.RawMessage
	// testNote says why a test.json that is there is not shown.
	testNote string
}

// locate finds the run that path stands for, as `garantia check` does (a
// history file, a run folder, or a store folder whose latest link points
// at a run; a path to one of a run's other files stands for its folder),
// and reads its test.json. Errors about path or the history wrap
// ErrInput.
func locate(path string) (*located, error) {
	switch filepath.Base(path) {
	case histories.ResultsFile, histories.TestFile, FileName:
		path = filepath.Dir(path)
	}
	historyPath, err := histories.ResolveHistory(path)
	if err != nil {
		return nil, badInput(err)
	}
	hfi, err := os.Stat(historyPath)
	if err != nil {
		return nil, badInput(fmt.Errorf("report: %w", err))
	}
	historyPath = realPath(historyPath)
	at := &located{historyPath: historyPath, historyTime: hfi.ModTime(), dir: filepath.Dir(historyPath)}
	info, raw, err := histories.LoadTestInfo(at.dir)
	switch {
	case err != nil && raw == nil:
		return nil, fmt.Errorf("report: %w", err)
	case err != nil:
		at.testNote = fmt.Sprintf("%v; the configuration is not shown", err)
	default:
		at.info, at.test = info, raw
	}
	return at, nil
}

// results reads the run's results.json when it belongs to the history
// (see readResults; with ops nil the event count is not compared, which
// would need the history read). Otherwise it checks the history now, with
// copts, loading it when ops is nil, and says why in why; it writes
// nothing.
func (at *located) results(ctx context.Context, ops []histories.Op, warnings []string, copts checker.Options) (results *checker.Results, why string, err error) {
	nOps := -1
	if ops != nil {
		nOps = len(ops)
	}
	results, why, err = readResults(filepath.Join(at.dir, histories.ResultsFile), at.historyTime, nOps)
	if err != nil || results != nil {
		return results, "", err
	}
	if ops == nil {
		if ops, warnings, err = histories.Load(at.historyPath); err != nil {
			return nil, "", badInput(fmt.Errorf("report: %w", err))
		}
	}
	if results, err = checker.Check(ctx, ops, copts); err != nil {
		return nil, "", fmt.Errorf("report: checking %s: %w", at.historyPath, err)
	}
	results.Warnings = append(results.Warnings, warnings...)
	return results, why, nil
}

// New makes a Run from a history and its results already in memory, as
// the test runner has them at the end of a run; test.json is read from dir
// when it is there.
func New(dir, historyPath string, ops []histories.Op, results *checker.Results) (*Run, error) {
	if results == nil {
		return nil, errors.New("report: no results")
	}
	run := &Run{Dir: dir, HistoryPath: historyPath, Ops: ops, Results: results}
	info, raw, err := histories.LoadTestInfo(dir)
	if err != nil && raw == nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if err == nil {
		run.Info, run.Test = info, raw
	}
	return run, nil
}

// realPath resolves the symlinks in p (store/latest moves with every run,
// the folder it points at does not), or returns p as it is when they do
// not resolve.
func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// readResults reads results.json when it belongs to the history: it exists,
// is not older than the history, parses, and counts nOps events (unless
// nOps < 0). Otherwise it returns nil and why not.
func readResults(path string, historyTime time.Time, nOps int) (*checker.Results, string, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Sprintf("%s is missing", path), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("report: %w", err)
	}
	if fi.ModTime().Before(historyTime) {
		return nil, fmt.Sprintf("%s is older than the history", path), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("report: %w", err)
	}
	var r checker.Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Sprintf("%s does not parse (%v)", path, err), nil
	}
	if r.Queue == nil || r.Stats == nil {
		return nil, fmt.Sprintf("%s has no queue or stats section", path), nil
	}
	if nOps >= 0 && r.Stats.Ops != nOps {
		return nil, fmt.Sprintf("%s is about a history of %d events, this one has %d", path, r.Stats.Ops, nOps), nil
	}
	return &r, "", nil
}

// visualizationPath finds porcupine's HTML for a key: the file named in
// the results, looked for in the run's folder first (the results may name
// it relative to wherever the checker ran), then as named.
func (r *Run) visualizationPath(kr *linear.KeyResult) string {
	if kr == nil || kr.Visualization == "" {
		return ""
	}
	for _, p := range []string{filepath.Join(r.Dir, filepath.Base(kr.Visualization)), kr.Visualization} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// ensureVisualizations redraws porcupine's visualizations when a
// non-linearizable key has none on disk (results.json came from a checker
// run without them, or the files were removed). That needs the
// linearizability check again; its verdicts must match the stored ones.
func (r *Run) ensureVisualizations(ctx context.Context, timeout time.Duration) error {
	lr := r.Results.Linear
	if lr == nil {
		return nil
	}
	// Redraw when a drawn visualization is gone, or none was drawn though
	// some key is not linearizable and none was left out on purpose (its
	// results came from a checker run without a folder to draw into).
	missing, drawn := false, 0
	for _, kr := range lr.Keys {
		if kr.Valid == verdict.Invalid && kr.Visualization != "" {
			drawn++
			missing = missing || r.visualizationPath(kr) == ""
		}
	}
	if !missing && (drawn > 0 || lr.KeysInvalid == 0 || lr.VisualizationsOmitted > 0) {
		return nil
	}
	h, err := histories.FromOps(r.Ops, histories.LoadOptions{})
	if err != nil {
		return badInput(fmt.Errorf("report: %w", err))
	}
	again, err := linear.Check(ctx, h, linear.Options{Timeout: timeout, VisualizeDir: r.Dir})
	if err != nil && again == nil {
		return fmt.Errorf("report: redrawing porcupine's visualizations: %w", err)
	}
	var redrawn []string
	for key, kr := range lr.Keys {
		if kr.Valid != verdict.Invalid || r.visualizationPath(kr) != "" {
			continue
		}
		if k2 := again.Keys[key]; k2 != nil && k2.Visualization != "" {
			kr.Visualization = k2.Visualization
			redrawn = append(redrawn, key)
		}
	}
	if len(redrawn) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("porcupine's visualization was missing for key(s) %s and was redrawn into %s",
			strings.Join(quoteAll(redrawn), ", "), r.Dir))
	}
	if err != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("redrawing visualizations: %v", err))
	}
	return nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// WriteFile writes the run's report to Dir/report.html, atomically (a
// temporary file renamed into place), and returns its path.
func (r *Run) WriteFile(opts Options) (string, error) {
	path := filepath.Join(r.Dir, FileName)
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf, opts); err != nil {
		return "", err
	}
	if err := writeAtomic(path, buf.Bytes()); err != nil {
		return "", err
	}
	return path, nil
}

// Stored is what a run folder holds about its results, read without
// re-reading the history when results.json is there: what `garantia
// show` prints.
type Stored struct {
	Dir         string
	HistoryPath string
	// ResultsPath is results.json, or "" when the results were computed
	// now (it was missing or older than the history).
	ResultsPath string
	Results     *checker.Results
	// Info is test.json, nil when absent or unparseable.
	Info *histories.TestInfo
	// Note says when the results were computed now, and why.
	Note string
}

// LoadStored finds the run that path stands for (as Open does; a path to
// one of a run's files stands for its folder) and reads its results.json.
// When that is missing or older than the history it checks the history
// now, with copts, writing nothing. Errors about path or the history wrap
// ErrInput.
func LoadStored(ctx context.Context, path string, copts checker.Options) (*Stored, error) {
	at, err := locate(path)
	if err != nil {
		return nil, err
	}
	s := &Stored{Dir: at.dir, HistoryPath: at.historyPath, Info: at.info}
	results, why, err := at.results(ctx, nil, nil, copts)
	if err != nil {
		return nil, err
	}
	s.Results = results
	if why == "" {
		s.ResultsPath = filepath.Join(at.dir, histories.ResultsFile)
	} else {
		s.Note = why + "; checked the history now (nothing written: garantia check PATH saves results.json)"
	}
	return s, nil
}

package report

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

// StoreHandler serves a small web site over a run store: at / the runs,
// newest first, with their verdicts, configurations and anomaly counts;
// under /runs/ the store's files, each run's report.html among them (built
// on first request when the run has none). Files are served only from
// inside the store: paths are resolved by an os.Root, which refuses ".."
// and symlinks that lead out of it.
type StoreHandler struct {
	root  string
	files *os.Root
	mux   *http.ServeMux
	// Limit bounds the runs listed on the index page; 0 means
	// DefaultIndexLimit.
	Limit int

	mu      sync.Mutex // guards summaries
	sums    map[string]cachedSummary
	buildMu sync.Mutex // one report build at a time: they are CPU-bound
}

// DefaultIndexLimit is how many runs the index lists by default.
const DefaultIndexLimit = 500

// NewStoreHandler serves the store at root. Close releases its handle on
// the store.
func NewStoreHandler(root string) (*StoreHandler, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, badInput(fmt.Errorf("report: the store: %w", err))
	}
	if !fi.IsDir() {
		return nil, badInput(fmt.Errorf("report: the store %s is not a folder", root))
	}
	files, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("report: opening the store: %w", err)
	}
	h := &StoreHandler{root: root, files: files, sums: map[string]cachedSummary{}}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.Handle("GET /runs/", http.StripPrefix("/runs", http.HandlerFunc(h.file)))
	return h, nil
}

// Close releases the handler's handle on the store.
func (h *StoreHandler) Close() error { return h.files.Close() }

func (h *StoreHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, r)
}

// file serves a file of the store; a run's missing report.html is built
// first.
func (h *StoreHandler) file(w http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)
	if strings.HasSuffix(p, "/"+FileName) {
		if err := h.ensureReport(r.Context(), strings.TrimSuffix(strings.TrimPrefix(p, "/"), "/"+FileName)); err != nil {
			if errors.Is(err, errNotARun) {
				http.NotFound(w, r)
				return
			}
			if errors.Is(err, ErrInput) {
				http.Error(w, "no report for this run: "+err.Error(), http.StatusNotFound)
				return
			}
			http.Error(w, "building the report: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	http.FileServerFS(storeFS{h.files.FS()}).ServeHTTP(w, r)
}

// storeFS reports every failure to open other than a missing file as
// fs.ErrPermission, so that a path the os.Root refuses (a symlink out of
// the store) is a 403, not a 500.
type storeFS struct{ fs.FS }

func (s storeFS) Open(name string) (fs.File, error) {
	f, err := s.FS.Open(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return f, err
}

var errNotARun = errors.New("not a run folder")

// ensureReport builds rel/report.html when rel is a run of the store (as
// ListRuns finds them) without one.
func (h *StoreHandler) ensureReport(ctx context.Context, rel string) error {
	runs, err := histories.ListRuns(h.root)
	if err != nil {
		return err
	}
	var run *histories.Run
	for i := range runs {
		if runs[i].String() == rel {
			run = &runs[i]
		}
	}
	if run == nil {
		return errNotARun
	}
	h.buildMu.Lock()
	defer h.buildMu.Unlock()
	if _, err := os.Stat(run.Path(FileName)); err == nil {
		return nil
	}
	rep, err := Open(ctx, run.Dir, OpenOptions{})
	if err != nil {
		return err
	}
	_, err = rep.WriteFile(Options{})
	return err
}

// runSummary is one row of the index.
type runSummary struct {
	Test, Time, Href     string
	Verdict              verdictView
	Config               string
	Anomalies            string
	Linear               string
	Events               int
	HasResults           bool
	HasReport            bool
	HasHistory, HasTest  bool
	ResultsErr           string
	ReportHref, FileHref string
}

type cachedSummary struct {
	results, test fileStamp
	sum           runSummary
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

func stampOf(p string) fileStamp {
	fi, err := os.Stat(p)
	if err != nil {
		return fileStamp{size: -1}
	}
	return fileStamp{fi.Size(), fi.ModTime()}
}

// summary reads a run's results.json and test.json, cached while neither
// changes.
func (h *StoreHandler) summary(run histories.Run) runSummary {
	rs, ts := stampOf(run.Path(histories.ResultsFile)), stampOf(run.Path(histories.TestFile))
	h.mu.Lock()
	c, ok := h.sums[run.Dir]
	h.mu.Unlock()
	if !ok || c.results != rs || c.test != ts {
		c = cachedSummary{results: rs, test: ts, sum: summarize(run)}
		h.mu.Lock()
		h.sums[run.Dir] = c
		h.mu.Unlock()
	}
	s := c.sum
	s.HasReport = stampOf(run.Path(FileName)).size >= 0
	return s
}

func summarize(run histories.Run) runSummary {
	href := "runs/" + escapePath(run.String()) + "/"
	s := runSummary{
		Test: run.Test, Time: run.Time.Format("2006-01-02 15:04:05.000 UTC"), Href: href,
		ReportHref: href + FileName,
		Verdict:    verdictView{"no results", "none", "none"},
	}
	s.HasHistory = stampOf(run.Path(histories.HistoryFile)).size >= 0
	if info, raw, _ := histories.LoadTestInfo(run.Dir); raw != nil {
		s.HasTest = true
		if info != nil {
			s.Config = info.Config.Summary()
		}
	}
	b, err := os.ReadFile(run.Path(histories.ResultsFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.ResultsErr = err.Error()
		}
		return s
	}
	var r checker.Results
	if err := json.Unmarshal(b, &r); err != nil || r.Queue == nil || r.Stats == nil {
		s.ResultsErr = "results.json does not parse"
		return s
	}
	s.HasResults = true
	s.Verdict = verdictOf(r.Valid)
	s.Anomalies = AnomalySummary(&r)
	s.Events = r.Stats.Ops
	s.Linear = "not run"
	if r.Linear != nil {
		s.Linear = verdictOf(r.Linear.Valid).Label
		if r.Linear.KeysInvalid > 0 {
			s.Linear += fmt.Sprintf(" (%d keys)", r.Linear.KeysInvalid)
		}
	}
	return s
}

// escapePath URL-escapes each segment of a slash-separated path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

//go:embed index.html.tmpl
var indexTemplateText string

var indexTemplate = template.Must(template.New("index").Parse(indexTemplateText))

type indexView struct {
	Store     string
	Runs      []runSummary
	Total     int
	Omitted   int
	Generated string
	Counts    map[string]int
}

func (h *StoreHandler) index(w http.ResponseWriter, r *http.Request) {
	runs, err := histories.ListRuns(h.root)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	limit := h.Limit
	if limit <= 0 {
		limit = DefaultIndexLimit
	}
	v := indexView{Store: h.root, Total: len(runs), Generated: time.Now().UTC().Format(time.RFC3339), Counts: map[string]int{}}
	for i, run := range runs {
		if i == limit {
			v.Omitted = len(runs) - limit
			break
		}
		s := h.summary(run)
		v.Counts[s.Verdict.Label]++
		v.Runs = append(v.Runs, s)
	}
	var buf bytes.Buffer
	if err := indexTemplate.Execute(&buf, v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// VerdictWord is how a verdict reads in a summary or a table: "valid",
// "INVALID" or "unknown".
func VerdictWord(v verdict.Verdict) string { return verdictOf(v).Label }

// ConfigSummary is the one-line summary of a test.json's configuration
// (histories.TestConfig.Summary); "" when test.json does not parse.
func ConfigSummary(testJSON []byte) string {
	info, err := histories.ParseTestInfo(testJSON)
	if err != nil {
		return ""
	}
	return info.Config.Summary()
}

// AnomalySummary is the anomalies of results in one line, those that make
// the history invalid first: "lost-write ×3, unseen ×1, int-send-skip ×2
// (allowed)"; "none" when there are none.
func AnomalySummary(r *checker.Results) string {
	if r.Queue == nil {
		return ""
	}
	q := r.Queue
	names := slices.Clone(q.AnomalyTypes)
	slices.SortStableFunc(names, func(a, b string) int {
		aa, ba := slices.Contains(q.AllowedTypes, a), slices.Contains(q.AllowedTypes, b)
		switch {
		case aa == ba:
			return 0
		case ba:
			return -1
		}
		return 1
	})
	var parts []string
	for _, n := range names {
		s := fmt.Sprintf("%s ×%d", n, q.Anomalies[n].Count)
		if slices.Contains(q.AllowedTypes, n) {
			s += " (allowed)"
		}
		parts = append(parts, s)
	}
	if r.Linear != nil && r.Linear.Valid == verdict.Invalid {
		parts = append(parts, fmt.Sprintf("not linearizable ×%d keys", r.Linear.KeysInvalid))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

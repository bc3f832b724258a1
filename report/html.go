package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/anomaly"
)

// Options configure the HTML report. The zero value is the default.
type Options struct {
	// MaxOps bounds the operations embedded in the report's table; 0
	// means DefaultMaxOps. The rest of the history is linked, not copied:
	// a history can hold millions of ops.
	MaxOps int
	// MaxKeys bounds the keys that get a log picture; 0 means
	// DefaultMaxKeys.
	MaxKeys int
	// VizEmbedMaxBytes bounds a porcupine visualization embedded in the
	// report; larger ones are linked. 0 means DefaultVizEmbedMaxBytes.
	VizEmbedMaxBytes int64
	// Now is the report's "generated" time; zero means time.Now().
	Now time.Time
}

// Defaults of Options.
const (
	DefaultMaxOps           = 2000
	DefaultMaxKeys          = 16
	DefaultVizEmbedMaxBytes = 2 << 20
)

// Priorities of the ops the report links to: when more are linked than
// Options.MaxOps allows, lower numbers are embedded first.
const (
	prioExample = iota // ops an anomaly example names, and their invocations
	prioKey            // ops in a bad key's offset tables and lost values
	prioFault          // nemesis events that start and end faults
	prioContext        // neighbours of example ops, for context
)

// contextRadius is how many history events either side of an example's op
// are embedded for context.
const contextRadius = 2

// faultRefsMax bounds the nemesis events linked from the fault table.
const faultRefsMax = 500

// opValueMax bounds an op's value as shown in the ops table (a poll can
// return thousands of records).
const opValueMax = 400

//go:embed report.html.tmpl
var reportTemplateText string

var reportTemplate = template.Must(template.New("report").Parse(reportTemplateText))

// WriteHTML writes the run's report, a self-contained HTML page, to w.
// Nothing is written when it fails.
func (r *Run) WriteHTML(w io.Writer, opts Options) (err error) {
	// The plotting library panics on input it cannot draw; a report must
	// never take down the run that asked for it (a test's results are
	// already stored when its report is built).
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("report: drawing the report of %s failed: %v", r.HistoryPath, p)
		}
	}()
	v, err := r.view(opts)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := reportTemplate.Execute(&buf, v); err != nil {
		return fmt.Errorf("report: rendering: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// builder gathers what the view needs and which ops it links to.
type builder struct {
	run    *Run
	ops    []histories.Op
	opts   Options
	endNs  int64
	faults []fault
	perf   *perf
	refs   map[int]int // position -> best (lowest) priority
	shown  map[int64]bool
	// historyHref is the history file relative to the report.
	historyHref string
}

func (b *builder) ref(pos, prio int) {
	if pos < 0 || pos >= len(b.ops) {
		return
	}
	if p, ok := b.refs[pos]; !ok || prio < p {
		b.refs[pos] = prio
	}
}

// posOf finds the position of the op with the given index (indexes
// increase strictly), or -1.
func (b *builder) posOf(index int64) int {
	i := sort.Search(len(b.ops), func(i int) bool { return b.ops[i].Index >= index })
	if i < len(b.ops) && b.ops[i].Index == index {
		return i
	}
	return -1
}

// faultContextMax bounds the faults named in one "during" line.
const faultContextMax = 3

// faultContext says which faults were in force during [from, to], or
// which one last ended before it; "" when the history has no faults.
func (b *builder) faultContext(from, to int64) string {
	if len(b.faults) == 0 {
		return ""
	}
	during, before := faultsDuring(b.faults, from, to)
	if len(during) == 0 {
		if before == nil {
			return "no fault had started yet"
		}
		return fmt.Sprintf("no fault in force; the last, %s, ended at %s", before.Label, fmtSecs(before.EndNs))
	}
	var parts []string
	for i, f := range during {
		if i == faultContextMax {
			parts = append(parts, fmt.Sprintf("and %d more", len(during)-faultContextMax))
			break
		}
		end := fmtSecs(f.EndNs)
		if !f.Healed {
			end = "never healed"
		}
		parts = append(parts, fmt.Sprintf("%s (%s – %s)", f.Label, strings.TrimSuffix(fmtSecs(f.StartNs), " s"), end))
	}
	return "faults: " + strings.Join(parts, "; ")
}

// The view: what the template renders.

type view struct {
	Title       string
	ConfigLine  string
	Generated   string
	Verdict     verdictView
	HistoryPath string
	HistoryHref string
	Notes       []string
	Warnings    []string
	Test        *testView
	Checkers    []checkerRow
	Counts      [][2]string
	Timings     string
	Files       []fileLink
	Anomalies   []*anomalyView
	Keys        []*keyView
	KeysOmitted []string
	Perf        *perfPlots
	Faults      []faultRow
	FaultsMore  int
	Linear      *linearView
	Ops         []opRow
	OpsTotal    int
	OpsOmitted  int

	b *builder
}

// OpLink links to an op: its row when embedded, else the history file.
func (v *view) OpLink(index int64) template.HTML {
	if v.b.shown[index] {
		return template.HTML(fmt.Sprintf(`<a class="op" href="#op-%d">#%d</a>`, index, index))
	}
	return template.HTML(fmt.Sprintf(`<a class="op not-embedded" href="%s" title="not embedded in this report: index %d of the history">#%d</a>`,
		template.HTMLEscapeString(v.HistoryHref), index, index))
}

type verdictView struct{ Label, Class, JSON string }

func verdictOf(vd verdict.Verdict) verdictView {
	switch vd {
	case verdict.Valid:
		return verdictView{"valid", "valid", "true"}
	case verdict.Invalid:
		return verdictView{"INVALID", "invalid", "false"}
	}
	return verdictView{"unknown", "unknown", "unknown"}
}

type checkerRow struct {
	Name    string
	Verdict verdictView
	Detail  string
	Href    string
}

type fileLink struct {
	Name, Href, Size string
}

type anomalyView struct {
	Name, ID, Description string
	Count                 int
	Allowed               bool
	Inconclusive          bool
	Examples              []exampleView
	More                  int
}

type exampleView struct {
	Explanation string
	Key, KeyID  string
	KeyShown    bool
	Ops         []int64
	When        string
	Faults      string
}

type faultRow struct {
	Kind, Label, Start, End string
	StartOp, EndOp          int64
	HasEnd                  bool
}

type linearView struct {
	Verdict                                          verdictView
	KeysChecked, KeysValid, KeysInvalid, KeysUnknown int
	Ops                                              int
	ElapsedMs, TimeoutMs                             int64
	Keys                                             []linearKeyView
	Checked                                          bool
}

type linearKeyView struct {
	Key, ID, KeyID string
	KeyShown       bool
	Verdict        verdictView
	Reason         string
	Ops            int
	VizHref        string
	VizData        string
	VizNote        string
}

type opRow struct {
	Index                                      int64
	Time, Process, Type, F, Node, Value, Error string
	Ref                                        bool
	Inv                                        int64
	Latency                                    string
}

type testView struct {
	Name   string
	Rows   [][2]string
	Config [][2]string
}

func (r *Run) view(opts Options) (*view, error) {
	if opts.MaxOps <= 0 {
		opts.MaxOps = DefaultMaxOps
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	if opts.VizEmbedMaxBytes <= 0 {
		opts.VizEmbedMaxBytes = DefaultVizEmbedMaxBytes
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	res := r.Results
	if res == nil || res.Queue == nil || res.Stats == nil {
		return nil, fmt.Errorf("report: the results have no queue or stats section")
	}
	b := &builder{run: r, ops: r.Ops, opts: opts, refs: map[int]int{}, shown: map[int64]bool{}}
	b.historyHref = relHref(r.Dir, r.HistoryPath)
	b.perf = collectPerf(r.Ops)
	b.endNs = b.perf.endNs
	b.faults = extractFaults(r.Ops, b.endNs)

	v := &view{
		b:           b,
		Verdict:     verdictOf(res.Valid),
		Generated:   opts.Now.UTC().Format(time.RFC3339),
		HistoryPath: r.HistoryPath,
		HistoryHref: b.historyHref,
		Notes:       r.Notes,
		Warnings:    res.Warnings,
		OpsTotal:    len(r.Ops),
	}
	v.Test = testViewOf(r.Test)
	v.ConfigLine = ConfigSummary(r.Test)
	name := r.HistoryPath
	if v.Test != nil && v.Test.Name != "" {
		name = v.Test.Name
	}
	v.Title = fmt.Sprintf("garantia: %s — %s", name, v.Verdict.Label)
	v.Checkers = checkerRows(r)
	v.Counts = countRows(r)
	v.Timings = fmt.Sprintf("queue %d ms, linearizable %d ms, stats %d ms", res.Timings.QueueMs, res.Timings.LinearMs, res.Timings.StatsMs)

	// Keys first: anomaly examples link to their sections.
	keys, reasons, omitted := badKeys(r, opts.MaxKeys)
	v.KeysOmitted = omitted
	data := collectKeys(r.Ops, keys)
	keyShown := map[string]string{}
	for _, k := range keys {
		kv, err := analyzeKey(data[k]).view(b, reasons[k])
		if err != nil {
			return nil, err
		}
		v.Keys = append(v.Keys, kv)
		keyShown[k] = kv.ID
	}
	v.Anomalies = anomalyViews(b, keyShown)
	v.Linear = linearViewOf(r, opts, keyShown)

	var err error
	if v.Perf, err = b.perf.plots(b.faults); err != nil {
		return nil, err
	}
	for i, f := range b.faults {
		row := faultRow{Kind: f.Kind, Label: f.Label, Start: fmtSecs(f.StartNs), StartOp: r.Ops[f.StartPos].Index, HasEnd: f.EndPos >= 0, End: "never healed"}
		if row.HasEnd {
			row.End, row.EndOp = fmtSecs(f.EndNs), r.Ops[f.EndPos].Index
		}
		if i < faultRefsMax {
			b.ref(f.StartPos, prioFault)
			if f.EndPos >= 0 {
				b.ref(f.EndPos, prioFault)
			}
			v.Faults = append(v.Faults, row)
		} else {
			v.FaultsMore++
		}
	}
	v.Ops = b.opRows()
	v.OpsOmitted = len(b.refs) - len(v.Ops)
	v.Files = fileLinks(r)
	return v, nil
}

// badKeys picks the keys that get a section: those with lost, unseen,
// duplicated or inconsistent writes in the examples, and those found not
// linearizable, in key order, at most max of them. reasons says why each
// is there.
func badKeys(r *Run, max int) (keys []string, reasons map[string][]string, omitted []string) {
	reasons = map[string][]string{}
	add := func(k, why string) {
		if !slices.Contains(reasons[k], why) {
			reasons[k] = append(reasons[k], why)
		}
	}
	for _, name := range []string{anomaly.LostWrite, anomaly.Unseen, anomaly.Duplicate, anomaly.InconsistentOffsets, anomaly.G1a, anomaly.GarbageRead} {
		if a := r.Results.Queue.Anomalies[name]; a != nil {
			for _, ex := range a.Examples {
				add(ex.Key, name)
			}
		}
	}
	if lr := r.Results.Linear; lr != nil {
		for k, kr := range lr.Keys {
			if kr.Valid == verdict.Invalid {
				add(k, "not linearizable")
			}
		}
	}
	for k := range reasons {
		keys = append(keys, k)
	}
	sortKeys(keys)
	if len(keys) > max {
		keys, omitted = keys[:max], keys[max:]
	}
	return keys, reasons, omitted
}

// sortKeys orders keys numerically when they are numbers (partitions "2"
// before "10"), else as strings.
func sortKeys(keys []string) {
	sort.Slice(keys, func(i, j int) bool {
		a, errA := strconv.ParseInt(keys[i], 10, 64)
		c, errC := strconv.ParseInt(keys[j], 10, 64)
		if errA == nil && errC == nil {
			return a < c
		}
		if (errA == nil) != (errC == nil) {
			return errA == nil
		}
		return keys[i] < keys[j]
	})
}

func anomalyViews(b *builder, keyShown map[string]string) []*anomalyView {
	q := b.run.Results.Queue
	var out []*anomalyView
	for name, a := range q.Anomalies {
		av := &anomalyView{
			Name: name, ID: htmlID("anomaly", name), Description: anomaly.Description(name),
			Count: a.Count, Allowed: slices.Contains(q.AllowedTypes, name), Inconclusive: slices.Contains(q.InconclusiveTypes, name),
			More: a.Count - len(a.Examples),
		}
		for _, ex := range a.Examples {
			ev := exampleView{Explanation: ex.Explanation, Key: ex.Key}
			ev.KeyID, ev.KeyShown = keyShown[ex.Key], keyShown[ex.Key] != ""
			from, to := int64(-1), int64(-1)
			for _, ref := range ex.Ops {
				ev.Ops = append(ev.Ops, ref.Index)
				if from < 0 || ref.Time < from {
					from = ref.Time
				}
				to = max(to, ref.Time)
				pos := b.posOf(ref.Index)
				if pos < 0 {
					continue
				}
				b.ref(pos, prioExample)
				if inv := b.perf.inv[pos]; inv >= 0 {
					b.ref(int(inv), prioExample)
				}
				for d := -contextRadius; d <= contextRadius; d++ {
					b.ref(pos+d, prioContext)
				}
			}
			if from >= 0 {
				if from == to {
					ev.When = "at " + fmtSecs(from)
				} else {
					ev.When = fmt.Sprintf("between %s and %s", strings.TrimSuffix(fmtSecs(from), " s"), fmtSecs(to))
				}
				ev.Faults = b.faultContext(from, to)
			}
			av.Examples = append(av.Examples, ev)
		}
		out = append(out, av)
	}
	// Anomalies that make the history invalid first, then by name.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Allowed != out[j].Allowed {
			return !out[i].Allowed
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func linearViewOf(r *Run, opts Options, keyShown map[string]string) *linearView {
	lr := r.Results.Linear
	if lr == nil {
		return &linearView{}
	}
	lv := &linearView{
		Checked: true, Verdict: verdictOf(lr.Valid), KeysChecked: lr.KeysChecked, KeysValid: lr.KeysValid,
		KeysInvalid: lr.KeysInvalid, KeysUnknown: lr.KeysUnknown, Ops: lr.Ops, ElapsedMs: lr.ElapsedMs, TimeoutMs: lr.TimeoutMs,
	}
	keys := make([]string, 0, len(lr.Keys))
	for k := range lr.Keys {
		keys = append(keys, k)
	}
	sortKeys(keys)
	for _, k := range keys {
		kr := lr.Keys[k]
		kv := linearKeyView{Key: k, ID: htmlID("linear", k), Verdict: verdictOf(kr.Valid), Reason: kr.Reason, Ops: kr.Ops}
		kv.KeyID, kv.KeyShown = keyShown[k], keyShown[k] != ""
		if p := r.visualizationPath(kr); p != "" {
			kv.VizHref = relHref(r.Dir, p)
			fi, err := os.Stat(p)
			switch {
			case err != nil:
				kv.VizNote = err.Error()
			case fi.Size() > opts.VizEmbedMaxBytes:
				kv.VizNote = fmt.Sprintf("%.1f MB: too large to embed; open it from the link", float64(fi.Size())/1e6)
			default:
				if b, err := os.ReadFile(p); err == nil {
					kv.VizData = string(b)
				} else {
					kv.VizNote = err.Error()
				}
			}
		} else if kr.Valid == verdict.Invalid {
			kv.VizNote = "no visualization was written"
		}
		lv.Keys = append(lv.Keys, kv)
	}
	return lv
}

// opRows picks the ops to embed: by priority, at most MaxOps, shown in
// history order.
func (b *builder) opRows() []opRow {
	type cand struct{ pos, prio int }
	cands := make([]cand, 0, len(b.refs))
	for pos, prio := range b.refs {
		cands = append(cands, cand{pos, prio})
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].prio != cands[j].prio {
			return cands[i].prio < cands[j].prio
		}
		return cands[i].pos < cands[j].pos
	})
	if len(cands) > b.opts.MaxOps {
		cands = cands[:b.opts.MaxOps]
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].pos < cands[j].pos })
	rows := make([]opRow, 0, len(cands))
	for _, c := range cands {
		op := &b.ops[c.pos]
		b.shown[op.Index] = true
		row := opRow{
			Index: op.Index, Time: fmtSecs(op.Time), Type: string(op.Type), F: op.F, Node: op.Node,
			Error: truncate(op.Error, opValueMax), Ref: c.prio <= prioKey, Inv: -1,
			Process: strconv.FormatInt(op.Process, 10),
		}
		if !op.IsClient() {
			row.Process = "nemesis"
		}
		if val, err := op.Value.MarshalJSON(); err == nil {
			row.Value = truncate(unescapeHTML(val), opValueMax)
		}
		if inv := b.perf.inv[c.pos]; inv >= 0 {
			row.Inv = b.ops[inv].Index
			row.Latency = strconv.FormatFloat(float64(op.Time-b.ops[inv].Time)/1e6, 'f', 2, 64) + " ms"
		}
		rows = append(rows, row)
	}
	return rows
}

func checkerRows(r *Run) []checkerRow {
	res := r.Results
	q := res.Queue
	qd := "no anomalies"
	if len(q.AnomalyTypes) > 0 {
		var parts []string
		for _, n := range q.AnomalyTypes {
			s := fmt.Sprintf("%s %d", n, q.Anomalies[n].Count) + qualifier(q.Anomalies[n])
			parts = append(parts, s)
		}
		qd = strings.Join(parts, ", ")
	}
	if len(q.InconclusiveTypes) > 0 {
		qd += "; " + q.Drain.Explanation
	}
	rows := []checkerRow{{Name: "queue", Verdict: verdictOf(q.Valid), Detail: qd, Href: "#anomalies"}}
	if lr := res.Linear; lr != nil {
		rows = append(rows, checkerRow{Name: "linearizable", Verdict: verdictOf(lr.Valid), Href: "#linearizable",
			Detail: fmt.Sprintf("%d keys checked: %d valid, %d invalid, %d unknown", lr.KeysChecked, lr.KeysValid, lr.KeysInvalid, lr.KeysUnknown)})
	} else {
		rows = append(rows, checkerRow{Name: "linearizable", Verdict: verdictView{"not run", "skipped", "skipped"}, Detail: "the linearizability check was skipped"})
	}
	st := res.Stats
	rows = append(rows, checkerRow{Name: "stats", Verdict: verdictOf(st.Valid), Href: "#perf",
		Detail: fmt.Sprintf("%d client ops ok, %d info, %d fail", st.Client.OK, st.Client.Info, st.Client.Fail)})
	return rows
}

func countRows(r *Run) [][2]string {
	c := r.Results.Queue.Counts
	st := r.Results.Stats
	n := func(i int) string { return strconv.Itoa(i) }
	rows := [][2]string{
		{"sends", n(c.Sent)}, {"acknowledged", n(c.Acknowledged)}, {"failed", n(c.Failed)},
		{"indeterminate", n(c.Indeterminate)}, {"indeterminate, read", n(c.IndeterminateRead)},
		{"values read", n(c.Read)}, {"lost", n(c.Lost)}, {"unseen", n(c.Unseen)}, {"unseen, inconclusive", n(c.UnseenInconclusive)},
		{"duplicated", n(c.Duplicated)}, {"final drain", r.Results.Queue.Drain.State},
	}
	if cc := c.Commits; cc != nil {
		rows = append(rows,
			[2]string{"offsets committed: acknowledged / failed / indeterminate", fmt.Sprintf("%d / %d / %d", cc.Acknowledged, cc.Failed, cc.Indeterminate)},
			[2]string{"committed offsets fetched back / lost", fmt.Sprintf("%d / %d", cc.Fetched, cc.Lost)})
	}
	return append(rows,
		[2]string{"history events", n(st.Ops)}, [2]string{"client ok / info / fail", fmt.Sprintf("%d / %d / %d", st.Client.OK, st.Client.Info, st.Client.Fail)},
		[2]string{"nemesis events", n(st.Nemesis)}, [2]string{"processes", n(st.Processes)}, [2]string{"duration", fmtSecs(st.DurationNs)},
	)
}

// testValueMax bounds a test.json value as shown.
const testValueMax = 300

// testViewOf renders test.json generically: its scalar fields, then its
// config object, whatever the runner puts there.
func testViewOf(raw json.RawMessage) *testView {
	if raw == nil {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil
	}
	tv := &testView{}
	if n, ok := m["name"]; ok {
		_ = json.Unmarshal(n, &tv.Name)
	}
	tv.Rows = jsonRows(m, "config")
	if c, ok := m["config"]; ok {
		var cm map[string]json.RawMessage
		if json.Unmarshal(c, &cm) == nil {
			tv.Config = jsonRows(cm, "")
		}
	}
	return tv
}

func jsonRows(m map[string]json.RawMessage, skip string) [][2]string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != skip {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	rows := make([][2]string, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, [2]string{k, jsonText(m[k])})
	}
	return rows
}

// jsonText shows a JSON value: strings without quotes, anything else as
// compact JSON.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return truncate(s, testValueMax)
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return truncate(buf.String(), testValueMax)
	}
	return truncate(string(raw), testValueMax)
}

// filesMax bounds the run folder's files listed.
const filesMax = 200

// fileLinks lists the run folder's files (a run folder's only: a history
// given on its own may sit among anything).
func fileLinks(r *Run) []fileLink {
	var out []fileLink
	add := func(p string) {
		fi, err := os.Stat(p)
		if err != nil {
			return
		}
		size := ""
		if !fi.IsDir() {
			size = fmtBytes(fi.Size())
		}
		name, href := filepath.Base(p), relHref(r.Dir, p)
		if fi.IsDir() {
			name, href = name+"/", href+"/"
		}
		out = append(out, fileLink{Name: name, Href: href, Size: size})
	}
	if r.Test == nil {
		add(r.HistoryPath)
		add(filepath.Join(r.Dir, histories.ResultsFile))
		if lr := r.Results.Linear; lr != nil {
			for _, kr := range lr.Keys {
				if p := r.visualizationPath(kr); p != "" {
					add(p)
				}
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	entries, err := os.ReadDir(r.Dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.Name() == FileName {
			continue
		}
		if len(out) == filesMax {
			break
		}
		add(filepath.Join(r.Dir, e.Name()))
	}
	return out
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// relHref is a link from a page in dir to path, URL-escaped: relative
// when it can be (the run folder can be moved or served), else a file
// URL.
func relHref(dir, path string) string {
	if rel, err := filepath.Rel(dir, path); err == nil && !strings.HasPrefix(rel, "..") {
		return (&url.URL{Path: filepath.ToSlash(rel)}).String()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return "file://" + (&url.URL{Path: filepath.ToSlash(abs)}).EscapedPath()
}

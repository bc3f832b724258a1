package report

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/anomaly"
	"github.com/garantia/garantia/histories/synth"
)

// plantSeed seeds every planted history here; a failure names it.
const plantSeed = 20261126

// TestReportShowsPlantedAnomalies plants one anomaly per case in a
// synthetic history with faults, builds the report from the bare history
// (the checkers run because there is no results.json) and looks for each
// anomaly, its examples linked to their operations, the pictures of the
// bad keys, the perf plots and the faults.
func TestReportShowsPlantedAnomalies(t *testing.T) {
	cases := []struct {
		fault   synth.Fault
		keyPlot bool // the fault's key gets a log picture
		linear  bool // the fault also breaks linearizability
	}{
		{synth.LostWrite, true, false},
		{synth.Duplicate, true, true},
		{synth.InconsistentOffsets, true, true},
		{synth.Unseen, true, false},
		{synth.PollSkip, false, false},
		{synth.NonmonotonicSend, false, true},
	}
	for _, c := range cases {
		t.Run(string(c.fault), func(t *testing.T) {
			dir := t.TempDir()
			ops := plantedHistory(t, c.fault, plantSeed, 6000)
			writeHistory(t, dir, ops)
			run, pg, _ := buildReport(t, dir, Options{})
			res := run.Results
			fail := func(format string, args ...any) {
				t.Helper()
				t.Errorf("seed %d, fault %s: "+format, append([]any{plantSeed, c.fault}, args...)...)
			}
			if got := pg.ids["verdict"]; got == nil || got.attrs["data-verdict"] != "false" || !strings.Contains(pg.text("verdict"), "INVALID") {
				fail("the verdict element does not say invalid: %+v %q", got, pg.text("verdict"))
			}
			if len(run.Notes) == 0 || !strings.Contains(run.Notes[0], "missing") {
				fail("want a note that results.json was missing and the checkers ran, got %q", run.Notes)
			}
			want, _ := c.fault.Expect()
			for _, name := range want {
				a := res.Queue.Anomalies[name]
				if a == nil {
					fail("the checker did not find %s (found %v)", name, res.Queue.AnomalyTypes)
					continue
				}
				el := pg.ids[htmlID("anomaly", name)]
				if el == nil || el.attrs["data-anomaly"] != name {
					fail("no section for anomaly %s", name)
					continue
				}
				if !strings.Contains(pg.text(htmlID("anomaly", name)), a.Examples[0].Explanation) {
					fail("the %s section does not show its first example %q", name, a.Examples[0].Explanation)
				}
				for _, ex := range a.Examples {
					for _, ref := range ex.Ops {
						if pg.ids["op-"+strconv.FormatInt(ref.Index, 10)] == nil {
							fail("%s example names op #%d but the ops table has no row for it", name, ref.Index)
						}
						if !slices.Contains(pg.links, "op-"+strconv.FormatInt(ref.Index, 10)) {
							fail("%s example does not link op #%d", name, ref.Index)
						}
					}
					if c.keyPlot {
						id := htmlID("key", ex.Key)
						if pg.ids[id] == nil {
							fail("no section for key %q of a %s example", ex.Key, name)
						}
						if !slices.Contains(pg.links, id) {
							fail("the %s example does not link key %q's section", name, ex.Key)
						}
					}
				}
			}
			if c.keyPlot && pg.classes["plot-orders"] == 0 {
				fail("no picture of a bad key's log (svg.plot-orders)")
			}
			if c.keyPlot && pg.classes["plot-orders-zoom"] == 0 {
				fail("no zoomed picture around the first problem (svg.plot-orders-zoom)")
			}
			if c.fault == synth.LostWrite {
				ex := res.Queue.Anomalies[anomaly.LostWrite].Examples[0]
				key := pg.text(htmlID("key", ex.Key))
				if !strings.Contains(key, ex.Value.String()) {
					fail("key %q's section does not name the lost value %s", ex.Key, ex.Value)
				}
				if !strings.Contains(key, "faults:") && !strings.Contains(key, "no fault") {
					fail("key %q's section does not say which faults were in force around the loss", ex.Key)
				}
			}
			for _, cls := range []string{"plot-latency-raw", "plot-latency-quantiles", "plot-rate"} {
				if pg.classes[cls] != 1 {
					fail("want one svg.%s, got %d", cls, pg.classes[cls])
				}
			}
			if pg.classes["fault"] == 0 {
				fail("the faults table is empty, though the history has nemesis events")
			}
			if c.linear {
				if res.Linear.Valid != verdict.Invalid {
					fail("want the linearizability check to fail, got %s", res.Linear.Valid)
				}
				for k, kr := range res.Linear.Keys {
					id := htmlID("linear", k)
					if pg.ids[id] == nil {
						fail("no linearizability section for key %q", k)
					}
					if kr.Valid == verdict.Invalid && pg.ids[id+"-data"] == nil {
						fail("key %q is not linearizable but porcupine's visualization is not embedded", k)
					}
				}
			}
			pg.checkLinks(t)
		})
	}
}

func TestReportOfValidHistory(t *testing.T) {
	dir := t.TempDir()
	ops := plantedHistory(t, "", plantSeed, 3000)
	writeHistory(t, dir, ops)
	checkInto(t, dir, dir, ops)
	run, pg, _ := buildReport(t, dir, Options{})
	if len(run.Notes) != 0 {
		t.Errorf("results.json is fresh, want no notes, got %q", run.Notes)
	}
	if v := pg.ids["verdict"]; v == nil || v.attrs["data-verdict"] != "true" {
		t.Errorf("want a valid verdict element, got %+v", v)
	}
	if pg.ids["no-anomalies"] == nil {
		t.Error("want the no-anomalies paragraph")
	}
	if pg.classes["key"] != 0 || pg.classes["plot-orders"] != 0 {
		t.Errorf("a valid history has no bad keys, got %d key sections", pg.classes["key"])
	}
	if pg.classes["plot-latency-raw"] != 1 {
		t.Error("want the latency plot")
	}
	pg.checkLinks(t)
}

// TestReportOfTinyHistories: histories too small for most pictures (one
// op, no completion, only faults) still make a report.
func TestReportOfTinyHistories(t *testing.T) {
	for name, text := range map[string]string{
		"one op": `{"index":0,"time":1000,"process":0,"type":"invoke","f":"send","value":[["send","3",1]]}
{"index":1,"time":2000,"process":0,"type":"ok","f":"send","value":[["send","3",[0,1]]]}
`,
		"lost write, same times": `{"index":0,"time":0,"process":0,"type":"invoke","f":"send","value":[["send","3",1]]}
{"index":1,"time":0,"process":0,"type":"ok","f":"send","value":[["send","3",[0,1]]]}
{"index":2,"time":0,"process":0,"type":"invoke","f":"send","value":[["send","3",2]]}
{"index":3,"time":0,"process":0,"type":"ok","f":"send","value":[["send","3",[1,2]]]}
{"index":4,"time":0,"process":1,"type":"invoke","f":"poll","value":[["poll"]]}
{"index":5,"time":0,"process":1,"type":"ok","f":"poll","value":[["poll",{"3":[[1,2]]}]]}
`,
		"never completed": `{"index":0,"time":5,"process":0,"type":"invoke","f":"poll","value":[["poll"]]}
`,
		"only faults": `{"index":0,"time":5,"process":-1,"type":"info","f":"kill","value":["n1"]}
`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, histories.HistoryFile), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, pg, _ := buildReport(t, dir, Options{})
			if pg.ids["verdict"] == nil {
				t.Error("no verdict element")
			}
			pg.checkLinks(t)
		})
	}
}

// TestOpenRechecksStaleResults: results.json is used only when it belongs
// to the history.
func TestOpenRechecksStaleResults(t *testing.T) {
	ops := plantedHistory(t, synth.LostWrite, plantSeed, 3000)
	other := plantedHistory(t, "", plantSeed+1, 2000)
	cases := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		wantNote string // "" for none
	}{
		{"fresh", func(t *testing.T, dir string) { checkInto(t, dir, dir, ops) }, ""},
		{"missing", func(t *testing.T, dir string) {}, "missing"},
		{"older than the history", func(t *testing.T, dir string) {
			checkInto(t, dir, dir, ops)
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(filepath.Join(dir, histories.ResultsFile), old, old); err != nil {
				t.Fatal(err)
			}
		}, "older"},
		{"about another history", func(t *testing.T, dir string) { checkInto(t, dir, dir, other) }, "history of"},
		{"not JSON", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, histories.ResultsFile), []byte("{"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "does not parse"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeHistory(t, dir, ops)
			c.setup(t, dir)
			run, err := Open(context.Background(), dir, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			notes := strings.Join(run.Notes, "\n")
			if c.wantNote == "" && notes != "" || !strings.Contains(notes, c.wantNote) {
				t.Errorf("notes %q, want one containing %q", notes, c.wantNote)
			}
			if run.Results.Valid != verdict.Invalid || run.Results.Stats.Ops != len(ops) {
				t.Errorf("the results are not this history's: verdict %s, %d ops (want %d)", run.Results.Valid, run.Results.Stats.Ops, len(ops))
			}
		})
	}
}

func TestOpenBadInput(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"index":0,"time":1,"process":0,"type":"okk","f":"send","value":null}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nope"), "nope"},
		{"folder without a history", empty, "no history"},
		{"malformed", bad, "bad.jsonl:1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(context.Background(), c.path, OpenOptions{})
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want ErrInput naming %q", err, c.want)
			}
			_, err = LoadStored(context.Background(), c.path, checkerOptions())
			if !errors.Is(err, ErrInput) {
				t.Errorf("LoadStored: err = %v, want ErrInput", err)
			}
		})
	}
}

// TestVisualizationRedrawn: a non-linearizable key whose porcupine page is
// not on disk gets it drawn again, into the run folder.
func TestVisualizationRedrawn(t *testing.T) {
	dir := t.TempDir()
	ops := plantedHistory(t, synth.InconsistentOffsets, plantSeed, 3000)
	writeHistory(t, dir, ops)
	res := checkInto(t, dir, "", ops)
	if res.Linear.Valid != verdict.Invalid {
		t.Fatalf("seed %d: want a non-linearizable key, got %s", plantSeed, res.Linear.Valid)
	}
	run, pg, _ := buildReport(t, dir, Options{})
	if !strings.Contains(strings.Join(run.Notes, " "), "redrawn") {
		t.Errorf("want a note that the visualization was redrawn, got %q", run.Notes)
	}
	for k, kr := range run.Results.Linear.Keys {
		if kr.Valid != verdict.Invalid {
			continue
		}
		if p := run.visualizationPath(kr); p == "" || filepath.Dir(p) != dir {
			t.Errorf("key %q: visualization %q, want a file in %s", k, p, dir)
		}
		if pg.ids[htmlID("linear", k)+"-data"] == nil {
			t.Errorf("key %q: visualization not embedded", k)
		}
	}
}

// TestReportBoundsEmbeddedOps: with room for only a few ops, the rest are
// linked to the history instead of embedded, and links still resolve.
func TestReportBoundsEmbeddedOps(t *testing.T) {
	dir := t.TempDir()
	ops := plantedHistory(t, synth.LostWrite, plantSeed, 3000)
	writeHistory(t, dir, ops)
	_, pg, b := buildReport(t, dir, Options{MaxOps: 3})
	rows := 0
	for id := range pg.ids {
		if strings.HasPrefix(id, "op-") {
			rows++
		}
	}
	if rows != 3 {
		t.Errorf("want 3 ops embedded, got %d", rows)
	}
	if pg.classes["not-embedded"] == 0 || !slices.Contains(pg.hrefs, histories.HistoryFile) {
		t.Error("want links to ops left out to point at history.jsonl")
	}
	if !strings.Contains(string(b), "left out to keep the page small") {
		t.Error("want the ops section to say some were left out")
	}
	pg.checkLinks(t)
}

// TestReportFromMemory is the runner's path: history and results in
// memory, test.json in the folder.
func TestReportFromMemory(t *testing.T) {
	dir := t.TempDir()
	ops := plantedHistory(t, synth.LostWrite, plantSeed, 3000)
	hp := writeHistory(t, dir, ops)
	res := checkInto(t, dir, dir, ops)
	test := `{"name":"queue-acks-1-kill","seed":7,"config":{"nodes":3,"acks":"1","nemesis":["kill"],"partitions":4,"bug":[],"unclean-leader-election":false}}`
	if err := os.WriteFile(filepath.Join(dir, histories.TestFile), []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	run, err := New(dir, hp, ops, res)
	if err != nil {
		t.Fatal(err)
	}
	path, err := run.WriteFile(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pg := parsePage(t, b)
	if !strings.Contains(pg.text("title"), "queue-acks-1-kill") {
		t.Errorf("the title does not name the test: %q", pg.text("title"))
	}
	cfg := pg.text("config")
	for _, want := range []string{"acks", "1", "nemesis", "kill"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("the configuration table lacks %q: %q", want, cfg)
		}
	}
	if pg.ids["files"] == nil || !slices.Contains(pg.hrefs, histories.TestFile) {
		t.Error("want the run folder's files listed, test.json among them")
	}
	if got, want := ConfigSummary([]byte(test)), "nodes=3 acks=1 partitions=4 nemesis=kill"; got != want {
		t.Errorf("ConfigSummary = %q, want %q", got, want)
	}
}

func TestExtractFaults(t *testing.T) {
	nem := func(tm int64, typ histories.Type, f, val string) histories.Op {
		op := histories.Op{Time: tm, Process: histories.NemesisProcess, Type: typ, F: f}
		if val != "" {
			op.Value.Raw = []byte(val)
		}
		return op
	}
	client := histories.Op{Time: 5, Process: 0, Type: histories.Invoke, F: "poll"}
	cases := []struct {
		name string
		ops  []histories.Op
		want []string // kind label start end healed
	}{
		{"runner: two info events per action", []histories.Op{
			nem(10, histories.Info, "kill", `["n1"]`), nem(12, histories.Info, "kill", `{"n1":"killed"}`), client,
			nem(50, histories.Info, "start", `["n1"]`), nem(60, histories.Info, "start", `{"n1":"started"}`),
		}, []string{`kill kill n1: killed 10 60 true`}},
		{"jepsen: invoke then info", []histories.Op{
			nem(10, histories.Invoke, "start-partition", ""), nem(11, histories.Info, "start-partition", `"majority"`),
			nem(30, histories.Invoke, "stop-partition", ""), nem(31, histories.Info, "stop-partition", `"healed"`),
		}, []string{`partition start-partition majority 10 31 true`}},
		{"never healed", []histories.Op{
			nem(10, histories.Info, "pause", `["n2"]`), nem(11, histories.Info, "pause", `["n2"]`), client,
		}, []string{`pause pause n2 10 100 false`}},
		{"two overlapping kills heal oldest first", []histories.Op{
			nem(10, histories.Invoke, "kill", `"n1"`), nem(11, histories.Info, "kill", `"n1"`),
			nem(20, histories.Invoke, "kill", `"n2"`), nem(21, histories.Info, "kill", `"n2"`),
			nem(30, histories.Invoke, "start", `"n1"`), nem(31, histories.Info, "start", `"n1"`),
			nem(40, histories.Invoke, "start", `"n2"`), nem(41, histories.Info, "start", `"n2"`),
		}, []string{`kill kill n1 10 31 true`, `kill kill n2 20 41 true`}},
		{"power cut healed by power-on", []histories.Op{
			nem(10, histories.Info, "power-off", `"all"`), nem(12, histories.Info, "power-off", `{"nodes":["n1"]}`), client,
			nem(50, histories.Info, "power-on", `{"nodes":["n1"]}`), nem(60, histories.Info, "power-on", `{"nodes":["n1"]}`),
		}, []string{`power power-off nodes: n1 10 60 true`}},
		{"unknown action is an instant", []histories.Op{
			nem(10, histories.Info, "bump-clock", `5`),
		}, []string{`bump-clock bump-clock 5 10 10 true`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, f := range extractFaults(c.ops, 100) {
				got = append(got, fmt.Sprintf("%s %s %d %d %v", f.Kind, f.Label, f.StartNs, f.EndNs, f.Healed))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("faults\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestThinBoundsPoints(t *testing.T) {
	var a, b []xy
	for i := range 50000 {
		a = append(a, xy{float64(i % 1000), float64(i % 37)})
		b = append(b, xy{float64(i % 500), 1})
	}
	series, kept := thin(toXYs(a, b), 0, 1000, 0, 37, nil, 3000)
	n := len(series[0]) + len(series[1])
	if n != kept || kept > 3000 || kept == 0 {
		t.Errorf("kept %d points (counted %d), want 1..3000", kept, n)
	}
	if len(series[1]) == 0 || len(series[0]) == 0 {
		t.Error("thinning emptied a series")
	}
	small, kept := thin(toXYs(a[:10]), 0, 1000, 0, 37, nil, 3000)
	if kept != 10 || len(small[0]) != 10 {
		t.Errorf("a series under budget was thinned: %d", kept)
	}
}

func TestHTMLIDsDistinct(t *testing.T) {
	ids := map[string]string{}
	for _, k := range []string{"a/b", "a_b", "a b", "", "3", strings.Repeat("x", 100), strings.Repeat("x", 101)} {
		id := htmlID("key", k)
		if prev, dup := ids[id]; dup {
			t.Errorf("keys %q and %q share id %q", prev, k, id)
		}
		ids[id] = k
		for _, r := range id {
			if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				t.Errorf("id %q of key %q has %q", id, k, r)
			}
		}
	}
}

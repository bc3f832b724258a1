package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/histtest"
)

// The cases of "checker truth": each thing a new user saw go wrong, as a
// test of garantia check's behaviour from the command line.

// writeOps writes ops as history.jsonl in a fresh folder and returns its
// path.
func writeOps(t *testing.T, ops []histories.Op) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, histories.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := histories.WriteAll(f, ops); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// drainBegins and drainEnds add the final drain's markers.
func drainBegins(b *histtest.Builder) {
	b.Add(histories.NemesisProcess, histories.Invoke, histories.FDrain, histories.Value{})
}

func drainEnds(b *histtest.Builder) {
	b.Add(histories.NemesisProcess, histories.OK, histories.FDrain, histories.Value{})
}

// checkCLI runs garantia check and fails unless it exits with code.
func checkCLI(t *testing.T, code int, args ...string) (stdout, stderr string) {
	t.Helper()
	got, out, errOut := runCLI(t, append([]string{"check"}, args...)...)
	if got != code {
		t.Fatalf("garantia check %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, got, code, out, errOut)
	}
	return out, errOut
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}

// Item 1: offsets 0 and 2^63-1 in one key allocated by the span and
// panicked (exit 2, "unknown"). Now it checks like any other history.
func TestItemHugeOffsetSpan(t *testing.T) {
	var b histtest.Builder
	b.SendOK(0, "k", 0, 1)
	b.SendOK(0, "k", math.MaxInt64, 2)
	drainBegins(&b)
	b.PollOK(1, "k", histtest.R(0, 1), histtest.R(math.MaxInt64, 2))
	drainEnds(&b)
	out, _ := checkCLI(t, 0, writeOps(t, b.Ops))
	mustContain(t, "stdout", out, "verdict: valid")
}

// Item 1: any panic in any subcommand is 255 with one line naming the
// bug, never the runtime's exit 2.
func TestItemPanicIs255(t *testing.T) {
	commands["panic-for-test"] = command{name: "panic-for-test", run: func(args []string, _, _ io.Writer) int {
		xs := make([]int, len(args))
		return xs[len(args)+2] // a real runtime panic: index out of range
	}}
	t.Cleanup(func() { delete(commands, "panic-for-test") })
	code, out, errOut := runCLI(t, "panic-for-test")
	if code != 255 {
		t.Fatalf("exit %d, want 255\n%s\n%s", code, out, errOut)
	}
	if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 {
		t.Errorf("want one line on stderr, got %d:\n%s", len(lines), errOut)
	}
	mustContain(t, "stderr", errOut, "garantia panic-for-test: internal error (a bug in garantia", "index out of range [2] with length 0", "check_items_test.go:")
}

// Item 2: logs that start at offset 1, 10,000 keys of them, are fine (Jepsen
// accepts them; the linear model once flagged every key and wrote 10,001
// HTML files).
func TestItemLogsStartingAtOne(t *testing.T) {
	var b histtest.Builder
	const keys = 10_000
	for k := range keys {
		b.SendOK(int64(k%20), fmt.Sprint(k), 1, int64(k))
	}
	drainBegins(&b)
	for k := range keys {
		b.PollOK(int64(20+k%20), fmt.Sprint(k), histtest.R(1, int64(k)))
	}
	drainEnds(&b)
	path := writeOps(t, b.Ops)
	out, _ := checkCLI(t, 0, path)
	mustContain(t, "stdout", out, "verdict: valid")
	html, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*.html"))
	if len(html) != 0 {
		t.Errorf("%d visualizations written for a valid history", len(html))
	}
}

// Item 2: visualizations of keys not linearizable are capped (20, or
// --max-visualizations), and the summary says how many were left out.
func TestItemVisualizationCap(t *testing.T) {
	var b histtest.Builder
	for k := range 30 {
		b.SendOK(0, fmt.Sprintf("k%02d", k), 0, int64(2*k))
		b.SendOK(1, fmt.Sprintf("k%02d", k), 0, int64(2*k+1)) // two values at one offset
	}
	path := writeOps(t, b.Ops)
	dir := filepath.Dir(path)
	count := func() int {
		html, _ := filepath.Glob(filepath.Join(dir, "linear-*.html"))
		for _, h := range html {
			os.Remove(h)
		}
		return len(html)
	}
	out, _ := checkCLI(t, 1, path)
	mustContain(t, "stdout", out, "visualizations of 20 keys, 10 more left out", "[and 25 more keys]")
	if n := count(); n != 20 {
		t.Errorf("%d visualizations, want 20", n)
	}
	checkCLI(t, 1, "--max-visualizations", "3", path)
	if n := count(); n != 3 {
		t.Errorf("--max-visualizations 3: %d visualizations", n)
	}
	checkCLI(t, 1, "--max-visualizations", "0", path)
	if n := count(); n != 0 {
		t.Errorf("--max-visualizations 0: %d visualizations", n)
	}
}

const (
	inv0  = `{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":[["send","k",1]]}`
	ok0   = `{"index":1,"time":2,"process":0,"type":"ok","f":"send","value":[["send","k",[0,1]]]}`
	poll1 = `{"index":2,"time":3,"process":1,"type":"invoke","f":"poll","value":[["poll"]]}`
)

// Items 3 and 4: every malformed history is 254 naming the file, the line
// and the rule broken; results.json is not written.
func TestItemMalformedIs254(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"completion without invocation", ok0 + "\n",
			`:1: ok send completes nothing: process 0 has no operation open`},
		{"completion of another f", inv0 + "\n" + `{"index":1,"time":2,"process":0,"type":"ok","f":"poll","value":[["poll",{}]]}` + "\n",
			`:2: ok poll completes the send process 0 invoked at index 0: a completion must have its invocation's f`},
		{"completion with another number of micro-ops", inv0 + "\n" + `{"index":1,"time":2,"process":0,"type":"ok","f":"send","value":[["send","k",[0,1]],["send","k",[1,2]]]}` + "\n",
			`:2: ok send does not report on the micro-operations process 0 invoked at index 0: 2 micro-op(s) completed, 1 invoked`},
		{"completion of another value", inv0 + "\n" + `{"index":1,"time":2,"process":0,"type":"ok","f":"send","value":[["send","k",[0,9]]]}` + "\n",
			`:2: ok send does not report on the micro-operations process 0 invoked at index 0: micro-op 0 completes as a send of 9, invoked with 1`},
		{"process invoking twice", inv0 + "\n" + `{"index":1,"time":2,"process":0,"type":"invoke","f":"poll","value":[["poll"]]}` + "\n",
			`:2: process 0 invokes poll while its send invoked at index 0 has not completed: a process runs one operation at a time`},
		{"whole last line without newline", inv0 + "\n" + ok0 + "\n" + `{"index":2,"time":3,"process":1,"type":"done","f":"poll"}`,
			`:3: field "type": want invoke, ok, fail or info, got "done"`},
		{"JSON that is not an op, without newline", `[1,2,3]`, `:1: column 1: want a JSON object`},
		{"binary junk", "\x00\x01\x02\xff\xfe\n\x7fELF\x02\x01\n", `:1: column 1: want a JSON object`},
		{"only a torn line", `{"index":0,"ti`, `no line is an operation`},
		{"empty file", ``, `no line is an operation`},
		{"invalid UTF-8 in a key", inv0 + "\n" + ok0 + "\n" + `{"index":2,"time":3,"process":1,"type":"invoke","f":"send","value":[["send","k` + "\xff" + `",2]]}` + "\n",
			`:3: field "value": column 79: invalid UTF-8 in a string: byte 0xff is not text`},
		{"time going backwards", inv0 + "\n" + `{"index":1,"time":0,"process":0,"type":"ok","f":"send","value":[["send","k",[0,1]]]}` + "\n",
			`:2: field "time": 0 is before the previous op's time 1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "history.jsonl", c.text)
			_, errOut := checkCLI(t, 254, path)
			mustContain(t, "stderr", errOut, path, c.want)
			if _, err := os.Stat(filepath.Join(dir, "results.json")); err == nil {
				t.Error("results.json written for a malformed history")
			}
		})
	}
}

// Item 3: the same value sent twice to one key is not malformed: the log
// shows a duplicate.
func TestItemValueSentTwiceIsADuplicate(t *testing.T) {
	var b histtest.Builder
	b.SendOK(0, "k", 0, 7)
	b.SendOK(0, "k", 1, 7)
	drainBegins(&b)
	b.PollOK(1, "k", histtest.Recs(0, 7, 1, 7)...)
	drainEnds(&b)
	out, _ := checkCLI(t, 1, writeOps(t, b.Ops))
	mustContain(t, "stdout", out, "duplicate", "value 7 appears at 2 offsets")
}

// Item 3: a fragment cut from a longer history is a clear 254 that says
// what to do, and checks with --fragment.
func TestItemFragment(t *testing.T) {
	// Cut in the middle: process 0's ok completes a send invoked before
	// the cut, process 1 reads a value sent before it.
	text := ok0 + "\n" + poll1 + "\n" + `{"index":3,"time":4,"process":1,"type":"ok","f":"poll","value":[["poll",{"k":[[0,1],[1,5]]}]]}` + "\n"
	path := writeFile(t, t.TempDir(), "cut.jsonl", text)
	_, errOut := checkCLI(t, 254, path)
	mustContain(t, "stderr", errOut, "cut.jsonl:1: ok send completes nothing", "check it with --fragment")
	out, _ := checkCLI(t, 0, "--fragment", path)
	mustContain(t, "stdout", out, "verdict: valid")
}

// Item 6: the report of a history whose time goes backwards is 254, as
// its check is, not a crash.
func TestItemTimeBackwardsReport(t *testing.T) {
	path := writeFile(t, t.TempDir(), "history.jsonl", inv0+"\n"+`{"index":1,"time":0,"process":0,"type":"ok","f":"send","value":[["send","k",[0,1]]]}`+"\n")
	code, _, errOut := runCLI(t, "report", path)
	if code != 254 || !strings.Contains(errOut, `history.jsonl:2: field "time"`) {
		t.Fatalf("report exit %d, want 254 naming line 2:\n%s", code, errOut)
	}
}

// Item 7: a failed check leaves no older verdict beside the history.
func TestItemNoStaleVerdict(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "history.jsonl", validHistory)
	checkCLI(t, 0, path)
	results := filepath.Join(dir, "results.json")
	if _, err := os.Stat(results); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "history.jsonl", validHistory+"garbage\n")
	checkCLI(t, 254, path)
	if _, err := os.Stat(results); err == nil {
		t.Fatal("results.json of the earlier check survived a failed one")
	}
}

// Item 8: output paths that cannot be written are 254 naming the user's
// path, before any work; a visualization that cannot be written is a
// warning that keeps the verdict; a --junit file that cannot be written
// changes the exit code.
func TestItemOutputErrors(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "history.jsonl", validHistory)
	file := writeFile(t, dir, "a-file", "x")
	for _, c := range []struct {
		out, want string
	}{
		{filepath.Join(dir, "missing", "results.json"), "the folder " + filepath.Join(dir, "missing") + " does not exist"},
		{dir, "is a folder; want the path of a file"},
		{filepath.Join(file, "results.json"), "is not a folder"},
		{path, "is the history itself"},
	} {
		_, errOut := checkCLI(t, 254, "--out", c.out, path)
		mustContain(t, "stderr", errOut, "--out "+c.out, c.want)
		if strings.Contains(errOut, ".tmp") {
			t.Errorf("the error names a temporary file:\n%s", errOut)
		}
	}
	_, errOut := checkCLI(t, 254, "--junit", dir, path)
	mustContain(t, "stderr", errOut, "--junit "+dir+" is a folder")

	// A visualization that cannot be written: its path is taken by a
	// folder. The verdict (invalid) stands.
	var b histtest.Builder
	b.SendOK(0, "k", 0, 1)
	b.SendOK(1, "k", 0, 2)
	bad := writeOps(t, b.Ops)
	if err := os.Mkdir(filepath.Join(filepath.Dir(bad), "linear-k.html"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, _ := checkCLI(t, 1, bad)
	mustContain(t, "stdout", out, "warning: key \"k\" is not linearizable but its visualization could not be written", "verdict: INVALID")
}

// Item 9: Jepsen's own histories as written: keyword and string values,
// nil values and offsets, :rebalance-log.
func TestItemJepsenValues(t *testing.T) {
	edn := `{:index 0, :type :invoke, :f :send, :value [[:send :x :a] [:send :y nil]], :time 1, :process 0}
{:index 1, :type :ok, :f :send, :value [[:send :x [0 :a]] [:send :y [nil nil]]], :time 2, :process 0}
{:index 2, :type :invoke, :f :send, :value [[:send :x "b"]], :time 3, :process 0}
{:index 3, :type :ok, :f :send, :value [[:send :x [1 "b"]]], :time 4, :process 0}
{:index 4, :type :invoke, :f :send, :value [[:send :x :c]], :time 5, :process 0}
{:index 5, :type :ok, :f :send, :value [[:send :x [2 :c]]], :time 6, :process 0}
{:index 6, :type :invoke, :f :subscribe, :value [:x :y], :time 7, :process 1}
{:index 7, :type :ok, :f :subscribe, :value [:x :y], :time 8, :process 1}
{:index 8, :type :invoke, :f :poll, :value [[:poll]], :time 9, :process 1}
{:index 9, :type :ok, :f :poll, :value [[:poll {:x [[0 :a] [2 :c]], :y [[nil nil]]}]], :time 10, :process 1, :rebalance-log [{:keys [:x]}]}
`
	dir := t.TempDir()
	path := writeFile(t, dir, "history.edn", edn)
	// "b" at offset 1 was never read although offset 2 was: lost. The
	// in-poll skip from a to c is excused: x was rebalanced during it.
	out, _ := checkCLI(t, 1, "--assume-drained", path)
	mustContain(t, "stdout", out, `lost-write`, `value "b" of key "x", acknowledged at offset 1, was never read`)
	if strings.Contains(out, "int-poll-skip") {
		t.Errorf("the rebalanced key's skip is reported:\n%s", out)
	}
	// Converted to JSON Lines and back, it checks the same.
	code, jsonl, errOut := runCLI(t, "export", "--format", "jsonl", path)
	if code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	mustContain(t, "exported JSONL", jsonl, `["send","x",[0,"a"]]`, `["send","y",[null,null]]`, `"rebalance-log":[{"keys":["x"]}]`)
	again := writeFile(t, dir, "again.jsonl", jsonl)
	out2, _ := checkCLI(t, 1, "--assume-drained", again)
	mustContain(t, "stdout", out2, `value "b" of key "x"`)
}

// Item 9: a read of a value no one sent, and of a value whose send failed,
// are anomalies of the queue checker itself.
func TestItemGarbageAndAbortedReads(t *testing.T) {
	var b histtest.Builder
	b.SendOK(0, "k", 0, 1)
	b.Send(0, histories.Fail, histtest.SendMop("k", 1, 2))
	drainBegins(&b)
	b.PollOK(1, "k", histtest.Recs(0, 1, 1, 2, 2, 99)...)
	drainEnds(&b)
	out, _ := checkCLI(t, 1, "--no-linear", writeOps(t, b.Ops))
	mustContain(t, "stdout", out, "G1a", "whose send failed", "garbage-read", "value 99 of key \"k\" at offset 2, but no send in the history wrote it")
}

// Item 11: without a completed final drain, unseen is reported but
// inconclusive: exit 2, and the summary and results.json say why.
func TestItemUnseenNeedsTheDrain(t *testing.T) {
	build := func(drain string) []histories.Op {
		var b histtest.Builder
		b.SendOK(0, "k", 0, 1)
		b.SendOK(0, "k", 1, 2)
		switch drain {
		case "completed":
			drainBegins(&b)
			b.PollOK(1, "k", histtest.R(0, 1))
			drainEnds(&b)
		case "cut-short":
			drainBegins(&b)
			b.PollOK(1, "k", histtest.R(0, 1))
			b.Ops = append(b.Ops, histories.Op{Index: int64(len(b.Ops)), Time: 1000 * int64(len(b.Ops)), Process: histories.NemesisProcess,
				Type: histories.Info, F: histories.FDrain, Error: "interrupted"})
		case "acked after it began":
			drainBegins(&b)
			b.SendOK(0, "k", 2, 3)
			b.PollOK(1, "k", histtest.Recs(0, 1, 1, 2)...)
			drainEnds(&b)
		default:
			b.PollOK(1, "k", histtest.R(0, 1))
		}
		return b.Ops
	}
	for _, c := range []struct {
		drain string
		args  []string
		code  int
		want  []string
	}{
		{"none", nil, 2, []string{"1 (1 inconclusive) unseen", "final drain: not-recorded", "--assume-drained", "unseen                 1 (inconclusive)", "verdict: unknown"}},
		{"none", []string{"--assume-drained"}, 1, []string{"verdict: INVALID"}},
		{"completed", nil, 1, []string{"1 unseen", "verdict: INVALID"}},
		{"cut-short", nil, 2, []string{"final drain: cut-short", "(interrupted)", "verdict: unknown"}},
		{"acked after it began", nil, 2, []string{"final drain: completed", "verdict: unknown"}},
	} {
		t.Run(c.drain+strings.Join(c.args, ""), func(t *testing.T) {
			path := writeOps(t, build(c.drain))
			out, _ := checkCLI(t, c.code, append(c.args, path)...)
			mustContain(t, "stdout", out, c.want...)
			var r struct {
				Valid any `json:"valid"`
				Queue struct {
					Drain struct {
						State, Explanation string
					} `json:"final-drain"`
					Inconclusive []string `json:"inconclusive-anomaly-types"`
				} `json:"queue"`
			}
			b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "results.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if r.Queue.Drain.State == "" || r.Queue.Drain.Explanation == "" {
				t.Errorf("results.json does not say what the drain was: %s", b)
			}
			if c.code == 2 && (r.Valid != "unknown" || len(r.Queue.Inconclusive) != 1) {
				t.Errorf("results.json: valid %v, inconclusive %v; want unknown because of unseen", r.Valid, r.Queue.Inconclusive)
			}
		})
	}
}

// garantia synth writes the drain markers, so synthetic histories stay
// judged as before: a planted unseen value is a failure.
func TestItemSynthDrains(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.jsonl")
	if code, _, errOut := runCLI(t, "synth", "--ops", "2000", "--seed", "3", "--fault", "unseen", "--out", path); code != 0 {
		t.Fatal(errOut)
	}
	out, _ := checkCLI(t, 1, path)
	mustContain(t, "stdout", out, "verdict: INVALID")
	if strings.Contains(out, "inconclusive") {
		t.Errorf("a drained synthetic history's unseen is inconclusive:\n%s", out)
	}
}

// Issue 12, report polish: --max-examples 0 keeps no examples, only the
// counts.
func TestMaxExamplesZero(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "history.jsonl", lostHistory)
	out, _ := checkCLI(t, 1, "--max-examples", "0", path)
	mustContain(t, "stdout", out, "lost-write             1")
	if strings.Contains(out, "was never read") {
		t.Errorf("an example printed with --max-examples 0:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"examples": []`) {
		t.Errorf("results.json keeps examples with --max-examples 0:\n%s", b)
	}
	_, errOut := checkCLI(t, 254, "--max-examples", "-1", path)
	mustContain(t, "stderr", errOut, "want 0 or more", "--all-errors")
}

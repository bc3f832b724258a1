package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the garantia command line in-process and returns its exit
// code and outputs.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const validHistory = `{"index":0,"time":1200,"process":0,"type":"invoke","f":"send","value":[["send","3",1042]]}
{"index":1,"time":1900,"process":1,"type":"invoke","f":"poll","value":[["poll"]]}
{"index":2,"time":5100,"process":0,"type":"ok","f":"send","value":[["send","3",[0,1042]]]}
{"index":3,"time":7000,"process":1,"type":"ok","f":"poll","value":[["poll",{"3":[[0,1042]]}]]}
{"index":4,"time":9000,"process":-1,"type":"info","f":"start-partition","value":"majority"}
`

// lostHistory acknowledges 1043 at offset 1, then a poll reads offset 2:
// 1043 was lost.
const lostHistory = `{"index":0,"time":1,"process":0,"type":"invoke","f":"send","value":[["send","3",1042]]}
{"index":1,"time":2,"process":0,"type":"ok","f":"send","value":[["send","3",[0,1042]]]}
{"index":2,"time":3,"process":0,"type":"invoke","f":"send","value":[["send","3",1043]]}
{"index":3,"time":4,"process":0,"type":"ok","f":"send","value":[["send","3",[1,1043]]]}
{"index":4,"time":5,"process":0,"type":"invoke","f":"send","value":[["send","3",1044]]}
{"index":5,"time":6,"process":0,"type":"ok","f":"send","value":[["send","3",[2,1044]]]}
{"index":6,"time":7,"process":1,"type":"invoke","f":"poll","value":[["poll"]]}
{"index":7,"time":8,"process":1,"type":"ok","f":"poll","value":[["poll",{"3":[[0,1042],[2,1044]]}]]}
`

func TestCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	valid := writeFile(t, dir, "valid.jsonl", validHistory)
	lost := writeFile(t, dir, "lost.jsonl", lostHistory)
	malformed := writeFile(t, dir, "bad.jsonl", validHistory+`{"index":5,"time":9100,"process":0,"type":"okk","f":"send","value":null}`+"\n")
	runDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, runDir, "history.jsonl", lostHistory)

	cases := []struct {
		name       string
		args       []string
		code       int
		wantOut    string // substring of stdout
		wantErr    string // substring of stderr
		resultsDir string // where results.json must appear
	}{
		{"valid", []string{"check", valid}, 0, "verdict: valid", "", ""},
		{"lost write", []string{"check", "--out", filepath.Join(dir, "lost-results.json"), lost}, 1, "lost-write", "", ""},
		{"run folder", []string{"check", runDir}, 1, "verdict: INVALID", "", runDir},
		{"malformed line names file and line", []string{"check", malformed}, 254, "", "bad.jsonl:6", ""},
		{"missing path", []string{"check", filepath.Join(dir, "nope.jsonl")}, 254, "", "nope.jsonl", ""},
		{"no path", []string{"check"}, 254, "", "want exactly one PATH", ""},
		{"bad flag", []string{"check", "--max-examples", "x", valid}, 254, "", "max-examples", ""},
		{"help lists every anomaly", []string{"check", "--help"}, 0, "inconsistent-offsets", "", ""},
		{"unknown subcommand", []string{"chekc"}, 254, "", "unknown subcommand", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			if !strings.Contains(out, c.wantOut) {
				t.Errorf("stdout lacks %q:\n%s", c.wantOut, out)
			}
			if !strings.Contains(errOut, c.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", c.wantErr, errOut)
			}
			if c.resultsDir != "" {
				if _, err := os.Stat(filepath.Join(c.resultsDir, "results.json")); err != nil {
					t.Errorf("results.json not written beside the history: %v", err)
				}
			}
		})
	}
}

func TestCheckResultsJSON(t *testing.T) {
	dir := t.TempDir()
	lost := writeFile(t, dir, "history.jsonl", lostHistory)
	if code, out, errOut := runCLI(t, "check", lost); code != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Valid any `json:"valid"`
		Queue struct {
			Valid     any `json:"valid"`
			Anomalies map[string]struct {
				Count    int `json:"count"`
				Examples []struct {
					Ops []struct {
						Index   int64 `json:"index"`
						Process int64 `json:"process"`
					} `json:"ops"`
				} `json:"examples"`
			} `json:"anomalies"`
		} `json:"queue"`
		Linear *struct {
			Valid any `json:"valid"`
		} `json:"linearizable"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("results.json does not parse: %v\n%s", err, b)
	}
	if r.Valid != false {
		t.Errorf(`top-level "valid" = %v, want false`, r.Valid)
	}
	lw, ok := r.Queue.Anomalies["lost-write"]
	if !ok || lw.Count != 1 {
		t.Fatalf("want one lost-write, got %+v", r.Queue.Anomalies)
	}
	if len(lw.Examples) == 0 || len(lw.Examples[0].Ops) == 0 {
		t.Fatalf("lost-write example names no ops: %+v", lw)
	}
	// The example must name the acknowledging op (#3) among its ops.
	found := false
	for _, op := range lw.Examples[0].Ops {
		found = found || op.Index == 3
	}
	if !found {
		t.Errorf("lost-write example does not cite the ok send #3: %+v", lw.Examples[0].Ops)
	}
	if r.Linear == nil {
		t.Error("results.json has no linearizable section")
	}
}

// TestCheckSynthRoundTrip plants each fault with `garantia synth` and checks
// that `garantia check` finds it: the CLI path users take for a demo.
func TestCheckSynthRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, fault := range []string{"lost-write", "duplicate", "unseen"} {
		t.Run(fault, func(t *testing.T) {
			path := filepath.Join(dir, fault+".jsonl")
			if code, out, errOut := runCLI(t, "synth", "--ops", "4000", "--seed", "7", "--fault", fault, "--out", path); code != 0 {
				t.Fatalf("synth exit %d\n%s\n%s", code, out, errOut)
			}
			code, out, errOut := runCLI(t, "check", "--out", filepath.Join(dir, fault+"-results.json"), path)
			if code != 1 || !strings.Contains(out, fault) {
				t.Fatalf("check exit %d, want 1 with %s\n%s\n%s", code, fault, out, errOut)
			}
		})
	}
	clean := filepath.Join(dir, "clean.jsonl")
	if code, _, errOut := runCLI(t, "synth", "--ops", "4000", "--seed", "7", "--out", clean); code != 0 {
		t.Fatalf("synth: %s", errOut)
	}
	if code, out, errOut := runCLI(t, "check", "--out", filepath.Join(dir, "clean-results.json"), clean); code != 0 {
		t.Fatalf("a correct synthetic history checked %d\n%s\n%s", code, out, errOut)
	}
}

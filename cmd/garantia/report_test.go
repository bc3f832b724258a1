package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/garantia/garantia/histories"
)

// synthRun writes a planted history (fault "" for none) with the synth
// command into a new folder dir/name and returns the folder.
func synthRun(t *testing.T, dir, name, fault string) string {
	t.Helper()
	run := filepath.Join(dir, name)
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"synth", "--ops", "2000", "--keys", "3", "--seed", "11", "--nemesis-interval", "100ms", "--out", filepath.Join(run, histories.HistoryFile)}
	if fault != "" {
		args = append(args, "--fault", fault)
	}
	if code, _, errOut := runCLI(t, args...); code != 0 {
		t.Fatalf("synth (seed 11): exit %d: %s", code, errOut)
	}
	return run
}

func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	run := synthRun(t, dir, "run", "lost-write")
	cases := []struct {
		name    string
		args    []string
		code    int
		wantOut string // substring of stdout
		wantErr string // substring of stderr
	}{
		{"run folder", []string{"report", run}, 0, filepath.Join(run, "report.html"), "results.json is missing"},
		{"history file", []string{"report", "--quiet", filepath.Join(run, histories.HistoryFile)}, 0, filepath.Join(run, "report.html"), ""},
		{"missing path", []string{"report", filepath.Join(dir, "nope")}, 254, "", "nope"},
		{"no path", []string{"report"}, 254, "", "want exactly one PATH"},
		{"bad flag value", []string{"report", "--max-ops", "0", run}, 254, "", "--max-ops"},
		{"help", []string{"report", "--help"}, 0, "Usage: garantia report", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, c.args...)
			if code != c.code || !strings.Contains(out, c.wantOut) || !strings.Contains(errOut, c.wantErr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q in stdout, %q in stderr", code, c.code, out, errOut, c.wantOut, c.wantErr)
			}
			if c.code == 0 && c.wantOut != "" && strings.HasSuffix(c.wantOut, "report.html") {
				b, err := os.ReadFile(strings.TrimSpace(out))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(b), `data-verdict="false"`) || !strings.Contains(string(b), "lost-write") {
					t.Error("the report does not show the invalid verdict and the lost write")
				}
			}
		})
	}
}

// junitDoc holds the JUnit elements CI systems read.
type junitDoc struct {
	XMLName xml.Name `xml:"testsuites"`
	Suites  []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
			} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestCheckJUnit(t *testing.T) {
	dir := t.TempDir()
	lost := synthRun(t, dir, "lost", "lost-write")
	valid := synthRun(t, dir, "valid", "")
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"index\":0}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		path     string
		extra    []string
		code     int
		failures map[string]string // test case -> substring of its failure or error message
	}{
		{"invalid", lost, nil, 1, map[string]string{"queue": "lost-write"}},
		{"valid", valid, nil, 0, map[string]string{}},
		{"malformed history", bad, nil, 254, map[string]string{"check": "did not produce results"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			junit := filepath.Join(t.TempDir(), "junit.xml")
			args := append([]string{"check", "--quiet", "--junit", junit}, c.extra...)
			code, out, errOut := runCLI(t, append(args, c.path)...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, c.code, out, errOut)
			}
			b, err := os.ReadFile(junit)
			if err != nil {
				t.Fatalf("no JUnit file: %v (stderr %s)", err, errOut)
			}
			var doc junitDoc
			if err := xml.Unmarshal(b, &doc); err != nil || len(doc.Suites) != 1 {
				t.Fatalf("JUnit does not decode into one testsuite: %v\n%s", err, b)
			}
			got := map[string]string{}
			for _, tc := range doc.Suites[0].Cases {
				switch {
				case tc.Failure != nil:
					got[tc.Name] = tc.Failure.Message
				case tc.Error != nil:
					got[tc.Name] = tc.Error.Message
				}
			}
			if len(got) != len(c.failures) {
				t.Errorf("failing test cases %v, want %v", got, c.failures)
			}
			for name, msg := range c.failures {
				if !strings.Contains(got[name], msg) {
					t.Errorf("test case %s: message %q, want %q", name, got[name], msg)
				}
			}
		})
	}
	code, _, errOut := runCLI(t, "check", "--junit", filepath.Join(dir, "j.xml"), "--junit-unknown", "green", valid)
	if code != 254 || !strings.Contains(errOut, "junit-unknown") {
		t.Errorf("--junit-unknown green: exit %d, stderr %q; want 254 naming the flag", code, errOut)
	}
}

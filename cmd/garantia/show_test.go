package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/garantia/garantia/histories"
)

func TestShowCommand(t *testing.T) {
	dir := t.TempDir()
	checked := synthRun(t, dir, "checked", "lost-write")
	if code, _, errOut := runCLI(t, "check", "--quiet", checked); code != 1 {
		t.Fatalf("check: exit %d: %s", code, errOut)
	}
	unchecked := synthRun(t, dir, "unchecked", "")
	cases := []struct {
		name  string
		args  []string
		code  int
		want  []string // substrings of stdout
		wantE string   // substring of stderr
	}{
		{"checked run", []string{"show", checked}, 1, []string{"run: " + checked, "lost-write", "verdict: INVALID", "results: ", "report: none yet"}, ""},
		{"a run's results.json", []string{"show", filepath.Join(checked, histories.ResultsFile)}, 1, []string{"verdict: INVALID"}, ""},
		{"no results.json yet", []string{"show", unchecked}, 0, []string{"note: ", "is missing", "verdict: valid"}, ""},
		{"missing", []string{"show", filepath.Join(dir, "nope")}, 254, nil, "nope"},
		{"two paths", []string{"show", checked, unchecked}, 254, nil, "at most one PATH"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, c.args...)
			if code != c.code || !strings.Contains(errOut, c.wantE) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, c.code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
	// Once the report exists, show points at it.
	if code, _, errOut := runCLI(t, "report", "--quiet", checked); code != 0 {
		t.Fatalf("report: exit %d: %s", code, errOut)
	}
	if _, out, _ := runCLI(t, "show", checked); !strings.Contains(out, "report: "+filepath.Join(checked, "report.html")) {
		t.Errorf("show does not name the report:\n%s", out)
	}
}

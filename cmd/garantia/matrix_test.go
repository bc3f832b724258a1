package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/runner"
)

func TestMatrixBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		flag string
	}{
		{[]string{"--acks-levels", "2"}, "--acks-levels"},
		{[]string{"--acks-levels", "all,all"}, "--acks-levels"},
		{[]string{"--acks", "1"}, "acks"}, // matrix sets acks itself
		{[]string{"--nodes", "0"}, "--nodes"},
		{[]string{"--nemesis", "flood"}, "--nemesis"},
		{[]string{"--fsync-levels", "sometimes"}, "--fsync-levels"},
		{[]string{"--fsync-levels", "never", "--fsync", "always"}, "--fsync"},
		{[]string{"stray"}, "stray"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			store := t.TempDir()
			code := run(append([]string{"matrix", "--store", store}, c.args...), &stdout, &stderr)
			if code != verdict.ExitBadArguments {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, verdict.ExitBadArguments, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.flag) {
				t.Errorf("stderr does not name %s:\n%s", c.flag, stderr.String())
			}
		})
	}
}

// TestMatrixRuns: acks=0 against acks=all on the default 3-node cluster
// with kills, for two seconds each: exit 0, the table on stdout,
// matrix.json and matrix.md in the store.
func TestMatrixRuns(t *testing.T) {
	store := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"matrix", "--acks-levels", "0,all", "--time-limit", "2", "--nemesis", "kill",
		"--nemesis-interval", "500ms", "--rate", "300", "--store", store, "--seed", "7"}, &stdout, &stderr)
	if code != verdict.ExitValid {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"acks | ", "throughput", "p99", "\n0 ", "\nall "} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{runner.MatrixJSONFile, runner.MatrixMDFile} {
		if _, err := os.Stat(filepath.Join(store, runner.MatrixDir, "latest", f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, name := range []string{"queue-acks-0-kill", "queue-acks-all-kill"} {
		if runs, _ := filepath.Glob(filepath.Join(store, name, "2*")); len(runs) != 1 {
			t.Errorf("%d runs of %s in the store, want 1", len(runs), name)
		}
	}
}

package histories

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustNewRun(t *testing.T, root, test string, at time.Time) *Run {
	t.Helper()
	r, err := NewRun(root, test, at)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewRun(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	at := time.Date(2026, 11, 26, 12, 3, 4, 123456789, time.FixedZone("CET", 3600))
	r := mustNewRun(t, root, "queue-acks1", at)
	wantDir := filepath.Join(root, "queue-acks1", "20261126T110304.123Z")
	if r.Dir != wantDir || r.Test != "queue-acks1" || !r.Time.Equal(at.Truncate(time.Millisecond)) || r.Time.Location() != time.UTC {
		t.Fatalf("run = %+v, want dir %s", r, wantDir)
	}
	if fi, err := os.Stat(r.Dir); err != nil || !fi.IsDir() {
		t.Fatalf("run folder: %v", err)
	}
	if got := r.Path(HistoryFile); got != filepath.Join(wantDir, "history.jsonl") {
		t.Fatalf("Path = %s", got)
	}
	if s := r.String(); s != "queue-acks1/20261126T110304.123Z" {
		t.Fatalf("String = %s", s)
	}
	// Both links are relative and point at the run.
	for link, target := range map[string]string{
		filepath.Join(root, LatestLink):                "queue-acks1/20261126T110304.123Z",
		filepath.Join(root, "queue-acks1", LatestLink): "20261126T110304.123Z",
	} {
		got, err := os.Readlink(link)
		if err != nil || got != target {
			t.Fatalf("%s -> %q (%v), want %q", link, got, err, target)
		}
	}

	// A second run in the same millisecond gets the next one; a run of
	// another test moves store/latest but not the first test's link.
	r2 := mustNewRun(t, root, "queue-acks1", at)
	if filepath.Base(r2.Dir) != "20261126T110304.124Z" {
		t.Fatalf("second run in the same millisecond: %s", r2.Dir)
	}
	r3 := mustNewRun(t, root, "other", at.Add(time.Hour))
	if got, _ := os.Readlink(filepath.Join(root, LatestLink)); got != "other/20261126T120304.123Z" {
		t.Fatalf("store/latest -> %s after a run of another test", got)
	}
	if got, _ := os.Readlink(filepath.Join(root, "queue-acks1", LatestLink)); got != "20261126T110304.124Z" {
		t.Fatalf("queue-acks1/latest -> %s", got)
	}
	// No temporary links are left behind.
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("left over: %s", e.Name())
		}
	}

	runs, err := ListRuns(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, run := range runs {
		got = append(got, run.Dir)
	}
	want := []string{r3.Dir, r2.Dir, r.Dir}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("ListRuns = %v, want newest first %v", got, want)
	}
}

func TestNewRunRefusesBadNames(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"", "latest", ".hidden", "a/b", `a\b`, "tab\there", strings.Repeat("x", 201)} {
		if _, err := NewRun(root, name, time.Now()); err == nil || !strings.Contains(err.Error(), "cannot name a store folder") {
			t.Errorf("NewRun(%q) = %v, want a refusal", name, err)
		}
	}
}

func TestResolveHistory(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	r := mustNewRun(t, root, "queue", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	history := r.Path(HistoryFile)
	if err := os.WriteFile(history, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	jepsenRun := filepath.Join(t.TempDir(), "jepsen-run")
	os.MkdirAll(jepsenRun, 0o755)
	os.WriteFile(filepath.Join(jepsenRun, EDNHistoryFile), nil, 0o644)
	empty := t.TempDir()
	loop := t.TempDir()
	os.Symlink(".", filepath.Join(loop, LatestLink))

	tests := []struct {
		path, want, wantErr string
	}{
		{path: history, want: history},
		{path: "testdata/jepsen_kafka.edn", want: "testdata/jepsen_kafka.edn"},
		{path: r.Dir, want: history},
		{path: root, want: filepath.Join(root, LatestLink, HistoryFile)},
		{path: filepath.Join(root, LatestLink), want: filepath.Join(root, LatestLink, HistoryFile)},
		{path: filepath.Join(root, "queue"), want: filepath.Join(root, "queue", LatestLink, HistoryFile)},
		{path: jepsenRun, want: filepath.Join(jepsenRun, EDNHistoryFile)},
		{path: empty, wantErr: "no history in folder " + empty + ": want a history file (.jsonl or .edn), a run folder holding history.jsonl (or history.edn), or a store folder with a \"latest\" link to a run"},
		{path: filepath.Join(empty, "nope.jsonl"), wantErr: "no such file or directory"},
		{path: loop, wantErr: "no history in folder"},
	}
	for _, tt := range tests {
		got, err := ResolveHistory(tt.path)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ResolveHistory(%s) = %s, %v; want error containing %q", tt.path, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ResolveHistory(%s) = %s, %v; want %s", tt.path, got, err, tt.want)
		}
	}
	if _, err := ResolveHistory(filepath.Join(empty, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing path: %v, want fs.ErrNotExist", err)
	}
}

func TestListRunsSkipsWhatIsNotARun(t *testing.T) {
	root := t.TempDir()
	mustNewRun(t, root, "q", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	os.MkdirAll(filepath.Join(root, "q", "not-a-time"), 0o755)
	os.WriteFile(filepath.Join(root, "q", "20260101T000000.000Z.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "notes.txt"), nil, 0o644)
	os.MkdirAll(filepath.Join(root, ".trash", "20260101T000000.000Z"), 0o755)
	runs, err := ListRuns(root)
	if err != nil || len(runs) != 1 || runs[0].Test != "q" {
		t.Fatalf("ListRuns = %+v, %v", runs, err)
	}
	if _, err := ListRuns(filepath.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ListRuns of a missing store: %v", err)
	}
}

package histories

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/garantia/garantia/internal/atomicfile"
)

// The files of a run folder.
const (
	HistoryFile    = "history.jsonl" // the history, as recorded
	EDNHistoryFile = "history.edn"   // a Jepsen history (Jepsen's store has one per run)
	ResultsFile    = "results.json"  // the checkers' verdicts
	TestFile       = "test.json"     // the configuration, seed and versions
	// LatestLink is the symlink, in the store root and in each test's
	// folder, to the newest run.
	LatestLink = "latest"
)

// RunTimeLayout is the layout of a run folder's name: the run's start in
// UTC, to the millisecond, e.g. 20261126T120304.123Z. Names sort in time
// order.
const RunTimeLayout = "20060102T150405.000Z"

// Run is one test run's folder in a store: store/<test>/<time>/.
type Run struct {
	Dir  string    // the run's folder
	Test string    // the test's name
	Time time.Time // when the run started, UTC, to the millisecond
}

// Path returns the path of the file name in the run's folder.
func (r *Run) Path(name string) string { return filepath.Join(r.Dir, name) }

// sameMillisecondTries bounds the search for a free folder name when runs
// of one test start within the same millisecond.
const sameMillisecondTries = 1000

// NewRun creates the folder of a new run of testName in the store at root,
// named after now, and points root/latest and root/<testName>/latest at
// it. When a run of that test already has the folder, the time is moved on
// a millisecond until a name is free. The links are relative (the store
// can be moved) and replaced atomically: a reader sees the old run or the
// new one, never none.
func NewRun(root, testName string, now time.Time) (*Run, error) {
	if err := checkTestName(testName); err != nil {
		return nil, err
	}
	testDir := filepath.Join(root, testName)
	if err := os.MkdirAll(testDir, 0o755); err != nil {
		return nil, fmt.Errorf("histories: creating the store: %w", err)
	}
	t := now.UTC().Truncate(time.Millisecond)
	var dir, stamp string
	for try := 0; ; try++ {
		stamp = t.Format(RunTimeLayout)
		dir = filepath.Join(testDir, stamp)
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || try == sameMillisecondTries {
			return nil, fmt.Errorf("histories: creating the run folder: %w", err)
		}
		t = t.Add(time.Millisecond)
	}
	if err := replaceSymlink(stamp, filepath.Join(testDir, LatestLink)); err != nil {
		return nil, err
	}
	if err := replaceSymlink(filepath.Join(testName, stamp), filepath.Join(root, LatestLink)); err != nil {
		return nil, err
	}
	return &Run{Dir: dir, Test: testName, Time: t}, nil
}

// checkTestName refuses names that would not make one plain folder of the
// store, or would collide with its links.
func checkTestName(name string) error {
	bad := ""
	switch {
	case name == "":
		bad = "it is empty"
	case name == LatestLink:
		bad = "it is the name of the store's link to the newest run"
	case strings.HasPrefix(name, "."):
		bad = "it starts with '.'"
	case strings.ContainsAny(name, `/\`):
		bad = "it contains a path separator"
	case len(name) > 200:
		bad = "it is longer than 200 bytes"
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			bad = "it contains a control character"
		}
	}
	if bad != "" {
		return fmt.Errorf("histories: test name %q cannot name a store folder: %s", name, bad)
	}
	return nil
}

// replaceSymlink points link at target, atomically.
func replaceSymlink(target, link string) error {
	if err := atomicfile.Symlink(target, link); err != nil {
		return fmt.Errorf("histories: %w", err)
	}
	return nil
}

// ResolveHistory finds the history file that path stands for:
//   - a file is returned as it is (its extension says its format: .edn for
//     Jepsen's, JSON Lines otherwise);
//   - a run folder gives its history.jsonl, or, in a Jepsen run folder,
//     its history.edn;
//   - a store root, or a test's folder in it, gives the history of the run
//     its "latest" link points at.
//
// Symlinks (store/latest itself) are followed.
func ResolveHistory(path string) (historyPath string, err error) {
	return resolveHistory(path, 0)
}

// resolveDepthMax bounds how many latest links ResolveHistory follows: a
// store root's leads to a test folder's at most, so more means a loop.
const resolveDepthMax = 4

func resolveHistory(path string, depth int) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("histories: no history at %s: %w", path, err)
	}
	if !fi.IsDir() {
		return path, nil
	}
	for _, name := range []string{HistoryFile, EDNHistoryFile} {
		p := filepath.Join(path, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	latest := filepath.Join(path, LatestLink)
	if _, err := os.Stat(latest); err == nil && depth < resolveDepthMax {
		h, err := resolveHistory(latest, depth+1)
		if err != nil {
			return "", fmt.Errorf("histories: following %s: %w", latest, err)
		}
		return h, nil
	}
	return "", fmt.Errorf("histories: no history in folder %s: want a history file (.jsonl or .edn), a run folder holding %s (or %s), or a store folder with a %q link to a run",
		path, HistoryFile, EDNHistoryFile, LatestLink)
}

// ListRuns returns the runs in the store at root, newest first (runs that
// started in the same millisecond by test name). Folders and files that are
// not runs (links, notes, half-deleted runs with other names) are skipped.
func ListRuns(root string) ([]Run, error) {
	tests, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("histories: listing the store: %w", err)
	}
	var runs []Run
	for _, te := range tests {
		if !te.IsDir() || strings.HasPrefix(te.Name(), ".") {
			continue // DirEntry.IsDir is false for the latest symlink
		}
		testDir := filepath.Join(root, te.Name())
		entries, err := os.ReadDir(testDir)
		if err != nil {
			return nil, fmt.Errorf("histories: listing the store: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			t, err := time.Parse(RunTimeLayout, e.Name())
			if err != nil {
				continue
			}
			runs = append(runs, Run{Dir: filepath.Join(testDir, e.Name()), Test: te.Name(), Time: t})
		}
	}
	slices.SortFunc(runs, func(a, b Run) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Test, b.Test)
	})
	return runs, nil
}

// String returns the run's test and time as its folders name them:
// <test>/<time>.
func (r *Run) String() string {
	return r.Test + "/" + r.Time.Format(RunTimeLayout)
}

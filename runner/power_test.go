package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/powerfs"
	"github.com/garantia/garantia/db/powerfs/powerfstest"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/internal/leakcheck"
	"github.com/garantia/garantia/nemesis"
)

// needFUSE skips (or, in CI with /dev/fuse, fails) a test on a machine
// that cannot mount the power-loss filesystem.
func needFUSE(t *testing.T) {
	t.Helper()
	if err := powerfs.Probe(); err != nil {
		powerfstest.SkipOrFail(t, err)
	}
}

// mountsUnder lists the power-loss mounts whose mount point lies in dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	all, err := powerfs.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range all {
		if strings.HasPrefix(m.Dir, abs+string(filepath.Separator)) {
			out = append(out, m.String())
		}
	}
	return out
}

// checkReleased checks that a run in store left no mount, no broker and
// no backing folder, and that each node's files are back in its data
// folder.
func checkReleased(t *testing.T, store, dir string, nodes int) {
	t.Helper()
	if m := mountsUnder(t, store); len(m) > 0 {
		t.Errorf("power-loss mounts left after the run: %v", m)
	}
	if dir == "" {
		return
	}
	if survivors := brokersUnder(t, dir); len(survivors) > 0 {
		t.Errorf("broker processes %v survived the run", survivors)
	}
	for _, n := range db.LayOut(dir, nodes) {
		if _, err := os.Stat(n.DataDir + powerfs.BackingSuffix); !os.IsNotExist(err) {
			t.Errorf("%s: the backing folder is still there (%v)", n.Name, err)
		}
		if _, err := os.Stat(filepath.Join(n.DataDir, "controller")); err != nil {
			t.Errorf("%s: its files are not back in its data folder: %v", n.Name, err)
		}
	}
}

// TestRunWithPowerFaults runs real brokers with --fsync always on the
// power-loss filesystem (ext4's ordered mode, torn writes: the acceptance
// runs cover the default strict mode) while the nemesis cuts the power of
// one node and of the leader: nothing acknowledged may be lost, the
// history records each power-off (with what the cut undid) and power-on,
// and the run leaves no mount, its nodes' files in their data folders.
func TestRunWithPowerFaults(t *testing.T) {
	leakcheck.Check(t)
	needFUSE(t)
	cfg := testConfig(t)
	cfg.TimeLimit = 3 * time.Second
	cfg.Nemesis = []string{"power:one+leader"}
	cfg.NemesisInterval = 700 * time.Millisecond
	cfg.Fsync = "always"
	cfg.PowerMode, cfg.PowerTorn = "ordered", true
	var out, progress bytes.Buffer
	cfg.Out, cfg.Progress = &out, &progress
	results, dir, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("seed %d: Run: %v\n%s", cfg.Seed, err, progress.String())
	}
	checkReleased(t, cfg.Store, dir, cfg.Nodes)
	if results.Valid != verdict.Valid {
		t.Errorf("seed %d: verdict %v with --fsync always under power cuts of one node\n%s", cfg.Seed, results.Valid, out.String())
	}
	if !strings.Contains(progress.String(), "data folders on the power-loss filesystem (ordered mode, torn writes)") {
		t.Errorf("the progress does not say the data folders are mounted:\n%s", progress.String())
	}
	var info struct {
		histories.TestInfo
		PowerFS *powerFSJSON `json:"powerfs"`
	}
	readJSON(t, filepath.Join(dir, histories.TestFile), &info)
	if info.PowerFS == nil || *info.PowerFS != (powerFSJSON{Mode: "ordered", Torn: true, Seed: uint64(cfg.Seed)}) || info.Seed != cfg.Seed || len(info.Nodes) != 3 {
		t.Errorf("test.json: powerfs %+v, seed %d, %d nodes; want how the filesystem was mounted beside the rest", info.PowerFS, info.Seed, len(info.Nodes))
	}
	ops, _, err := histories.ReadFile(filepath.Join(dir, histories.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	offs, ons := countF(ops, nemesis.FPowerOff), countF(ops, nemesis.FPowerOn)
	if offs < 1 || ons != offs {
		t.Fatalf("nemesis events: %d power-off, %d power-on; want at least one, each powered on again", offs, ons)
	}
	for _, op := range ops {
		if op.F != nemesis.FPowerOff || op.Type != histories.Info || op.Value.Raw[0] != '{' {
			continue
		}
		if op.Error != "" {
			t.Errorf("power-off failed: %s", op.Error)
		}
		var v struct {
			Nodes []string                `json:"nodes"`
			Power map[string]db.PowerLoss `json:"power"`
		}
		if err := json.Unmarshal(op.Value.Raw, &v); err != nil || len(v.Nodes) != 1 || len(v.Power) != 1 {
			t.Errorf("power-off completion %s (%v): want the node and what its cut undid", op.Value.Raw, err)
		}
	}
}

// TestRunPowerWithoutFUSE: on a machine that cannot mount, a run with
// power faults stops before it creates anything, saying what is missing;
// a run without them is not affected.
func TestRunPowerWithoutFUSE(t *testing.T) {
	leakcheck.Check(t)
	old := probePowerFS
	probePowerFS = func() error { return powerfs.ErrNoFUSE }
	t.Cleanup(func() { probePowerFS = old })
	cfg := testConfig(t)
	cfg.Nemesis = []string{"partition,power:one"}
	_, dir, err := Run(context.Background(), cfg)
	if !errors.Is(err, powerfs.ErrNoFUSE) || !strings.Contains(err.Error(), "/dev/fuse") || !strings.Contains(err.Error(), "no node was started") {
		t.Fatalf("Run with power faults and no FUSE: %v, want ErrNoFUSE saying what is missing", err)
	}
	if dir != "" {
		t.Errorf("a run folder %s was created", dir)
	}
	if entries, _ := os.ReadDir(cfg.Store); len(entries) > 0 {
		t.Errorf("the store holds %d entries after a run that could not start", len(entries))
	}
	cfg.PowerFS = true
	cfg.Nemesis = []string{"none"}
	if _, _, err := Run(context.Background(), cfg); !errors.Is(err, powerfs.ErrNoFUSE) || !strings.Contains(err.Error(), "--powerfs") {
		t.Errorf("Run with --powerfs and no FUSE: %v, want ErrNoFUSE naming --powerfs", err)
	}
	cfg.PowerFS = false
	cfg.Nemesis = []string{"kill:one"}
	if ok := cfg.NeedsPowerFS(); ok {
		t.Errorf("a run with kills only needs the power-loss filesystem")
	}
}

// TestRunPowerReleasedOnFailure: a run that fails after mounting (its
// brokers cannot start) unmounts everything.
func TestRunPowerReleasedOnFailure(t *testing.T) {
	leakcheck.Check(t)
	needFUSE(t)
	cfg := testConfig(t)
	cfg.Nemesis = []string{"power:all"}
	cfg.BrokerBinary = "/bin/false"
	_, dir, err := Run(context.Background(), cfg)
	if err == nil {
		t.Fatal("a run whose brokers exit at once succeeded")
	}
	if dir == "" || !strings.Contains(err.Error(), "start the nodes") {
		t.Fatalf("run folder %q, error %v; want the nodes' start to fail after the mounts", dir, err)
	}
	if m := mountsUnder(t, cfg.Store); len(m) > 0 {
		t.Errorf("power-loss mounts left after a failed run: %v", m)
	}
}

// panicWriter panics the first time it is given a line holding trigger,
// from whichever goroutine writes it.
type panicWriter struct {
	mu      sync.Mutex
	trigger string
	buf     bytes.Buffer
	fired   bool
}

func (w *panicWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	fire := !w.fired && bytes.Contains(p, []byte(w.trigger))
	w.fired = w.fired || fire
	w.mu.Unlock()
	if fire {
		panic("planted panic at " + w.trigger)
	}
	return len(p), nil
}

// TestRunPowerReleasedOnPanic: a panic of the harness, in the run's own
// goroutine or in one it started, still unmounts every power-loss
// filesystem and stops every broker; the one in a goroutine becomes the
// run's failure, with its stack.
func TestRunPowerReleasedOnPanic(t *testing.T) {
	leakcheck.Check(t)
	needFUSE(t)
	for _, c := range []struct {
		name, trigger string
	}{
		// The progress line, in its goroutine, while a power fault is in
		// force; the heal's line, in the run's goroutine.
		{"goroutine", "fault: power"},
		{"run", "healing (in force"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.TimeLimit = 3 * time.Second
			cfg.Nemesis = []string{"power:one"}
			cfg.NemesisInterval = 500 * time.Millisecond
			w := &panicWriter{trigger: c.trigger}
			cfg.Progress = w
			var err error
			var panicked any
			func() {
				defer func() { panicked = recover() }()
				_, _, err = Run(context.Background(), cfg)
			}()
			switch c.name {
			case "goroutine":
				if panicked != nil || !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "planted panic") || !strings.Contains(err.Error(), "goroutine") {
					t.Errorf("Run after a panic in the progress line: panic %v, error %v; want ErrPanic with the stack", panicked, err)
				}
			case "run":
				if panicked == nil {
					t.Errorf("the panic in the run's goroutine did not reach the caller (error %v)", err)
				}
			}
			if !w.fired {
				t.Fatalf("no line %q came; progress:\n%s", c.trigger, w.buf.String())
			}
			if m := mountsUnder(t, cfg.Store); len(m) > 0 {
				t.Errorf("power-loss mounts left after a panic: %v", m)
			}
			if survivors := brokersUnder(t, cfg.Store); len(survivors) > 0 {
				t.Errorf("broker processes %v survived a panic", survivors)
			}
		})
	}
}

func TestValidatePowerFlags(t *testing.T) {
	cases := []struct {
		mod  func(*Config)
		want string // "" valid, else the flag named
	}{
		{func(c *Config) { c.Nemesis = []string{"power"} }, ""},
		{func(c *Config) { c.Nemesis = []string{"power:all"}; c.PowerMode = "ordered"; c.PowerTorn = true }, ""},
		{func(c *Config) { c.PowerFS = true; c.PowerMode = "strict" }, ""},
		{func(c *Config) { c.Nemesis = []string{"power"}; c.PowerMode = "ext4" }, "--powerfs-mode"},
		{func(c *Config) { c.PowerMode = "ordered" }, "--powerfs-mode"},
		{func(c *Config) { c.PowerTorn = true }, "--powerfs-torn"},
	}
	for i, c := range cases {
		cfg := Defaults()
		c.mod(&cfg)
		err := cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("case %d: %v", i, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("case %d: %v, want an error of %s", i, err, c.want)
		}
	}
}

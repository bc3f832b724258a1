package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/internal/leakcheck"
	"github.com/garantia/garantia/nemesis"
)

func TestSendStats(t *testing.T) {
	ms := int64(time.Millisecond)
	send := func(p int64, ty histories.Type, at int64) histories.Op {
		return histories.Op{Process: p, Type: ty, F: histories.FSend, Time: at * ms}
	}
	ops := []histories.Op{
		send(0, histories.Invoke, 0),
		send(1, histories.Invoke, 0),
		{Process: -1, Type: histories.Info, F: "kill", Time: 1 * ms},
		send(0, histories.OK, 10), // 10ms
		send(1, histories.Info, 900),
		send(0, histories.Invoke, 20),
		{Process: 2, Type: histories.Invoke, F: histories.FPoll, Time: 21 * ms},
		send(0, histories.OK, 50), // 30ms
		send(0, histories.Invoke, 60),
		send(0, histories.Fail, 61),
		send(0, histories.Invoke, 500), // the span ends here
		send(0, histories.OK, 1400),    // 900ms
	}
	st := SendStats(ops)
	if st.Acknowledged != 3 {
		t.Errorf("acknowledged %d, want 3", st.Acknowledged)
	}
	if st.P50 != 30*time.Millisecond || st.P99 != 900*time.Millisecond {
		t.Errorf("p50 %s, p99 %s; want 30ms and 900ms", st.P50, st.P99)
	}
	if st.ThroughputPerS != 6 {
		t.Errorf("throughput %g/s, want 3 acknowledged sends in 0.5s", st.ThroughputPerS)
	}
	if z := SendStats(nil); z.Acknowledged != 0 || z.P99 != 0 || z.ThroughputPerS != 0 {
		t.Errorf("stats of nothing: %+v", z)
	}
}

// TestRunMatrix runs acks=0 and acks=all on one node with kills for a few
// seconds and checks the table, matrix.json and matrix.md.
func TestRunMatrix(t *testing.T) {
	leakcheck.Check(t)
	cfg := testConfig(t)
	cfg.TimeLimit = 3 * time.Second
	cfg.Nemesis = []string{"kill"}
	cfg.NemesisInterval = time.Second
	var progress bytes.Buffer
	cfg.Progress = &progress
	m, err := RunMatrix(context.Background(), cfg, MatrixAxes{Acks: []string{"0", "all"}})
	if err != nil {
		t.Fatalf("seed %d: %v\n%s", cfg.Seed, err, progress.String())
	}
	if len(m.Rows) != 2 || m.Rows[0].Acks != "0" || m.Rows[1].Acks != "all" {
		t.Fatalf("rows %+v", m.Rows)
	}
	for _, r := range m.Rows {
		if r.Error != "" {
			t.Fatalf("seed %d: acks=%s failed: %s", cfg.Seed, r.Acks, r.Error)
		}
		if r.Sent == 0 || r.Acknowledged == 0 || r.ThroughputPerS <= 0 || r.P50Ms <= 0 || r.P99Ms < r.P50Ms {
			t.Errorf("acks=%s row %+v: want sends, acknowledgements, a throughput and ordered percentiles", r.Acks, r)
		}
		if survivors := brokersUnder(t, r.Run); len(survivors) > 0 {
			t.Errorf("broker processes %v survived acks=%s", survivors, r.Acks)
		}
	}
	all := m.Rows[1]
	if all.Lost != 0 || all.Valid == verdict.Invalid && all.Lost > 0 {
		t.Errorf("seed %d: acks=all lost %d writes across kills of one node", cfg.Seed, all.Lost)
	}
	// Both runs drew the same schedule from the seed.
	var infos [2]histories.TestInfo
	for i, r := range m.Rows {
		readJSON(t, filepath.Join(r.Run, histories.TestFile), &infos[i])
	}
	a, _ := json.Marshal(infos[0].Schedule)
	b, _ := json.Marshal(infos[1].Schedule)
	if string(a) != string(b) || len(infos[0].Schedule) == 0 {
		t.Errorf("the runs' schedules differ:\n%s\n%s", a, b)
	}

	var stored Matrix
	readJSON(t, filepath.Join(m.Dir, MatrixJSONFile), &stored)
	if len(stored.Rows) != 2 || stored.Seed != cfg.Seed || stored.Rows[1].Acknowledged != all.Acknowledged {
		t.Errorf("matrix.json = %+v", stored)
	}
	md, err := os.ReadFile(filepath.Join(m.Dir, MatrixMDFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| acks | sent | acknowledged | lost | unseen | duplicates | throughput | p50 | p99 | verdict |") {
		t.Errorf("matrix.md has no table header:\n%s", md)
	}
	if filepath.Dir(m.Dir) != filepath.Join(cfg.Store, MatrixDir) {
		t.Errorf("matrix folder %s, want under %s", m.Dir, filepath.Join(cfg.Store, MatrixDir))
	}
	if target, err := os.Readlink(filepath.Join(cfg.Store, MatrixDir, histories.LatestLink)); err != nil || target != filepath.Base(m.Dir) {
		t.Errorf("matrix/latest -> %q (%v), want %s", target, err, filepath.Base(m.Dir))
	}
	var table bytes.Buffer
	m.WriteTable(&table)
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "acks | ") || !strings.HasPrefix(lines[2], "0 ") || !strings.HasPrefix(lines[3], "all ") {
		t.Errorf("table:\n%s", table.String())
	}
}

func TestRunMatrixRefusesBadLevels(t *testing.T) {
	cfg := Defaults()
	cfg.Store = t.TempDir()
	for _, levels := range [][]string{nil, {"2"}, {"all", "all"}} {
		if _, err := RunMatrix(context.Background(), cfg, MatrixAxes{Acks: levels}); err == nil || !IsFlagError(err) {
			t.Errorf("levels %v: %v, want a flag error", levels, err)
		}
	}
	for _, fsync := range [][]string{{"sometimes"}, {"never", "never"}} {
		err := func() error {
			_, err := RunMatrix(context.Background(), cfg, MatrixAxes{Acks: AcksLevels, Fsync: fsync})
			return err
		}()
		if err == nil || !strings.HasPrefix(err.Error(), "--fsync-levels") {
			t.Errorf("fsync levels %v: %v, want an error of --fsync-levels", fsync, err)
		}
	}
	withFsync := cfg
	withFsync.Fsync = "always"
	if _, err := RunMatrix(context.Background(), withFsync, MatrixAxes{Acks: AcksLevels, Fsync: []string{"never"}}); err == nil || !strings.HasPrefix(err.Error(), "--fsync:") {
		t.Errorf("--fsync with --fsync-levels: %v, want an error of --fsync", err)
	}
	entries, _ := os.ReadDir(cfg.Store)
	if len(entries) != 0 {
		t.Errorf("a refused matrix left %d entries in the store", len(entries))
	}
}

// TestRunMatrixFsyncAxis runs acks=all with fsync never and always on the
// power-loss filesystem, with the fsync axis's default faults, and checks
// that the rows, the table and matrix.md carry the fsync policy, that
// each run's brokers ran with theirs and that both drew one schedule.
func TestRunMatrixFsyncAxis(t *testing.T) {
	leakcheck.Check(t)
	needFUSE(t)
	cfg := testConfig(t)
	cfg.TimeLimit = 3 * time.Second
	cfg.NemesisInterval = time.Second
	var progress bytes.Buffer
	cfg.Progress = &progress
	m, err := RunMatrix(context.Background(), cfg, MatrixAxes{Acks: []string{"all"}, Fsync: []string{"never", "always"}})
	if err != nil {
		t.Fatalf("seed %d: %v\n%s", cfg.Seed, err, progress.String())
	}
	if len(m.Rows) != 2 || m.Rows[0].Fsync != "never" || m.Rows[1].Fsync != "always" {
		t.Fatalf("rows %+v, want acks=all with fsync never, then always", m.Rows)
	}
	want := strings.Join(PowerMatrixNemesis, ",")
	if strings.Join(m.Faults, ",") != want {
		t.Errorf("faults %v, want the fsync axis's default %s", m.Faults, want)
	}
	var scheds []string
	for _, r := range m.Rows {
		if r.Error != "" {
			t.Fatalf("seed %d: %s: %s", cfg.Seed, r.setting(), r.Error)
		}
		var info histories.TestInfo
		readJSON(t, filepath.Join(r.Run, histories.TestFile), &info)
		if info.Config.Fsync != r.Fsync {
			t.Errorf("%s ran with fsync %q", r.setting(), info.Config.Fsync)
		}
		if !strings.Contains(r.Run, "-fsync-"+r.Fsync+string(filepath.Separator)) {
			t.Errorf("%s ran in %s, want a test name that says its fsync policy", r.setting(), r.Run)
		}
		b, _ := json.Marshal(info.Schedule)
		scheds = append(scheds, string(b))
		if m := mountsUnder(t, r.Run); len(m) > 0 {
			t.Errorf("%s left mounts %v", r.setting(), m)
		}
	}
	if scheds[0] != scheds[1] {
		t.Errorf("the runs' schedules differ:\n%s\n%s", scheds[0], scheds[1])
	}
	var table bytes.Buffer
	m.WriteTable(&table)
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "acks | fsync  | sent") || !strings.HasPrefix(lines[2], "all  | never ") || !strings.HasPrefix(lines[3], "all  | always ") {
		t.Errorf("table:\n%s", table.String())
	}
	md, err := os.ReadFile(filepath.Join(m.Dir, MatrixMDFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| acks | fsync | sent |") || !strings.Contains(string(md), "- acks=all fsync=always: `") {
		t.Errorf("matrix.md does not show the fsync axis:\n%s", md)
	}
}

func TestFsyncWarnings(t *testing.T) {
	power := []nemesis.Spec{{Kind: nemesis.Power, Targets: []nemesis.Target{nemesis.All}}}
	kill := []nemesis.Spec{{Kind: nemesis.Kill, Targets: []nemesis.Target{nemesis.All}}}
	drawn := []nemesis.Step{{Kind: nemesis.Power, Target: nemesis.All}}
	if w := fsyncWarnings(kill, nil); len(w) != 1 || !strings.Contains(w[0], "without power faults") {
		t.Errorf("kills only: %v", w)
	}
	if w := fsyncWarnings(power, nil); len(w) != 1 || !strings.Contains(w[0], "drew no power fault") {
		t.Errorf("no power step drawn: %v", w)
	}
	if w := fsyncWarnings(power, drawn); len(w) != 0 {
		t.Errorf("power drawn: %v", w)
	}
}

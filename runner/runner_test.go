package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/db/local/buildtest"
	"github.com/garantia/garantia/histories"
)

func TestMain(m *testing.M) { buildtest.Main(m) }

// brokersUnder lists the pids of live processes whose command line
// mentions dir: the brokers of a run keep their data folders there.
func brokersUnder(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue // a zombie has exited
		}
		pids = append(pids, pid)
	}
	return pids
}

func testConfig(t *testing.T) Config {
	cfg := Defaults()
	cfg.BrokerBinary = buildtest.Binary(t)
	cfg.Store = t.TempDir()
	cfg.TimeLimit = 2 * time.Second
	cfg.Rate = 500
	cfg.Seed = time.Now().UnixNano() % (1 << 40)
	cfg.DrainTimeout = 10 * time.Second
	return cfg
}

// TestRunEndToEnd runs a real test against a real broker process and
// checks what the run stored.
func TestRunEndToEnd(t *testing.T) {
	cfg := testConfig(t)
	var progress, out bytes.Buffer
	cfg.Progress, cfg.Out = &progress, &out
	t.Logf("seed %d", cfg.Seed)

	results, dir, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("seed %d: Run: %v\nprogress:\n%s", cfg.Seed, err, progress.String())
	}
	if survivors := brokersUnder(t, dir); len(survivors) > 0 {
		t.Errorf("broker processes %v survived the run", survivors)
	}
	if results.Valid != verdict.Valid {
		t.Errorf("seed %d: verdict %v, want valid against a healthy single node\n%s", cfg.Seed, results.Valid, out.String())
	}
	if !strings.HasPrefix(dir, filepath.Join(cfg.Store, "queue-acks-all")+string(filepath.Separator)) {
		t.Errorf("run folder %s, want under %s/queue-acks-all/", dir, cfg.Store)
	}

	// test.json: the seed and the full configuration.
	var info TestInfo
	readJSON(t, filepath.Join(dir, histories.TestFile), &info)
	if info.Seed != cfg.Seed || info.Config.Seed != cfg.Seed {
		t.Errorf("test.json seed %d / config seed %d, want %d", info.Seed, info.Config.Seed, cfg.Seed)
	}
	if info.Config.Acks != "all" || info.Config.TimeLimit != "2s" || info.Config.Partitions != cfg.Partitions {
		t.Errorf("test.json config = %+v", info.Config)
	}
	if info.GoVersion == "" || info.GarantiaVersion == "" || len(info.Nodes) != 1 || info.Nodes[0].Addr == "" {
		t.Errorf("test.json versions/nodes missing: %+v", info)
	}

	// history.jsonl: parses, and has the whole life of the test.
	ops, warnings, err := histories.ReadFile(filepath.Join(dir, histories.HistoryFile))
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	if len(warnings) > 0 {
		t.Errorf("history warnings: %v", warnings)
	}
	byF := map[string]map[histories.Type]int{}
	maxValue := int64(0)
	for _, op := range ops {
		if byF[op.F] == nil {
			byF[op.F] = map[histories.Type]int{}
		}
		byF[op.F][op.Type]++
		for _, m := range op.Value.Mops {
			if m.F == histories.MopSend && m.Value > maxValue {
				maxValue = m.Value
			}
		}
	}
	for _, f := range []string{histories.FSend, histories.FPoll, histories.FAssign} {
		if byF[f][histories.OK] == 0 {
			t.Errorf("no ok %s in the history: %v", f, byF)
		}
	}
	// Every send completes, and every acknowledged value is read back:
	// the drain guarantees the checker saw them.
	if byF[histories.FSend][histories.Invoke] != byF[histories.FSend][histories.OK]+byF[histories.FSend][histories.Fail]+byF[histories.FSend][histories.Info] {
		t.Errorf("sends invoked and completed differ: %v", byF[histories.FSend])
	}
	if results.Queue.Counts.Lost != 0 || results.Queue.Counts.Unseen != 0 {
		t.Errorf("lost %d, unseen %d", results.Queue.Counts.Lost, results.Queue.Counts.Unseen)
	}
	if results.Queue.Counts.Acknowledged == 0 || int64(results.Queue.Counts.Acknowledged) > maxValue {
		t.Errorf("acknowledged %d of %d values", results.Queue.Counts.Acknowledged, maxValue)
	}

	// results.json: valid true at the top.
	var res struct {
		Valid json.RawMessage `json:"valid"`
	}
	readJSON(t, filepath.Join(dir, histories.ResultsFile), &res)
	if string(res.Valid) != "true" {
		t.Errorf("results.json valid = %s, want true", res.Valid)
	}
	if _, err := os.Stat(filepath.Join(dir, "n1", "broker.log")); err != nil {
		t.Errorf("node log: %v", err)
	}
	if !strings.Contains(progress.String(), fmt.Sprintf("seed %d", cfg.Seed)) {
		t.Errorf("progress does not print the seed:\n%s", progress.String())
	}
	if !strings.Contains(out.String(), "verdict: valid") {
		t.Errorf("summary:\n%s", out.String())
	}
}

// TestRunWithKills kills and restarts the node during the run: every
// acknowledged write must survive (the page cache outlives the process),
// and the nemesis events are in the history.
func TestRunWithKills(t *testing.T) {
	cfg := testConfig(t)
	cfg.TimeLimit = 3 * time.Second
	cfg.Nemesis = []string{"kill"}
	cfg.NemesisInterval = 700 * time.Millisecond
	var out bytes.Buffer
	cfg.Out = &out
	results, dir, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("seed %d: Run: %v", cfg.Seed, err)
	}
	if survivors := brokersUnder(t, dir); len(survivors) > 0 {
		t.Errorf("broker processes %v survived the run", survivors)
	}
	ops, _, err := histories.ReadFile(filepath.Join(dir, histories.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	kills, starts := 0, 0
	for _, op := range ops {
		if op.Process == histories.NemesisProcess && op.Error == "" {
			switch op.F {
			case "kill":
				kills++
			case "start":
				starts++
			}
		}
	}
	if kills < 1 || kills != starts {
		t.Errorf("nemesis events: %d kill, %d start; want at least one kill, each restarted", kills, starts)
	}
	if results.Queue.Counts.Lost != 0 {
		t.Errorf("seed %d: %d acknowledged writes lost across kills of a single node\n%s", cfg.Seed, results.Queue.Counts.Lost, out.String())
	}
}

// TestRunInterrupted: a canceled context stops the run, tears down, and
// keeps the run folder.
func TestRunInterrupted(t *testing.T) {
	cfg := testConfig(t)
	cfg.TimeLimit = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	start := time.Now()
	_, dir, err := Run(ctx, cfg)
	if err == nil {
		t.Fatal("Run returned no error after its context was canceled")
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("interrupted run took %s to return", took)
	}
	if dir == "" {
		t.Fatal("no run folder returned")
	}
	if survivors := brokersUnder(t, dir); len(survivors) > 0 {
		t.Errorf("broker processes %v survived the interrupted run", survivors)
	}
	if _, _, err := histories.ReadFile(filepath.Join(dir, histories.HistoryFile)); err != nil {
		t.Errorf("the interrupted run's history does not parse: %v", err)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		flag string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"acks 0", func(c *Config) { c.Acks = "0" }, ""},
		{"kill and pause", func(c *Config) { c.Nemesis = []string{"kill", "pause"} }, ""},
		{"three nodes", func(c *Config) { c.Nodes = 3 }, "nodes"},
		{"zero nodes", func(c *Config) { c.Nodes = 0 }, "nodes"},
		{"replication", func(c *Config) { c.ReplicationFactor = 3 }, "replication-factor"},
		{"min isr above rf", func(c *Config) { c.MinInsyncReplicas = 2 }, "min-insync-replicas"},
		{"acks 2", func(c *Config) { c.Acks = "2" }, "acks"},
		{"no time", func(c *Config) { c.TimeLimit = 0 }, "time-limit"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate"},
		{"no concurrency", func(c *Config) { c.Concurrency = 0 }, "concurrency"},
		{"partition fault", func(c *Config) { c.Nemesis = []string{"partition"} }, "nemesis"},
		{"none and kill", func(c *Config) { c.Nemesis = []string{"none", "kill"} }, "nemesis"},
		{"tiny interval", func(c *Config) { c.Nemesis = []string{"kill"}; c.NemesisInterval = time.Millisecond }, "nemesis-interval"},
		{"docker", func(c *Config) { c.DB = "docker" }, "db"},
		{"podman", func(c *Config) { c.DB = "podman" }, "db"},
		{"fsync sometimes", func(c *Config) { c.Fsync = "sometimes" }, "fsync"},
		{"no partitions", func(c *Config) { c.Partitions = 0 }, "partitions"},
		{"no store", func(c *Config) { c.Store = "" }, "store"},
		{"bug flag", func(c *Config) { c.Bugs = []string{"--x"} }, "bug"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Defaults()
			c.mod(&cfg)
			err := cfg.Validate()
			if c.flag == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !IsFlagError(err) || !strings.HasPrefix(err.Error(), "--"+c.flag+":") {
				t.Fatalf("Validate = %v, want an error naming --%s", err, c.flag)
			}
		})
	}
	cfg := Defaults()
	cfg.DB = "docker"
	if err := cfg.Validate(); !strings.Contains(err.Error(), "issue 6") {
		t.Errorf("docker error %q does not point at issue 6", err)
	}
	cfg = Defaults()
	cfg.ReplicationFactor = 2
	if err := cfg.Validate(); !strings.Contains(err.Error(), "cluster issue") {
		t.Errorf("replication error %q does not say replication arrives with the cluster issue", err)
	}
}

func TestName(t *testing.T) {
	cfg := Defaults()
	if got := cfg.Name(); got != "queue-acks-all" {
		t.Errorf("Name = %q", got)
	}
	cfg.Acks, cfg.Nemesis = "1", []string{"kill", "pause"}
	if got := cfg.Name(); got != "queue-acks-1-kill+pause" {
		t.Errorf("Name = %q", got)
	}
}

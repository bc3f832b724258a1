package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/local/buildtest"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/internal/leakcheck"
	"github.com/garantia/garantia/nemesis"
	"github.com/garantia/garantia/workloads/queue"
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

// TestRunEndToEnd runs a real test with the defaults (a 3-node cluster,
// RF 3, min ISR 2, partitions and kills) against real broker processes
// and checks what the run stored. The time limit is shorter than the
// nemesis interval, so no fault comes: a healthy cluster must be valid.
func TestRunEndToEnd(t *testing.T) {
	leakcheck.Check(t)
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
		t.Errorf("seed %d: verdict %v, want valid against a healthy cluster\n%s", cfg.Seed, results.Valid, out.String())
	}
	if !strings.HasPrefix(dir, filepath.Join(cfg.Store, cfg.Name())+string(filepath.Separator)) {
		t.Errorf("run folder %s, want under %s/%s/", dir, cfg.Store, cfg.Name())
	}

	// test.json: the seed and the full configuration.
	var info histories.TestInfo
	readJSON(t, filepath.Join(dir, histories.TestFile), &info)
	if info.Seed != cfg.Seed || info.Config.Seed != cfg.Seed {
		t.Errorf("test.json seed %d / config seed %d, want %d", info.Seed, info.Config.Seed, cfg.Seed)
	}
	if info.Config.Acks != "all" || info.Config.TimeLimit != "2s" || info.Config.Partitions != cfg.Partitions {
		t.Errorf("test.json config = %+v", info.Config)
	}
	if info.GoVersion == "" || info.GarantiaVersion == "" || len(info.Nodes) != cfg.Nodes || !info.Cluster {
		t.Errorf("test.json versions/nodes/cluster missing: %+v", info)
	}
	for _, n := range info.Nodes {
		if n.Addr == "" || n.Controller == "" {
			t.Errorf("test.json node %+v: want its Kafka and controller addresses", n)
		}
	}
	wantFaults := []string{"partition:one+majority+majorities-ring+bridge+leader", "kill:one+minority+majority+all+leader"}
	if !reflect.DeepEqual(info.Faults, wantFaults) || info.Schedule == nil {
		t.Errorf("test.json faults %v, schedule %v; want the cluster defaults %v and a schedule", info.Faults, info.Schedule, wantFaults)
	}
	if info.Config.Nodes != 3 || info.Config.ReplicationFactor != 3 || info.Config.MinInsyncReplicas != 2 {
		t.Errorf("test.json config %+v, want the cluster defaults: 3 nodes, RF 3, min ISR 2", info.Config)
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
	for _, n := range info.Nodes {
		if _, err := os.Stat(filepath.Join(dir, n.Name, "broker.log")); err != nil {
			t.Errorf("node log: %v", err)
		}
	}
	if !strings.Contains(progress.String(), fmt.Sprintf("seed %d", cfg.Seed)) {
		t.Errorf("progress does not print the seed:\n%s", progress.String())
	}
	if !strings.Contains(out.String(), "verdict: valid") {
		t.Errorf("summary:\n%s", out.String())
	}
}

// TestRunWithKills kills and restarts one node or the leader during the
// run: with acks=all, RF 3 and min ISR 2, every acknowledged write must
// survive (and the page cache outlives the process anyway),
// the nemesis events are in the history, and the schedule in test.json is
// the one the seed draws.
func TestRunWithKills(t *testing.T) {
	leakcheck.Check(t)
	cfg := testConfig(t)
	cfg.TimeLimit = 3 * time.Second
	cfg.Nemesis = []string{"kill:one+leader"}
	cfg.NemesisInterval = 700 * time.Millisecond
	var out, progress bytes.Buffer
	cfg.Out, cfg.Progress = &out, &progress
	results, dir, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("seed %d: Run: %v\n%s", cfg.Seed, err, progress.String())
	}
	if survivors := brokersUnder(t, dir); len(survivors) > 0 {
		t.Errorf("broker processes %v survived the run", survivors)
	}
	ops, _, err := histories.ReadFile(filepath.Join(dir, histories.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	// Nemesis events come in pairs, an invocation and its completion.
	var nem []histories.Op
	for _, op := range ops {
		if op.Process == histories.NemesisProcess && op.F != histories.FDrain {
			nem = append(nem, op)
			if op.Type != histories.Info {
				t.Errorf("nemesis event of type %s", op.Type)
			}
		}
	}
	kills, starts := 0, 0
	for i := 1; i < len(nem); i += 2 {
		if nem[i].F != nem[i-1].F {
			t.Fatalf("nemesis invocation %s completed as %s", nem[i-1].F, nem[i].F)
		}
		if nem[i].Error != "" {
			t.Errorf("%s failed: %s", nem[i].F, nem[i].Error)
		}
		switch nem[i].F {
		case "kill":
			kills++
		case "start":
			starts++
		}
	}
	// Each kill is followed by its start, and the final heal starts all.
	if kills < 1 || starts != kills+1 || nem[len(nem)-1].F != "start" {
		t.Errorf("nemesis events: %d kill, %d start; want at least one kill, each restarted, then a final start", kills, starts)
	}
	if results.Queue.Counts.Lost != 0 {
		t.Errorf("seed %d: %d acknowledged writes lost across kills of one node\n%s", cfg.Seed, results.Queue.Counts.Lost, out.String())
	}
	var info histories.TestInfo
	readJSON(t, filepath.Join(dir, histories.TestFile), &info)
	specs, _ := cfg.Specs()
	var want []histories.FaultStep
	for _, s := range nemesis.NewSchedule(cfg.Seed, specs, cfg.NemesisInterval, cfg.TimeLimit) {
		want = append(want, s.Stored())
	}
	if len(want) == 0 || !reflect.DeepEqual(info.Schedule, want) {
		t.Errorf("test.json schedule %v, want the seed's %v", info.Schedule, want)
	}
	if !strings.Contains(progress.String(), "healing (in force: ") {
		t.Errorf("no healing line in the progress:\n%s", progress.String())
	}
}

// TestRunInterrupted: a canceled context (Ctrl-C) stops the workload;
// the run still heals, tears down, keeps the run folder, and checks and
// reports what it recorded, marked interrupted in the summary and in
// test.json, with no completed drain in the history.
func TestRunInterrupted(t *testing.T) {
	leakcheck.Check(t)
	cfg := testConfig(t)
	cfg.TimeLimit = time.Minute
	cfg.Nemesis = []string{"kill:one"}
	cfg.NemesisInterval = 400 * time.Millisecond
	var out bytes.Buffer
	cfg.Out = &out
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(2500*time.Millisecond, cancel)
	start := time.Now()
	results, dir, err := Run(ctx, cfg)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Run after its context was canceled: %v, want ErrInterrupted", err)
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
	if results == nil || results.Stats == nil {
		t.Fatalf("no results for what the interrupted run recorded")
	}
	ops, _, err := histories.ReadFile(filepath.Join(dir, histories.HistoryFile))
	if err != nil {
		t.Fatalf("the interrupted run's history does not parse: %v", err)
	}
	if results.Stats.Ops != len(ops) {
		t.Errorf("results count %d events, the history has %d", results.Stats.Ops, len(ops))
	}
	for _, op := range ops {
		if op.F == histories.FDrain {
			t.Errorf("op %d: a drain marker in a run interrupted during the workload", op.Index)
		}
	}
	// Every fault the schedule started was ended before the teardown.
	if kills, starts := countF(ops, "kill"), countF(ops, "start"); kills == 0 || starts <= kills {
		t.Errorf("nemesis events: %d kill, %d start; want the kills and the interrupted run's heal", kills, starts)
	}
	var info histories.TestInfo
	readJSON(t, filepath.Join(dir, histories.TestFile), &info)
	if info.Interrupted != "workload" {
		t.Errorf("test.json interrupted = %q, want workload", info.Interrupted)
	}
	if !strings.Contains(out.String(), "interrupted during the workload") || !strings.Contains(out.String(), "verdict:") {
		t.Errorf("summary of the interrupted run does not say it was interrupted, or has no verdict:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, histories.ResultsFile)); err != nil {
		t.Errorf("no results.json for the interrupted run: %v", err)
	}
}

// countF counts the events of nemesis function f (each recorded as an
// invocation and a completion).
func countF(ops []histories.Op, f string) int {
	n := 0
	for _, op := range ops {
		if op.Process == histories.NemesisProcess && op.F == f {
			n++
		}
	}
	return n / 2
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
		{"targets", func(c *Config) { c.Nemesis = []string{"kill:leader+one,pause:one"} }, ""},
		{"none", func(c *Config) { c.Nemesis = []string{"none"} }, ""},
		{"unknown fault", func(c *Config) { c.Nemesis = []string{"flood"} }, "nemesis"},
		{"unknown target", func(c *Config) { c.Nemesis = []string{"pause:all"} }, "nemesis"},
		{"negative session timeout", func(c *Config) { c.SessionTimeout = -time.Second }, "session-timeout"},
		{"three nodes", func(c *Config) { c.Nodes = 3 }, ""},
		{"zero nodes", func(c *Config) { c.Nodes = 0 }, "nodes"},
		{"replication", func(c *Config) { c.ReplicationFactor = 3; c.Nodes = 3 }, ""},
		{"rf above nodes", func(c *Config) { c.ReplicationFactor = c.Nodes + 1 }, "replication-factor"},
		{"min isr above rf", func(c *Config) { c.MinInsyncReplicas = c.ReplicationFactor + 1 }, "min-insync-replicas"},
		{"acks 2", func(c *Config) { c.Acks = "2" }, "acks"},
		{"no time", func(c *Config) { c.TimeLimit = 0 }, "time-limit"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate"},
		{"no concurrency", func(c *Config) { c.Concurrency = 0 }, "concurrency"},
		{"partition on one node", func(c *Config) {
			c.Nodes = 1
			c.ReplicationFactor = 1
			c.MinInsyncReplicas = 1
			c.Nemesis = []string{"partition"}
		}, "nemesis"},
		{"none and kill", func(c *Config) { c.Nemesis = []string{"none", "kill"} }, "nemesis"},
		{"tiny interval", func(c *Config) { c.Nemesis = []string{"kill"}; c.NemesisInterval = time.Millisecond }, "nemesis-interval"},
		{"docker", func(c *Config) { c.DB = "docker" }, ""},
		{"podman", func(c *Config) { c.DB = "podman" }, "db"},
		{"fsync sometimes", func(c *Config) { c.Fsync = "sometimes" }, "fsync"},
		{"no partitions", func(c *Config) { c.Partitions = 0 }, "partitions"},
		{"no store", func(c *Config) { c.Store = "" }, "store"},
		{"bug flag", func(c *Config) { c.Bugs = []string{"--x"} }, "bug"},
		{"subscribe", func(c *Config) { c.ConsumeVia = "subscribe" }, ""},
		{"consume via poll", func(c *Config) { c.ConsumeVia = "poll" }, "consume-via"},
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
}

func TestDefaults(t *testing.T) {
	cfg := Defaults()
	want := []string{"partition", "kill"}
	if cfg.Nodes != 3 || cfg.ReplicationFactor != 3 || cfg.MinInsyncReplicas != 2 {
		t.Errorf("cluster defaults: %d nodes, RF %d, min ISR %d; want 3, 3, 2", cfg.Nodes, cfg.ReplicationFactor, cfg.MinInsyncReplicas)
	}
	if got := cfg.NemesisItems(); !reflect.DeepEqual(got, want) {
		t.Errorf("default nemesis %v, want %v", got, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	if got := DefaultNemesis(3); !reflect.DeepEqual(got, []string{"partition", "kill"}) {
		t.Errorf("DefaultNemesis(3) = %v", got)
	}
	o := localOptions(cfg, t.TempDir())
	if o.Cluster == nil || o.Links != (cfg.Nodes > 1) {
		t.Errorf("local options: cluster %v, links %v; want cluster mode, links for more than one node", o.Cluster != nil, o.Links)
	}
}

func TestName(t *testing.T) {
	cfg := Defaults()
	want := "queue-acks-all-partition+kill"
	if got := cfg.Name(); got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	cfg.Acks, cfg.Nemesis = "1", []string{"kill:leader", "pause"}
	if got := cfg.Name(); got != "queue-acks-1-kill+pause" {
		t.Errorf("Name = %q", got)
	}
	cfg.Nemesis = []string{"none"}
	if got := cfg.Name(); got != "queue-acks-1" {
		t.Errorf("Name = %q", got)
	}
	cfg.ConsumeVia = "assign"
	if got := cfg.Name(); got != "queue-acks-1" {
		t.Errorf("Name = %q", got)
	}
	cfg.ConsumeVia = "subscribe"
	if got := cfg.Name(); got != "queue-subscribe-acks-1" {
		t.Errorf("Name = %q", got)
	}
	// Subscribing consumers need the brokers' group settings.
	if o := localOptions(cfg, t.TempDir()); o.ExtraArgs == nil || !slices.Equal(o.ExtraArgs(db.Node{}), queue.GroupBrokerArgs()) {
		t.Error("a subscribing run does not pass the group settings to its brokers")
	}
}

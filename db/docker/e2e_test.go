package docker

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/workloads/queue"
)

// workload is one run of the queue workload against a backend's nodes,
// as the runner does it: topic, run, drain, then the checker on the
// history as stored.
type workload struct {
	limit       time.Duration
	rate        float64 // ops/s; 0 is unlimited
	concurrency int
	seed        int64
	// faults, when set, runs beside the workload until ctx ends,
	// recording its faults through rec.
	faults func(ctx context.Context, rec *histories.Recorder) error
}

type workloadResult struct {
	results *checker.Results
	counts  queue.Counts
	ops     []histories.Op
	elapsed time.Duration // of the workload's Run, not the drain or check
}

func runWorkload(tb testing.TB, backend db.DB, dir string, w workload) workloadResult {
	tb.Helper()
	ctx := context.Background()
	path := filepath.Join(dir, histories.HistoryFile)
	hw, err := histories.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer hw.Close()
	var brokers []string
	names := map[int32]string{}
	for _, n := range backend.Nodes() {
		brokers = append(brokers, n.Addr)
		names[n.ID] = n.Name
	}
	rec := histories.NewRecorder(hw, time.Now())
	wl, err := queue.New(queue.Config{
		Brokers: brokers, NodeNames: names, Partitions: 4, ReplicationFactor: 1,
		Acks: "all", Concurrency: w.concurrency, Rate: w.rate, Seed: w.seed,
		OpTimeout: 2 * time.Second,
	}, rec)
	if err != nil {
		tb.Fatal(err)
	}
	if err := wl.CreateTopic(ctx); err != nil {
		tb.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	faultErr := make(chan error, 1)
	if w.faults != nil {
		go func() { faultErr <- w.faults(runCtx, rec) }()
	} else {
		faultErr <- nil
	}
	start := time.Now()
	runErr := wl.Run(ctx, w.limit)
	elapsed := time.Since(start)
	stop()
	if err := <-faultErr; err != nil {
		tb.Fatalf("faults (seed %d): %v", w.seed, err)
	}
	if runErr != nil {
		tb.Fatalf("workload (seed %d): %v", w.seed, runErr)
	}
	if err := wl.Drain(ctx); err != nil {
		tb.Fatalf("drain (seed %d): %v", w.seed, err)
	}
	if err := hw.Close(); err != nil {
		tb.Fatal(err)
	}
	ops, _, err := histories.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := checker.Check(ctx, ops, checker.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return workloadResult{results: res, counts: wl.Counts(), ops: ops, elapsed: elapsed}
}

// nemesisEvent records a fault as the runner does: an info invocation and
// completion of process -1.
func nemesisEvent(rec *histories.Recorder, f string, n db.Node, action func() error) error {
	inv, _ := json.Marshal([]string{n.Name})
	if _, err := rec.Record(histories.Op{Process: histories.NemesisProcess, Type: histories.Info, F: f, Value: histories.Value{Raw: inv}}); err != nil {
		return err
	}
	err := action()
	done := histories.Op{Process: histories.NemesisProcess, Type: histories.Info, F: f, Value: histories.Value{Raw: inv}}
	if err != nil {
		done.Error = err.Error()
	}
	if _, rerr := rec.Record(done); rerr != nil {
		return rerr
	}
	return err
}

// TestDockerEndToEnd runs the queue workload against a docker node while
// it is killed and restarted, paused and resumed, and gracefully
// restarted, and checks the history: what the local backend's runs do,
// on containers.
func TestDockerEndToEnd(t *testing.T) {
	d, _ := newDockerCluster(t, 1, func(o *Options) { o.Fsync = "always" })
	ctx := context.Background()
	if err := d.Setup(ctx); err != nil {
		t.Fatalf("setup: %v", err)
	}
	n1 := d.Nodes()[0]
	const seed = 1
	step := 700 * time.Millisecond
	res := runWorkload(t, d, t.TempDir(), workload{
		limit: 5 * time.Second, rate: 300, concurrency: 6, seed: seed,
		faults: func(ctx context.Context, rec *histories.Recorder) error {
			type fault struct {
				f      string
				action func(context.Context, db.Node) error
			}
			plan := []fault{
				{"kill", d.Kill}, {"start", d.Start},
				{"pause", d.Pause}, {"resume", d.Resume},
				{"restart", d.Restart},
			}
			// The whole plan runs even when it outlasts the workload's
			// window (a container start takes a second or more on a busy
			// machine): the test counts every fault's events.
			for _, fl := range plan {
				time.Sleep(step)
				if err := nemesisEvent(rec, fl.f, n1, func() error { return fl.action(context.Background(), n1) }); err != nil {
					return err
				}
			}
			return nil
		},
	})
	t.Logf("seed %d: %d ops invoked, %d ok, %d info, %d fail; verdict %v", seed, res.counts.Invoked, res.counts.OK, res.counts.Info, res.counts.Fail, res.results.Valid)
	if res.results.Valid != verdict.Valid {
		b, _ := json.MarshalIndent(res.results, "", "  ")
		t.Fatalf("seed %d: the history of a correct single node is not valid:\n%s", seed, b)
	}
	var faults, oks int
	for _, op := range res.ops {
		if op.Process == histories.NemesisProcess && op.F != histories.FDrain {
			faults++
		} else if op.Type == histories.OK {
			oks++
		}
	}
	if faults != 10 {
		t.Errorf("the history holds %d nemesis events, want 10 (5 faults, each invoked and completed)", faults)
	}
	if oks < 100 {
		t.Errorf("only %d ops succeeded in 5s at 300/s: the node barely served", oks)
	}
	b, err := os.ReadFile(d.LogFiles()["n1"])
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), "=== garantia harness: starting n1"); got != 3 {
		t.Errorf("n1's log shows %d starts, want 3 (setup, start after kill, restart)", got)
	}
}

// TestGarantiaTestDocker runs `garantia test --db docker` itself with a
// short time limit. Until the runner offers --db docker it skips, saying
// so; TestDockerEndToEnd covers the backend meanwhile.
func TestGarantiaTestDocker(t *testing.T) {
	eng := realEngine(t)
	bin := garantiaBinary(t)
	store := t.TempDir()
	cmd := exec.Command(bin, "test", "--db", "docker", "--time-limit", "3s", "--rate", "200",
		"--nemesis", "kill", "--nemesis-interval", "1s", "--seed", "7", "--store", store)
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "docker: not implemented yet") {
		t.Skipf("skipping: this garantia's runner does not offer --db docker yet (it says %q); TestDockerEndToEnd tests the backend", firstLine(strings.TrimSpace(string(out))))
	}
	if err != nil {
		t.Fatalf("garantia test --db docker: %v\n%s", err, out)
	}
	// The run's node log is in the store, and nothing is left running.
	// The test's own "latest" link also matches the pattern; skip it.
	all, _ := filepath.Glob(filepath.Join(store, "*", "*", "n1", "broker.log"))
	var logs []string
	for _, l := range all {
		if !strings.Contains(l, string(filepath.Separator)+histories.LatestLink+string(filepath.Separator)) {
			logs = append(logs, l)
		}
	}
	if len(logs) != 1 {
		t.Errorf("want n1/broker.log in the run folder; found %v\n%s", logs, out)
	}
	noContainersUnder(t, eng, store)
}

// noContainersUnder fails t if a container of a run under store remains.
func noContainersUnder(t *testing.T, eng Engine, store string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := eng.ListContainers(ctx, map[string]string{LabelDir: ""})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if strings.HasPrefix(c.Labels[LabelDir], store) {
			t.Errorf("garantia test left container %s", c.Name)
		}
	}
}

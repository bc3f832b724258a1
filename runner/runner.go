package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/garantia/garantia/internal/atomicfile"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/docker"
	"github.com/garantia/garantia/db/local"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/nemesis"
	"github.com/garantia/garantia/report"
	"github.com/garantia/garantia/workloads/queue"
)

// teardownTimeout bounds the teardown, which runs on a context of its own
// so that Ctrl-C (which cancels the run's context) still tears down.
const teardownTimeout = 30 * time.Second

// summaryExamples is how many examples per anomaly the summary prints.
const summaryExamples = 3

// TestInfo is the content of test.json.
type TestInfo struct {
	Name            string       `json:"name"`
	Seed            int64        `json:"seed"`
	Config          ConfigJSON   `json:"config"`
	GarantiaVersion string       `json:"garantia-version"`
	GoVersion       string       `json:"go-version"`
	StartTime       time.Time    `json:"start-time"`
	Nodes           []db.Node    `json:"nodes,omitempty"`
	Args            []string     `json:"args,omitempty"`
	Workload        WorkloadInfo `json:"workload"`
	// Cluster says whether the brokers ran as one replicating cluster
	// (ClusterReady) or as independent nodes.
	Cluster bool `json:"cluster"`
	// Faults are the resolved --nemesis specs ("kill:one+leader").
	Faults []string `json:"faults"`
	// Schedule is the nemesis schedule the seed drew: what the run was
	// to do, whether or not each step came before the end.
	Schedule []nemesis.Step `json:"nemesis-schedule"`
}

// WorkloadInfo records the workload's fixed parameters.
type WorkloadInfo struct {
	Name  string `json:"name"`
	Topic string `json:"topic"`
}

// ConfigJSON is Config as stored in test.json: every flag by its name,
// durations as Go duration strings.
type ConfigJSON struct {
	Nodes                 int      `json:"nodes"`
	ReplicationFactor     int      `json:"replication-factor"`
	MinInsyncReplicas     int      `json:"min-insync-replicas"`
	Acks                  string   `json:"acks"`
	TimeLimit             string   `json:"time-limit"`
	Rate                  float64  `json:"rate"`
	Concurrency           int      `json:"concurrency"`
	Nemesis               []string `json:"nemesis"`
	NemesisInterval       string   `json:"nemesis-interval"`
	Seed                  int64    `json:"seed"`
	DB                    string   `json:"db"`
	Store                 string   `json:"store"`
	UncleanLeaderElection bool     `json:"unclean-leader-election"`
	Fsync                 string   `json:"fsync"`
	Bugs                  []string `json:"bug"`
	Partitions            int      `json:"partitions"`
	SessionTimeout        string   `json:"session-timeout,omitempty"`
	ReplicaLagTimeMax     string   `json:"replica-lag-time-max,omitempty"`
	OpTimeout             string   `json:"op-timeout,omitempty"`
	DrainTimeout          string   `json:"drain-timeout,omitempty"`
}

func (c *Config) json() ConfigJSON {
	dur := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.String()
	}
	bugs := c.Bugs
	if bugs == nil {
		bugs = []string{}
	}
	return ConfigJSON{
		Nodes: c.Nodes, ReplicationFactor: c.ReplicationFactor, MinInsyncReplicas: c.MinInsyncReplicas,
		Acks: c.Acks, TimeLimit: c.TimeLimit.String(), Rate: c.Rate, Concurrency: c.Concurrency,
		Nemesis: c.NemesisItems(), NemesisInterval: c.NemesisInterval.String(), Seed: c.Seed, DB: c.DB,
		Store: c.Store, UncleanLeaderElection: c.UncleanLeaderElection, Fsync: c.Fsync, Bugs: bugs,
		Partitions: c.Partitions, SessionTimeout: dur(c.SessionTimeout), ReplicaLagTimeMax: dur(c.ReplicaLagTimeMax),
		OpTimeout: dur(c.OpTimeout), DrainTimeout: dur(c.DrainTimeout),
	}
}

// Version is garantia's version as the build recorded it: the module
// version and, when built from a checkout, the VCS revision.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev + modified
	}
	return v
}

// Run runs one test as configured and returns its results and run folder.
// The error is a harness failure (or, wrapped in a *FlagError, a bad
// configuration); a history that shows anomalies is not an error, it is
// results.Valid. The run folder is returned whenever it was created, also
// with an error, so that the caller can point at what was kept.
func Run(ctx context.Context, cfg Config) (results *checker.Results, runDir string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, "", err
	}
	progress, out := cfg.Progress, cfg.Out
	if progress == nil {
		progress = io.Discard
	}
	if out == nil {
		out = io.Discard
	}
	specs, _ := cfg.Specs()
	schedule := nemesis.NewSchedule(cfg.Seed, specs, cfg.NemesisInterval, cfg.TimeLimit)

	started := time.Now()
	run, err := histories.NewRun(cfg.Store, cfg.Name(), started)
	if err != nil {
		return nil, "", fmt.Errorf("create the run folder: %w", err)
	}
	runDir = run.Dir
	info := TestInfo{
		Name:            cfg.Name(),
		Seed:            cfg.Seed,
		Config:          cfg.json(),
		GarantiaVersion: Version(),
		GoVersion:       runtime.Version(),
		StartTime:       started.UTC(),
		Args:            os.Args,
		Workload:        WorkloadInfo{Name: "queue", Topic: queue.DefaultTopic},
		Cluster:         ClusterReady,
		Faults:          []string{},
		Schedule:        schedule,
	}
	for _, s := range specs {
		info.Faults = append(info.Faults, s.String())
	}
	if info.Schedule == nil {
		info.Schedule = []nemesis.Step{}
	}
	if err := writeJSON(run.Path(histories.TestFile), info); err != nil {
		return nil, runDir, err
	}
	fmt.Fprintf(progress, "garantia test %s: seed %d (repeat with --seed %d)\nrun folder: %s\n", info.Name, cfg.Seed, cfg.Seed, runDir)
	if len(specs) > 0 {
		fmt.Fprintf(progress, "faults: %s, every %s or so (%d scheduled)\n", strings.Join(info.Faults, ", "), cfg.NemesisInterval, len(schedule))
	}

	hw, err := histories.Create(run.Path(histories.HistoryFile))
	if err != nil {
		return nil, runDir, fmt.Errorf("create the history: %w", err)
	}
	historyOpen := true
	defer func() {
		if historyOpen {
			if cerr := hw.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("close the history: %w", cerr)
			}
		}
	}()

	backend, err := newBackend(cfg, runDir, progress)
	if err != nil {
		return nil, runDir, err
	}
	tornDown := false
	teardown := func() error {
		if tornDown {
			return nil
		}
		tornDown = true
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer cancel()
		if err := backend.Teardown(tctx); err != nil {
			return fmt.Errorf("teardown: %w", err)
		}
		return nil
	}
	defer func() {
		if terr := teardown(); terr != nil && err == nil {
			err = terr
		}
	}()

	fmt.Fprintf(progress, "starting %d node(s)...\n", cfg.Nodes)
	if err := backend.Setup(ctx); err != nil {
		return nil, runDir, fmt.Errorf("start the nodes: %w", err)
	}
	info.Nodes = backend.Nodes()
	if err := writeJSON(run.Path(histories.TestFile), info); err != nil {
		return nil, runDir, err
	}

	var brokers []string
	names := map[int32]string{}
	for _, n := range info.Nodes {
		brokers = append(brokers, n.Addr)
		names[n.ID] = n.Name
	}
	topicConfigs := map[string]string{"min.insync.replicas": strconv.Itoa(cfg.MinInsyncReplicas)}
	if cfg.UncleanLeaderElection {
		topicConfigs["unclean.leader.election.enable"] = "true"
	}
	// The history's clock starts with the workload: time 0 is the first
	// operation's moment, not the brokers' startup.
	rec := histories.NewRecorder(hw, time.Now())
	wl, err := queue.New(queue.Config{
		Brokers:           brokers,
		NodeNames:         names,
		Partitions:        cfg.Partitions,
		ReplicationFactor: cfg.ReplicationFactor,
		TopicConfigs:      topicConfigs,
		Acks:              cfg.Acks,
		Concurrency:       cfg.Concurrency,
		Rate:              cfg.Rate,
		Seed:              cfg.Seed,
		OpTimeout:         cfg.OpTimeout,
		DrainTimeout:      cfg.DrainTimeout,
	}, rec)
	if err != nil {
		return nil, runDir, err
	}
	if err := wl.CreateTopic(ctx); err != nil {
		return nil, runDir, err
	}

	var nem *nemesis.Nemesis
	if len(schedule) > 0 {
		nem, err = nemesis.New(nemesis.Config{
			DB:       backend,
			Schedule: schedule,
			Recorder: rec,
			Leaders:  nemesis.MetadataLeaders{Nodes: backend.Nodes, Topic: queue.DefaultTopic},
			// Ctrl-C cuts a fault short; the time limit does not.
			Interrupt: ctx,
		})
		if err != nil {
			return nil, runDir, err
		}
	}

	// The workload, the nemesis and the progress line run together.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	workStart := time.Now()
	var wg sync.WaitGroup
	var nemErr error
	if nem != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if nemErr = nem.Run(runCtx, workStart); nemErr != nil {
				// The cluster is in a state nobody planned: stop the
				// workload too, and report it.
				stopRun()
			}
		}()
	}
	prog := newProgressLine(progress, cfg.TimeLimit, wl, nem)
	progDone := make(chan struct{})
	go func() {
		defer close(progDone)
		prog.run(runCtx)
	}()
	runErr := wl.Run(runCtx, cfg.TimeLimit)
	stopRun()
	wg.Wait()
	<-progDone
	prog.finish()
	if err := ctx.Err(); err != nil {
		return nil, runDir, fmt.Errorf("interrupted; the history so far is in %s: %w", runDir, err)
	}
	if runErr != nil {
		return nil, runDir, fmt.Errorf("workload: %w", runErr)
	}
	if nemErr != nil {
		return nil, runDir, fmt.Errorf("faults: %w", nemErr)
	}

	// Every fault ends and every node runs before the drain, so that the
	// drain reads everything that survived.
	if nem != nil {
		fmt.Fprintf(progress, "healing (in force: %s) and starting every node...\n", nem.Current())
		if err := nem.Heal(ctx); err != nil {
			return nil, runDir, fmt.Errorf("heal before the drain: %w", err)
		}
	}

	fmt.Fprintf(progress, "draining every partition...\n")
	drainStart := time.Now()
	if err := wl.Drain(ctx); err != nil {
		return nil, runDir, fmt.Errorf("final drain: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, runDir, fmt.Errorf("interrupted during the drain; the history so far is in %s: %w", runDir, err)
	}
	c := wl.Counts()
	fmt.Fprintf(progress, "drained in %s; %d ops (%d ok, %d info, %d fail)\n",
		time.Since(drainStart).Round(time.Millisecond), c.Invoked, c.OK, c.Info, c.Fail)

	if err := teardown(); err != nil {
		return nil, runDir, err
	}
	historyOpen = false
	if err := hw.Close(); err != nil {
		return nil, runDir, fmt.Errorf("close the history: %w", err)
	}

	// Check what is on disk, not what is in memory: the stored history is
	// the evidence, and `garantia check` must reach the same verdict.
	historyPath := run.Path(histories.HistoryFile)
	ops, warnings, err := histories.ReadFile(historyPath)
	if err != nil {
		return nil, runDir, fmt.Errorf("read back the history: %w", err)
	}
	checkStart := time.Now()
	results, err = checker.Check(ctx, ops, checker.Options{VisualizeDir: runDir})
	if err != nil {
		return nil, runDir, fmt.Errorf("check %s: %w", historyPath, err)
	}
	results.Warnings = append(results.Warnings, warnings...)
	results.Warnings = append(results.Warnings, wl.Warnings()...)
	if err := results.WriteFile(run.Path(histories.ResultsFile)); err != nil {
		return nil, runDir, err
	}
	fmt.Fprintf(out, "history: %s (%d events; checked in %s)\n", historyPath, len(ops), time.Since(checkStart).Round(time.Millisecond))
	report.Summary(out, results, summaryExamples)
	fmt.Fprintf(out, "results: %s\n", run.Path(histories.ResultsFile))
	// The HTML report is for people; failing to draw it must not turn a
	// checked run into a harness failure, so it is only a warning.
	if rep, err := report.New(runDir, historyPath, ops, results); err != nil {
		fmt.Fprintf(progress, "warning: report.html not written: %v\n", err)
	} else if p, err := rep.WriteFile(report.Options{}); err != nil {
		fmt.Fprintf(progress, "warning: report.html not written: %v\n", err)
	} else {
		fmt.Fprintf(out, "report: %s\n", p)
	}
	return results, runDir, nil
}

// newBackend makes the cluster backend cfg.DB names: local processes on
// loopback, or one docker container per node on a network of the run's own.
func newBackend(cfg Config, runDir string, progress io.Writer) (db.DB, error) {
	lo := localOptions(cfg, runDir)
	if cfg.DB == "docker" {
		return docker.New(docker.Options{
			Binary:  cfg.BrokerBinary,
			Nodes:   cfg.Nodes,
			Dir:     runDir,
			Fsync:   cfg.Fsync,
			Bugs:    cfg.Bugs,
			Cluster: lo.Cluster,
			Logf:    func(format string, a ...any) { fmt.Fprintf(progress, format+"\n", a...) },
		})
	}
	return local.New(lo)
}

// localOptions are the local backend's options for cfg: links between
// nodes go through proxies whenever there are links, and the cluster
// flags are passed once the broker replicates.
func localOptions(cfg Config, runDir string) local.Options {
	o := local.Options{
		Binary: cfg.BrokerBinary,
		Nodes:  cfg.Nodes,
		Dir:    runDir,
		Fsync:  cfg.Fsync,
		Bugs:   cfg.Bugs,
		Links:  cfg.Nodes > 1,
		Seed:   uint64(cfg.Seed),
	}
	if ClusterReady {
		o.Cluster = &local.Cluster{
			SessionTimeout:           cfg.SessionTimeout,
			ReplicaLagTimeMax:        cfg.ReplicaLagTimeMax,
			MinInsyncReplicas:        cfg.MinInsyncReplicas,
			DefaultReplicationFactor: cfg.ReplicationFactor,
			UncleanLeaderElection:    cfg.UncleanLeaderElection,
		}
	}
	return o
}

// writeJSON writes v as indented JSON to path, atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	b = append(b, '\n')
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	return nil
}

package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/garantia/garantia/internal/atomicfile"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/docker"
	"github.com/garantia/garantia/db/local"
	"github.com/garantia/garantia/db/powerfs"
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

// stored is c as test.json records it.
func (c *Config) stored() histories.TestConfig {
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
	return histories.TestConfig{
		Nodes: c.Nodes, ReplicationFactor: c.ReplicationFactor, MinInsyncReplicas: c.MinInsyncReplicas,
		Acks: c.Acks, TimeLimit: c.TimeLimit.String(), Rate: c.Rate, Concurrency: c.Concurrency,
		Nemesis: c.NemesisItems(), NemesisInterval: c.NemesisInterval.String(), Seed: c.Seed, DB: c.DB,
		Store: c.Store, UncleanLeaderElection: c.UncleanLeaderElection, Fsync: c.Fsync, Bugs: bugs,
		Partitions: c.Partitions, SessionTimeout: dur(c.SessionTimeout), ReplicaLagTimeMax: dur(c.ReplicaLagTimeMax),
		OpTimeout: dur(c.OpTimeout), DrainTimeout: dur(c.DrainTimeout), ConsumeVia: c.ConsumeVia,
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

// ErrInterrupted marks the error of a run that an interrupt (Ctrl-C,
// SIGTERM: the end of Run's context) cut short. Such a run still heals,
// stops its nodes and checks what it recorded: Run returns its results
// with this error, and test.json names the phase the interrupt cut short.
var ErrInterrupted = errors.New("interrupted")

// interruptHealTimeout bounds the heal of an interrupted run: the faults
// end and the nodes start so that the history records the heal, but a
// person who pressed Ctrl-C is not kept waiting for a slow node.
const interruptHealTimeout = 10 * time.Second

// Run runs one test as configured and returns its results and run folder.
// The error is a harness failure (or, wrapped in a *FlagError, a bad
// configuration, or ErrInterrupted, with the results of what was
// recorded); a history that shows anomalies is not an error, it is
// results.Valid. The run folder is returned whenever it was created, also
// with an error, so that the caller can point at what was kept.
//
// A run goes through its phases in order, each a method of test: setup,
// exercise (the workload, the faults and the progress line together),
// heal, drain, teardown, readBack, check and report. Teardown also runs
// whenever a phase fails; an interrupt skips to the teardown after ending
// the faults, and the run still checks and reports what it recorded.
func Run(ctx context.Context, cfg Config) (results *checker.Results, runDir string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, "", err
	}
	t := newTest(cfg)
	results, err = t.run(ctx)
	return results, t.dir(), err
}

// test is one run as it goes from phase to phase.
type test struct {
	cfg      Config
	progress io.Writer // the start line, the progress line, warnings
	out      io.Writer // the summary
	specs    []nemesis.Spec
	schedule []nemesis.Step

	folder  *histories.Run
	info    histories.TestInfo
	history *histories.Writer
	rec     *histories.Recorder
	cluster db.DB
	disks   *powerfs.Disks // the nodes' power-loss filesystems; nil without
	wl      *queue.Workload
	faults  faults

	// held are what setup took (the history, the nodes), released by
	// teardown in reverse order: the nodes stop before the history
	// closes. A phase that takes more (a mount under each node's data
	// folder, which must outlive the nodes) holds it the same way.
	held []held
	// interrupted names the phase an interrupt cut short; "" while none
	// did.
	interrupted string
}

// held is one thing a run took and how to give it back.
type held struct {
	what    string
	release func(ctx context.Context) error
}

// faults is what acts on the cluster while the workload runs, and is
// healed before the drain: the nemesis's seeded schedule. A named
// scenario, whose steps wait on what the cluster reports, is another.
type faults interface {
	// Run acts until ctx ends or the program is over; an error leaves
	// the cluster in a state nobody planned and stops the run.
	Run(ctx context.Context, start time.Time) error
	// Heal ends whatever is in force and brings every node back.
	Heal(ctx context.Context) error
	// Current names what is in force now, for the progress line.
	Current() string
}

// noFaults is the fault program of a run without faults.
type noFaults struct{}

func (noFaults) Run(context.Context, time.Time) error { return nil }
func (noFaults) Heal(context.Context) error           { return nil }
func (noFaults) Current() string                      { return "none" }

func newTest(cfg Config) *test {
	t := &test{cfg: cfg, progress: cfg.Progress, out: cfg.Out, faults: noFaults{}}
	if t.progress == nil {
		t.progress = io.Discard
	}
	if t.out == nil {
		t.out = io.Discard
	}
	t.specs, _ = cfg.Specs()
	t.schedule = nemesis.NewSchedule(cfg.Seed, t.specs, cfg.NemesisInterval, cfg.TimeLimit)
	return t
}

// dir is the run folder, "" before setup made it.
func (t *test) dir() string {
	if t.folder == nil {
		return ""
	}
	return t.folder.Dir
}

// run goes through the phases.
func (t *test) run(ctx context.Context) (results *checker.Results, err error) {
	defer func() {
		if terr := t.teardown(ctx); terr != nil && err == nil {
			err = terr
		}
	}()
	if err := t.setup(ctx); err != nil {
		return nil, err
	}
	for _, phase := range []struct {
		name string
		run  func(context.Context) error
	}{{"workload", t.exercise}, {"heal", t.heal}, {"drain", t.drain}} {
		err := phase.run(ctx)
		if ctx.Err() != nil {
			t.interrupted = phase.name
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if t.interrupted != "" {
		if err := t.interrupt(ctx); err != nil {
			return nil, err
		}
	}
	if err := t.teardown(ctx); err != nil {
		return nil, err
	}
	ops, warnings, err := t.readBack()
	if err != nil {
		return nil, err
	}
	if results, err = t.check(ctx, ops, warnings); err != nil {
		return nil, err
	}
	t.report(ops, results)
	if t.interrupted != "" {
		return results, fmt.Errorf("%w during the %s; the run's files are in %s: %w", ErrInterrupted, t.interrupted, t.dir(), context.Cause(ctx))
	}
	return results, nil
}

// hold records something setup took, for teardown to release.
func (t *test) hold(what string, release func(ctx context.Context) error) {
	t.held = append(t.held, held{what: what, release: release})
}

// setup checks that the machine can do what the run needs, creates the
// run folder and test.json, opens the history, mounts the power-loss
// filesystem under each node's data folder when the run needs it, starts
// the nodes, records their addresses and creates the topic. The mounts
// come before the nodes and are held, so that teardown unmounts them
// after the nodes stopped.
func (t *test) setup(ctx context.Context) error {
	if err := t.checkPowerFS(); err != nil {
		return err
	}
	if err := t.createFolder(); err != nil {
		return err
	}
	if err := t.openHistory(); err != nil {
		return err
	}
	if err := t.mountDisks(); err != nil {
		return err
	}
	if err := t.startCluster(ctx); err != nil {
		return err
	}
	return t.createTopic(ctx)
}

// createFolder creates the run folder and writes test.json: the
// configuration, the seed, the versions and the fault schedule.
func (t *test) createFolder() error {
	cfg := t.cfg
	started := time.Now()
	folder, err := histories.NewRun(cfg.Store, cfg.Name(), started)
	if err != nil {
		return fmt.Errorf("create the run folder: %w", err)
	}
	t.folder = folder
	t.info = histories.TestInfo{
		Name:            cfg.Name(),
		Seed:            cfg.Seed,
		Config:          cfg.stored(),
		GarantiaVersion: Version(),
		GoVersion:       runtime.Version(),
		StartTime:       started.UTC(),
		Args:            os.Args,
		Workload:        histories.WorkloadInfo{Name: "queue", Topic: queue.DefaultTopic},
		Cluster:         true,
		Faults:          []string{},
		Schedule:        []histories.FaultStep{},
	}
	for _, s := range t.specs {
		t.info.Faults = append(t.info.Faults, s.String())
	}
	for _, s := range t.schedule {
		t.info.Schedule = append(t.info.Schedule, s.Stored())
	}
	if err := t.writeInfo(); err != nil {
		return err
	}
	fmt.Fprintf(t.progress, "garantia test %s: seed %d (repeat with --seed %d)\nrun folder: %s\n", t.info.Name, cfg.Seed, cfg.Seed, folder.Dir)
	if len(t.specs) > 0 {
		fmt.Fprintf(t.progress, "faults: %s, every %s or so (%d scheduled)\n", strings.Join(t.info.Faults, ", "), cfg.NemesisInterval, len(t.schedule))
	}
	return nil
}

// openHistory creates history.jsonl, held until teardown closes it.
func (t *test) openHistory() error {
	hw, err := histories.Create(t.folder.Path(histories.HistoryFile))
	if err != nil {
		return fmt.Errorf("create the history: %w", err)
	}
	t.history = hw
	t.hold("the history", func(context.Context) error {
		if err := hw.Close(); err != nil {
			return fmt.Errorf("close the history: %w", err)
		}
		return nil
	})
	return nil
}

// startCluster starts the nodes (held until teardown stops them) and
// records their addresses in test.json.
func (t *test) startCluster(ctx context.Context) error {
	backend, err := newBackend(t.cfg, t.folder.Dir, t.progress)
	if err != nil {
		return err
	}
	t.cluster = backend
	t.hold("the nodes", func(ctx context.Context) error {
		if err := backend.Teardown(ctx); err != nil {
			return fmt.Errorf("teardown: %w", err)
		}
		return nil
	})
	fmt.Fprintf(t.progress, "starting %d node(s)...\n", t.cfg.Nodes)
	if err := backend.Setup(ctx); err != nil {
		return fmt.Errorf("start the nodes: %w", err)
	}
	for _, n := range backend.Nodes() {
		t.info.Nodes = append(t.info.Nodes, histories.NodeInfo{ID: n.ID, Name: n.Name, Addr: n.Addr, Controller: n.Controller})
	}
	return t.writeInfo()
}

// createTopic makes the workload and its topic, and the fault program.
func (t *test) createTopic(ctx context.Context) error {
	cfg := t.cfg
	var brokers []string
	names := map[int32]string{}
	for _, n := range t.cluster.Nodes() {
		brokers = append(brokers, n.Addr)
		names[n.ID] = n.Name
	}
	topicConfigs := map[string]string{"min.insync.replicas": strconv.Itoa(cfg.MinInsyncReplicas)}
	if cfg.UncleanLeaderElection {
		topicConfigs["unclean.leader.election.enable"] = "true"
	}
	// The history's clock starts with the workload: time 0 is the first
	// operation's moment, not the brokers' startup.
	t.rec = histories.NewRecorder(t.history, time.Now())
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
		ConsumeVia:        cfg.ConsumeVia,
	}, t.rec)
	if err != nil {
		return err
	}
	t.wl = wl
	if err := wl.CreateTopic(ctx); err != nil {
		return err
	}
	if len(t.schedule) > 0 {
		nem, err := nemesis.New(nemesis.Config{
			DB:       t.cluster,
			Power:    t.powerCutter(),
			Schedule: t.schedule,
			Recorder: t.rec,
			Leaders:  nemesis.MetadataLeaders{Nodes: t.cluster.Nodes, Topic: queue.DefaultTopic},
			// Ctrl-C cuts a fault short; the time limit does not.
			Interrupt: ctx,
		})
		if err != nil {
			return err
		}
		t.faults = nem
	}
	return nil
}

// exercise runs the workload for the time limit, the faults and the
// progress line together: all three end when the workload does, and a
// fault that fails (the cluster in a state nobody planned) or a history
// that cannot be written ends all three.
func (t *test) exercise(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	prog := newProgressLine(t.progress, t.cfg.TimeLimit, t.wl, t.faults.Current)
	g.Go(recovering("the workload", func() error {
		defer stop() // the workload's end is everyone's
		if err := t.wl.Run(gctx, t.cfg.TimeLimit); err != nil {
			return fmt.Errorf("workload: %w", err)
		}
		return nil
	}))
	g.Go(recovering("the faults", func() error {
		if err := t.faults.Run(gctx, start); err != nil {
			return fmt.Errorf("faults: %w", err)
		}
		return nil
	}))
	g.Go(recovering("the progress line", func() error {
		prog.run(gctx)
		return nil
	}))
	err := g.Wait()
	prog.finish()
	return err
}

// ErrPanic marks a run whose goroutine panicked: a bug of the harness,
// reported with its stack as the run's failure.
var ErrPanic = errors.New("the harness panicked")

// recovering runs fn and turns a panic into an error with its stack. A
// panic in a goroutine of the run would end the process at once, leaving
// what the run holds (the nodes' power-loss mounts, docker containers)
// to garantia clean; as an error it ends the run, and teardown releases
// everything.
func recovering(what string, fn func() error) func() error {
	return func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("%w in %s: %v\n%s", ErrPanic, what, p, debug.Stack())
			}
		}()
		return fn()
	}
}

// heal ends every fault and starts every node, so that the drain reads
// everything that survived.
func (t *test) heal(ctx context.Context) error {
	if _, none := t.faults.(noFaults); none {
		return nil
	}
	fmt.Fprintf(t.progress, "healing (in force: %s) and starting every node...\n", t.faults.Current())
	if err := t.faults.Heal(ctx); err != nil {
		return fmt.Errorf("heal before the drain: %w", err)
	}
	return nil
}

// drain reads every partition to its end, framed in the history by the
// drain markers (see queue.Workload.Drain).
func (t *test) drain(ctx context.Context) error {
	fmt.Fprintf(t.progress, "draining every partition...\n")
	start := time.Now()
	if err := t.wl.Drain(ctx); err != nil {
		return fmt.Errorf("final drain: %w", err)
	}
	c := t.wl.Counts()
	fmt.Fprintf(t.progress, "drained in %s; %d ops (%d ok, %d info, %d fail)\n",
		time.Since(start).Round(time.Millisecond), c.Invoked, c.OK, c.Info, c.Fail)
	return nil
}

// interrupt ends an interrupted run's faults (recorded, so that the
// history says the faults ended) within interruptHealTimeout, whatever
// the interrupt, and marks test.json. A heal that fails or runs out of
// time is a warning: teardown stops every node anyway.
func (t *test) interrupt(ctx context.Context) error {
	fmt.Fprintf(t.progress, "interrupted during the %s: ending the faults and stopping the nodes (up to %s), then checking what was recorded; interrupt again to quit at once\n",
		t.interrupted, interruptHealTimeout+teardownTimeout)
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), interruptHealTimeout)
	defer cancel()
	if err := t.faults.Heal(hctx); err != nil {
		fmt.Fprintf(t.progress, "warning: healing after the interrupt: %v\n", err)
	}
	t.info.Interrupted = t.interrupted
	return t.writeInfo()
}

// teardown releases what the run holds, newest first: the nodes stop,
// then the history closes. It runs on a context of its own, bounded by
// teardownTimeout, so that an interrupt (which ended the run's context)
// still tears down; a second call does nothing.
func (t *test) teardown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
	defer cancel()
	var errs []error
	for i := len(t.held) - 1; i >= 0; i-- {
		errs = append(errs, t.held[i].release(ctx))
	}
	t.held = nil
	return errors.Join(errs...)
}

// readBack reads the history from disk: what is checked is the stored
// evidence, so that `garantia check` reaches the same verdict.
func (t *test) readBack() ([]histories.Op, []string, error) {
	ops, warnings, err := histories.ReadFile(t.folder.Path(histories.HistoryFile))
	if err != nil {
		return nil, nil, fmt.Errorf("read back the history: %w", err)
	}
	return ops, warnings, nil
}

// check runs the checkers and writes results.json. An interrupted run is
// checked all the same: the interrupt ended the run, not the check.
func (t *test) check(ctx context.Context, ops []histories.Op, warnings []string) (*checker.Results, error) {
	if t.interrupted != "" {
		ctx = context.WithoutCancel(ctx)
	}
	start := time.Now()
	results, err := checker.Check(ctx, ops, checker.Options{VisualizeDir: t.folder.Dir})
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", t.folder.Path(histories.HistoryFile), err)
	}
	results.Warnings = append(results.Warnings, warnings...)
	results.Warnings = append(results.Warnings, t.wl.Warnings()...)
	if err := results.WriteFile(t.folder.Path(histories.ResultsFile)); err != nil {
		return nil, err
	}
	fmt.Fprintf(t.out, "history: %s (%d events; checked in %s)\n", t.folder.Path(histories.HistoryFile), len(ops), time.Since(start).Round(time.Millisecond))
	return results, nil
}

// report prints the summary and writes report.html.
func (t *test) report(ops []histories.Op, results *checker.Results) {
	if t.interrupted != "" {
		fmt.Fprintf(t.out, "interrupted during the %s: the history stops there, without a completed final drain; the verdict covers what it recorded\n", t.interrupted)
	}
	report.Summary(t.out, results, summaryExamples)
	fmt.Fprintf(t.out, "results: %s\n", t.folder.Path(histories.ResultsFile))
	// The HTML report is for people; failing to draw it must not turn a
	// checked run into a harness failure, so it is only a warning.
	if rep, err := report.New(t.folder.Dir, t.folder.Path(histories.HistoryFile), ops, results); err != nil {
		fmt.Fprintf(t.progress, "warning: report.html not written: %v\n", err)
	} else if p, err := rep.WriteFile(report.Options{}); err != nil {
		fmt.Fprintf(t.progress, "warning: report.html not written: %v\n", err)
	} else {
		fmt.Fprintf(t.out, "report: %s\n", p)
	}
}

// newBackend makes the cluster backend cfg.DB names: local processes on
// loopback, or one docker container per node on a network of the run's own.
func newBackend(cfg Config, runDir string, progress io.Writer) (db.DB, error) {
	lo := localOptions(cfg, runDir)
	if cfg.DB == "docker" {
		// The same nodes as the local backend's; the links need no proxy.
		return docker.New(docker.Options{
			Config: lo.Config,
			Logf:   func(format string, a ...any) { fmt.Fprintf(progress, format+"\n", a...) },
		})
	}
	return local.New(lo)
}

// localOptions are the local backend's options for cfg: the nodes run as
// one replicating cluster, and the links between nodes go through proxies
// whenever there are links.
func localOptions(cfg Config, runDir string) local.Options {
	o := local.Options{
		Config: db.Config{
			Binary: cfg.BrokerBinary, Nodes: cfg.Nodes, Dir: runDir, Fsync: cfg.Fsync, Bugs: cfg.Bugs,
			Cluster: &db.Cluster{
				SessionTimeout:           cfg.SessionTimeout,
				ReplicaLagTimeMax:        cfg.ReplicaLagTimeMax,
				MinInsyncReplicas:        cfg.MinInsyncReplicas,
				DefaultReplicationFactor: cfg.ReplicationFactor,
				UncleanLeaderElection:    cfg.UncleanLeaderElection,
			},
		},
		Links: cfg.Nodes > 1,
		Seed:  uint64(cfg.Seed),
	}
	if cfg.ConsumeVia != "" && cfg.ConsumeVia != queue.ConsumeAssign {
		o.ExtraArgs = func(db.Node) []string { return queue.GroupBrokerArgs() }
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

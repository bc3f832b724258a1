package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/internal/leakcheck"
)

// memDB is an in-memory db.DB with partitions and packet faults: it keeps
// each node's state and refuses transitions a correct nemesis never asks
// for (resuming a node that is not paused, pausing a dead one), so that
// a test sees them.
type memDB struct {
	mu     sync.Mutex
	nodes  []db.Node
	state  map[string]string // running, killed, paused
	cuts   map[string]bool   // "from->to"
	shaped map[string]db.Packet
	log    []string
}

var (
	_ db.Partitioner  = (*memDB)(nil)
	_ db.PacketShaper = (*memDB)(nil)
)

func newMemDB(n int) *memDB {
	m := &memDB{state: map[string]string{}, cuts: map[string]bool{}, shaped: map[string]db.Packet{}}
	for i := 1; i <= n; i++ {
		node := db.Node{ID: int32(i), Name: db.NameOf(int32(i)), Addr: fmt.Sprintf("mem:%d", i)}
		m.nodes = append(m.nodes, node)
		m.state[node.Name] = "running"
	}
	return m
}

func (m *memDB) Setup(context.Context) error { return nil }
func (m *memDB) Nodes() []db.Node            { return append([]db.Node(nil), m.nodes...) }
func (m *memDB) LogFiles() map[string]string { return nil }
func (m *memDB) Teardown(context.Context) error {
	return nil
}

func (m *memDB) transition(node db.Node, op string, from []string, to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.state[node.Name]
	if !ok {
		return db.ErrUnknownNode
	}
	m.log = append(m.log, op+" "+node.Name)
	if !slices.Contains(from, st) {
		return fmt.Errorf("%s %s: node is %s", op, node.Name, st)
	}
	m.state[node.Name] = to
	return nil
}

func (m *memDB) Kill(_ context.Context, n db.Node) error {
	return m.transition(n, "kill", []string{"running", "killed"}, "killed")
}
func (m *memDB) Start(_ context.Context, n db.Node) error {
	return m.transition(n, "start", []string{"running", "killed"}, "running")
}
func (m *memDB) WaitReady(_ context.Context, n db.Node) error {
	return m.transition(n, "wait-ready", []string{"running"}, "running")
}
func (m *memDB) Pause(_ context.Context, n db.Node) error {
	return m.transition(n, "pause", []string{"running"}, "paused")
}
func (m *memDB) Resume(_ context.Context, n db.Node) error {
	return m.transition(n, "resume", []string{"paused"}, "running")
}

// eachLink calls fn with "from->to" for every link of links.
func eachLink(links map[string][]string, fn func(link string)) {
	for from, tos := range links {
		for _, to := range tos {
			fn(from + "->" + to)
		}
	}
}

func (m *memDB) Partition(_ context.Context, drops map[string][]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	eachLink(drops, func(l string) { m.cuts[l] = true })
	return nil
}

func (m *memDB) Heal(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cuts = map[string]bool{}
	return nil
}

func (m *memDB) Shape(_ context.Context, links map[string][]string, p db.Packet) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	eachLink(links, func(l string) { m.shaped[l] = p })
	return nil
}

func (m *memDB) Unshape(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shaped = map[string]db.Packet{}
	return nil
}

func (m *memDB) snapshot() (states map[string]string, cuts []string, shaped []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	states = map[string]string{}
	for k, v := range m.state {
		states[k] = v
	}
	for k := range m.cuts {
		cuts = append(cuts, k)
	}
	for k := range m.shaped {
		shaped = append(shaped, k)
	}
	sort.Strings(cuts)
	sort.Strings(shaped)
	return
}

// fixedLeader always names the same broker.
type fixedLeader struct{ id int32 }

func (f fixedLeader) Leader(_ context.Context, pick uint64) (int32, int32, error) {
	return int32(pick % 4), f.id, nil
}

func newRecorder(t *testing.T) (*histories.Recorder, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), histories.HistoryFile)
	w, err := histories.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return histories.NewRecorder(w, time.Now()), path
}

func readNemesis(t *testing.T, rec *histories.Recorder, path string) []histories.Op {
	t.Helper()
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	ops, _, err := histories.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Process != histories.NemesisProcess || op.Type != histories.Info {
			t.Errorf("nemesis event %+v is not a process -1 info op", op)
		}
	}
	return ops
}

// runFor makes the nemesis of cfg and runs its schedule for d.
func runFor(t *testing.T, cfg Config, d time.Duration) *Nemesis {
	t.Helper()
	nem, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := nem.Run(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	return nem
}

// TestRunAndHeal runs a hand-made schedule that holds every kind of
// fault, overlapping across resources, against the in-memory DB, and
// checks each fault's effect while it is in force, the recorded events,
// and that Heal leaves every node running and every link whole. It runs
// in a synctest bubble: the schedule's clock is the bubble's, so "60ms
// after the start" is exactly that, whatever the machine's load.
func TestRunAndHeal(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, runAndHeal)
}

func runAndHeal(t *testing.T) {
	m := newMemDB(3)
	rec, path := newRecorder(t)
	ms := time.Millisecond
	sched := []Step{
		{At: 10 * ms, Kind: Partition, Target: Leader, Duration: 100 * ms, Pick: 1},
		{At: 30 * ms, Kind: Kill, Target: Majority, Duration: 60 * ms, Pick: 2},
		{At: 150 * ms, Kind: Packet, Target: One, Behavior: "latency", Duration: 60 * ms, Pick: 3},
		{At: 160 * ms, Kind: Pause, Target: One, Duration: 1000 * ms, Pick: 4}, // still in force at the end
		{At: 260 * ms, Kind: Partition, Target: Majority, Duration: 1000 * ms, Pick: 5},
	}
	nem, err := New(Config{DB: m, Schedule: sched, Recorder: rec, Leaders: fixedLeader{id: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if nem.Current() != "none" {
		t.Errorf("Current before the run = %q", nem.Current())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- nem.Run(ctx, start) }()

	// While the leader n2 is isolated (10ms to 110ms) and a majority is
	// killed (30ms to 90ms).
	time.Sleep(60 * time.Millisecond)
	synctest.Wait()
	states, cuts, _ := m.snapshot()
	if want := []string{"n1->n2", "n2->n1", "n2->n3", "n3->n2"}; !slices.Equal(cuts, want) {
		t.Errorf("cuts while the leader n2 is isolated: %v, want %v", cuts, want)
	}
	killed := 0
	for _, st := range states {
		if st == "killed" {
			killed++
		}
	}
	if killed != 2 {
		t.Errorf("%d nodes killed by a majority kill of 3, want 2: %v", killed, states)
	}
	if cur := nem.Current(); !strings.Contains(cur, "partition leader n2") || !strings.Contains(cur, "kill majority") {
		t.Errorf("Current = %q, want the partition and the kill", cur)
	}

	// After the pause (from 160ms) and the second partition (from 260ms)
	// have started, the packet fault (150ms to 210ms) ended.
	time.Sleep(250 * time.Millisecond)
	synctest.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	states, cuts, shaped := m.snapshot()
	if len(cuts) == 0 || len(shaped) != 0 {
		t.Errorf("at the end of the run: cuts %v (want the majority split), shaped %v (want none: the packet fault ended)", cuts, shaped)
	}
	paused := 0
	for _, st := range states {
		if st == "paused" {
			paused++
		}
	}
	if paused != 1 {
		t.Errorf("states at the end of the run %v, want one paused", states)
	}

	healed(t, nem, m)
	_, cuts, shaped = m.snapshot()
	if len(cuts) != 0 || len(shaped) != 0 {
		t.Errorf("after Heal: cuts %v, shaped %v", cuts, shaped)
	}
	if nem.Current() != "none" {
		t.Errorf("Current after Heal = %q", nem.Current())
	}
	m.mu.Lock()
	for _, n := range m.nodes {
		// The final heal waits until every node is ready, after its start.
		if i := slices.Index(m.log, "wait-ready "+n.Name); i < 0 || slices.Index(m.log[i:], "start "+n.Name) >= 0 {
			t.Errorf("Heal did not wait for %s to be ready after starting it: %v", n.Name, m.log)
		}
	}
	m.mu.Unlock()

	ops := readNemesis(t, rec, path)
	expectEvents(t, ops, "start-partition", "kill", "start", "stop-partition", "start-packet", "pause", "stop-packet",
		"start-partition", "stop-partition", "resume", "start")
	// The invocation names the target as Jepsen does; the completion says
	// what was done.
	if string(ops[0].Value.Raw) != `"leader"` {
		t.Errorf("start-partition invoked with %s, want \"leader\"", ops[0].Value.Raw)
	}
	var d describe
	if err := json.Unmarshal(ops[1].Value.Raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.Leader == nil || d.Leader.Node != "n2" || len(d.Cut) != 4 {
		t.Errorf("start-partition completion %s: want the leader n2 and 4 cut links", ops[1].Value.Raw)
	}
}

// TestLeaderFallback: without an answer about the leader the nemesis
// picks a node from the step's pick and says so.
func TestLeaderFallback(t *testing.T) { synctest.Test(t, leaderFallback) }

func leaderFallback(t *testing.T) {
	m := newMemDB(3)
	rec, path := newRecorder(t)
	sched := []Step{{At: 0, Kind: Kill, Target: Leader, Duration: time.Hour, Pick: 7}}
	nem := runFor(t, Config{DB: m, Schedule: sched, Recorder: rec, Leaders: failingLeaders{}}, 50*time.Millisecond)
	if err := nem.Heal(context.Background()); err != nil {
		t.Fatal(err)
	}
	ops := readNemesis(t, rec, path)
	if len(ops) < 2 || !strings.Contains(string(ops[1].Value.Raw), "leader unknown") {
		t.Fatalf("kill completion %s, want a note that the leader was unknown", ops[1].Value.Raw)
	}
}

// expectEvents checks that ops are pairs of an invocation and its
// completion, none failed, of the functions want, in order.
func expectEvents(t *testing.T, ops []histories.Op, want ...string) {
	t.Helper()
	var fs []string
	for i := 0; i+1 < len(ops); i += 2 {
		inv, done := ops[i], ops[i+1]
		if inv.F != done.F {
			t.Fatalf("event %d: invocation %s completed as %s", i, inv.F, done.F)
		}
		if done.Error != "" {
			t.Errorf("%s failed: %s", done.F, done.Error)
		}
		fs = append(fs, inv.F)
	}
	if len(ops)%2 != 0 || !slices.Equal(fs, want) {
		t.Errorf("events %v (%d),\nwant   %v", fs, len(ops), want)
	}
}

// healed heals nem and checks that every node of m runs.
func healed(t *testing.T, nem *Nemesis, m *memDB) {
	t.Helper()
	if err := nem.Heal(context.Background()); err != nil {
		t.Fatalf("Heal: %v", err)
	}
	states, _, _ := m.snapshot()
	for name, st := range states {
		if st != "running" {
			t.Errorf("%s is %s after Heal", name, st)
		}
	}
}

type failingLeaders struct{}

func (failingLeaders) Leader(context.Context, uint64) (int32, int32, error) {
	return 0, 0, ErrNoLeader
}

func TestNewRefusesWhatTheBackendCannotDo(t *testing.T) {
	rec, _ := newRecorder(t)
	type onlyDB struct{ db.DB }
	d := onlyDB{newMemDB(3)}
	for _, k := range []Kind{Partition, Packet} {
		_, err := New(Config{DB: d, Recorder: rec, Schedule: []Step{{Kind: k, Target: One, Behavior: "loss"}}})
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s on a backend without network faults: %v, want ErrUnsupported", k, err)
		}
	}
	if _, err := New(Config{DB: d, Recorder: rec, Schedule: []Step{{Kind: Kill, Target: One}}}); err != nil {
		t.Errorf("kill on a plain backend: %v", err)
	}
}

// TestHealFailureIsReported: a heal that fails is an error of Heal, and
// is recorded.
func TestHealFailureIsReported(t *testing.T) { synctest.Test(t, healFailureIsReported) }

func healFailureIsReported(t *testing.T) {
	m := newMemDB(1)
	rec, path := newRecorder(t)
	nem := runFor(t, Config{DB: m, Recorder: rec, Schedule: []Step{{Kind: Pause, Target: One, Duration: time.Hour}}}, 30*time.Millisecond)
	// Someone else resumed the node: the nemesis's resume now fails.
	if err := m.Resume(context.Background(), m.nodes[0]); err != nil {
		t.Fatal(err)
	}
	if err := nem.Heal(context.Background()); err == nil {
		t.Fatal("Heal succeeded though its resume failed")
	}
	ops := readNemesis(t, rec, path)
	found := false
	for _, op := range ops {
		if op.F == "resume" && op.Error != "" {
			found = true
		}
	}
	if !found {
		t.Error("the failed resume is not in the history")
	}
}

package queue

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/local"
	"github.com/garantia/garantia/db/local/buildtest"
	"github.com/garantia/garantia/histories"
)

func TestMain(m *testing.M) { buildtest.Main(m) }

// node starts one broker for the test, with the broker flags args, and
// tears it down afterwards.
func node(t testing.TB, args ...string) (*local.DB, db.Node) {
	t.Helper()
	d, err := local.New(local.Options{Config: db.Config{Binary: buildtest.Binary(t), Nodes: 1, Dir: t.TempDir(),
		ExtraArgs: func(db.Node) []string { return args }}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Teardown(context.Background()) })
	if err := d.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d, d.Nodes()[0]
}

// recorder opens a history in a temporary folder.
func recorder(t testing.TB) (*histories.Recorder, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), histories.HistoryFile)
	w, err := histories.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() }) // a no-op error after the test's own Close
	return histories.NewRecorder(w, time.Now()), path
}

func newWorkload(t testing.TB, n db.Node, acks string, rec *histories.Recorder) *Workload {
	t.Helper()
	w, err := New(Config{
		Brokers:           []string{n.Addr},
		NodeNames:         map[int32]string{n.ID: n.Name},
		Partitions:        3,
		ReplicationFactor: 1,
		Acks:              acks,
		Concurrency:       4,
		Seed:              1,
		DrainTimeout:      10 * time.Second,
	}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.CreateTopic(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestRunAndDrain runs the workload against a healthy node for each acks
// setting and checks the history's shape: every op completes, every
// acknowledged value is read back at its offset, acks=0 gives no offsets.
func TestRunAndDrain(t *testing.T) {
	for _, acks := range []string{"0", "1", "all"} {
		t.Run("acks="+acks, func(t *testing.T) {
			_, n := node(t)
			rec, path := recorder(t)
			w := newWorkload(t, n, acks, rec)
			if err := w.Run(context.Background(), 700*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			ops := drainAndRead(t, context.Background(), w, rec, path)
			checkHistory(t, ops, acks)
			checkDrainMarkers(t, ops, histories.OK)
		})
	}
}

// drainAndRead drains w with ctx, closes the history and reads it back.
func drainAndRead(t *testing.T, ctx context.Context, w *Workload, rec *histories.Recorder, path string) []histories.Op {
	t.Helper()
	if err := w.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	ops, _, err := histories.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// checkDrainMarkers checks that ops hold exactly one drain, framed as the
// checker reads it: a process -1 invocation before the drain's first op,
// and a completion of type want after its last.
func checkDrainMarkers(t *testing.T, ops []histories.Op, want histories.Type) {
	t.Helper()
	var at []int
	for i, op := range ops {
		if op.F == histories.FDrain {
			if op.Process != histories.NemesisProcess {
				t.Errorf("op %d: drain marker of process %d, want %d", op.Index, op.Process, histories.NemesisProcess)
			}
			at = append(at, i)
		}
	}
	if len(at) != 2 {
		t.Fatalf("%d drain markers, want an invocation and a completion", len(at))
	}
	begin, end := ops[at[0]], ops[at[1]]
	if begin.Type != histories.Invoke || end.Type != want {
		t.Fatalf("drain markers %s then %s (%s), want invoke then %s", begin.Type, end.Type, end.Error, want)
	}
	if want == histories.Info && end.Error == "" {
		t.Error("a drain cut short says nothing about why")
	}
	if want == histories.OK && at[1] != len(ops)-1 {
		t.Errorf("ops after the drain's completion: %+v", ops[at[1]+1:])
	}
	for _, op := range ops[at[1]+1:] {
		if op.F == histories.FPoll || op.F == histories.FAssign {
			t.Errorf("op %d: %s after the drain ended", op.Index, op.F)
		}
	}
}

// TestDrainCutShort: a drain whose context ends before it read anything
// completes its marker as info, saying it was interrupted and which
// partitions it did not read to their end, so that the checker knows the
// history has no completed drain.
func TestDrainCutShort(t *testing.T) {
	_, n := node(t)
	rec, path := recorder(t)
	w := newWorkload(t, n, "all", rec)
	if err := w.Run(context.Background(), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ops := drainAndRead(t, ctx, w, rec, path)
	checkDrainMarkers(t, ops, histories.Info)
	end := ops[len(ops)-1]
	if !strings.Contains(end.Error, "interrupted") || !strings.Contains(end.Error, "partition 0") {
		t.Errorf("drain cut short by an interrupt: error %q, want it to say so and name the partitions", end.Error)
	}
}

func checkHistory(t *testing.T, ops []histories.Op, acks string) {
	t.Helper()
	type kv struct {
		key   string
		value int64
	}
	sent := map[kv]int64{}      // acknowledged value -> offset
	read := map[kv]int64{}      // value read -> offset
	open := map[int64]bool{}    // processes with an op in flight
	retired := map[int64]bool{} // processes that ended info
	c := map[string]map[histories.Type]int{}
	for _, op := range ops {
		if op.Process == histories.NemesisProcess {
			continue
		}
		if retired[op.Process] {
			t.Fatalf("op %d: process %d was retired after an info op, yet runs again", op.Index, op.Process)
		}
		if c[op.F] == nil {
			c[op.F] = map[histories.Type]int{}
		}
		c[op.F][op.Type]++
		if op.Type == histories.Invoke {
			if open[op.Process] {
				t.Fatalf("op %d: process %d invokes with an op in flight", op.Index, op.Process)
			}
			open[op.Process] = true
			continue
		}
		if !open[op.Process] {
			t.Fatalf("op %d: process %d completes nothing", op.Index, op.Process)
		}
		open[op.Process] = false
		if op.Type == histories.Info {
			retired[op.Process] = true
		}
		if op.Type != histories.OK {
			t.Logf("op %d: %s %s: %s", op.Index, op.Type, op.F, op.Error)
			continue
		}
		if op.Node != "n1" && op.F == histories.FSend {
			t.Errorf("op %d: ok send names node %q, want n1", op.Index, op.Node)
		}
		for _, m := range op.Value.Mops {
			switch m.F {
			case histories.MopSend:
				if acks == "0" && m.Offset != histories.OffsetUnknown {
					t.Errorf("op %d: acks=0 send has offset %d, want unknown", op.Index, m.Offset)
				}
				if acks != "0" && m.Offset < 0 {
					t.Errorf("op %d: acknowledged send has no offset", op.Index)
				}
				sent[kv{m.Key, m.Value}] = m.Offset
			case histories.MopPoll:
				for key, recs := range m.Polls {
					for _, r := range recs {
						read[kv{key, r.Value}] = r.Offset
					}
				}
			}
		}
	}
	for p, o := range open {
		if o {
			t.Errorf("process %d has an op that never completed", p)
		}
	}
	if c[histories.FSend][histories.OK] == 0 || c[histories.FPoll][histories.OK] == 0 || c[histories.FAssign][histories.OK] == 0 {
		t.Fatalf("history lacks ok sends, polls or assigns: %v", c)
	}
	for k, off := range sent {
		got, ok := read[k]
		switch {
		case !ok:
			t.Errorf("acknowledged value %d of key %s was never read (the drain reads everything)", k.value, k.key)
		case off >= 0 && got != off:
			t.Errorf("value %d of key %s: sent at offset %d, read at %d", k.value, k.key, off, got)
		}
	}
}

// TestKilledNode: with the node dead, sends complete fail (nothing was
// written) and the workload keeps going; after a restart it recovers.
func TestKilledNode(t *testing.T) {
	d, n := node(t)
	rec, path := recorder(t)
	w := newWorkload(t, n, "all", rec)
	if err := d.Kill(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := w.Run(context.Background(), 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*DefaultOpTimeout {
		t.Errorf("a run of 500ms against a dead node took %s: ops are not bounded", took)
	}
	if err := d.Start(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	ops := drainAndRead(t, context.Background(), w, rec, path)
	fails, oks := 0, 0
	for _, op := range ops {
		if op.F != histories.FSend {
			continue
		}
		switch op.Type {
		case histories.Fail:
			fails++
		case histories.OK:
			oks++
		case histories.Info:
			t.Errorf("op %d: send to a dead node is info (%s), want fail: nothing was written", op.Index, op.Error)
		}
	}
	if fails == 0 || oks != 0 {
		t.Errorf("sends to a dead node: %d fail, %d ok; want only fails", fails, oks)
	}
}

// BenchmarkThroughput measures recorded operations per second against one
// local node, concurrency 10, no rate limit, for acks=1 and acks=all.
// Run: go test ./workloads/queue -run '^$' -bench Throughput -benchtime 1x
func BenchmarkThroughput(b *testing.B) {
	for _, acks := range []string{"1", "all"} {
		b.Run("acks="+acks, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				_, n := node(b)
				rec, _ := recorder(b)
				w, err := New(Config{
					Brokers: []string{n.Addr}, Partitions: 4, ReplicationFactor: 1,
					Acks: acks, Concurrency: 10, Seed: int64(i),
				}, rec)
				if err != nil {
					b.Fatal(err)
				}
				if err := w.CreateTopic(context.Background()); err != nil {
					b.Fatal(err)
				}
				const limit = 5 * time.Second
				start := time.Now()
				if err := w.Run(context.Background(), limit); err != nil {
					b.Fatal(err)
				}
				took := time.Since(start)
				c := w.Counts()
				b.ReportMetric(float64(c.OK+c.Info+c.Fail)/took.Seconds(), "ops/s")
				b.ReportMetric(float64(c.Info+c.Fail), "failed-ops")
				_ = rec.Close()
			}
		})
	}
}

// TestAssignStartPositions checks where an assign points the consumer: a
// kept partition resumes after the last record the process read, a newly
// assigned one starts where this thread last read it, or at the log's
// start when the assign rewinds it or the thread never read it; and the
// process keeps its consumer client across assigns.
func TestAssignStartPositions(t *testing.T) {
	_, n := node(t)
	rec, _ := recorder(t)
	w := newWorkload(t, n, "all", rec)
	ctx := context.Background()
	wk := w.newWorker(0)
	defer wk.close()
	sendN := func(p int32, k int) {
		t.Helper()
		for range k {
			if err := wk.send(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	// readFrom polls until it has read `want` records of partition p
	// and returns the offset of the first one it read.
	readFrom := func(p int32, want int) int64 {
		t.Helper()
		first, got := int64(-1), 0
		deadline := time.Now().Add(10 * time.Second)
		for got < want {
			if time.Now().After(deadline) {
				t.Fatalf("partition %d: read %d of %d records in 10s", p, got, want)
			}
			res := w.pollOnce(ctx, wk.cons, 200*time.Millisecond)
			if res.err != nil {
				t.Fatalf("poll: %v", res.err)
			}
			recs := res.polls[strconv.Itoa(int(p))]
			if len(recs) > 0 && first < 0 {
				first = recs[0].Offset
			}
			got += len(recs)
			wk.noteRead(res.polls)
		}
		return first
	}
	assign := func(ps []int32, rewind map[int32]bool) {
		t.Helper()
		if err := wk.assign(ctx, ps, rewind); err != nil {
			t.Fatal(err)
		}
	}

	sendN(0, 5)
	sendN(1, 3)
	assign([]int32{0}, nil)
	if off := readFrom(0, 5); off != 0 {
		t.Fatalf("a partition the thread never read starts at offset %d, want 0", off)
	}
	client := wk.cons

	// Keep 0, add 1: 1 starts at its log's start; 0 resumes at 5.
	assign([]int32{0, 1}, nil)
	if wk.cons != client {
		t.Fatal("assign replaced the process's consumer client")
	}
	if off := readFrom(1, 3); off != 0 {
		t.Fatalf("newly assigned partition 1 starts at offset %d, want 0", off)
	}
	sendN(0, 2)
	if off := readFrom(0, 2); off != 5 {
		t.Fatalf("kept partition 0 resumed at offset %d, want 5", off)
	}

	// Drop 0, write to it, take it back: it starts where the thread left
	// it (7), not at the start and not past what was written meanwhile.
	assign([]int32{1}, nil)
	sendN(0, 2)
	assign([]int32{0, 1}, nil)
	if off := readFrom(0, 2); off != 7 {
		t.Fatalf("reassigned partition 0 starts at offset %d, want 7 (where the thread last read it)", off)
	}

	// Drop it again and take it back rewound: the whole log once more.
	assign([]int32{1}, nil)
	assign([]int32{0, 1}, map[int32]bool{0: true})
	if off := readFrom(0, 9); off != 0 {
		t.Fatalf("rewound partition 0 starts at offset %d, want 0", off)
	}
}

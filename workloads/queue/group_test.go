package queue

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/local"
	"github.com/garantia/garantia/histories"
)

// groupNode starts one broker with the group settings a subscribing
// workload needs (GroupBrokerArgs).
func groupNode(t testing.TB) (*local.DB, db.Node) {
	t.Helper()
	return node(t, GroupBrokerArgs()...)
}

// TestSubscribeAndMixed runs the workload with consumers that subscribe
// (and, mixed, that switch between subscribing and assigning) against a
// healthy node: the history checks valid, subscribes join the group and
// record their rebalances, every poll that read something is followed by
// a commit, members' own fetches of the offsets they resume from are
// recorded, and the final fetch returns, per key, the offset the last
// acknowledged commit wrote.
func TestSubscribeAndMixed(t *testing.T) {
	for _, via := range []string{ConsumeSubscribe, ConsumeMixed} {
		t.Run(via, func(t *testing.T) {
			_, n := groupNode(t)
			rec, path := recorder(t)
			w, err := New(Config{
				Brokers: []string{n.Addr}, NodeNames: map[int32]string{n.ID: n.Name},
				Partitions: 3, ReplicationFactor: 1, Acks: "all", Concurrency: 4, Seed: 3,
				DrainTimeout: 10 * time.Second, ConsumeVia: via,
			}, rec)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.CreateTopic(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := w.Run(context.Background(), 3*time.Second); err != nil {
				t.Fatal(err)
			}
			ops := drainAndRead(t, context.Background(), w, rec, path)
			checkDrainMarkers(t, ops, histories.OK)

			res, err := checker.Check(context.Background(), ops, checker.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != verdict.Valid {
				t.Fatalf("a healthy node's history checks %v: %v", res.Valid, res.Queue.AnomalyTypes)
			}
			c := map[string]map[histories.Type]int{}
			rebalanced := map[string]bool{}
			lastCommit := map[string]int64{}
			var final []histories.KeyOffset
			pollsWithRecords, pendingCommit, memberFetches := 0, map[int64]bool{}, 0
			for _, op := range ops {
				if !op.IsClient() {
					continue
				}
				if c[op.F] == nil {
					c[op.F] = map[histories.Type]int{}
				}
				c[op.F][op.Type]++
				for _, rb := range op.RebalanceLog {
					rebalanced[rb.Type] = true
					if len(rb.Keys) == 0 {
						t.Errorf("op %d: a rebalance of no keys", op.Index)
					}
				}
				switch {
				case (op.F == histories.FSubscribe || op.F == histories.FCommit || op.F == histories.FCommitted) && op.Group != DefaultGroup:
					t.Errorf("op %d: %s of group %q, want %q", op.Index, op.F, op.Group, DefaultGroup)
				case op.F == histories.FCommit && op.Type == histories.Invoke:
					if !pendingCommit[op.Process] {
						t.Errorf("op %d: a commit that no poll of its process called for", op.Index)
					}
					delete(pendingCommit, op.Process)
				case op.F == histories.FCommit && op.Type == histories.OK:
					for _, o := range op.Value.Offsets {
						lastCommit[o.Key] = o.Offset
					}
				case op.F == histories.FCommitted && op.Type == histories.Invoke && op.Value.Keys == nil:
					memberFetches++ // a member's own fetch on assignment
				case op.F == histories.FCommitted && op.Type == histories.OK:
					final = op.Value.Offsets
				case op.F == histories.FPoll && op.Type == histories.Invoke:
					if pendingCommit[op.Process] {
						t.Errorf("op %d: process %d polls again without committing what it read", op.Index, op.Process)
					}
				case op.F == histories.FPoll && op.Type == histories.OK && !isDrain(ops, op):
					if subscribedAt(ops, op) && len(op.Value.Mops[0].Polls) > 0 {
						pollsWithRecords++
						pendingCommit[op.Process] = true
					}
				}
			}
			t.Logf("%s: ops %v; rebalance types %v; %d polls read something as members", via, c, rebalanced, pollsWithRecords)
			if c[histories.FSubscribe][histories.OK] == 0 || c[histories.FCommit][histories.OK] == 0 || c[histories.FCommitted][histories.OK] == 0 {
				t.Fatalf("no ok subscribe, commit or committed: %v", c)
			}
			if via == ConsumeMixed && c[histories.FAssign][histories.OK] == 0 {
				t.Errorf("mixed consumers never assigned: %v", c)
			}
			if !rebalanced[histories.RebalanceAssigned] {
				t.Errorf("no rebalance log records an assignment: %v", rebalanced)
			}
			if memberFetches == 0 {
				t.Error("no member's own fetch of the committed offsets was recorded")
			}
			want := make([]histories.KeyOffset, 3)
			for p := range want {
				k := string(rune('0' + p))
				want[p] = histories.KeyOffset{Key: k, Offset: histories.OffsetUnknown}
				if o, ok := lastCommit[k]; ok {
					want[p].Offset = o
				}
			}
			if !slices.Equal(final, want) {
				t.Errorf("the final fetch of the committed offsets returned %v, the last acknowledged commits wrote %v", final, want)
			}
		})
	}
}

// isDrain reports whether op belongs to the final drain (after its start
// marker).
func isDrain(ops []histories.Op, op histories.Op) bool {
	for _, o := range ops {
		if o.F == histories.FDrain && o.Type == histories.Invoke {
			return op.Index > o.Index
		}
	}
	return false
}

// subscribedAt reports whether op's process last subscribed (rather than
// assigned) before op.
func subscribedAt(ops []histories.Op, op histories.Op) bool {
	sub := false
	for _, o := range ops {
		if o.Index >= op.Index {
			break
		}
		if o.Process == op.Process && o.Type == histories.OK && (o.F == histories.FSubscribe || o.F == histories.FAssign) {
			sub = o.F == histories.FSubscribe
		}
	}
	return sub
}

// TestSubscribeThroughAKill: the node dies under subscribed consumers and
// comes back; processes retire (info), members leave in the background and
// new ones join, each member's own offset fetches under a process of its
// own: the history is well formed (no process id used twice, one op at a
// time each) and checks valid.
func TestSubscribeThroughAKill(t *testing.T) {
	d, n := groupNode(t)
	rec, path := recorder(t)
	w, err := New(Config{
		Brokers: []string{n.Addr}, NodeNames: map[int32]string{n.ID: n.Name},
		Partitions: 3, ReplicationFactor: 1, Acks: "all", Concurrency: 4, Seed: 5,
		OpTimeout: time.Second, DrainTimeout: 20 * time.Second, ConsumeVia: ConsumeSubscribe,
	}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.CreateTopic(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background(), 5*time.Second) }()
	time.Sleep(1500 * time.Millisecond)
	if err := d.Kill(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := d.Start(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ops := drainAndRead(t, context.Background(), w, rec, path)
	res, err := checker.Check(context.Background(), ops, checker.Options{})
	if err != nil {
		t.Fatalf("the history of a run through a kill: %v", err)
	}
	if res.Valid != verdict.Valid {
		t.Errorf("a run through a kill checks %v: %v", res.Valid, res.Queue.AnomalyTypes)
	}
	info := 0
	fetchers, others := map[int64]bool{}, map[int64]bool{}
	for _, op := range ops {
		if op.IsClient() && op.Type == histories.Info {
			info++
		}
		switch {
		case !op.IsClient():
		case op.F == histories.FCommitted && op.Type == histories.Invoke && op.Value.Keys == nil:
			fetchers[op.Process] = true // a member's own fetch
		case op.F != histories.FCommitted:
			others[op.Process] = true
		}
	}
	for p := range fetchers {
		if others[p] {
			t.Errorf("process %d runs a member's offset fetches and other ops too", p)
		}
	}
	if info == 0 {
		t.Error("no op ended info: the kill retired no process, so the test shows nothing")
	}
	t.Logf("%d events, %d info; commits %+v", len(ops), info, res.Queue.Counts.Commits)
}

// Thread t's process ids, for its processes and its members' fetches
// alike, are t, t+c, t+2c, ...: never another thread's.
func TestProcessIDs(t *testing.T) {
	hw := histories.NewWriter(io.Discard)
	t.Cleanup(func() { _ = hw.Close() })
	w, err := New(Config{Brokers: []string{"127.0.0.1:1"}, Partitions: 2, ReplicationFactor: 1, Acks: "all", Concurrency: 3, ConsumeVia: ConsumeSubscribe},
		histories.NewRecorder(hw, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	wks := []*worker{w.newWorker(0), w.newWorker(1), w.newWorker(2)}
	for _, wk := range wks {
		seen[wk.process] = true
	}
	for i := range 60 {
		wk := wks[i%3]
		var id int64
		if i%2 == 0 {
			wk.process = wk.newProcessID() // a retire
			id = wk.process
		} else {
			id = wk.newProcessID() // a member's fetches
		}
		if seen[id] || id%3 != int64(wk.thread) || id >= w.nextProcess.Load() {
			t.Fatalf("thread %d got id %d (seen before: %v; next free %d)", wk.thread, id, seen[id], w.nextProcess.Load())
		}
		seen[id] = true
	}
}

func TestCommitOutcome(t *testing.T) {
	const ig, cna = int16(22), int16(15) // ILLEGAL_GENERATION, COORDINATOR_NOT_AVAILABLE
	timeout := context.DeadlineExceeded
	cases := []struct {
		name     string
		err      error
		codes    []int16
		n, reqs  int
		want     histories.Type
		wantText string
	}{
		{"acknowledged", nil, []int16{0, 0}, 2, 1, histories.OK, ""},
		{"nothing sent", timeout, nil, 2, 0, histories.Fail, "deadline"},
		{"refused before the append", nil, []int16{ig, ig}, 2, 1, histories.Fail, "ILLEGAL_GENERATION"},
		{"may have committed", nil, []int16{cna, cna}, 2, 1, histories.Info, "COORDINATOR_NOT_AVAILABLE"},
		{"partly refused", nil, []int16{0, ig}, 2, 1, histories.Info, "ILLEGAL_GENERATION"},
		{"refused after a retry", nil, []int16{ig, ig}, 2, 2, histories.Info, "ILLEGAL_GENERATION"},
		{"sent, no answer", timeout, nil, 2, 1, histories.Info, "deadline"},
		{"answered for fewer partitions", nil, []int16{0}, 2, 1, histories.Info, "1 of 2"},
	}
	for _, c := range cases {
		got, why := commitOutcome(c.err, c.codes, c.n, c.reqs)
		if got != c.want || (c.wantText == "") != (why == nil) || (why != nil && !contains(why.Error(), c.wantText)) {
			t.Errorf("%s: %s, %v; want %s with %q", c.name, got, why, c.want, c.wantText)
		}
	}
	if !refusedBeforeCommit(kerr.RebalanceInProgress) || refusedBeforeCommit(kerr.NotCoordinator) || refusedBeforeCommit(errors.New("x")) {
		t.Error("refusedBeforeCommit misjudges REBALANCE_IN_PROGRESS or NOT_COORDINATOR")
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/internal/leakcheck"
)

// memPower is an in-memory db.PowerCutter over a memDB: it refuses to cut
// the power of a node that runs (the filesystem would find its files
// open), and notes, at every cut, which nodes were killed then.
type memPower struct {
	m    *memDB
	mu   sync.Mutex
	cuts []string // "n1 (killed: n1,n2)"
}

func (p *memPower) CutPower(_ context.Context, n db.Node) (db.PowerLoss, error) {
	states, _, _ := p.m.snapshot()
	if states[n.Name] != "killed" {
		return db.PowerLoss{}, fmt.Errorf("cut the power of %s while it is %s", n.Name, states[n.Name])
	}
	var killed []string
	for name, st := range states {
		if st == "killed" {
			killed = append(killed, name)
		}
	}
	slices.Sort(killed)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cuts = append(p.cuts, n.Name+" (killed: "+strings.Join(killed, ",")+")")
	return db.PowerLoss{FilesReverted: int(n.ID), BytesLost: 100 * int64(n.ID)}, nil
}

// TestPowerFault runs power faults on every node and on the leader
// against the in-memory DB: every target is killed before any power is
// cut, power-on starts them again, and the history says what each cut
// undid.
func TestPowerFault(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, powerFaults)
}

func powerFaults(t *testing.T) {
	m := newMemDB(3)
	p := &memPower{m: m}
	rec, path := newRecorder(t)
	ms := time.Millisecond
	sched := []Step{
		{At: 10 * ms, Kind: Power, Target: All, Duration: 50 * ms, Pick: 1},
		{At: 100 * ms, Kind: Power, Target: Leader, Duration: 50 * ms, Pick: 2},
		{At: 200 * ms, Kind: Power, Target: Minority, Duration: time.Hour, Pick: 3}, // in force at the end
	}
	nem, err := New(Config{DB: m, Power: p, Schedule: sched, Recorder: rec, Leaders: fixedLeader{id: 3}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nem.Run(ctx, time.Now()) }()

	time.Sleep(30 * ms)
	synctest.Wait()
	states, _, _ := m.snapshot()
	for name, st := range states {
		if st != "killed" {
			t.Errorf("during power:all, %s is %s, want killed", name, st)
		}
	}
	if cur := nem.Current(); !strings.Contains(cur, "power all") {
		t.Errorf("Current during power:all = %q", cur)
	}
	time.Sleep(200 * ms)
	synctest.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	healed(t, nem, m)

	p.mu.Lock()
	cuts := slices.Clone(p.cuts)
	p.mu.Unlock()
	if len(cuts) != 5 {
		t.Fatalf("cuts %v, want 3 (all), 1 (the leader), 1 (a minority of 3)", cuts)
	}
	for _, c := range cuts[:3] {
		if !strings.HasSuffix(c, "(killed: n1,n2,n3)") {
			t.Errorf("power:all cut %s before every target was killed", c)
		}
	}
	if cuts[3] != "n3 (killed: n3)" {
		t.Errorf("power:leader cut %q, want the leader n3 alone", cuts[3])
	}

	ops := readNemesis(t, rec, path)
	expectEvents(t, ops, FPowerOff, FPowerOn, FPowerOff, FPowerOn, FPowerOff, FPowerOn, "start")
	if string(ops[0].Value.Raw) != `"all"` {
		t.Errorf("power-off invoked with %s, want \"all\"", ops[0].Value.Raw)
	}
	var d describe
	if err := json.Unmarshal(ops[1].Value.Raw, &d); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Nodes, []string{"n1", "n2", "n3"}) || len(d.Power) != 3 || d.Power["n2"].BytesLost != 200 {
		t.Errorf("power-off completion %s: want the nodes and what each cut undid", ops[1].Value.Raw)
	}
	if err := json.Unmarshal(ops[5].Value.Raw, &d); err != nil || !slices.Equal(d.Nodes, []string{"n3"}) {
		t.Errorf("power-on of the leader %s (%v), want n3", ops[5].Value.Raw, err)
	}
}

// TestPowerNeedsACutter: without Config.Power the nemesis refuses a
// schedule with power faults.
func TestPowerNeedsACutter(t *testing.T) {
	rec, _ := newRecorder(t)
	_, err := New(Config{DB: newMemDB(3), Recorder: rec, Schedule: []Step{{Kind: Power, Target: One}}})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("power without a cutter: %v, want ErrUnsupported", err)
	}
}

// TestPowerCutFailure: a cut that fails (files still open) fails the
// fault, is recorded, and its heal still starts the nodes.
func TestPowerCutFailure(t *testing.T) { synctest.Test(t, powerCutFailure) }

func powerCutFailure(t *testing.T) {
	m := newMemDB(3)
	rec, path := newRecorder(t)
	nem, err := New(Config{DB: m, Power: failingPower{}, Recorder: rec, Schedule: []Step{{Kind: Power, Target: One, Duration: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := nem.Run(context.Background(), time.Now()); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("Run with a failing cut: %v, want the cut's error", err)
	}
	healed(t, nem, m)
	ops := readNemesis(t, rec, path)
	if len(ops) < 2 || ops[1].F != FPowerOff || !strings.Contains(ops[1].Error, "busy") {
		t.Errorf("the failed power-off is not in the history: %+v", ops)
	}
}

type failingPower struct{}

func (failingPower) CutPower(context.Context, db.Node) (db.PowerLoss, error) {
	return db.PowerLoss{}, errors.New("files are still open: busy")
}

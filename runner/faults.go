package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/workloads/queue"
)

// faultOpTimeout bounds one fault or heal (a restart waits for the node to
// answer).
const faultOpTimeout = 30 * time.Second

// faultLoop is the runner's stand-in for the nemesis: every interval it
// applies one fault to one node, chosen by a seeded random stream, and
// heals it one interval later. Each fault and heal is recorded as a
// nemesis event (process -1, type info), an invocation and a completion,
// as Jepsen records them.
type faultLoop struct {
	faults   []string
	interval time.Duration
	rng      *rand.Rand
	db       db.DB
	rec      *histories.Recorder

	mu      sync.Mutex
	current string // the fault in force, "none" between faults
	pending func(context.Context) error
}

// newFaultLoop returns nil when there are no faults.
func newFaultLoop(faults []string, interval time.Duration, seed int64, d db.DB, rec *histories.Recorder) *faultLoop {
	if len(faults) == 0 {
		return nil
	}
	return &faultLoop{
		faults:   faults,
		interval: interval,
		// A stream of its own (the workers use streams 0..concurrency-1
		// of the seed's first word).
		rng:     rand.New(rand.NewPCG(uint64(seed), 1<<63)),
		db:      d,
		rec:     rec,
		current: "none",
	}
}

// Current names the fault in force, for the progress line.
func (f *faultLoop) Current() string {
	if f == nil {
		return "none"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

func (f *faultLoop) set(current string) {
	f.mu.Lock()
	f.current = current
	f.mu.Unlock()
}

// run applies and heals faults until ctx is done, then heals whatever is
// in force, so that the drain sees every node; when parent is done too
// (Ctrl-C) there is no drain and teardown follows, so it does not heal.
func (f *faultLoop) run(ctx, parent context.Context) error {
	nodes := f.db.Nodes()
	if len(nodes) == 0 {
		return errNoNode
	}
	stop := func() error {
		if parent.Err() != nil {
			return nil
		}
		return f.heal()
	}
	for {
		if !sleep(ctx, f.interval) {
			return stop()
		}
		fault := f.faults[f.rng.IntN(len(f.faults))]
		n := nodes[f.rng.IntN(len(nodes))]
		if err := f.apply(fault, n); err != nil {
			return err
		}
		if !sleep(ctx, f.interval) {
			return stop()
		}
		if err := f.heal(); err != nil {
			return err
		}
	}
}

// apply injects fault on n and remembers how to heal it.
func (f *faultLoop) apply(fault string, n db.Node) error {
	var do, undo func(context.Context, db.Node) error
	var doneWord, healF, healWord string
	switch fault {
	case "kill":
		do, undo = f.db.Kill, f.db.Start
		doneWord, healF, healWord = "killed", "start", "started"
	case "pause":
		do, undo = f.db.Pause, f.db.Resume
		doneWord, healF, healWord = "paused", "resume", "resumed"
	default:
		return fmt.Errorf("unknown fault %q", fault)
	}
	if err := f.event(fault, n, doneWord, do); err != nil {
		return err
	}
	f.set(fault + " " + n.Name)
	f.mu.Lock()
	f.pending = func(ctx context.Context) error {
		return f.event(healF, n, healWord, undo)
	}
	f.mu.Unlock()
	return nil
}

// heal undoes the fault in force, if any. A heal that fails is a harness
// failure: the drain needs every node.
func (f *faultLoop) heal() error {
	f.mu.Lock()
	pending := f.pending
	f.pending = nil
	f.mu.Unlock()
	if pending == nil {
		return nil
	}
	if err := pending(context.Background()); err != nil {
		return err
	}
	f.set("none")
	return nil
}

// event records a nemesis invocation, runs action on n and records its
// completion. The action's own failure is recorded in the completion's
// error and returned.
func (f *faultLoop) event(name string, n db.Node, doneWord string, action func(context.Context, db.Node) error) error {
	inv, _ := json.Marshal([]string{n.Name})
	if _, err := f.rec.Record(histories.Op{Process: histories.NemesisProcess, Type: histories.Info, F: name,
		Value: histories.Value{Raw: inv}}); err != nil {
		return fmt.Errorf("record nemesis %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), faultOpTimeout)
	actErr := action(ctx, n)
	cancel()
	done := histories.Op{Process: histories.NemesisProcess, Type: histories.Info, F: name}
	if actErr != nil {
		done.Value = histories.Value{Raw: inv}
		done.Error = actErr.Error()
	} else {
		b, _ := json.Marshal(map[string]string{n.Name: doneWord})
		done.Value = histories.Value{Raw: b}
	}
	if _, err := f.rec.Record(done); err != nil {
		return fmt.Errorf("record nemesis %s: %w", name, err)
	}
	if actErr != nil {
		return fmt.Errorf("%s %s: %w", name, n.Name, actErr)
	}
	return nil
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// progressLine prints, every second, where the run stands.
type progressLine struct {
	w      io.Writer
	limit  time.Duration
	wl     *queue.Workload
	fl     *faultLoop
	tty    bool
	start  time.Time
	wrote  bool
	last   int64
	lastAt time.Time
}

func newProgressLine(w io.Writer, limit time.Duration, wl *queue.Workload, fl *faultLoop) *progressLine {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	now := time.Now()
	return &progressLine{w: w, limit: limit, wl: wl, fl: fl, tty: tty, start: now, lastAt: now}
}

func (p *progressLine) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.print(now)
		}
	}
}

func (p *progressLine) print(now time.Time) {
	c := p.wl.Counts()
	completed := c.OK + c.Info + c.Fail
	rate := float64(completed-p.last) / now.Sub(p.lastAt).Seconds()
	p.last, p.lastAt = completed, now
	elapsed := now.Sub(p.start).Round(time.Second)
	if elapsed > p.limit {
		elapsed = p.limit
	}
	line := fmt.Sprintf("[%6s/%s] %7.0f ops/s   ok %d  info %d  fail %d   fault: %s",
		elapsed, p.limit, rate, c.OK, c.Info, c.Fail, p.fl.Current())
	if p.tty {
		// Rewrite one line in place; \033[K clears what a longer earlier
		// line left behind.
		fmt.Fprintf(p.w, "\r%s\033[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.wrote = true
}

// finish ends the in-place line on a terminal.
func (p *progressLine) finish() {
	if p.tty && p.wrote {
		fmt.Fprintln(p.w)
	}
}

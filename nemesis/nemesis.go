package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/histories"
)

// DefaultActionTimeout bounds one fault or heal (a restart waits for the
// node to answer).
const DefaultActionTimeout = 30 * time.Second

// Config configures a Nemesis.
type Config struct {
	// DB runs the nodes. Partition faults need it to implement
	// db.Partitioner, packet faults db.PacketShaper.
	DB db.DB
	// Power cuts the power of the nodes' data folders, for power faults
	// (nil refuses them): the filesystems under the data folders, which
	// the harness mounts before DB starts the nodes.
	Power db.PowerCutter
	// Schedule is what to do (NewSchedule).
	Schedule []Step
	// Recorder receives every nemesis event.
	Recorder *histories.Recorder
	// Leaders answers the "leader" targets; nil makes them fall back to a
	// node chosen by the step's pick, noted in the event.
	Leaders LeaderSource
	// ActionTimeout bounds one fault or heal; 0 means
	// DefaultActionTimeout.
	ActionTimeout time.Duration
	// Interrupt, when it ends, cuts short a fault or heal in progress
	// (the harness's Ctrl-C). The end of Run's context does not: a
	// restart under way when the time limit passes completes, rather than
	// leaving a failed start in the history. nil never interrupts.
	Interrupt context.Context
}

// Nemesis runs a schedule of faults. Run it once, then Heal.
type Nemesis struct {
	cfg   Config
	part  db.Partitioner
	shape db.PacketShaper

	mu    sync.Mutex
	force map[resource]*active // the fault in force on each resource
}

// active is a fault in force and how to end it.
type active struct {
	step  Step
	what  string // for the progress line
	nodes []db.Node
}

// Errors of New.
var (
	// ErrUnsupported: the backend cannot do a fault of the schedule.
	ErrUnsupported = errors.New("nemesis: the backend cannot do this fault")
)

// New checks that cfg.DB can do every fault of the schedule.
func New(cfg Config) (*Nemesis, error) {
	if cfg.DB == nil || cfg.Recorder == nil {
		return nil, errors.New("nemesis: DB and Recorder are required")
	}
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = DefaultActionTimeout
	}
	if cfg.Interrupt == nil {
		cfg.Interrupt = context.Background()
	}
	n := &Nemesis{cfg: cfg, force: map[resource]*active{}}
	n.part, _ = cfg.DB.(db.Partitioner)
	n.shape, _ = cfg.DB.(db.PacketShaper)
	for _, s := range cfg.Schedule {
		f, ok := faultOf(s.Kind)
		if !ok {
			return nil, fmt.Errorf("%w: %w %q in the schedule", ErrUnsupported, errNoKind, s.Kind)
		}
		if err := f.Check(n, s); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Current names the faults in force, for a progress line: "none", or
// for instance "partition leader n1 + kill one n3".
func (n *Nemesis) Current() string {
	if n == nil {
		return "none"
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var parts []string
	for _, r := range resources {
		if a := n.force[r]; a != nil {
			parts = append(parts, a.what)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " + ")
}

// event is one start or stop of the schedule.
type event struct {
	at    time.Duration
	stop  bool
	index int
}

// Run carries out the schedule, its times counted from start, until ctx
// is done or the schedule is over. It returns nil when ctx ends (the
// faults in force stay, for Heal to end) and an error when a fault could
// not be applied or healed, which leaves the cluster in an unknown state.
func (n *Nemesis) Run(ctx context.Context, start time.Time) error {
	var events []event
	for i, s := range n.cfg.Schedule {
		events = append(events, event{at: s.At, index: i}, event{at: s.End(), stop: true, index: i})
	}
	sort.SliceStable(events, func(i, j int) bool {
		a, b := events[i], events[j]
		if a.at != b.at {
			return a.at < b.at
		}
		return a.stop && !b.stop // heal before the next fault at the same instant
	})
	for _, ev := range events {
		if !sleepUntil(ctx, start.Add(ev.at)) {
			return nil
		}
		step := n.cfg.Schedule[ev.index]
		var err error
		if ev.stop {
			err = n.stop(n.cfg.Interrupt, step)
		} else {
			err = n.begin(n.cfg.Interrupt, step)
		}
		if err != nil {
			if n.cfg.Interrupt.Err() != nil {
				return nil // cut short by an interrupt; teardown follows
			}
			return err
		}
	}
	<-ctx.Done()
	return nil
}

// Heal ends every fault in force (network faults first, then resumes and
// restarts), then starts every node (a no-op for a running one) and waits
// until every node answers Kafka requests (db.DB.WaitReady), each recorded
// as a nemesis event. It runs after Run has returned, before the final
// drain. This is the one place a node that does not come back is a
// harness failure: with every fault ended, a node restarted while faults
// denied it a quorum must now be able to join.
func (n *Nemesis) Heal(ctx context.Context) error {
	var errs []error
	for _, r := range resources {
		n.mu.Lock()
		a := n.force[r]
		n.mu.Unlock()
		if a != nil {
			errs = append(errs, n.stop(ctx, a.step))
		}
	}
	nodes := n.cfg.DB.Nodes()
	errs = append(errs, n.record(ctx, "start", All, func(ctx context.Context) (describe, error) {
		err := db.ForEach(nodes, func(node db.Node) error {
			if err := n.cfg.DB.Start(ctx, node); err != nil {
				return err
			}
			return n.cfg.DB.WaitReady(ctx, node)
		})
		return describe{Nodes: names(nodes)}, err
	}))
	return errors.Join(errs...)
}

// begin applies step's fault and records it.
func (n *Nemesis) begin(ctx context.Context, step Step) error {
	f, ok := faultOf(step.Kind)
	if !ok {
		return fmt.Errorf("nemesis: %s: %w", step, errNoKind)
	}
	res := f.Resource()
	n.mu.Lock()
	busy := n.force[res] != nil
	n.mu.Unlock()
	if busy {
		// The schedule never overlaps a resource; a fault still in force
		// here means its heal failed, which Run has reported already.
		return fmt.Errorf("nemesis: %s: %s faults overlap", step, res)
	}
	invoked := describe{Target: step.Target, Behavior: step.Behavior}
	return n.record(ctx, f.StartF(), invoked, func(ctx context.Context) (describe, error) {
		d := describe{Target: step.Target, Behavior: step.Behavior}
		nodes, err := f.Start(ctx, n, step, n.aimAt(ctx, step, &d), &d)
		// In force even when it failed in part, so that its heal runs.
		what := string(step.Kind) + " " + string(step.Target)
		if step.Behavior != "" {
			what += " " + step.Behavior
		}
		if len(d.Nodes) > 0 {
			what += " " + strings.Join(d.Nodes, ",")
		} else if d.Leader != nil {
			what += " " + d.Leader.Node
		}
		n.mu.Lock()
		n.force[res] = &active{step: step, what: what, nodes: nodes}
		n.mu.Unlock()
		return d, err
	})
}

// stop heals step's fault, if it is the one in force, and records it.
func (n *Nemesis) stop(ctx context.Context, step Step) error {
	f, ok := faultOf(step.Kind)
	if !ok {
		return nil
	}
	res := f.Resource()
	n.mu.Lock()
	a := n.force[res]
	n.mu.Unlock()
	if a == nil || a.step != step {
		return nil
	}
	name, invoked, act := f.End(n, a)
	return n.record(ctx, name, invoked, func(ctx context.Context) (describe, error) {
		d, err := act(ctx)
		if err == nil {
			n.mu.Lock()
			n.force[res] = nil
			n.mu.Unlock()
		}
		return d, err
	})
}

// aim is a step's target resolved at the moment the step acts.
type aim struct {
	target   Target
	nodes    []db.Node  // every node, in id order
	shuffled []db.Node  // the nodes in the order the step's pick draws
	leader   db.Node    // the leader, for the leader target
	rng      *rand.Rand // the step's draws, after the shuffle
}

// chosen are the nodes the target names.
func (a aim) chosen() []db.Node {
	switch a.target {
	case One:
		return a.shuffled[:1]
	case Minority:
		return a.shuffled[:majority(len(a.nodes))-1]
	case Majority:
		return a.shuffled[:majority(len(a.nodes))]
	case All:
		return a.nodes
	case Leader:
		return []db.Node{a.leader}
	}
	return nil
}

// aimAt resolves step's target now: the nodes shuffled by its pick and,
// for the leader target, the leader the cluster names (noted in d).
func (n *Nemesis) aimAt(ctx context.Context, step Step, d *describe) aim {
	nodes := n.cfg.DB.Nodes()
	rng := rand.New(rand.NewPCG(step.Pick, 1))
	shuffled := append([]db.Node(nil), nodes...)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	a := aim{target: step.Target, nodes: nodes, shuffled: shuffled, rng: rng}
	if step.Target == Leader {
		a.leader = n.leader(ctx, step, shuffled, d)
	}
	return a
}

// leader resolves the "leader" target: the node leading the partition
// the step's pick selects, asked from the cluster now. Without an answer
// it falls back to the first of shuffled, and says so in d.
func (n *Nemesis) leader(ctx context.Context, step Step, shuffled []db.Node, d *describe) db.Node {
	if n.cfg.Leaders == nil {
		d.Note = "no leader source; chose " + shuffled[0].Name
		return shuffled[0]
	}
	part, id, err := n.cfg.Leaders.Leader(ctx, step.Pick)
	if err == nil {
		for _, node := range shuffled {
			if node.ID == id {
				d.Leader = &leaderJSON{Partition: part, Node: node.Name}
				return node
			}
		}
		err = fmt.Errorf("leader %d of partition %d is not a node of the test", id, part)
	}
	d.Note = fmt.Sprintf("leader unknown (%v); chose %s", err, shuffled[0].Name)
	return shuffled[0]
}

// describe is a nemesis event's value in the history.
type describe struct {
	Target   Target      `json:"target,omitempty"`
	Behavior string      `json:"behavior,omitempty"`
	Nodes    []string    `json:"nodes,omitempty"`
	Leader   *leaderJSON `json:"leader,omitempty"`
	// Cut lists the links a partition cut, "from->to": from's traffic to
	// to is dropped.
	Cut []string `json:"cut,omitempty"`
	// Shaped lists the links a packet fault shapes.
	Shaped []string    `json:"shaped,omitempty"`
	Packet *packetJSON `json:"packet,omitempty"`
	// Power says, by node, what a power cut undid.
	Power map[string]db.PowerLoss `json:"power,omitempty"`
	Note  string                  `json:"note,omitempty"`
}

type leaderJSON struct {
	Partition int32  `json:"partition"`
	Node      string `json:"node"`
}

type packetJSON struct {
	DelayMs  int64   `json:"delay-ms,omitempty"`
	JitterMs int64   `json:"jitter-ms,omitempty"`
	Loss     float64 `json:"loss,omitempty"`
}

// record writes the invocation (value invoked: a target name when only
// Target is set, as Jepsen writes it), runs act under the action timeout
// and writes the completion with act's description and error. act's
// error is returned.
func (n *Nemesis) record(ctx context.Context, f string, invoked any, act func(context.Context) (describe, error)) error {
	inv := histories.Op{Process: histories.NemesisProcess, Type: histories.Info, F: f, Value: rawValue(invoked)}
	if _, err := n.cfg.Recorder.Record(inv); err != nil {
		return fmt.Errorf("nemesis: record %s: %w", f, err)
	}
	actx, cancel := context.WithTimeout(ctx, n.cfg.ActionTimeout)
	d, actErr := act(actx)
	cancel()
	done := histories.Op{Process: histories.NemesisProcess, Type: histories.Info, F: f, Value: rawValue(d)}
	if actErr != nil {
		done.Error = actErr.Error()
	}
	if _, err := n.cfg.Recorder.Record(done); err != nil {
		return fmt.Errorf("nemesis: record %s: %w", f, err)
	}
	if actErr != nil {
		return fmt.Errorf("nemesis: %s: %w", f, actErr)
	}
	return nil
}

// rawValue encodes an event value. A describe with only a target encodes
// as the bare target ("majority"), as Jepsen writes a nemesis invocation.
func rawValue(v any) histories.Value {
	switch d := v.(type) {
	case nil:
		return histories.Value{}
	case describe:
		if d.Target != "" && d.Behavior == "" && len(d.Nodes) == 0 && len(d.Cut) == 0 && len(d.Shaped) == 0 && d.Leader == nil && d.Packet == nil && d.Power == nil && d.Note == "" {
			v = string(d.Target)
		}
	case Target:
		v = string(d)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return histories.Value{}
	}
	return histories.Value{Raw: b}
}

func names(nodes []db.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}

// sleepUntil waits until t or until ctx is done; it reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

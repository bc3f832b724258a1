package nemesis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/garantia/garantia/db"
)

// fault is one kind of fault. Everything the nemesis knows about a kind
// lives in its type, as each of etcd's failpoints is a type: what
// --nemesis calls it, its targets, what the schedule draws for it, what
// it needs of the backend, and how it starts and ends. Adding a kind is
// adding a type and listing it in faults.
type fault interface {
	// Kind is its name in --nemesis, the schedule and test.json.
	Kind() Kind
	// Targets lists its targets in a fixed order: the schedule draws by
	// index, so the order is part of what a seed means.
	Targets() []Target
	// Behaviors lists what the schedule draws among for each step
	// (Step.Behavior); nil draws nothing.
	Behaviors() []string
	// Resource is what it acts on: faults on one resource never overlap.
	Resource() resource
	// MinNodes is the smallest cluster in which target makes sense.
	MinNodes(target Target) int
	// Check says why the nemesis's backend cannot do step; nil when it
	// can.
	Check(n *Nemesis, step Step) error
	// StartF is the history's function of its start ("kill").
	StartF() string
	// Start applies step at the nodes aim resolved, filling in what it
	// did in d, and returns the nodes a process fault hit (for its end).
	Start(ctx context.Context, n *Nemesis, step Step, aim aim, d *describe) ([]db.Node, error)
	// End is how it ends: the history's function, the invocation's value
	// and the action, which describes the completion.
	End(n *Nemesis, a *active) (f string, invoked any, act func(context.Context) (describe, error))
}

// faults are the kinds, in the order help texts show them.
var faults = []fault{partitionFault{}, killFault, pauseFault, packetFault{}, powerFault{}}

// Kinds lists every kind, in the order help texts show them.
var Kinds = func() []Kind {
	out := make([]Kind, len(faults))
	for i, f := range faults {
		out[i] = f.Kind()
	}
	return out
}()

// faultOf is the kind named k.
func faultOf(k Kind) (fault, bool) {
	for _, f := range faults {
		if f.Kind() == k {
			return f, true
		}
	}
	return nil, false
}

// resource is what a fault acts on.
type resource string

const (
	network   resource = "network"
	processes resource = "process"
)

// resources are the resources, in the order the progress line and Heal
// take them: the network heals before the processes come back.
var resources = []resource{network, processes}

// linkMinNodes is MinNodes for faults on the links between nodes: two
// nodes to have a link at all, three for a minority of one, a ring or a
// bridge.
func linkMinNodes(t Target) int {
	switch t {
	case Minority, MajoritiesRing, Bridge:
		return 3
	}
	return 2
}

// partitionFault cuts links between nodes: Jepsen's partitions, as
// grudges.
type partitionFault struct{}

func (partitionFault) Kind() Kind { return Partition }
func (partitionFault) Targets() []Target {
	return []Target{One, Majority, MajoritiesRing, Bridge, Leader}
}
func (partitionFault) Behaviors() []string   { return nil }
func (partitionFault) Resource() resource    { return network }
func (partitionFault) MinNodes(t Target) int { return linkMinNodes(t) }
func (partitionFault) StartF() string        { return "start-partition" }
func (partitionFault) Check(n *Nemesis, _ Step) error {
	if n.part == nil {
		return fmt.Errorf("%w: partition: the backend cannot cut links (no db.Partitioner)", ErrUnsupported)
	}
	return nil
}

func (partitionFault) Start(ctx context.Context, n *Nemesis, step Step, aim aim, d *describe) ([]db.Node, error) {
	order := names(aim.shuffled)
	var g Grudge
	switch step.Target {
	case One:
		g = CompleteGrudge(SplitOne(order[0], order))
	case Leader:
		g = CompleteGrudge(SplitOne(aim.leader.Name, order))
	case Majority:
		g = CompleteGrudge(Bisect(order))
	case MajoritiesRing:
		g = MajoritiesRingGrudge(order, aim.rng)
	case Bridge:
		g = BridgeGrudge(order)
	default:
		return nil, fmt.Errorf("nemesis: partition has no target %q", step.Target)
	}
	d.Cut = g.Links()
	return nil, n.part.Partition(ctx, g.Drops())
}

func (partitionFault) End(n *Nemesis, _ *active) (string, any, func(context.Context) (describe, error)) {
	return "stop-partition", nil, func(ctx context.Context) (describe, error) {
		return describe{Note: "network healed"}, n.part.Heal(ctx)
	}
}

// processFault acts on the nodes' processes: start does it to the target
// nodes, end undoes it on the same nodes.
type processFault struct {
	kind    Kind
	targets []Target
	startF  string
	endF    string
	do      func(db.DB) func(context.Context, db.Node) error
	undo    func(db.DB) func(context.Context, db.Node) error
}

// killFault is SIGKILL, ended by a restart; pauseFault is SIGSTOP, ended
// by SIGCONT.
var (
	killFault = processFault{
		kind: Kill, targets: []Target{One, Minority, Majority, All, Leader}, startF: "kill", endF: "start",
		do:   func(d db.DB) func(context.Context, db.Node) error { return d.Kill },
		undo: func(d db.DB) func(context.Context, db.Node) error { return d.Start },
	}
	pauseFault = processFault{
		kind: Pause, targets: []Target{One, Minority, Leader}, startF: "pause", endF: "resume",
		do:   func(d db.DB) func(context.Context, db.Node) error { return d.Pause },
		undo: func(d db.DB) func(context.Context, db.Node) error { return d.Resume },
	}
)

func (f processFault) Kind() Kind               { return f.kind }
func (f processFault) Targets() []Target        { return f.targets }
func (processFault) Behaviors() []string        { return nil }
func (processFault) Resource() resource         { return processes }
func (processFault) Check(*Nemesis, Step) error { return nil }
func (f processFault) StartF() string           { return f.startF }
func (processFault) MinNodes(t Target) int {
	if t == Minority {
		return 3
	}
	return 1
}

func (f processFault) Start(ctx context.Context, n *Nemesis, _ Step, aim aim, d *describe) ([]db.Node, error) {
	targets := aim.chosen()
	d.Nodes = names(targets)
	act := f.do(n.cfg.DB)
	return targets, db.ForEach(targets, func(node db.Node) error { return act(ctx, node) })
}

func (f processFault) End(n *Nemesis, a *active) (string, any, func(context.Context) (describe, error)) {
	d := describe{Nodes: names(a.nodes)}
	undo := f.undo(n.cfg.DB)
	return f.endF, d, func(ctx context.Context) (describe, error) {
		return d, db.ForEach(a.nodes, func(node db.Node) error { return undo(ctx, node) })
	}
}

// packetFault delays or loses the packets on every link to and from the
// target nodes, as Jepsen shapes all of a target's traffic.
type packetFault struct{}

// packetBehaviors are what each behaviour does to a link: Jepsen's
// default delay (50ms ± 10ms) and loss (20%), in a fixed order (the
// schedule draws by index).
var packetBehaviors = []struct {
	name   string
	packet db.Packet
}{
	{"latency", db.Packet{Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond}},
	{"loss", db.Packet{Loss: 0.2}},
}

func packetOf(behavior string) (db.Packet, bool) {
	for _, b := range packetBehaviors {
		if b.name == behavior {
			return b.packet, true
		}
	}
	return db.Packet{}, false
}

func (packetFault) Kind() Kind { return Packet }
func (packetFault) Targets() []Target {
	return []Target{One, Minority, Majority, All, Leader}
}
func (packetFault) Behaviors() []string {
	out := make([]string, len(packetBehaviors))
	for i, b := range packetBehaviors {
		out[i] = b.name
	}
	return out
}
func (packetFault) Resource() resource    { return network }
func (packetFault) MinNodes(t Target) int { return linkMinNodes(t) }
func (packetFault) StartF() string        { return "start-packet" }
func (packetFault) Check(n *Nemesis, step Step) error {
	if n.shape == nil {
		return fmt.Errorf("%w: packet: the backend cannot shape links (no db.PacketShaper)", ErrUnsupported)
	}
	if _, ok := packetOf(step.Behavior); !ok {
		return fmt.Errorf("%w: unknown packet behaviour %q in the schedule", ErrUnsupported, step.Behavior)
	}
	return nil
}

func (packetFault) Start(ctx context.Context, n *Nemesis, step Step, aim aim, d *describe) ([]db.Node, error) {
	targets := aim.chosen()
	d.Nodes = names(targets)
	pk, _ := packetOf(step.Behavior)
	d.Packet = &packetJSON{DelayMs: pk.Delay.Milliseconds(), JitterMs: pk.Jitter.Milliseconds(), Loss: pk.Loss}
	hit := map[string]bool{}
	for _, t := range targets {
		hit[t.Name] = true
	}
	links := map[string][]string{}
	for _, a := range aim.nodes {
		for _, b := range aim.nodes {
			if a.Name != b.Name && (hit[a.Name] || hit[b.Name]) {
				links[a.Name] = append(links[a.Name], b.Name)
			}
		}
	}
	for from, tos := range links {
		for _, to := range tos {
			d.Shaped = append(d.Shaped, from+"->"+to)
		}
	}
	sort.Strings(d.Shaped)
	return nil, n.shape.Shape(ctx, links, pk)
}

func (packetFault) End(n *Nemesis, _ *active) (string, any, func(context.Context) (describe, error)) {
	return "stop-packet", nil, func(ctx context.Context) (describe, error) {
		return describe{Note: "packets healed"}, n.shape.Unshape(ctx)
	}
}

// errNoKind is a step whose kind no fault type has.
var errNoKind = errors.New("unknown kind")

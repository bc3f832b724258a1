package nemesis

import (
	"context"
	"fmt"
	"sync"

	"github.com/garantia/garantia/db"
)

// Power is the power-loss fault: the target nodes lose power together,
// as a rack, a data centre or a fleet of VMs does, and come back after
// the step's duration on what their disks made durable.
const Power Kind = "power"

// The history's functions of a power fault. Jepsen's LazyFS nemesis
// kills and then loses the unsynced writes under its :kill; ours names
// the power loss apart, so that a reader tells a crash (the page cache
// survives) from a power cut (it does not).
const (
	// FPowerOff kills the target nodes (SIGKILL, waiting for them to
	// exit), then cuts the power of their data folders: everything not
	// made durable is undone. Its completion lists the nodes and what
	// each cut undid.
	FPowerOff = "power-off"
	// FPowerOn starts them again on what survived.
	FPowerOn = "power-on"
)

// powerFault is Power: a process fault, so that it never overlaps a kill
// or a pause, whose start also cuts the power of the nodes it killed.
// The nemesis needs Config.Power for it.
type powerFault struct{}

func (powerFault) Kind() Kind { return Power }
func (powerFault) Targets() []Target {
	return []Target{One, Minority, Majority, All, Leader}
}
func (powerFault) Behaviors() []string { return nil }
func (powerFault) Resource() resource  { return processes }
func (powerFault) MinNodes(t Target) int {
	return killFault.MinNodes(t)
}
func (powerFault) StartF() string { return FPowerOff }

func (powerFault) Check(n *Nemesis, _ Step) error {
	if n.cfg.Power == nil {
		return fmt.Errorf("%w: power: the nodes' data folders are not on a power-loss filesystem (no Config.Power)", ErrUnsupported)
	}
	return nil
}

// Start kills every target first and cuts their power after, so that
// the nodes go down together, as on one power feed: no target writes
// after another's power went.
func (powerFault) Start(ctx context.Context, n *Nemesis, _ Step, aim aim, d *describe) ([]db.Node, error) {
	targets := aim.chosen()
	d.Nodes = names(targets)
	if err := db.ForEach(targets, func(node db.Node) error { return n.cfg.DB.Kill(ctx, node) }); err != nil {
		return targets, err
	}
	var mu sync.Mutex
	d.Power = map[string]db.PowerLoss{}
	return targets, db.ForEach(targets, func(node db.Node) error {
		loss, err := n.cfg.Power.CutPower(ctx, node)
		if err == nil {
			mu.Lock()
			d.Power[node.Name] = loss
			mu.Unlock()
		}
		return err
	})
}

// End starts the nodes again.
func (powerFault) End(n *Nemesis, a *active) (string, any, func(context.Context) (describe, error)) {
	d := describe{Nodes: names(a.nodes)}
	return FPowerOn, d, func(ctx context.Context) (describe, error) {
		return d, db.ForEach(a.nodes, func(node db.Node) error { return n.cfg.DB.Start(ctx, node) })
	}
}

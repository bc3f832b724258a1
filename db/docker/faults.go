package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"

	"github.com/garantia/garantia/db"
)

// The network faults: which iptables rules and netem delays each node's
// namespace needs for the partitions and packet faults in force, and
// putting them there (through the Firewall). network.go makes the run's
// network, firewall.go enters the namespaces.

// link is a directed link: traffic from one node to another.
type link struct{ from, to string }

// CheckNetworkFaults reports whether partitions and packet loss can work
// on this host: nsenter and iptables present, the harness root. The error
// names what is missing and how to install it. The nemesis can call it
// before a run that needs partitions.
func (d *DB) CheckNetworkFaults() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.fwChecked {
		d.fwErr = d.fw.Check()
		d.fwChecked = true
	}
	return d.fwErr
}

// rulesFor returns the rules node name's namespace needs now: a DROP for
// every node cut off from it, a statistic DROP for every lossy link into
// it; sorted, so that the same faults give the same rules.
func (d *DB) rulesFor(name string) []Rule {
	d.mu.Lock()
	defer d.mu.Unlock()
	var rules []Rule
	for l := range d.cuts {
		if l.to == name {
			if from, err := d.nodes.ByName(l.from); err == nil {
				rules = append(rules, Rule{From: from.ip, Probability: 1})
			}
		}
	}
	for l, p := range d.shapes {
		if l.to == name && p.Loss > 0 && !d.cuts[l] {
			if from, err := d.nodes.ByName(l.from); err == nil {
				rules = append(rules, Rule{From: from.ip, Probability: min(p.Loss, 1)})
			}
		}
	}
	sort.Slice(rules, func(i, j int) bool {
		if c := rules[i].From.Compare(rules[j].From); c != 0 {
			return c < 0
		}
		return rules[i].Probability < rules[j].Probability
	})
	return rules
}

// delaysFor returns the delays of what node name sends, by receiver
// address, sorted.
func (d *DB) delaysFor(name string) []Delay {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Delay
	for l, p := range d.shapes {
		if l.from == name && (p.Delay > 0 || p.Jitter > 0) {
			if to, err := d.nodes.ByName(l.to); err == nil {
				out = append(out, Delay{To: to.ip, Delay: p.Delay, Jitter: p.Jitter})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].To.Less(out[j].To) })
	return out
}

// links validates a map of directed links by node name.
func (d *DB) links(m map[string][]string) ([]link, error) {
	var out []link
	for from, tos := range m {
		if _, err := d.nodes.ByName(from); err != nil {
			return nil, err
		}
		for _, to := range tos {
			if _, err := d.nodes.ByName(to); err != nil {
				return nil, err
			}
			if to != from {
				out = append(out, link{from, to})
			}
		}
	}
	return out, nil
}

// applyTo puts the current packet filter rules into the namespace of each
// node of rules, and the current delays into that of each node of delays.
// A stopped node gets both when it starts.
func (d *DB) applyTo(ctx context.Context, rules, delays map[string]bool) error {
	if err := d.CheckNetworkFaults(); err != nil {
		return err
	}
	var errs []error
	for _, n := range d.nodes.All() {
		if !rules[n.Name] && !delays[n.Name] {
			continue
		}
		n.op.Lock()
		var err error
		if n.pid > 0 && rules[n.Name] {
			err = d.fw.Apply(ctx, n.pid, d.rulesFor(n.Name))
		}
		if n.pid > 0 && delays[n.Name] && err == nil {
			err = d.fw.Delay(ctx, n.pid, d.delaysFor(n.Name))
		}
		n.op.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("docker db: %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Partition drops every packet each key of drops sends to the nodes of
// its value: on the receiving node, `iptables -A INPUT -s SENDER -j DROP`.
// Cuts add up; Heal ends them. A node that restarts gets its rules back.
func (d *DB) Partition(ctx context.Context, drops map[string][]string) error {
	ls, err := d.links(drops)
	if err != nil {
		return fmt.Errorf("docker db: partition: %w", err)
	}
	if err := d.CheckNetworkFaults(); err != nil {
		return err
	}
	touched := map[string]bool{}
	d.mu.Lock()
	for _, l := range ls {
		d.cuts[l] = true
		touched[l.to] = true
	}
	d.mu.Unlock()
	return d.applyTo(ctx, touched, nil)
}

// Heal ends every partition, flushing the rules of every node that had
// one; packet loss (Shape) stays.
func (d *DB) Heal(ctx context.Context) error {
	touched := map[string]bool{}
	d.mu.Lock()
	for l := range d.cuts {
		touched[l.to] = true
	}
	d.cuts = map[link]bool{}
	d.mu.Unlock()
	if len(touched) == 0 {
		return nil
	}
	return d.applyTo(ctx, touched, nil)
}

// ErrUnsupportedPacketFault: the backend cannot model this packet fault.
var ErrUnsupportedPacketFault = errors.New("packet fault not supported")

// Shape applies p to each link of links, replacing the link's earlier
// packet fault; a zero p ends it. Loss is iptables' statistic match on the
// receiving node (per link, in every kernel); delay and jitter are netem
// queueing on the sending node's eth0, steered per receiver by u32
// filters, and need the kernel's sch_netem: without it Shape fails with
// ErrUnsupportedPacketFault and changes nothing.
func (d *DB) Shape(ctx context.Context, links map[string][]string, p db.Packet) error {
	if p.Loss < 0 || p.Loss > 1 {
		return fmt.Errorf("docker db: shape: loss %g is not a probability", p.Loss)
	}
	if p.Delay < 0 || p.Jitter < 0 {
		return fmt.Errorf("docker db: shape: negative delay %s or jitter %s", p.Delay, p.Jitter)
	}
	ls, err := d.links(links)
	if err != nil {
		return fmt.Errorf("docker db: shape: %w", err)
	}
	if err := d.CheckNetworkFaults(); err != nil {
		return err
	}
	receivers, senders := map[string]bool{}, map[string]bool{}
	old := map[link]db.Packet{}
	d.mu.Lock()
	for _, l := range ls {
		if prev, ok := d.shapes[l]; ok {
			old[l] = prev
		}
		if p.IsZero() {
			delete(d.shapes, l)
		} else {
			d.shapes[l] = p
		}
		receivers[l.to] = true
		senders[l.from] = true
	}
	d.mu.Unlock()
	err = d.applyTo(ctx, receivers, senders)
	if err != nil && errors.Is(err, ErrUnsupportedPacketFault) {
		// Put the links back as they were, so that a fault this host
		// cannot do does not stay in force half applied (or break the
		// next Start, which applies it again).
		d.mu.Lock()
		for _, l := range ls {
			if prev, ok := old[l]; ok {
				d.shapes[l] = prev
			} else {
				delete(d.shapes, l)
			}
		}
		d.mu.Unlock()
		_ = d.applyTo(context.WithoutCancel(ctx), receivers, senders)
	}
	return err
}

// Unshape ends every packet fault; partitions stay.
func (d *DB) Unshape(ctx context.Context) error {
	receivers, senders := map[string]bool{}, map[string]bool{}
	d.mu.Lock()
	for l, p := range d.shapes {
		if p.Loss > 0 {
			receivers[l.to] = true
		}
		if p.Delay > 0 || p.Jitter > 0 {
			senders[l.from] = true
		}
	}
	d.shapes = map[link]db.Packet{}
	d.mu.Unlock()
	if len(receivers)+len(senders) == 0 {
		return nil
	}
	return d.applyTo(ctx, receivers, senders)
}

// DialFrom opens a connection to addr from inside node's network
// namespace, as the node itself would: the way to see what a partition
// does to the node's own links. It needs what partitions need (Linux,
// root).
func (d *DB) DialFrom(ctx context.Context, node, network, addr string) (net.Conn, error) {
	n, err := d.nodes.ByName(node)
	if err != nil {
		return nil, err
	}
	n.op.Lock()
	pid := n.pid
	n.op.Unlock()
	if pid <= 0 {
		return nil, fmt.Errorf("docker db: dial from %s: %w", node, errNotRunning)
	}
	var conn net.Conn
	err = inNetNS(pid, func() error {
		var dl net.Dialer
		var err error
		conn, err = dl.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

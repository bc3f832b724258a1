package nemesis

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is a kind of fault.
type Kind string

// The fault kinds.
const (
	Partition Kind = "partition"
	Kill      Kind = "kill"
	Pause     Kind = "pause"
	Packet    Kind = "packet"
)

// Target says which nodes (or links) a fault hits.
type Target string

// The targets.
const (
	One            Target = "one"
	Minority       Target = "minority"
	Majority       Target = "majority"
	All            Target = "all"
	Leader         Target = "leader"
	MajoritiesRing Target = "majorities-ring"
	Bridge         Target = "bridge"
)

// Spec is one item of --nemesis: a fault kind and the targets to draw
// from (nil: every target the cluster is big enough for).
type Spec struct {
	Kind    Kind
	Targets []Target
}

func (s Spec) String() string {
	if len(s.Targets) == 0 {
		return string(s.Kind)
	}
	ts := make([]string, len(s.Targets))
	for i, t := range s.Targets {
		ts[i] = string(t)
	}
	return string(s.Kind) + ":" + strings.Join(ts, "+")
}

// ErrSpec marks a bad --nemesis value.
var ErrSpec = errors.New("nemesis: bad fault spec")

// ParseSpecs parses --nemesis items ("partition", "kill:leader+one",
// "none"); an item may itself hold commas. "none" alone means no faults
// (nil). A kind named twice is an error, as is an unknown kind or target.
func ParseSpecs(items []string) ([]Spec, error) {
	var parts []string
	for _, it := range items {
		for _, p := range strings.Split(it, ",") {
			parts = append(parts, strings.TrimSpace(p))
		}
	}
	if len(parts) == 1 && parts[0] == "none" {
		return nil, nil
	}
	var specs []Spec
	seen := map[Kind]bool{}
	for _, p := range parts {
		switch {
		case p == "":
			return nil, fmt.Errorf("%w: empty fault name", ErrSpec)
		case p == "none":
			return nil, fmt.Errorf("%w: none cannot be combined with other faults", ErrSpec)
		}
		name, targets, hasTargets := strings.Cut(p, ":")
		k := Kind(name)
		f, ok := faultOf(k)
		if !ok {
			return nil, fmt.Errorf("%w: unknown fault %q: want none or some of %s", ErrSpec, name, joinKinds(", "))
		}
		known := f.Targets()
		if seen[k] {
			return nil, fmt.Errorf("%w: %s named twice", ErrSpec, k)
		}
		seen[k] = true
		s := Spec{Kind: k}
		if hasTargets {
			tseen := map[Target]bool{}
			for _, t := range strings.Split(targets, "+") {
				t := Target(strings.TrimSpace(t))
				if !contains(known, t) {
					return nil, fmt.Errorf("%w: %s: unknown target %q: want %s", ErrSpec, k, t, joinTargets(known, ", "))
				}
				if !tseen[t] {
					s.Targets = append(s.Targets, t)
					tseen[t] = true
				}
			}
		}
		specs = append(specs, s)
	}
	return specs, nil
}

func contains(ts []Target, t Target) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func joinTargets(ts []Target, sep string) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, sep)
}

// Resolve checks specs against a cluster of nodes nodes and returns them
// with their targets filled in: a spec without targets gets every target
// of its kind the cluster is big enough for. A spec that cannot act on
// such a cluster is an error naming it.
func Resolve(specs []Spec, nodes int) ([]Spec, error) {
	out := make([]Spec, 0, len(specs))
	for _, s := range specs {
		r := Spec{Kind: s.Kind}
		f, ok := faultOf(s.Kind)
		if !ok {
			return nil, fmt.Errorf("%w: unknown fault %q", ErrSpec, s.Kind)
		}
		if len(s.Targets) == 0 {
			for _, t := range f.Targets() {
				if nodes >= f.MinNodes(t) {
					r.Targets = append(r.Targets, t)
				}
			}
			if len(r.Targets) == 0 {
				return nil, fmt.Errorf("%w: %s needs 2 or more nodes, the cluster has %d", ErrSpec, s.Kind, nodes)
			}
		} else {
			for _, t := range s.Targets {
				if m := f.MinNodes(t); nodes < m {
					return nil, fmt.Errorf("%w: %s:%s needs %d or more nodes, the cluster has %d", ErrSpec, s.Kind, t, m, nodes)
				}
			}
			r.Targets = append([]Target(nil), s.Targets...)
		}
		out = append(out, r)
	}
	return out, nil
}

// Help describes the kinds and targets, one line per kind.
func Help() string {
	parts := make([]string, len(faults))
	for i, f := range faults {
		parts[i] = string(f.Kind()) + ":" + joinTargets(f.Targets(), "+")
	}
	return strings.Join(parts, "; ")
}

// joinKinds names every kind, joined by sep.
func joinKinds(sep string) string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, sep)
}

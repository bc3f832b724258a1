package nemesis

import (
	"math/rand/v2"
	"sort"
)

// Grudge is Jepsen's description of a partition: each node maps to the
// nodes it drops messages from (iptables on the key node drops packets
// whose source is a value node). A node missing from the map drops
// nothing.
type Grudge map[string][]string

// Drops converts g to the form db.Partitioner takes: each sender maps to
// the nodes that no longer hear it.
func (g Grudge) Drops() map[string][]string {
	out := map[string][]string{}
	for dst, srcs := range g {
		for _, src := range srcs {
			out[src] = append(out[src], dst)
		}
	}
	for src := range out {
		sort.Strings(out[src])
	}
	return out
}

// Links lists g's cut links as "from->to" (from's traffic to to is
// dropped), sorted.
func (g Grudge) Links() []string {
	var out []string
	for dst, srcs := range g {
		for _, src := range srcs {
			out = append(out, src+"->"+dst)
		}
	}
	sort.Strings(out)
	return out
}

// Bisect cuts nodes in half, smaller half first (Jepsen's bisect).
func Bisect(nodes []string) [][]string {
	h := len(nodes) / 2
	return [][]string{append([]string(nil), nodes[:h]...), append([]string(nil), nodes[h:]...)}
}

// SplitOne splits loner off from the rest.
func SplitOne(loner string, nodes []string) [][]string {
	rest := make([]string, 0, len(nodes))
	for _, n := range nodes {
		if n != loner {
			rest = append(rest, n)
		}
	}
	return [][]string{{loner}, rest}
}

// CompleteGrudge is the grudge in which no node hears any node outside its
// component (Jepsen's complete-grudge).
func CompleteGrudge(components [][]string) Grudge {
	g := Grudge{}
	for i, comp := range components {
		var others []string
		for j, other := range components {
			if j != i {
				others = append(others, other...)
			}
		}
		sort.Strings(others)
		for _, n := range comp {
			if len(others) > 0 {
				g[n] = append([]string(nil), others...)
			}
		}
	}
	return g
}

// BridgeGrudge cuts nodes in half but keeps the first node of the second half
// as a bridge, which hears and is heard by everyone (Jepsen's bridge).
// With nodes n1..n5: n1 and n2 cannot reach n4 and n5, and n3 talks to
// all.
func BridgeGrudge(nodes []string) Grudge {
	halves := Bisect(nodes)
	if len(halves[1]) == 0 {
		return Grudge{}
	}
	bridge := halves[1][0]
	g := CompleteGrudge(halves)
	delete(g, bridge) // the bridge snubs no one
	for n, srcs := range g {
		kept := srcs[:0:0]
		for _, s := range srcs {
			if s != bridge { // and no one snubs the bridge
				kept = append(kept, s)
			}
		}
		if len(kept) == 0 {
			delete(g, n)
		} else {
			g[n] = kept
		}
	}
	return g
}

// majority is the smallest majority of n nodes.
func majority(n int) int { return n/2 + 1 }

// MajoritiesRingGrudge is a grudge in which every node hears a majority, but no
// two nodes hear the same majority (Jepsen's majorities-ring). For up to
// five nodes it is Jepsen's perfect ring over nodes in the order given:
// each node hears the window of a majority centred on it. For more nodes
// it is Jepsen's stochastic construction, drawing from rng.
func MajoritiesRingGrudge(nodes []string, rng *rand.Rand) Grudge {
	if len(nodes) <= 5 {
		return majoritiesRingPerfect(nodes)
	}
	return majoritiesRingStochastic(nodes, rng)
}

func majoritiesRingPerfect(nodes []string) Grudge {
	n := len(nodes)
	m := majority(n)
	g := Grudge{}
	for i := 0; i < n; i++ {
		window := make(map[string]bool, m)
		for j := 0; j < m; j++ {
			window[nodes[(i+j)%n]] = true
		}
		centre := nodes[(i+m/2)%n]
		var drops []string
		for _, x := range nodes {
			if !window[x] {
				drops = append(drops, x)
			}
		}
		sort.Strings(drops)
		if len(drops) > 0 {
			g[centre] = drops
		}
	}
	return g
}

// majoritiesRingStochastic links least-connected nodes to other
// least-connected nodes until every node hears a majority (itself
// included), then drops the rest.
func majoritiesRingStochastic(nodes []string, rng *rand.Rand) Grudge {
	n := len(nodes)
	m := majority(n)
	conns := make(map[string]map[string]bool, n)
	for _, x := range nodes {
		conns[x] = map[string]bool{x: true}
	}
	for {
		// Nodes by degree, shuffled within a degree.
		order := append([]string(nil), nodes...)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		sort.SliceStable(order, func(i, j int) bool { return len(conns[order[i]]) < len(conns[order[j]]) })
		a := order[0]
		if len(conns[a]) >= m {
			break
		}
		for _, b := range order[1:] {
			if !conns[a][b] {
				conns[a][b] = true
				conns[b][a] = true
				break
			}
		}
	}
	g := Grudge{}
	for _, x := range nodes {
		var drops []string
		for _, y := range nodes {
			if !conns[x][y] {
				drops = append(drops, y)
			}
		}
		sort.Strings(drops)
		if len(drops) > 0 {
			g[x] = drops
		}
	}
	return g
}

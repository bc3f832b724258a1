package nemesis

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func mustResolve(t *testing.T, items []string, nodes int) []Spec {
	t.Helper()
	specs, err := ParseSpecs(items)
	if err != nil {
		t.Fatal(err)
	}
	specs, err = Resolve(specs, nodes)
	if err != nil {
		t.Fatal(err)
	}
	return specs
}

// TestScheduleDeterministic: identical seeds give identical schedules;
// different seeds give different ones.
func TestScheduleDeterministic(t *testing.T) {
	specs := mustResolve(t, []string{"partition,kill,pause,packet"}, 5)
	const interval, limit = 2 * time.Second, 5 * time.Minute
	for seed := int64(0); seed < 20; seed++ {
		a := NewSchedule(seed, specs, interval, limit)
		b := NewSchedule(seed, specs, interval, limit)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: two schedules differ:\n%v\n%v", seed, a, b)
		}
		if len(a) == 0 {
			t.Fatalf("seed %d: empty schedule", seed)
		}
		c := NewSchedule(seed+1, specs, interval, limit)
		if reflect.DeepEqual(a, c) {
			t.Fatalf("seeds %d and %d give the same schedule", seed, seed+1)
		}
	}
}

// TestScheduleShape checks the promises of NewSchedule over many seeds:
// kinds and targets come from the specs, gaps and durations lie in
// [interval/2, 3*interval/2], steps start before the limit, and faults on
// one resource never overlap.
func TestScheduleShape(t *testing.T) {
	specs := mustResolve(t, []string{"partition:leader+majority", "kill:one", "pause", "packet", "power:all+leader"}, 3)
	allowed := map[Kind]map[Target]bool{}
	for _, s := range specs {
		allowed[s.Kind] = map[Target]bool{}
		for _, tg := range s.Targets {
			allowed[s.Kind][tg] = true
		}
	}
	const interval, limit = time.Second, 2 * time.Minute
	seen := map[Kind]bool{}
	for seed := int64(1); seed <= 50; seed++ {
		steps := NewSchedule(seed, specs, interval, limit)
		last := time.Duration(0)
		end := map[resource]time.Duration{}
		for i, s := range steps {
			if !allowed[s.Kind][s.Target] {
				t.Fatalf("seed %d step %d: %s not in the specs", seed, i, s)
			}
			if (s.Kind == Packet) != (s.Behavior != "") {
				t.Fatalf("seed %d step %d: behaviour %q on a %s", seed, i, s.Behavior, s.Kind)
			}
			if s.At >= limit || s.At <= last {
				t.Fatalf("seed %d step %d: starts at %s after %s (limit %s)", seed, i, s.At, last, limit)
			}
			if gap := s.At - last; gap < interval/2 {
				t.Fatalf("seed %d step %d: gap %s below interval/2", seed, i, gap)
			}
			if s.Duration < interval/2 || s.Duration > 3*interval/2 {
				t.Fatalf("seed %d step %d: duration %s out of range", seed, i, s.Duration)
			}
			f, _ := faultOf(s.Kind)
			r := f.Resource()
			if s.At < end[r] {
				t.Fatalf("seed %d step %d: %s starts at %s while the %s fault before it lasts until %s", seed, i, s, s.At, r, end[r])
			}
			end[r] = s.End()
			last = s.At
			seen[s.Kind] = true
		}
	}
	for _, k := range Kinds {
		if !seen[k] {
			t.Errorf("no %s fault in 50 schedules", k)
		}
	}
	if got := NewSchedule(1, nil, interval, limit); got != nil {
		t.Errorf("schedule without specs: %v", got)
	}
}

func TestStepJSON(t *testing.T) {
	s := Step{At: 1500 * time.Millisecond, Kind: Packet, Target: Leader, Behavior: "loss", Duration: 2 * time.Second, Pick: 1 << 60}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"at-ms":1500,"kind":"packet","target":"leader","behavior":"loss","duration-ms":2000,"pick":1152921504606846976}`
	if string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	var back Step
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestParseSpecs(t *testing.T) {
	cases := []struct {
		in   []string
		want string // specs joined by ",", or "error: substring"
	}{
		{[]string{"none"}, ""},
		{[]string{"partition,kill"}, "partition,kill"},
		{[]string{"partition", "kill"}, "partition,kill"},
		{[]string{" kill:leader+one "}, "kill:leader+one"},
		{[]string{"kill:one+one"}, "kill:one"},
		{[]string{"partition:majorities-ring+bridge,packet:all"}, "partition:majorities-ring+bridge,packet:all"},
		{[]string{"partition,power:one+minority"}, "partition,power:one+minority"},
		{[]string{"power:bridge"}, "error: power: unknown target"},
		{[]string{"none,kill"}, "error: none cannot"},
		{[]string{"kill,kill:one"}, "error: named twice"},
		{[]string{"flood"}, "error: unknown fault \"flood\""},
		{[]string{"pause:all"}, "error: unknown target \"all\""},
		{[]string{"kill:bridge"}, "error: unknown target"},
		{[]string{"kill,"}, "error: empty"},
	}
	for _, c := range cases {
		specs, err := ParseSpecs(c.in)
		if strings.HasPrefix(c.want, "error: ") {
			if err == nil || !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), strings.TrimPrefix(c.want, "error: ")) {
				t.Errorf("ParseSpecs(%q) = %v, %v; want an error with %q", c.in, specs, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSpecs(%q): %v", c.in, err)
			continue
		}
		var got []string
		for _, s := range specs {
			got = append(got, s.String())
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("ParseSpecs(%q) = %v, want %s", c.in, got, c.want)
		}
	}
}

func TestResolve(t *testing.T) {
	cases := []struct {
		in    string
		nodes int
		want  string
	}{
		{"kill", 1, "kill:one+majority+all+leader"},
		{"kill", 3, "kill:one+minority+majority+all+leader"},
		{"partition", 2, "partition:one+majority+leader"},
		{"partition", 3, "partition:one+majority+majorities-ring+bridge+leader"},
		{"pause", 1, "pause:one+leader"},
		{"packet", 5, "packet:one+minority+majority+all+leader"},
		{"kill:leader", 1, "kill:leader"},
		{"power", 3, "power:one+minority+majority+all+leader"},
		{"power", 1, "power:one+majority+all+leader"},
		{"power:minority", 2, "error: power:minority needs 3"},
		{"partition", 1, "error: partition needs 2"},
		{"packet", 1, "error: packet needs 2"},
		{"kill:minority", 2, "error: kill:minority needs 3"},
		{"partition:bridge", 2, "error: partition:bridge needs 3"},
	}
	for _, c := range cases {
		specs, err := ParseSpecs([]string{c.in})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Resolve(specs, c.nodes)
		if strings.HasPrefix(c.want, "error: ") {
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(c.want, "error: ")) {
				t.Errorf("Resolve(%s, %d) = %v, %v; want %s", c.in, c.nodes, got, err, c.want)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0].String() != c.want {
			t.Errorf("Resolve(%s, %d) = %v, %v; want %s", c.in, c.nodes, got, err, c.want)
		}
	}
}

func nodeNames(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, "n"+string(rune('0'+i)))
	}
	return out
}

// TestGrudges compares the grudges with Jepsen's definitions, worked out
// by hand for nodes in the order n1, n2, ... (a grudge maps a node to the
// nodes it no longer hears).
func TestGrudges(t *testing.T) {
	cases := []struct {
		name string
		got  Grudge
		want Grudge
	}{
		{"bisect 5", CompleteGrudge(Bisect(nodeNames(5))), Grudge{
			"n1": {"n3", "n4", "n5"}, "n2": {"n3", "n4", "n5"},
			"n3": {"n1", "n2"}, "n4": {"n1", "n2"}, "n5": {"n1", "n2"},
		}},
		{"bisect 3", CompleteGrudge(Bisect(nodeNames(3))), Grudge{
			"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"},
		}},
		{"split one", CompleteGrudge(SplitOne("n2", nodeNames(3))), Grudge{
			"n2": {"n1", "n3"}, "n1": {"n2"}, "n3": {"n2"},
		}},
		// Halves n1 n2 | n3 n4 n5; n3 is the bridge.
		{"bridge 5", BridgeGrudge(nodeNames(5)), Grudge{
			"n1": {"n4", "n5"}, "n2": {"n4", "n5"}, "n4": {"n1", "n2"}, "n5": {"n1", "n2"},
		}},
		// Halves n1 | n2 n3; n2 is the bridge.
		{"bridge 3", BridgeGrudge(nodeNames(3)), Grudge{"n1": {"n3"}, "n3": {"n1"}}},
		// Windows of 3 around the ring; each window's middle node hears it.
		{"majorities ring 5", MajoritiesRingGrudge(nodeNames(5), nil), Grudge{
			"n2": {"n4", "n5"}, "n3": {"n1", "n5"}, "n4": {"n1", "n2"}, "n5": {"n2", "n3"}, "n1": {"n3", "n4"},
		}},
		// Windows of 2: [n1 n2] centred on n2, [n2 n3] on n3, [n3 n1] on
		// n1: one-way cuts around the ring.
		{"majorities ring 3", MajoritiesRingGrudge(nodeNames(3), nil), Grudge{
			"n2": {"n3"}, "n3": {"n1"}, "n1": {"n2"},
		}},
	}
	for _, c := range cases {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	// Drops is the grudge read the other way: who is not heard by whom.
	g := Grudge{"n2": {"n1", "n3"}, "n1": {"n2"}}
	if got, want := g.Drops(), map[string][]string{"n1": {"n2"}, "n3": {"n2"}, "n2": {"n1"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Drops = %v, want %v", got, want)
	}
	if got, want := g.Links(), []string{"n1->n2", "n2->n1", "n3->n2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Links = %v, want %v", got, want)
	}
}

// TestMajoritiesRingProperties: in every ring, for 3 to 9 nodes, each node
// hears a majority (itself included), and no two nodes hear the same set.
func TestMajoritiesRingProperties(t *testing.T) {
	for n := 3; n <= 9; n++ {
		for seed := uint64(0); seed < 20; seed++ {
			nodes := nodeNames(n)
			rng := rand.New(rand.NewPCG(seed, 9))
			rng.Shuffle(n, func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
			g := MajoritiesRingGrudge(nodes, rng)
			heard := map[string]string{}
			for _, x := range nodes {
				dropped := map[string]bool{}
				for _, y := range g[x] {
					dropped[y] = true
				}
				var hears []string
				for _, y := range nodes {
					if !dropped[y] {
						hears = append(hears, y)
					}
				}
				if len(hears) < majority(n) {
					t.Fatalf("n=%d seed %d: %s hears only %v", n, seed, x, hears)
				}
				sort.Strings(hears)
				key := strings.Join(hears, ",")
				if other, dup := heard[key]; dup && n <= 5 {
					t.Fatalf("n=%d seed %d: %s and %s hear the same majority %s", n, seed, x, other, key)
				}
				heard[key] = x
			}
			if len(g) == 0 {
				t.Fatalf("n=%d seed %d: the ring cuts nothing", n, seed)
			}
		}
	}
}

package synth

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/garantia/garantia/histories"
)

// small is a config for fast tests: a few hundred operations with plenty
// of failures, timeouts and reassigns so every branch runs.
func small(seed int64) Config {
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Ops = 2_000
	cfg.Keys = 4
	cfg.Processes = 6
	cfg.InfoRate = 0.05
	cfg.FailRate = 0.05
	cfg.AssignRate = 0.10
	cfg.MaxPollRecords = 7
	cfg.NemesisInterval = 50_000_000
	return cfg
}

func generate(t *testing.T, cfg Config) []histories.Op {
	t.Helper()
	ops, err := Generate(cfg)
	if err != nil {
		t.Fatalf("seed %d: Generate: %v", cfg.Seed, err)
	}
	return ops
}

func TestDeterministic(t *testing.T) {
	a := generate(t, small(7).WithCommits())
	b := generate(t, small(7).WithCommits())
	if !reflect.DeepEqual(a, b) {
		t.Fatal("seed 7: two runs of the same config differ")
	}
	c := generate(t, small(8).WithCommits())
	if reflect.DeepEqual(a, c) {
		t.Fatal("seeds 7 and 8 gave the same history")
	}
	for _, f := range Faults() {
		x, dx, errx := Inject(a, f, rand.New(rand.NewPCG(3, 3)))
		y, dy, erry := Inject(a, f, rand.New(rand.NewPCG(3, 3)))
		if errx != nil || erry != nil {
			t.Fatalf("seed 7: Inject %s: %v / %v", f, errx, erry)
		}
		if dx != dy || !reflect.DeepEqual(x, y) {
			t.Fatalf("seed 7: Inject %s is not deterministic:\n%s\n%s", f, dx, dy)
		}
	}
}

func TestStreamStopsOnError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Stream(small(1), func(histories.Op) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Fatalf("Stream returned %v after %d events; want the emit error after 10", err, n)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"no keys", func(c *Config) { c.Keys = 0 }, "Keys"},
		{"no processes", func(c *Config) { c.Processes = 0 }, "Processes"},
		{"negative ops", func(c *Config) { c.Ops = -1 }, "Ops"},
		{"info rate", func(c *Config) { c.InfoRate = 1.5 }, "InfoRate"},
		{"fail rate NaN", func(c *Config) { c.FailRate = nanValue() }, "FailRate"},
		{"info+fail", func(c *Config) { c.InfoRate, c.FailRate = 0.6, 0.6 }, "InfoRate+FailRate"},
		{"send+assign", func(c *Config) { c.SendRate, c.AssignRate = 0.9, 0.2 }, "SendRate+AssignRate"},
		{"mops", func(c *Config) { c.MopsPerSend = 0 }, "MopsPerSend"},
		{"poll records", func(c *Config) { c.MaxPollRecords = 0 }, "MaxPollRecords"},
		{"nemesis", func(c *Config) { c.NemesisInterval = -1 }, "NemesisInterval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate = %v; want ErrConfig", err)
			}
			if want := tc.field + " "; !contains(err.Error(), want) {
				t.Fatalf("Validate = %q; want it to name %s", err, tc.field)
			}
			if _, err := Generate(cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("Generate = %v; want ErrConfig", err)
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
}

func nanValue() float64 { zero := 0.0; return zero / zero }

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// checkShape asserts the structural rules of the history format and of
// the simulated system, independent of Jepsen's anomaly analysis.
func checkShape(t *testing.T, cfg Config, ops []histories.Op) {
	t.Helper()
	fatal := func(i int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, event %d (%+v): "+format, append([]any{cfg.Seed, i, ops[i]}, args...)...)
	}
	open := map[int64]*histories.Op{}
	drainAt := -1
	retired := map[int64]bool{}
	sentBy := map[int64]histories.Type{} // value -> completion type
	logs := map[string]map[int64]int64{}
	var lastTime int64
	for i := range ops {
		op := &ops[i]
		if op.Index != int64(i) {
			fatal(i, "index %d", op.Index)
		}
		if op.Time < lastTime {
			fatal(i, "time goes back from %d", lastTime)
		}
		lastTime = op.Time
		if !op.Type.Valid() {
			fatal(i, "bad type")
		}
		if !op.IsClient() {
			switch {
			case op.F == histories.FDrain:
				// The drain markers: an invocation, and its ok completion
				// as the history's last event.
				if (op.Type != histories.Invoke || drainAt >= 0) && (op.Type != histories.OK || drainAt < 0 || i != len(ops)-1) {
					fatal(i, "drain marker out of place")
				}
				drainAt = i
			case op.Type != histories.Info:
				fatal(i, "nemesis event is not info")
			}
			continue
		}
		if retired[op.Process] {
			fatal(i, "process %d used after its info completion", op.Process)
		}
		if op.Type == histories.Invoke {
			if open[op.Process] != nil {
				fatal(i, "process %d invokes twice", op.Process)
			}
			open[op.Process] = op
			continue
		}
		inv := open[op.Process]
		if inv == nil || inv.F != op.F {
			fatal(i, "completion without a matching invocation")
		}
		delete(open, op.Process)
		if op.Type == histories.Info {
			retired[op.Process] = true
		}
		switch op.F {
		case histories.FSend:
			if len(op.Value.Mops) != len(inv.Value.Mops) || len(op.Value.Mops) > cfg.MopsPerSend {
				fatal(i, "send has %d mops; invoked with %d", len(op.Value.Mops), len(inv.Value.Mops))
			}
			for j, m := range op.Value.Mops {
				im := inv.Value.Mops[j]
				if m.Key != im.Key || m.Value != im.Value || im.Offset != histories.OffsetPending {
					fatal(i, "send mop %d differs from its invocation", j)
				}
				if _, dup := sentBy[m.Value]; dup {
					fatal(i, "value %d sent twice", m.Value)
				}
				sentBy[m.Value] = op.Type
				switch {
				case op.Type != histories.OK && m.Offset != histories.OffsetPending:
					fatal(i, "%s send reports an offset", op.Type)
				case op.Type == histories.OK && cfg.Acks0 && m.Offset != histories.OffsetUnknown:
					fatal(i, "acks=0 send reports offset %d", m.Offset)
				case op.Type == histories.OK && !cfg.Acks0 && m.Offset < 0:
					fatal(i, "ok send has no offset")
				case m.Offset >= 0:
					if logs[m.Key] == nil {
						logs[m.Key] = map[int64]int64{}
					}
					logs[m.Key][m.Offset] = m.Value
				}
			}
		case histories.FPoll:
			if op.Type == histories.OK && (len(op.Value.Mops) != 1 || op.Value.Mops[0].Polls == nil) {
				fatal(i, "ok poll without results")
			}
		}
	}
	if len(open) != 0 {
		t.Fatalf("seed %d: %d operations never complete", cfg.Seed, len(open))
	}
	if last := ops[len(ops)-1]; drainAt < 0 || last.F != histories.FDrain || last.Type != histories.OK {
		t.Fatalf("seed %d: the history does not end with the final drain's markers", cfg.Seed)
	}
	// Every poll agrees with the sends' offsets, reads each key
	// contiguously, never reads a failed send, and some ok poll reads every
	// acknowledged value (the final drain).
	read := map[int64]bool{}
	for i := range ops {
		op := &ops[i]
		if op.Type != histories.OK || op.F != histories.FPoll {
			continue
		}
		for k, recs := range op.Value.Mops[0].Polls {
			if len(recs) == 0 {
				fatal(i, "poll returns an empty list for key %s", k)
			}
			for j, r := range recs {
				if j > 0 && r.Offset != recs[j-1].Offset+1 {
					fatal(i, "poll of key %s is not contiguous at offset %d", k, r.Offset)
				}
				if v, ok := logs[k][r.Offset]; ok && v != r.Value {
					fatal(i, "poll reads %d at offset %d of key %s; the send said %d", r.Value, r.Offset, k, v)
				}
				typ, ok := sentBy[r.Value]
				if !ok || typ == histories.Fail {
					fatal(i, "poll reads value %d, sent with outcome %q", r.Value, typ)
				}
				read[r.Value] = true
			}
		}
	}
	for v, typ := range sentBy {
		if typ == histories.OK && !read[v] {
			t.Fatalf("seed %d: acknowledged value %d is never read", cfg.Seed, v)
		}
	}
}

func TestGeneratedHistoryIsCorrect(t *testing.T) {
	variants := []struct {
		name string
		edit func(*Config)
	}{
		{"default", func(*Config) {}},
		{"acks0", func(c *Config) { c.Acks0 = true }},
		{"multi-mop sends", func(c *Config) { c.MopsPerSend = 4 }},
		{"no faults", func(c *Config) { c.InfoRate, c.FailRate, c.NemesisInterval = 0, 0, 0 }},
		{"one key one process", func(c *Config) { c.Keys, c.Processes = 1, 1 }},
		{"many info", func(c *Config) { c.InfoRate = 0.3 }},
		{"commits", func(c *Config) { *c = c.WithCommits() }},
		{"commits, many info", func(c *Config) { *c = c.WithCommits(); c.InfoRate, c.FetchRate = 0.3, 0.2 }},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			for seed := int64(1); seed <= 12; seed++ {
				cfg := small(seed)
				v.edit(&cfg)
				ops := generate(t, cfg)
				checkShape(t, cfg, ops)
				if found := jepsen(ops); len(found) != 0 {
					t.Fatalf("seed %d: correct history shows anomalies under Jepsen's rules: %s", seed, describe(found))
				}
			}
		})
	}
}

func TestOpsCount(t *testing.T) {
	for _, n := range []int{0, 1, 2, 999, 1000} {
		cfg := small(1)
		cfg.Ops = n
		main, nemesis, drain := 0, 0, 0
		count := &main
		s := newSim(cfg, func(op histories.Op) error {
			if op.IsClient() {
				*count++
			} else {
				nemesis++
			}
			return nil
		})
		if err := s.runMain(); err != nil {
			t.Fatal(err)
		}
		count = &drain
		if err := s.runDrain(); err != nil {
			t.Fatal(err)
		}
		if want := (n + 1) / 2 * 2; main != want {
			t.Fatalf("Ops=%d: main phase has %d client events; want %d", n, main, want)
		}
		if n == 0 && (drain != 0 || nemesis != 2) {
			t.Fatalf("Ops=0: %d drain and %d nemesis events; want only the two drain markers", drain, nemesis)
		}
		if nemesis%2 != 0 {
			t.Fatalf("Ops=%d: %d nemesis events; want start/completion pairs", n, nemesis)
		}
	}
}

func TestFaultsAreExact(t *testing.T) {
	variants := []struct {
		name string
		edit func(*Config)
	}{
		{"default", func(*Config) {}},
		{"acks0", func(c *Config) { c.Acks0 = true }},
		{"multi-mop sends", func(c *Config) { c.MopsPerSend = 3 }},
	}
	for _, v := range variants {
		for _, f := range Faults() {
			t.Run(v.name+"/"+string(f), func(t *testing.T) {
				for seed := int64(1); seed <= 8; seed++ {
					cfg := small(seed)
					v.edit(&cfg)
					cfg = f.Config(cfg)
					ops := generate(t, cfg)
					before := slices.Clone(ops)
					rng := rand.New(rand.NewPCG(uint64(seed), 99))
					bad, desc, err := Inject(ops, f, rng)
					if errors.Is(err, ErrNoCandidate) && cfg.Acks0 && f == LostWrite {
						continue // Jepsen cannot prove a lost write without offsets
					}
					if err != nil {
						t.Fatalf("seed %d: Inject: %v", seed, err)
					}
					if !reflect.DeepEqual(before, ops) {
						t.Fatalf("seed %d: Inject modified its input", seed)
					}
					found := jepsen(bad)
					want, also := f.Expect()
					for _, w := range want {
						if found[w] == 0 {
							t.Fatalf("seed %d: %s\nwant anomaly %s, found %s", seed, desc, w, describe(found))
						}
					}
					for name := range found {
						if !slices.Contains(want, name) && !slices.Contains(also, name) {
							t.Fatalf("seed %d: %s\nunexpected anomaly %s; found %s", seed, desc, name, describe(found))
						}
					}
					for i := range bad {
						if bad[i].Index != int64(i) || (i > 0 && bad[i].Time < bad[i-1].Time) {
							t.Fatalf("seed %d: event %d has index %d, time %d after %d", seed, i, bad[i].Index, bad[i].Time, bad[i-1].Time)
						}
					}
				}
			})
		}
	}
}

func TestParseFault(t *testing.T) {
	for _, f := range Faults() {
		got, err := ParseFault(string(f))
		if err != nil || got != f {
			t.Fatalf("ParseFault(%q) = %q, %v", f, got, err)
		}
	}
	if got, err := ParseFault("g1A"); err != nil || got != AbortedRead {
		t.Fatalf("ParseFault is not case-insensitive: %q, %v", got, err)
	}
	if _, err := ParseFault("nope"); err == nil || !contains(err.Error(), "lost-write") {
		t.Fatalf("ParseFault(nope) = %v; want an error listing the faults", err)
	}
	if _, _, err := Inject(nil, "nope", rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("Inject accepted an unknown fault")
	}
	if _, _, err := Inject(nil, LostWrite, rand.New(rand.NewPCG(1, 1))); !errors.Is(err, ErrNoCandidate) {
		t.Fatalf("Inject on an empty history = %v; want ErrNoCandidate", err)
	}
}

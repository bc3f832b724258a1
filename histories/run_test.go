package histories

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestTestInfoRoundTrip: what WriteFile writes, LoadTestInfo reads back
// whole, with the bytes as stored.
func TestTestInfoRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := &TestInfo{
		Name: "queue-acks-all-kill", Seed: 42,
		Config:      TestConfig{Nodes: 3, Acks: "all", Rate: 0, Nemesis: []string{"kill"}, Bugs: []string{}, Seed: 42},
		StartTime:   time.Date(2026, 12, 3, 12, 0, 0, 5, time.UTC),
		Nodes:       []NodeInfo{{ID: 1, Name: "n1", Addr: "127.0.0.1:9092"}},
		Faults:      []string{"kill:one"},
		Schedule:    []FaultStep{{AtMs: 700, Kind: "kill", Target: "one", DurationMs: 900, Pick: 7}},
		Interrupted: "drain",
	}
	if err := in.WriteFile(dir); err != nil {
		t.Fatal(err)
	}
	out, raw, err := LoadTestInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	in.Config.present, out.Config.present = nil, nil
	if !reflect.DeepEqual(in, out) {
		t.Errorf("read back %+v,\nwrote %+v", out, in)
	}
	if !strings.Contains(string(raw), `"at-ms": 700`) || !strings.Contains(string(raw), `"interrupted": "drain"`) {
		t.Errorf("test.json as stored:\n%s", raw)
	}
}

// TestLoadTestInfoErrors: a folder without test.json is no error; one
// that does not parse names the file and keeps its bytes.
func TestLoadTestInfoErrors(t *testing.T) {
	dir := t.TempDir()
	if info, raw, err := LoadTestInfo(dir); info != nil || raw != nil || err != nil {
		t.Errorf("no test.json: %v %q %v, want nothing", info, raw, err)
	}
	if err := os.WriteFile(filepath.Join(dir, TestFile), []byte(`{"seed": "x"`), 0o644); err != nil {
		t.Fatal(err)
	}
	info, raw, err := LoadTestInfo(dir)
	if info != nil || raw == nil || err == nil || !strings.Contains(err.Error(), TestFile) {
		t.Errorf("a bad test.json: %v %q %v, want its bytes and an error naming it", info, raw, err)
	}
}

// TestConfigSummary: the one-line summary shows what the file holds in a
// fixed order, leaving out false, empty and absent settings but showing
// numbers whenever they are there (rate 0 means unlimited).
func TestConfigSummary(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"config":{"nodes":3,"acks":"1","partitions":4,"nemesis":["kill"]}}`, "nodes=3 acks=1 partitions=4 nemesis=kill"},
		{`{"config":{"rate":0,"fsync":"","bug":[],"unclean-leader-election":false,"seed":7936205516766034}}`, "rate=0 seed=7936205516766034"},
		{`{"config":{"rate":12.5,"unclean-leader-election":true,"bug":["early-ack","stale-leader"]}}`, "rate=12.5 unclean-leader-election=true bug=early-ack,stale-leader"},
		{`{"config":{"nodes":null}}`, ""},
	} {
		info, err := ParseTestInfo([]byte(c.json))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Config.Summary(); got != c.want {
			t.Errorf("%s: Summary = %q, want %q", c.json, got, c.want)
		}
	}
	// Made in memory, every setting counts as present.
	if got := (TestConfig{Nodes: 1, Acks: "all"}).Summary(); !strings.HasPrefix(got, "nodes=1 replication-factor=0 min-insync-replicas=0 acks=all") {
		t.Errorf("in-memory Summary = %q", got)
	}
}

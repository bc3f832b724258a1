package replication

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
)

// logWithEpochs builds a log whose batches (one record each) carry the
// given epochs, in order.
func logWithEpochs(t *testing.T, epochs ...int32) storage.PartitionLog {
	t.Helper()
	l := storage.NewMemLog("t-0")
	for _, e := range epochs {
		b := wire.EncodeBatch(wire.BatchHeader{ProducerID: -1, BaseSequence: -1}, []wire.Record{{Value: []byte("v")}})
		if _, err := l.AppendAsLeader(b, e); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func TestTruncationOffset(t *testing.T) {
	tests := []struct {
		name        string
		follower    []int32 // epoch of each record at offsets 0, 1, ...
		leaderEpoch int32
		leaderEnd   int64
		want        int64
		wantFinal   bool
	}{
		// KIP-101's scenario: the follower has the leader's epoch 1 up to 3,
		// the leader's epoch 1 ended at 2 (a new leader took over at 2).
		{"same epoch, leader's ends first", []int32{0, 0, 1}, 1, 2, 2, true},
		{"same epoch, follower's ends first", []int32{0, 0, 1}, 1, 5, 3, true},
		{"same epoch, identical", []int32{0, 1, 1}, 1, 3, 3, true},
		// The follower led epoch 2 (offsets 2-3) that no one else has; the
		// leader says its largest epoch up to 2 is 1, ending at 4.
		{"follower's epoch unknown to the leader", []int32{0, 1, 2, 2}, 1, 4, 2, true},
		// The follower has epochs 0 and 2 but never had the leader's 1:
		// drop epoch 2 and ask again for 0.
		{"leader's epoch unknown to the follower", []int32{0, 0, 2, 2}, 1, 3, 2, false},
		{"leader has no epoch that old", []int32{0, 0}, -1, -1, 0, true},
		{"follower's records all newer", []int32{3, 3}, 1, 5, 0, true},
		{"never beyond the follower's end", []int32{0}, 0, 9, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, final := truncationOffset(logWithEpochs(t, tt.follower...), tt.leaderEpoch, tt.leaderEnd)
			if got != tt.want || final != tt.wantFinal {
				t.Fatalf("truncationOffset = %d, final %v; want %d, %v", got, final, tt.want, tt.wantFinal)
			}
		})
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), CheckpointFile)
	if got, err := readCheckpoint(path); err != nil || len(got) != 0 {
		t.Fatalf("missing checkpoint: %v, %v; want empty", got, err)
	}
	want := map[tp]int64{{"a", 0}: 5, {"a", 1}: 0, {"b-c", 7}: 1 << 40}
	if err := writeCheckpoint(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := readCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %v, wrote %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: read %d, wrote %d", k, got[k], v)
		}
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "0\n3\na 0 5\n") {
		t.Fatalf("not Kafka's format (version, count, sorted lines):\n%s", b)
	}
}

func TestCheckpointErrorsNameFileAndLine(t *testing.T) {
	tests := []struct{ file, want string }{
		{"checkpoint-bad-count", ":2: entry count"},
		{"checkpoint-bad-line", ":4: \"q one 6\""},
		{"checkpoint-short", "ends after line 3"},
		{"checkpoint-version", ":1: version"},
		{"checkpoint-trailing", ":4: unexpected text"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := readCheckpoint(filepath.Join("testdata", tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.file) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v; want one naming %s and %q", err, tt.file, tt.want)
			}
		})
	}
}

func TestParseBugs(t *testing.T) {
	b, err := ParseBugs([]string{"early-ack", "hw-truncation", "early-ack"})
	if err != nil || !b.EarlyAck || !b.HWTruncation || b.StaleLeader || b.FsyncAfterAck {
		t.Fatalf("ParseBugs: %+v, %v", b, err)
	}
	if got := strings.Join(b.Names(), ","); got != "hw-truncation,early-ack" {
		t.Fatalf("Names() = %s", got)
	}
	_, err = ParseBugs([]string{"stale-leader", "lose-everything"})
	if err == nil || !strings.Contains(err.Error(), "lose-everything") || !strings.Contains(err.Error(), "hw-truncation, early-ack, stale-leader, fsync-after-ack") {
		t.Fatalf("unknown bug: err %v; want it named with the known ones", err)
	}
}

// TestEveryBugSwitchIsInTheTable: each switch of Bugs is named by exactly
// one AllBugs entry, and enabling an entry turns on that switch alone, so
// a switch added to Bugs but not to the table (no --bug name, no --help
// line, missing from Names) fails here.
func TestEveryBugSwitchIsInTheTable(t *testing.T) {
	fields := reflect.TypeFor[Bugs]()
	owner := map[string]string{} // field -> bug name
	for _, info := range AllBugs {
		var b Bugs
		if err := b.Enable(info.Name); err != nil {
			t.Fatalf("%s: %v", info.Name, err)
		}
		v := reflect.ValueOf(b)
		var on []string
		for i := range fields.NumField() {
			if v.Field(i).Bool() {
				on = append(on, fields.Field(i).Name)
			}
		}
		if len(on) != 1 {
			t.Fatalf("--bug %s turns on %v, want exactly one switch", info.Name, on)
		}
		if prev, dup := owner[on[0]]; dup {
			t.Fatalf("--bug %s and --bug %s both turn on %s", prev, info.Name, on[0])
		}
		owner[on[0]] = info.Name
		if got := b.Names(); len(got) != 1 || got[0] != info.Name {
			t.Fatalf("with only %s on, Names() = %v", info.Name, got)
		}
		if info.Description == "" {
			t.Fatalf("--bug %s has no description for --help", info.Name)
		}
	}
	for i := range fields.NumField() {
		if f := fields.Field(i); f.Type.Kind() == reflect.Bool {
			if _, ok := owner[f.Name]; !ok {
				t.Fatalf("Bugs.%s has no entry in AllBugs: it has no --bug name", f.Name)
			}
		}
	}
}

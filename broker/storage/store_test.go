package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateTopic(t *testing.T) {
	for _, c := range []struct {
		topic string
		ok    bool
	}{
		{"orders", true}, {"a.b_c-d", true}, {"__consumer_offsets", true}, {"x", true},
		{strings.Repeat("a", 249), true}, {strings.Repeat("a", 250), false},
		{"", false}, {".", false}, {"..", false}, {"...", true},
		{"has space", false}, {"slash/no", false}, {"ünï", false}, {"colon:no", false},
	} {
		err := ValidateTopic(c.topic)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrInvalidTopic)) {
			t.Errorf("ValidateTopic(%q) = %v, want ok=%v", c.topic, err, c.ok)
		}
	}
}

func TestParsePartitionDir(t *testing.T) {
	for _, c := range []struct {
		name  string
		topic string
		p     int32
		ok    bool
	}{
		{"orders-0", "orders", 0, true},
		{"my-topic-12", "my-topic", 12, true},
		{"a.b_c-3", "a.b_c", 3, true},
		{"orders", "", 0, false},
		{"orders-", "", 0, false},
		{"orders-x", "", 0, false},
		{"orders-01", "", 0, false},
		{"orders--1", "orders-", 1, true}, // topics may end in a dash
		{"-1", "", 0, false},
		{"lost+found", "", 0, false},
	} {
		topic, p, err := parsePartitionDir(c.name)
		if (err == nil) != c.ok || (c.ok && (topic != c.topic || p != c.p)) {
			t.Errorf("parsePartitionDir(%q) = %q, %d, %v; want %q, %d, ok=%v", c.name, topic, p, err, c.topic, c.p, c.ok)
		}
	}
}

// storeKinds are the Store implementations that must behave alike.
var storeKinds = []struct {
	name string
	open func(t *testing.T) Store
}{
	{"mem", func(t *testing.T) Store { return NewMemStore() }},
	{"disk", func(t *testing.T) Store {
		logger, _ := testLogger(t)
		s, err := Open(t.TempDir(), Options{Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

func TestStorePartitions(t *testing.T) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			s := k.open(t)
			if _, err := s.Partition("orders", 0, false); !errors.Is(err, ErrUnknownPartition) {
				t.Fatalf("unknown partition: %v, want ErrUnknownPartition", err)
			}
			for _, bad := range []struct {
				topic string
				p     int32
			}{{"bad topic", 0}, {"..", 0}, {"ok", -1}} {
				if _, err := s.Partition(bad.topic, bad.p, true); !errors.Is(err, ErrInvalidTopic) {
					t.Errorf("Partition(%q, %d): %v, want ErrInvalidTopic", bad.topic, bad.p, err)
				}
			}
			a, err := s.Partition("orders", 0, true)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := s.Partition("orders", 0, false); err != nil || again != a {
				t.Fatalf("Partition did not return the same log again: %v", err)
			}
			for _, tp := range []struct {
				topic string
				p     int32
			}{{"orders", 2}, {"my.topic-name_x", 0}} {
				if _, err := s.Partition(tp.topic, tp.p, true); err != nil {
					t.Fatal(err)
				}
			}
			mustAppend(t, a, batch("s", 1, 10), 0)
			if got := s.Topics(); len(got) != 2 || got["orders"] != 3 || got["my.topic-name_x"] != 1 {
				t.Fatalf("Topics() = %v, want orders:3 my.topic-name_x:1", got)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Partition("orders", 0, false); !errors.Is(err, ErrClosed) {
				t.Fatalf("Partition after Close: %v, want ErrClosed", err)
			}
			if _, err := a.AppendAsLeader(batch("s", 1, 10), 0); !errors.Is(err, ErrClosed) {
				t.Fatalf("append to a log of a closed store: %v, want ErrClosed", err)
			}
		})
	}
}

func TestDiskStoreReopen(t *testing.T) {
	dir := t.TempDir()
	logger, out := testLogger(t)
	s, err := Open(dir, Options{Logger: logger, SegmentBytes: 500})
	if err != nil {
		t.Fatal(err)
	}
	wants := map[string][]storedBatch{}
	for _, tp := range []struct {
		topic string
		p     int32
	}{{"a-b", 0}, {"a-b", 1}, {"c.d", 4}} {
		l, err := s.Partition(tp.topic, tp.p, true)
		if err != nil {
			t.Fatal(err)
		}
		wants[PartitionDir(tp.topic, tp.p)] = fillLog(t, l, 10+int(tp.p))
	}
	// Other state may share the data directory.
	for _, d := range []string{"raft", "lost+found"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "meta.properties"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Logger: logger}); err == nil {
		t.Fatal("a second Open of an open data directory succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Options{Logger: logger, SegmentBytes: 500})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if got := s.Topics(); len(got) != 2 || got["a-b"] != 2 || got["c.d"] != 5 {
		t.Fatalf("Topics() after reopen = %v", got)
	}
	reps := s.Recoveries()
	if len(reps) != 3 || reps[0].Partition != "a-b-0" || !reps[0].Clean {
		t.Fatalf("Recoveries() = %+v", reps)
	}
	for name, want := range wants {
		topic, p, _ := parsePartitionDir(name)
		l, err := s.Partition(topic, p, false)
		if err != nil {
			t.Fatal(err)
		}
		assertHolds(t, l, want)
	}
	if !strings.Contains(out.String(), "raft") {
		t.Fatalf("no warning about the non-partition directory:\n%s", out)
	}
}

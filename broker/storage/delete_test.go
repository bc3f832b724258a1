package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestDeleteRemovesDataForGood: a deleted partition's directory is gone,
// reopening the store does not bring it back, and creating it again
// starts an empty log.
func TestDeleteRemovesDataForGood(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int32{0, 1} {
		l, err := s.Partition("q", p, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.AppendAsLeader(batch("d", 3, 10), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete("q", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("q", 0); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("deleting twice: %v, want ErrUnknownPartition", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "q-1" && e.Name() != ".lock" {
			t.Errorf("left in the data directory after the deletion: %s", e.Name())
		}
	}
	// A crash in the middle of a deletion leaves a renamed directory;
	// Open ignores it and the next deletion removes it.
	if err := os.Mkdir(filepath.Join(dir, "q-7.123"+deletingSuffix), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Topics(); got["q"] != 2 {
		// q-1 is still there (count = highest + 1), q-0 is not.
		t.Fatalf("topics after reopen: %v", got)
	}
	if _, err := s.Partition("q", 0, false); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("q-0 after reopen: %v, want ErrUnknownPartition", err)
	}
	l, err := s.Partition("q", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if l.EndOffset() != 0 {
		t.Fatalf("q-0 created again starts at offset %d, want an empty log", l.EndOffset())
	}
	if err := s.Delete("q", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "q-7.123"+deletingSuffix)); !os.IsNotExist(err) {
		t.Fatalf("the leftover of a crashed deletion is still there: %v", err)
	}

	m := NewMemStore()
	if _, err := m.Partition("q", 0, true); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete("q", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Partition("q", 0, false); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("mem: q-0 after delete: %v", err)
	}
}

package storage

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestWriteFileAtomicConcurrentWriters: writers replacing one file at the
// same time (the checkpoint loop and Close, say) never fail or tear it,
// and leave no temporary files behind.
func TestWriteFileAtomicConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if err := WriteFileAtomic(dir, "ckpt", []byte(strings.Repeat(fmt.Sprint(w), 100+i))); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dir + "/ckpt")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 100 || strings.Count(string(b), string(b[:1])) != len(b) {
		t.Fatalf("the file holds %q, not one writer's whole contents", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind %d entries, want only the file: %v", len(entries), entries)
	}
	if fi, _ := os.Stat(dir + "/ckpt"); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", fi.Mode().Perm())
	}
}

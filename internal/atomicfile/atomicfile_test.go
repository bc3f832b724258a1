package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestWriteFileConcurrentWriters: writers replacing one file at the
// same time (the checkpoint loop and Close, say) never fail or tear it,
// and leave no temporary files behind.
func TestWriteFileConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if err := WriteFile(dir+"/ckpt", []byte(strings.Repeat(fmt.Sprint(w), 100+i)), 0o644); err != nil {
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

// TestWriteFailureKeepsTheOldFile: a writer that fails leaves the old
// contents and no temporary file, and the error names the target.
func TestWriteFailureKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/results.json"
	if err := WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Write(path, 0o644, func(w io.Writer) error {
		if _, err := w.Write([]byte("half of the ne")); err != nil {
			return err
		}
		return errors.New("encoder broke")
	})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "encoder broke") {
		t.Fatalf("error %v, want one naming %s and the cause", err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("file holds %q after a failed write, want the old contents", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left behind %v, want only the file", entries)
	}
}

// TestWriteIntoMissingFolder: the error names the path the caller gave,
// not a temporary file.
func TestWriteIntoMissingFolder(t *testing.T) {
	path := t.TempDir() + "/no/such/folder/out.json"
	err := WriteFile(path, []byte("x"), 0o644)
	if err == nil || !strings.HasPrefix(err.Error(), "writing "+path+": ") {
		t.Fatalf("error %v, want it to start with writing %s", err, path)
	}
}

// TestSymlinkReplaces: Symlink moves an existing link to the new target
// and leaves no temporary link behind.
func TestSymlinkReplaces(t *testing.T) {
	dir := t.TempDir()
	link := dir + "/latest"
	for _, target := range []string{"run1", "run2"} {
		if err := Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(link); err != nil || got != target {
			t.Fatalf("link points at %q (%v), want %q", got, err, target)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left behind %v, want only the link", entries)
	}
}

// TestMkdirAll creates missing levels, accepts an existing folder, and
// fails on a file in the way.
func TestMkdirAll(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/a/b/c"
	for range 2 {
		if err := MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if err := os.WriteFile(dir+"/f", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(dir+"/f/g", 0o755); err == nil {
		t.Fatal("MkdirAll through a file succeeded")
	}
}

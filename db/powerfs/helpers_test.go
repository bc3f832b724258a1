package powerfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// mountT mounts a fresh filesystem over a temporary backing folder and
// unmounts it when the test ends, failed or not. Without FUSE the test
// skips, saying why, except in CI (CI=true) on a machine with /dev/fuse,
// where it fails: there the tests must run.
func mountT(t testing.TB, opts Options) *FS {
	t.Helper()
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if opts.Label == "" {
		opts.Label = "test/" + t.Name()
	}
	f, err := Mount(backing, mnt, opts)
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return f
}

// skipOrFail skips a test that needs FUSE when the machine cannot mount,
// unless CI=true and /dev/fuse exists: CI must run them.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	_, devErr := os.Stat("/dev/fuse")
	if os.Getenv("CI") == "true" && devErr == nil {
		t.Fatalf("FUSE mount failed on a CI machine that has /dev/fuse: %v", err)
	}
	if errors.Is(err, ErrNoFUSE) || errors.Is(err, ErrMountDenied) {
		t.Skipf("needs FUSE: %v", err)
	}
	t.Fatal(err)
}

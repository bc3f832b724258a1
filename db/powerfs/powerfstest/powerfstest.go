// Package powerfstest mounts power-loss filesystems (package db/powerfs)
// for tests, with the one rule for machines without FUSE: the test skips,
// saying why, except in CI (CI=true) on a machine that has /dev/fuse,
// where it fails, because there the power-loss tests must run.
package powerfstest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/garantia/garantia/db/powerfs"
)

// Mount mounts a fresh filesystem over a temporary backing folder and
// unmounts it when the test ends, failed or not. An empty opts.Label
// becomes "test/" and the test's name.
func Mount(tb testing.TB, opts powerfs.Options) *powerfs.FS {
	tb.Helper()
	base := tb.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if opts.Label == "" {
		opts.Label = "test/" + tb.Name()
	}
	f, err := powerfs.Mount(backing, mnt, opts)
	if err != nil {
		SkipOrFail(tb, err)
	}
	tb.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			tb.Errorf("unmount: %v", err)
		}
	})
	return f
}

// SkipOrFail ends a test whose mount (or powerfs.Probe) failed with err:
// a skip when the machine has no FUSE or may not mount, unless CI=true
// and /dev/fuse exists; a failure otherwise.
func SkipOrFail(tb testing.TB, err error) {
	tb.Helper()
	_, devErr := os.Stat("/dev/fuse")
	if os.Getenv("CI") == "true" && devErr == nil {
		tb.Fatalf("FUSE mount failed on a CI machine that has /dev/fuse: %v", err)
	}
	if errors.Is(err, powerfs.ErrNoFUSE) || errors.Is(err, powerfs.ErrMountDenied) {
		tb.Skipf("needs FUSE: %v", err)
	}
	tb.Fatal(err)
}

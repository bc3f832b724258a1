// Package leakcheck fails tests that leave goroutines running: every
// client, listener, proxy, node and nemesis a test starts must be stopped
// by the time it ends, also when it fails. It is go.uber.org/goleak with
// the one rule every package of this module uses: goroutines are given a
// grace period to end (closing a client or a listener ends its goroutines
// a moment later, not at once), and the goroutines of the testing
// package and the runtime never count.
//
// It is a leaf package for tests only: the broker's tests and the
// harness's share it, and neither may depend on the other.
package leakcheck

import (
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Grace is how long a check waits for goroutines to end before it calls
// them leaked.
const Grace = 5 * time.Second

// grace is Grace; the package's own test shortens it.
var grace = Grace

// Check records the goroutines running now and, when t ends (also when it
// fails), fails t if goroutines started since still run after Grace,
// printing their stacks. Call it first in a test, before anything that
// starts goroutines, so that its cleanup runs last. It cannot tell a
// parallel test's goroutines from this one's: use it in tests that do
// not call t.Parallel.
func Check(t testing.TB) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if err := find(before); err != nil {
			t.Errorf("goroutines started by the test still run %s after it: %v", Grace, err)
		}
	})
}

// Main runs a package's tests and then fails the package if any goroutine
// but the runtime's and the testing package's still runs after Grace: for
// packages whose tests run in parallel or share long-lived state, where a
// check per test cannot tell whose goroutine it sees. Call it from
// TestMain; it does not return.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := find(); err != nil {
			os.Stderr.WriteString("leakcheck: goroutines still run " + Grace.String() + " after the tests: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// find asks goleak until no goroutine is left or Grace has passed, and
// returns its last answer. goleak's own retries give up after about half
// a second, shorter than a closed client's goroutines may take on a busy
// machine.
func find(opts ...goleak.Option) error {
	deadline := time.Now().Add(grace)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

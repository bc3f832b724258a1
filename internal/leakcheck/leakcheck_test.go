package leakcheck

import (
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that keeps what a check reports, so that the
// check itself can be tested failing.
type recorder struct {
	testing.TB
	errors   []string
	cleanups []func()
}

func (r *recorder) Helper()                        {}
func (r *recorder) Cleanup(f func())               { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, a ...any) { r.errors = append(r.errors, format) }

func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// TestCheckFindsALeak: a goroutine started after Check and still running
// at the end fails the test; one that ends within the grace does not.
func TestCheckFindsALeak(t *testing.T) {
	grace = 500 * time.Millisecond
	defer func() { grace = Grace }()
	stop := make(chan struct{})
	r := &recorder{TB: t}
	Check(r)
	go func() { <-stop }()
	r.end()
	close(stop)
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "still run") {
		t.Fatalf("a goroutine left running: errors %q, want one", r.errors)
	}

	r = &recorder{TB: t}
	Check(r)
	go func() { time.Sleep(100 * time.Millisecond) }()
	r.end()
	if len(r.errors) != 0 {
		t.Fatalf("a goroutine that ends within the grace: errors %q, want none", r.errors)
	}
}

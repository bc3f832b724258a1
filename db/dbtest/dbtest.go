// Package dbtest holds test helpers for the packages that start nodes,
// proxies and nemeses: a check that a test left no goroutine running, and
// the checks of a backend's lifecycle that mean the same on every
// backend.
package dbtest

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// LeakGrace is how long NoLeaks waits for goroutines to end after the
// test, since closing a client or a listener ends its goroutines a moment
// later, not at once.
const LeakGrace = 5 * time.Second

// ignored mark goroutines that are not the test's: the testing
// package's own (a test's goroutine, the main loop) and the signal
// handler os/signal starts once per process.
var ignored = []string{
	"testing.tRunner",
	"testing.(*M).",
	"testing.runTests",
	"os/signal.",
}

// NoLeaks records the goroutines running now and, when the test ends
// (also when it fails), fails it if goroutines started since are still
// running after LeakGrace, printing their stacks. Call it first in a
// test, before anything that starts goroutines, so that its cleanup runs
// last.
func NoLeaks(t testing.TB) {
	t.Helper()
	before := goroutineIDs()
	t.Cleanup(func() {
		deadline := time.Now().Add(LeakGrace)
		for {
			leaked := newGoroutines(before)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutine(s) started by the test still run %s after it:\n\n%s",
					len(leaked), LeakGrace, strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// stacks returns every goroutine's stack, one entry each.
func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if s := strings.TrimSpace(string(g)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// id is a stack's goroutine id line's number ("goroutine 17 [...]").
func id(stack string) string {
	f := strings.Fields(stack)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

func goroutineIDs() map[string]bool {
	m := map[string]bool{}
	for _, s := range stacks() {
		m[id(s)] = true
	}
	return m
}

func newGoroutines(before map[string]bool) []string {
	var out []string
	for _, s := range stacks() {
		if before[id(s)] || isIgnored(s) {
			continue
		}
		out = append(out, s)
	}
	return out
}

func isIgnored(stack string) bool {
	for _, ig := range ignored {
		if strings.Contains(stack, ig) {
			return true
		}
	}
	return false
}

// Package dbtest holds the checks of a backend's lifecycle that mean the
// same on every backend, for the tests of db/local and db/docker.
package dbtest

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/garantia/garantia/db"
)

// The checks below are the steps of a backend's lifecycle test that mean
// the same on every backend: each drives a db.DB through its interface
// and checks the effect a client sees (the node answers the Kafka
// protocol or not). What differs between backends, such as how to tell
// that a node's process is gone, stays in their own tests.

// Probe sends one Kafka ApiVersions request to addr and returns nil once
// it is answered, or an error when nothing answers within timeout.
func Probe(addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return db.Probe(ctx, addr)
}

// TeardownAtEnd tears d down when t ends, failing t if that fails.
func TeardownAtEnd(t testing.TB, d db.DB) {
	t.Helper()
	t.Cleanup(func() {
		if err := d.Teardown(context.Background()); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
}

// CheckAnswer fails t unless every node answers within 2s; Setup must
// have returned.
func CheckAnswer(t testing.TB, nodes []db.Node) {
	t.Helper()
	for _, n := range nodes {
		if err := Probe(n.Addr, 2*time.Second); err != nil {
			t.Fatalf("%s at %s does not answer after Setup: %v", n.Name, n.Addr, err)
		}
	}
}

// CheckKilled checks node n after d.Kill: it does not answer, and
// killing it again is a no-op.
func CheckKilled(t testing.TB, ctx context.Context, d db.DB, n db.Node) {
	t.Helper()
	if err := Probe(n.Addr, time.Second); err == nil {
		t.Fatalf("%s answers after Kill", n.Name)
	}
	if err := d.Kill(ctx, n); err != nil {
		t.Fatalf("killing a killed node: %v, want a no-op", err)
	}
}

// CheckStart starts the killed node n and checks that it comes back at
// its old address and answers.
func CheckStart(t testing.TB, ctx context.Context, d db.DB, n db.Node) {
	t.Helper()
	if err := d.Start(ctx, n); err != nil {
		t.Fatalf("restart %s: %v", n.Name, err)
	}
	for _, now := range d.Nodes() {
		if now.ID == n.ID && now.Addr != n.Addr {
			t.Fatalf("%s restarted at %s, want its old address %s", n.Name, now.Addr, n.Addr)
		}
	}
	if err := Probe(n.Addr, 2*time.Second); err != nil {
		t.Fatalf("%s does not answer after Start: %v", n.Name, err)
	}
}

// CheckPauseResume pauses node n, checks that it answers nothing while
// its sockets stay open, resumes it and checks that it answers again.
func CheckPauseResume(t testing.TB, ctx context.Context, d db.DB, n db.Node) {
	t.Helper()
	if err := d.Pause(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := Probe(n.Addr, 300*time.Millisecond); err == nil {
		t.Fatalf("%s answers while paused", n.Name)
	}
	if err := d.Resume(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := Probe(n.Addr, 2*time.Second); err != nil {
		t.Fatalf("%s does not answer after Resume: %v", n.Name, err)
	}
}

// CheckUnknownNode checks that d refuses a node it does not have.
func CheckUnknownNode(t testing.TB, ctx context.Context, d db.DB) {
	t.Helper()
	if err := d.Kill(ctx, db.Node{ID: 7, Name: "n7"}); !errors.Is(err, db.ErrUnknownNode) {
		t.Fatalf("Kill(n7) = %v, want ErrUnknownNode", err)
	}
}

// CheckStartMarkers checks that each node named in want has its log in
// runDir/NAME and that the log holds want[NAME] of the harness's start
// lines. It returns the logs' contents by node name, for the backend's
// own checks.
func CheckStartMarkers(t testing.TB, d db.DB, runDir string, want map[string]int) map[string]string {
	t.Helper()
	logs := d.LogFiles()
	out := make(map[string]string, len(want))
	for name, n := range want {
		b, err := os.ReadFile(logs[name])
		if err != nil {
			t.Fatalf("log of %s: %v", name, err)
		}
		out[name] = string(b)
		if got := strings.Count(string(b), "=== garantia harness: starting "+name); got != n {
			t.Errorf("%s's log has %d start lines, want %d:\n%s", name, got, n, b)
		}
		if filepath.Dir(logs[name]) != filepath.Join(runDir, name) {
			t.Errorf("%s's log is at %s, want inside %s", name, logs[name], filepath.Join(runDir, name))
		}
	}
	return out
}

// CheckTornDown checks that d, torn down, refuses to start node n.
func CheckTornDown(t testing.TB, ctx context.Context, d db.DB, n db.Node) {
	t.Helper()
	if err := d.Start(ctx, n); !errors.Is(err, db.ErrTornDown) {
		t.Errorf("Start after Teardown = %v, want ErrTornDown", err)
	}
}

// StartHelper runs this test binary again as a helper process, with no
// test selected and env added to its environment (the helper's TestMain
// reads it and acts), and returns the first line it prints (how it says
// it is ready, and what it started) and crash, which SIGKILLs the helper
// and waits for it. The helper is killed when t ends anyway. Tests of what
// survives a harness killed without a teardown use it: the helper is that
// harness.
func StartHelper(t testing.TB, env ...string) (line string, crash func()) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(exe, "-test.run=^$")
	helper.Env = append(os.Environ(), env...)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	crash = func() { once.Do(func() { _ = helper.Process.Kill(); _ = helper.Wait() }) }
	t.Cleanup(crash)
	line, err = bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper %v: %v", env, err)
	}
	return line, crash
}

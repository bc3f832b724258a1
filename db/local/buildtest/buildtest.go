// Package buildtest builds the garantia binary for tests that run broker
// nodes as processes (db/local, workloads, runner). A test binary cannot
// serve `garantia broker` itself, so TestMain builds the real command once
// into a temporary folder and hands its path to local.Options.Binary.
package buildtest

import (
	"bytes"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Package is the import path of the garantia command.
const Package = "github.com/garantia/garantia/cmd/garantia"

// Garantia builds the garantia command into dir and returns the binary's
// path. It runs the go tool that built the test (GOROOT/bin/go, else go on
// PATH), inheriting GOFLAGS.
func Garantia(dir string) (string, error) {
	gotool := filepath.Join(build.Default.GOROOT, "bin", "go")
	if _, err := os.Stat(gotool); err != nil {
		gotool = "go"
	}
	out := filepath.Join(dir, "garantia")
	cmd := exec.Command(gotool, "build", "-o", out, Package)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", Package, err, stderr.Bytes())
	}
	return out, nil
}

// HasBroker reports whether bin serves the broker subcommand (it answers
// `broker --help` with exit code 0). It is false while the broker is not
// there yet, and tests then skip with a message saying so.
func HasBroker(bin string) bool {
	cmd := exec.Command(bin, "broker", "--help")
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return false
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err == nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return false
	}
}

var (
	once     sync.Once
	binDir   string
	binPath  string
	buildErr error
	brokerOK bool
)

// BinaryEnv names a prebuilt garantia binary for Binary to use instead of
// building one.
const BinaryEnv = "GARANTIA_TEST_BINARY"

// Binary returns the path of a garantia binary built once per test
// process, on first use, so that tests that need no broker do not pay for
// the build. It fails t if the build fails and skips t, saying why, when
// the binary has no broker subcommand yet.
func Binary(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if prebuilt := os.Getenv(BinaryEnv); prebuilt != "" {
			binPath = prebuilt
			brokerOK = HasBroker(binPath)
			return
		}
		binDir, buildErr = os.MkdirTemp("", "garantia-bin-")
		if buildErr == nil {
			binPath, buildErr = Garantia(binDir)
		}
		if buildErr == nil {
			brokerOK = HasBroker(binPath)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the garantia binary for the broker nodes: %v", buildErr)
	}
	if !brokerOK {
		t.Skipf("skipping: %s has no working `broker` subcommand yet (the broker package is not there); this test runs real broker processes", binPath)
	}
	return binPath
}

// Main runs the tests and removes the binary afterwards. Call it from
// TestMain: func TestMain(m *testing.M) { buildtest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestOpsPerSecond runs `garantia test` for d with args (and seed 1) and
// returns its recorded operations (the summary's "ops: N events") per
// second of d: the throughput the README's measurements compare.
func TestOpsPerSecond(tb testing.TB, d time.Duration, args ...string) float64 {
	tb.Helper()
	args = append([]string{"test", "--time-limit", d.String(), "--seed", "1"}, args...)
	out, err := exec.Command(Binary(tb), args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("garantia %v: %v\n%s", args, err, out)
	}
	m := regexp.MustCompile(`(?m)^ops: (\d+) events`).FindSubmatch(out)
	if m == nil {
		tb.Fatalf("no \"ops: N events\" line in:\n%s", out)
	}
	events, _ := strconv.Atoi(string(m[1]))
	return float64(events) / d.Seconds()
}

// EnvInt is the environment variable name as a positive integer, else def:
// how benchmarks take their rounds and seconds (BENCH_ROUNDS,
// BENCH_SECONDS).
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// garantiaBin is the garantia binary built by TestMain.
var garantiaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "garantia-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(2)
	}
	garantiaBin = filepath.Join(dir, "garantia")
	build := exec.Command("go", "build", "-o", garantiaBin, "github.com/garantia/garantia/cmd/garantia")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the garantia binary:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// brokerProc is a running `garantia broker` process.
type brokerProc struct {
	t       testing.TB
	cmd     *exec.Cmd
	addr    string // from the "broker listening" log line
	logPath string
	waitErr chan error
}

// startBroker runs `garantia broker` with args plus --listen
// 127.0.0.1:0 and a --log-file, and waits for its "broker listening" log
// line to learn the address. The process is killed at cleanup if still
// running.
func startBroker(t testing.TB, dataDir string, args ...string) *brokerProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "broker.log")
	full := append([]string{"broker", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-file", logPath}, args...)
	cmd := exec.Command(garantiaBin, full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &brokerProc{t: t, cmd: cmd, logPath: logPath, waitErr: make(chan error, 1)}
	go func() { b.waitErr <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-b.waitErr
		if t.Failed() {
			logs, _ := os.ReadFile(logPath)
			t.Logf("broker %v stderr:\n%s\nlog file:\n%s", full, stderr.String(), logs)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if addr := listenAddr(logPath); addr != "" {
			b.addr = addr
			return b
		}
		select {
		case err := <-b.waitErr:
			b.waitErr <- err
			t.Fatalf("broker exited before listening: %v\nstderr: %s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("broker did not log \"broker listening\" within 20s")
	return nil
}

// listenAddr finds the last "broker listening" line in a JSON log.
func listenAddr(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var addr string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Msg    string `json:"msg"`
			Listen string `json:"listen"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "broker listening" {
			addr = line.Listen
		}
	}
	return addr
}

// kill sends SIGKILL and waits for the process to die.
func (b *brokerProc) kill() {
	b.cmd.Process.Signal(syscall.SIGKILL)
	if err := <-b.waitErr; err == nil {
		b.t.Fatalf("broker exited 0 after SIGKILL")
	}
	b.waitErr <- nil
}

// stop sends SIGTERM and returns the exit code.
func (b *brokerProc) stop(timeout time.Duration) int {
	b.t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.waitErr:
	case <-time.After(timeout):
		b.t.Fatalf("broker still running %v after SIGTERM", timeout)
	}
	b.waitErr <- nil
	return b.cmd.ProcessState.ExitCode()
}

func (b *brokerProc) logContains(s string) bool {
	logs, _ := os.ReadFile(b.logPath)
	return strings.Contains(string(logs), s)
}

package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/db/local/buildtest"
	"github.com/garantia/garantia/db/powerfs"
	"github.com/garantia/garantia/db/powerfs/powerfstest"
)

// powerMounts lists the power-loss mounts under dir.
func powerMounts(t *testing.T, dir string) []powerfs.Mounted {
	t.Helper()
	abs, _ := filepath.Abs(dir)
	all, err := powerfs.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	var out []powerfs.Mounted
	for _, m := range all {
		if strings.HasPrefix(m.Dir, abs+"/") {
			out = append(out, m)
		}
	}
	return out
}

// processesUnder lists the live processes whose command line mentions
// dir (a run's brokers keep their data folders there).
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return out
}

// startPowerRun starts a real `garantia test` with power faults on every
// node, a fault every second or so, and returns once a power fault is in
// force (its progress line says so), with the process and the store.
func startPowerRun(t *testing.T) (*exec.Cmd, string, *lockedBuffer) {
	t.Helper()
	if err := powerfs.Probe(); err != nil {
		powerfstest.SkipOrFail(t, err)
	}
	store := t.TempDir()
	cmd := exec.Command(buildtest.Binary(t), "test", "--nemesis", "power:all", "--nemesis-interval", "1s",
		"--time-limit", "60s", "--rate", "200", "--store", store, "--seed", "3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // our signals only
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_, _ = powerfs.RemoveStale()
	})
	inForce := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Split(scanLinesOrCR)
		found := false
		for sc.Scan() {
			_, _ = out.Write([]byte(sc.Text() + "\n"))
			if !found && strings.Contains(sc.Text(), "fault: power all") {
				found = true
				close(inForce)
			}
		}
		if !found {
			close(inForce)
		}
	}()
	select {
	case <-inForce:
	case <-time.After(60 * time.Second):
		t.Fatalf("no power fault came within a minute:\n%s", out.String())
	}
	if m := powerMounts(t, store); len(m) != 3 {
		t.Fatalf("%d power-loss mounts under the store while the run runs, want 3: %v\n%s", len(m), m, out.String())
	}
	return cmd, store, out
}

// lockedBuffer is a buffer that the run's stdout and its stderr reader
// write at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scanLinesOrCR splits at '\n' and at '\r' (a terminal's progress line).
func scanLinesOrCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// TestPowerRunInterrupted sends SIGINT (Ctrl-C) to a real run while all
// its nodes are powered off: the run powers them on, stops them, checks
// what it recorded, exits 255 (interrupted), and leaves no mount and no
// broker.
func TestPowerRunInterrupted(t *testing.T) {
	cmd, store, out := startPowerRun(t)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		t.Fatalf("the interrupted run did not exit in 90s:\n%s", out.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != verdict.ExitInternal {
		t.Errorf("interrupted run: %v, want exit %d\n%s", err, verdict.ExitInternal, out.String())
	}
	if !strings.Contains(out.String(), "interrupted during the workload") || !strings.Contains(out.String(), "verdict:") {
		t.Errorf("the interrupted run does not say so or has no verdict:\n%s", out.String())
	}
	if m := powerMounts(t, store); len(m) > 0 {
		t.Errorf("power-loss mounts left after Ctrl-C: %v", m)
	}
	if p := processesUnder(t, store); len(p) > 0 {
		t.Errorf("processes left after Ctrl-C: %v", p)
	}
	backings, _ := filepath.Glob(filepath.Join(store, "*", "2*", "n*", "data"+powerfs.BackingSuffix))
	datas, _ := filepath.Glob(filepath.Join(store, "*", "2*", "n*", "data", "controller"))
	if len(backings) > 0 || len(datas) != 3 {
		t.Errorf("after Ctrl-C: backing folders %v, data folders %v; want each node's files back in its data folder", backings, datas)
	}
}

// TestPowerRunKilled kills a real run (SIGKILL: no cleanup runs) while
// all its nodes are powered off: its brokers die with it, its mounts go
// stale, and garantia clean removes them.
func TestPowerRunKilled(t *testing.T) {
	cmd, store, out := startPowerRun(t)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for len(processesUnder(t, store)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if p := processesUnder(t, store); len(p) > 0 {
		t.Errorf("processes outlived the killed harness: %v", p)
	}
	stale := powerMounts(t, store)
	if len(stale) != 3 {
		t.Fatalf("%d mounts under the store after SIGKILL, want the 3 stale ones: %v\n%s", len(stale), stale, out.String())
	}
	for _, m := range stale {
		if !m.Stale {
			t.Errorf("%s: not stale after its harness was killed", m)
		}
	}
	bin := buildtest.Binary(t)
	res, err := exec.Command(bin, "clean").CombinedOutput()
	if err != nil {
		// The Docker part of clean may fail on a machine without an
		// engine; the mounts come first and must be gone anyway.
		t.Logf("garantia clean: %v\n%s", err, res)
	}
	if !strings.Contains(string(res), "stale power-loss mount(s)") {
		t.Errorf("garantia clean does not report the stale mounts:\n%s", res)
	}
	if m := powerMounts(t, store); len(m) > 0 {
		t.Errorf("mounts left after garantia clean: %v", m)
	}
}

// TestPowerRunNotPermitted runs garantia test with power faults as a user
// who may not mount (nobody: /dev/fuse is root's here, fusermount is not
// setuid): it exits 255 before any node starts, saying what is missing,
// and creates nothing.
func TestPowerRunNotPermitted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching to another user needs root")
	}
	bin := buildtest.Binary(t)
	dir, err := os.MkdirTemp("", "garantia-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	// nobody needs its own copy of the binary (a test's temp folder is
	// root's alone).
	nb := filepath.Join(dir, "garantia")
	if err := copyFile(bin, nb); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	cmd := exec.Command(nb, "test", "--nemesis", "power:one", "--store", store, "--time-limit", "2s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "TMPDIR="+dir)
	res, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() != verdict.ExitInternal || err == nil {
		t.Skipf("nobody may mount FUSE on this machine; nothing to refuse (exit %v):\n%s", err, res)
	}
	if !errors.As(err, &exit) {
		t.Fatalf("garantia test as nobody: %v\n%s", err, res)
	}
	for _, want := range []string{"needs the power-loss filesystem", "no node was started", "FUSE"} {
		if !strings.Contains(string(res), want) {
			t.Errorf("the refusal does not say %q:\n%s", want, res)
		}
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Errorf("the refused run created its store %s (%v)", store, err)
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

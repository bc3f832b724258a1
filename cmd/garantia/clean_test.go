package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/garantia/garantia/db/docker"
)

// downEngine is an Engine whose engine never answers.
type downEngine struct{ docker.Engine }

func (downEngine) Version(context.Context) (docker.EngineVersion, error) {
	return docker.EngineVersion{}, fmt.Errorf("%w: connection refused", docker.ErrNoEngine)
}
func (downEngine) Close() error { return nil }

func TestCleanArguments(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		code    int
		wantOut string
		wantErr string
	}{
		{"help", []string{"clean", "--help"}, 0, docker.LabelManaged + "=true", ""},
		{"images with run", []string{"clean", "--images", "--run", "x"}, 254, "", "--images"},
		{"argument", []string{"clean", "everything"}, 254, "", "unexpected argument"},
		{"bad flag", []string{"clean", "--all"}, 254, "", "unknown flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, c.args...)
			if code != c.code || !strings.Contains(out, c.wantOut) || !strings.Contains(errOut, c.wantErr) {
				t.Fatalf("exit %d (want %d)\nstdout (want %q):\n%s\nstderr (want %q):\n%s", code, c.code, c.wantOut, out, c.wantErr, errOut)
			}
		})
	}
}

func TestCleanWithoutEngine(t *testing.T) {
	old := newCleanEngine
	newCleanEngine = func() (docker.Engine, error) { return downEngine{}, nil }
	t.Cleanup(func() { newCleanEngine = old })
	code, _, errOut := runCLI(t, "clean")
	if code != 255 || !strings.Contains(errOut, "no engine reachable") || !strings.Contains(errOut, "DOCKER_HOST") {
		t.Fatalf("clean without an engine: exit %d, stderr %q; want 255 naming the engine", code, errOut)
	}
}

// dockerEngine connects to the engine, or skips (in CI: fails, as CI has
// one).
func dockerEngine(t *testing.T) docker.Engine {
	t.Helper()
	eng, err := docker.NewEngine()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = eng.Version(ctx)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and CI machines have a Docker engine, but: %v", err)
		}
		t.Skipf("skipping: no Docker engine reachable (%v)", err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// tinyImage builds an image holding one file, enough to create (not run)
// containers from, and removes it when t ends.
func tinyImage(t *testing.T, eng docker.Engine, tag string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string]string{"Dockerfile": "FROM scratch\nCOPY x /x\n", "x": "x"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	ctx := context.Background()
	if err := eng.BuildImage(ctx, &buf, tag, map[string]string{"garantia.test": "clean"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.RemoveImage(context.Background(), tag) })
}

// deadHarness is a LabelHarness value of a process that has exited.
func deadHarness(t *testing.T) string {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	host, _ := os.Hostname()
	return host + "/" + strconv.Itoa(cmd.Process.Pid) + "/1"
}

// TestCleanRemovesLeftovers: what a crashed run left (its harness is
// dead) is removed and listed; what a live harness owns is kept unless
// --force. Each case uses a run id of its own, so that the test touches
// nothing of other tests running at the same time.
func TestCleanRemovesLeftovers(t *testing.T) {
	eng := dockerEngine(t)
	ctx := context.Background()
	id := fmt.Sprintf("clean-test-%d", os.Getpid())
	tag := "garantia-clean-test:" + strconv.Itoa(os.Getpid())
	tinyImage(t, eng, tag)

	plant := func(run, harness string) {
		labels := map[string]string{docker.LabelManaged: "true", docker.LabelRun: run, docker.LabelHarness: harness, docker.LabelDir: "/store/" + run}
		name := "garantia-" + run
		if _, err := eng.CreateNetwork(ctx, docker.NetworkSpec{Name: name, Labels: labels, Internal: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.CreateContainer(ctx, docker.ContainerSpec{Name: name + "-n1", Image: tag, Cmd: []string{"/x"}, Labels: labels, Network: name}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = docker.Clean(context.Background(), eng, docker.CleanOptions{Run: run, Force: true}) })
	}
	dead, live := id+"-dead", id+"-live"
	plant(dead, deadHarness(t))
	plant(live, docker.HarnessLabel())

	left := func(run string) int {
		cs, _ := eng.ListContainers(ctx, map[string]string{docker.LabelRun: run})
		ns, _ := eng.ListNetworks(ctx, map[string]string{docker.LabelRun: run})
		return len(cs) + len(ns)
	}

	code, out, errOut := runCLI(t, "clean", "--run", dead, "--dry-run")
	if code != 0 || !strings.Contains(out, "would remove container garantia-"+dead+"-n1 (run "+dead+", /store/"+dead+")") || left(dead) != 2 {
		t.Fatalf("dry run: exit %d, %d things left\nstdout:\n%s\nstderr:\n%s", code, left(dead), out, errOut)
	}
	code, out, errOut = runCLI(t, "clean", "--run", dead)
	if code != 0 || !strings.Contains(out, "removed container garantia-"+dead+"-n1") ||
		!strings.Contains(out, "removed network garantia-"+dead) || !strings.Contains(out, "removed 1 container(s), 1 network(s)") {
		t.Fatalf("clean of a dead run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if n := left(dead); n != 0 {
		t.Errorf("%d things of the dead run left", n)
	}

	code, out, _ = runCLI(t, "clean", "--run", live)
	if code != 0 || !strings.Contains(out, "kept container garantia-"+live+"-n1") || !strings.Contains(out, "--force") || left(live) != 2 {
		t.Fatalf("clean of a live run: exit %d, %d things left\nstdout:\n%s", code, left(live), out)
	}
	code, out, _ = runCLI(t, "clean", "--run", live, "--force")
	if code != 0 || left(live) != 0 {
		t.Fatalf("forced clean of a live run: exit %d, %d things left\nstdout:\n%s", code, left(live), out)
	}
}

// TestCleanRemovesStaleMounts: a power-loss mount whose serving process
// is gone (here: mounted by hand with a FUSE connection that nobody
// serves, naming a process id that does not exist) is unmounted by
// garantia clean and listed by --dry-run.
func TestCleanRemovesStaleMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting by hand needs root")
	}
	old := newCleanEngine
	newCleanEngine = func() (docker.Engine, error) { return downEngine{}, nil }
	t.Cleanup(func() { newCleanEngine = old })
	dir := t.TempDir()
	fd, err := syscall.Open("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no FUSE here: %v", err)
	}
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := syscall.Mount("garantia-powerfs:pid=2147483646:start=1:cleantest", dir, "fuse.garantia-powerfs", syscall.MS_NOSUID|syscall.MS_NODEV, data); err != nil {
		syscall.Close(fd)
		t.Skipf("cannot mount FUSE here: %v", err)
	}
	syscall.Close(fd) // the connection dies: the mount is stale, as a killed harness leaves it
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })

	code, out, _ := runCLI(t, "clean", "--dry-run")
	if !strings.Contains(out, "would remove powerfs mount "+dir) || !strings.Contains(out, `label "cleantest"`) {
		t.Fatalf("clean --dry-run (exit %d) does not list the stale mount %s:\n%s", code, dir, out)
	}
	code, out, _ = runCLI(t, "clean")
	if !strings.Contains(out, "removed powerfs mount "+dir) {
		t.Fatalf("clean (exit %d) does not remove the stale mount %s:\n%s", code, dir, out)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), " "+dir+" ") {
		t.Fatalf("%s is still mounted after garantia clean", dir)
	}
}

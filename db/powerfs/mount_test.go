package powerfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/garantia/garantia/db/powerfs"
	"github.com/garantia/garantia/db/powerfs/powerfstest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/garantia/garantia/db/local/buildtest"
	"github.com/garantia/garantia/internal/atomicfile"
)

func syncDirT(t testing.TB, dir string) {
	t.Helper()
	if err := atomicfile.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
}

// bboltHelperEnv makes the test binary a bbolt client of a file under the
// mount: "write PATH" commits 2000 keys with fdatasync and 500 more with
// NoSync, "count PATH" prints how many keys it reads back (through mmap)
// and runs bbolt's consistency check. bbolt runs in a process of its own
// because this process serves the mount: a page fault on the mount's
// mmap, taken by a goroutine of the serving process, cannot be preempted,
// and a garbage collection waiting on it would stop the server (the
// broker's controller, too, runs bbolt in the broker process, never in
// the harness).
const bboltHelperEnv = "GARANTIA_POWERFS_BBOLT_HELPER"

func bboltHelper(spec string) error {
	op, path, _ := strings.Cut(spec, " ")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("bbolt.Open through the mount: %w", err)
	}
	defer db.Close()
	switch op {
	case "write":
		if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil { // bbolt does not make its file's folder entry durable
			return err
		}
		put := func(from, to int) error {
			return db.Update(func(tx *bbolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("logs"))
				if err != nil {
					return err
				}
				for i := from; i < to; i++ {
					if err := b.Put(fmt.Appendf(nil, "%08d", i), bytes.Repeat([]byte{byte(i)}, 100+i%900)); err != nil {
						return err
					}
				}
				return nil
			})
		}
		for i := range 20 {
			if err := put(i*100, (i+1)*100); err != nil { // grows the file and remaps it several times
				return err
			}
		}
		db.NoSync = true
		if err := put(2000, 2500); err != nil {
			return err
		}
	}
	n := 0
	err = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("bbolt's consistency check: %w", err)
		}
		b := tx.Bucket([]byte("logs"))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var i int
			fmt.Sscanf(string(k), "%d", &i)
			if len(v) != 100+i%900 || v[0] != byte(i) {
				return fmt.Errorf("key %s holds %d bytes starting %d", k, len(v), v[0])
			}
			n++
			return nil
		})
	})
	if err != nil {
		return err
	}
	fmt.Printf("keys %d\n", n)
	return nil
}

// TestBboltThroughTheMount: bbolt (the Raft log store's engine) works
// through the mount (it reads through mmap and syncs with fdatasync), a
// committed transaction survives a power cut, and a transaction committed
// with NoSync does not.
func TestBboltThroughTheMount(t *testing.T) {
	f := powerfstest.Mount(t, powerfs.Options{})
	path := filepath.Join(f.Dir(), "raft.db")
	run := func(op string) int {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), bboltHelperEnv+"="+op+" "+path)
		out, err := cmd.CombinedOutput()
		var n int
		if _, serr := fmt.Sscanf(string(out), "keys %d", &n); err != nil || serr != nil {
			t.Fatalf("bbolt %s through the mount: %v\n%s", op, err, out)
		}
		return n
	}
	if got := run("write"); got != 2500 {
		t.Fatalf("read %d keys back before the cut, want 2500", got)
	}
	if _, err := f.PowerCut(); err != nil {
		t.Fatal(err)
	}
	if got := run("count"); got != 2000 {
		t.Fatalf("after the power cut %d keys, want the 2000 committed with fdatasync (not the 500 of the NoSync transaction)", got)
	}
}

// TestAtomicReplaceThroughTheMount: os.CreateTemp + rename + folder fsync
// (internal/atomicfile) survives a cut; the same without the folder fsync
// leaves the old contents; a file created and synced whose folder was
// never synced is gone.
func TestAtomicReplaceThroughTheMount(t *testing.T) {
	for _, mode := range []powerfs.Mode{powerfs.Strict, powerfs.Ordered} {
		t.Run(mode.String(), func(t *testing.T) {
			f := powerfstest.Mount(t, powerfs.Options{Mode: mode})
			d := f.Dir()
			if err := atomicfile.WriteFile(filepath.Join(d, "ckpt"), []byte("v1"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := atomicfile.WriteFile(filepath.Join(d, "ckpt"), []byte("v2"), 0o644); err != nil {
				t.Fatal(err)
			}
			// v3 without the folder fsync: temp file synced, renamed, and
			// nothing more.
			tmp, err := os.CreateTemp(d, "ckpt.*.tmp")
			if err != nil {
				t.Fatal(err)
			}
			tmp.WriteString("v3")
			tmp.Sync()
			tmp.Close()
			if err := os.Rename(tmp.Name(), filepath.Join(d, "ckpt")); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(d, "ckpt")); string(b) != "v3" {
				t.Fatalf("before the cut ckpt holds %q, want v3", b)
			}
			// A file whose folder entry was never synced.
			if err := os.WriteFile(filepath.Join(d, "new"), []byte("data"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := f.PowerCut(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(d, "ckpt"))
			// In both modes: the temp file's fsync came before the rename
			// (in ordered mode it committed the journal, but the rename was
			// not in it yet).
			if err != nil || string(b) != "v2" {
				t.Fatalf("after the cut ckpt holds %q (%v), want v2", b, err)
			}
			_, err = os.Stat(filepath.Join(d, "new"))
			if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a file never synced nor its folder: stat after the cut = %v, want it gone", err)
			}
			// Ordered: the temp file's fsync committed its creation, so it
			// is back under its temporary name (what atomicfile's readers
			// clean up); strict: its folder was never synced after it.
			want := 1
			if mode == powerfs.Ordered {
				want = 2
			}
			if entries, _ := os.ReadDir(d); len(entries) != want {
				t.Fatalf("after the cut the folder holds %v, want %d entries", entries, want)
			}
		})
	}
}

// TestAppendAndFallocate: O_APPEND writes land at the end, fallocate
// grows the file, modes that are not modelled are refused, and a cut keeps
// only what was synced. (mmap reads are TestBboltThroughTheMount's: they
// must come from another process than the one serving the mount.)
func TestAppendAndFallocate(t *testing.T) {
	f := powerfstest.Mount(t, powerfs.Options{})
	p := filepath.Join(f.Dir(), "log")
	a, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		fmt.Fprintf(a, "line %03d\n", i)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	syncDirT(t, f.Dir())
	rw, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := rw.WriteAt([]byte("LINE"), 0); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b[:9]) != "LINE 000\n" {
		t.Fatalf("a read shows %q after a write, want the write", b[:9])
	}
	if err := unix.Fallocate(int(rw.Fd()), 0, 0, 8192); err != nil {
		t.Fatalf("fallocate: %v", err)
	}
	if fi, _ := rw.Stat(); fi.Size() != 8192 {
		t.Fatalf("size after fallocate %d, want 8192", fi.Size())
	}
	if err := unix.Fallocate(int(rw.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 10); err != syscall.EOPNOTSUPP {
		t.Fatalf("punching a hole: %v, want EOPNOTSUPP (not modelled)", err)
	}
	rw.Close()
	if _, err := f.PowerCut(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || !strings.HasPrefix(string(b), "line 000\n") || len(b) != 900 {
		t.Fatalf("after the cut the file holds %d bytes starting %q (%v), want the 900 synced bytes", len(b), b[:min(len(b), 9)], err)
	}
}

// TestTornWrite: with Torn, each sector of a file's last unsynced write
// survives whole or not at all, and nothing else unsynced survives. (The
// writeback cache is off: with it the kernel may send both writes as one.)
func TestTornWrite(t *testing.T) {
	f := powerfstest.Mount(t, powerfs.Options{Torn: true, Seed: 42, NoWritebackCache: true})
	p := filepath.Join(f.Dir(), "seg")
	durable := bytes.Repeat([]byte{'d'}, 3000)
	if err := os.WriteFile(p, durable, 0o644); err != nil {
		t.Fatal(err)
	}
	fh, _ := os.OpenFile(p, os.O_RDWR, 0)
	fh.Sync()
	fh.Close()
	syncDirT(t, f.Dir())
	kept, dropped := 0, 0
	for round := range 20 {
		fh, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fh.WriteAt(bytes.Repeat([]byte{'e'}, 700), 100) // earlier unsynced write: always lost
		last := bytes.Repeat([]byte{'n'}, 4000)
		fh.WriteAt(last, 2000) // the last one: sectors 2000-2048, 2048-2560, ..., 5632-6000
		fh.Close()
		if _, err := f.PowerCut(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b[:2000], durable[:2000]) {
			t.Fatalf("round %d: the bytes before the last write changed: %q", round, b[:2000])
		}
		for off := 2000; off < len(b); {
			end := min((off/512+1)*512, len(b))
			s := b[off:end]
			switch {
			case bytes.Count(s, []byte{'n'}) == len(s):
				kept++
			case bytes.Equal(s, wasDurable(durable, off, end)):
				dropped++
			default:
				t.Fatalf("round %d: sector at %d is neither the write nor what was durable: %q", round, off, s)
			}
			off = end
		}
		if len(b) < 3000 {
			t.Fatalf("round %d: the file shrank to %d bytes below its durable 3000", round, len(b))
		}
		// Put the durable state back for the next round.
		if err := os.WriteFile(p, durable, 0o644); err != nil {
			t.Fatal(err)
		}
		fh, _ = os.OpenFile(p, os.O_RDWR, 0)
		fh.Sync()
		fh.Close()
	}
	if kept == 0 || dropped == 0 {
		t.Fatalf("over 20 cuts %d sectors of the last write survived and %d did not; want both", kept, dropped)
	}
	t.Logf("20 torn cuts: %d sectors survived, %d lost", kept, dropped)
}

// wasDurable is what bytes [off, end) of a file whose durable contents
// are durable hold when none of a later write survived: the durable bytes,
// then zeros (a hole up to a surviving sector further on).
func wasDurable(durable []byte, off, end int) []byte {
	out := make([]byte, end-off)
	if off < len(durable) {
		copy(out, durable[off:min(end, len(durable))])
	}
	return out
}

// TestPowerCutRefusesOpenFiles: a cut while a file is open under the mount
// fails with ErrBusy and changes nothing.
func TestPowerCutRefusesOpenFiles(t *testing.T) {
	f := powerfstest.Mount(t, powerfs.Options{})
	p := filepath.Join(f.Dir(), "a")
	fh, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString("unsynced")
	_, err = f.PowerCut()
	if !errors.Is(err, powerfs.ErrBusy) {
		t.Fatalf("power cut with an open file: %v, want ErrBusy", err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "unsynced" {
		t.Fatalf("after a refused cut the file holds %q (%v)", b, err)
	}
	fh.Close()
	if _, err := f.PowerCut(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after the cut: %v, want the unsynced file gone", err)
	}
}

// TestProbe: this machine can mount (or the test skips, saying why).
func TestProbe(t *testing.T) {
	if err := powerfs.Probe(); err != nil {
		powerfstest.SkipOrFail(t, err)
	}
}

// mountHelperEnv makes the test binary a process that mounts and waits to
// be killed: TestRemoveStale's harness that dies without unmounting.
const mountHelperEnv = "GARANTIA_POWERFS_MOUNT_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(bboltHelperEnv); spec != "" {
		if err := bboltHelper(spec); err != nil {
			fmt.Println(err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	if spec := os.Getenv(mountHelperEnv); spec != "" {
		backing, mnt, _ := strings.Cut(spec, "|")
		if _, err := powerfs.Mount(backing, mnt, powerfs.Options{Label: "stale-test"}); err != nil {
			fmt.Println("mount failed:", err)
			os.Exit(3)
		}
		fmt.Println("mounted")
		select {}
	}
	buildtest.Main(m) // removes the broker binary TestBrokerPowerCuts built
}

// TestRemoveStale: a process that mounts and is killed leaves a mount
// that answers ENOTCONN; Mounts marks it stale, RemoveStale removes it
// and leaves this process's own live mount alone.
func TestRemoveStale(t *testing.T) {
	live := powerfstest.Mount(t, powerfs.Options{Label: "live"})
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "b"), filepath.Join(base, "m")
	os.Mkdir(backing, 0o755)
	os.Mkdir(mnt, 0o755)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), mountHelperEnv+"="+backing+"|"+mnt)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		syscall.Unmount(mnt, syscall.MNT_DETACH) // if the test failed before RemoveStale
	})
	buf := make([]byte, 64)
	k, _ := out.Read(buf)
	if !strings.Contains(string(buf[:k]), "mounted") {
		t.Fatalf("helper: %q", buf[:k])
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(mnt, "x")); !errors.Is(err, syscall.ENOTCONN) {
		t.Logf("the dead mount answers %v (ENOTCONN expected)", err)
	}
	all, err := powerfs.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	var sawLive, sawStale bool
	for _, m := range all {
		if m.Dir == live.Dir() {
			sawLive = true
			if m.Stale || m.Label != "live" {
				t.Fatalf("this process's mount reads as %v", m)
			}
		}
		if m.Dir == mnt {
			sawStale = true
			if !m.Stale || m.Label != "stale-test" {
				t.Fatalf("the killed helper's mount reads as %v", m)
			}
		}
	}
	if !sawLive || !sawStale {
		t.Fatalf("Mounts() = %v: want both %s and %s", all, live.Dir(), mnt)
	}
	removed, err := powerfs.RemoveStale()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range removed {
		if m.Dir == live.Dir() {
			t.Fatalf("RemoveStale removed the live mount %s", m.Dir)
		}
		found = found || m.Dir == mnt
	}
	if !found {
		t.Fatalf("RemoveStale removed %v, not %s", removed, mnt)
	}
	all, _ = powerfs.Mounts()
	for _, m := range all {
		if m.Dir == mnt {
			t.Fatalf("%s is still mounted after RemoveStale", mnt)
		}
	}
	if err := os.WriteFile(filepath.Join(live.Dir(), "still"), []byte("ok"), 0o644); err != nil {
		t.Fatalf("the live mount stopped working: %v", err)
	}
}

// TestMkdirAllSurvivesACut: folders made with atomicfile.MkdirAll (new
// levels synced into their parents) survive a cut with a synced file in
// them; os.MkdirAll's do not.
func TestMkdirAllSurvivesACut(t *testing.T) {
	f := powerfstest.Mount(t, powerfs.Options{})
	for _, durable := range []bool{true, false} {
		dir := filepath.Join(f.Dir(), fmt.Sprint(durable), "data", "controller")
		var err error
		if durable {
			err = atomicfile.MkdirAll(dir, 0o755)
		} else {
			err = os.MkdirAll(dir, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "state"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.PowerCut(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(f.Dir(), "true", "data", "controller", "state")); err != nil || string(b) != "x" {
		t.Fatalf("after atomicfile.MkdirAll and a cut: %q, %v; want the synced file", b, err)
	}
	if _, err := os.Stat(filepath.Join(f.Dir(), "false")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after os.MkdirAll and a cut: %v; want the folders gone (their entries were never synced)", err)
	}
}

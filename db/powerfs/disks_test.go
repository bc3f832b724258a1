package powerfs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/powerfs"
	"github.com/garantia/garantia/db/powerfs/powerfstest"
)

// mountDisks mounts Disks under a fresh run folder of n nodes, or skips
// the test on a machine that cannot mount.
func mountDisks(t *testing.T, n int) (*powerfs.Disks, []db.NodeFiles) {
	t.Helper()
	if err := powerfs.Probe(); err != nil {
		powerfstest.SkipOrFail(t, err)
	}
	nodes := db.LayOut(t.TempDir(), n)
	d, err := powerfs.MountDisks(nodes, powerfs.Options{Label: "test/" + t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Unmount() })
	return d, nodes
}

func writeFile(t *testing.T, path, data string, sync bool) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestDisks mounts the filesystem at the data folders of two nodes,
// cuts the power of one, and unmounts: each cut touches its own node
// only, reports what it undid, waits out a file still open until its
// context ends, and Unmount leaves each node's files in its data folder.
func TestDisks(t *testing.T) {
	d, nodes := mountDisks(t, 2)
	n1, n2 := nodes[0], nodes[1]
	for _, n := range nodes {
		// A durable folder entry, so that the file's name survives a cut.
		if err := os.WriteFile(filepath.Join(n.DataDir, "log"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		dir, err := os.Open(n.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		if err := dir.Sync(); err != nil {
			t.Fatal(err)
		}
		dir.Close()
		writeFile(t, filepath.Join(n.DataDir, "log"), "synced", true).Close()
		f, err := os.OpenFile(filepath.Join(n.DataDir, "log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(" and not"); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}

	// A file still open: the cut waits, then gives up with its context.
	open := writeFile(t, filepath.Join(n1.DataDir, "open"), "x", false)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := d.CutPower(ctx, n1.Node)
	cancel()
	if !errors.Is(err, powerfs.ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cut with a file open: %v, want ErrBusy after the context's end", err)
	}
	// Closed a moment later, as an exiting process's files are: the cut
	// waits for it.
	go func() {
		time.Sleep(100 * time.Millisecond)
		open.Close()
	}()
	loss, err := d.CutPower(context.Background(), n1.Node)
	if err != nil {
		t.Fatal(err)
	}
	// BytesLost is an estimate: the kernel's writeback cache may send the
	// page again, durable bytes and all, and those count too.
	if loss.FilesReverted != 1 || loss.BytesLost < int64(len(" and not")) || loss.EntriesUndone != 1 {
		t.Errorf("n1's cut undid %+v, want 1 file reverted by 8 bytes or more and the unsynced entry of \"open\"", loss)
	}
	for _, c := range []struct {
		n    db.NodeFiles
		want string
	}{{n1, "synced"}, {n2, "synced and not"}} {
		if b, err := os.ReadFile(filepath.Join(c.n.DataDir, "log")); err != nil || string(b) != c.want {
			t.Errorf("%s's log after n1's cut: %q (%v), want %q", c.n.Name, b, err, c.want)
		}
	}
	if _, err := d.CutPower(context.Background(), db.Node{ID: 9, Name: "n9"}); !errors.Is(err, db.ErrUnknownNode) {
		t.Errorf("cut of a node without a filesystem: %v, want ErrUnknownNode", err)
	}

	if err := d.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := d.Unmount(); err != nil {
		t.Errorf("a second Unmount: %v", err)
	}
	all, _ := powerfs.Mounts()
	for _, m := range all {
		if strings.HasPrefix(m.Dir, filepath.Dir(n1.DataDir)) || strings.HasPrefix(m.Dir, filepath.Dir(n2.DataDir)) {
			t.Errorf("still mounted: %s", m)
		}
	}
	for _, c := range []struct {
		n    db.NodeFiles
		want string
	}{{n1, "synced"}, {n2, "synced and not"}} {
		if b, err := os.ReadFile(filepath.Join(c.n.DataDir, "log")); err != nil || string(b) != c.want {
			t.Errorf("%s's log after Unmount: %q (%v), want %q in its data folder", c.n.Name, b, err, c.want)
		}
		if _, err := os.Stat(c.n.DataDir + powerfs.BackingSuffix); !os.IsNotExist(err) {
			t.Errorf("%s's backing folder remains (%v)", c.n.Name, err)
		}
		entries, _ := os.ReadDir(c.n.DataDir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".garantia") {
				t.Errorf("%s: the filesystem's own folder %s is left in the data folder", c.n.Name, e.Name())
			}
		}
	}
}

// TestDisksBusyUnmount: a node still running at Unmount (a file open)
// leaves its files in the backing folder, which the detached mount still
// serves, and says so.
func TestDisksBusyUnmount(t *testing.T) {
	d, nodes := mountDisks(t, 1)
	f := writeFile(t, filepath.Join(nodes[0].DataDir, "open"), "x", false)
	err := d.Unmount()
	if err == nil || !strings.Contains(err.Error(), "still in use") {
		t.Errorf("Unmount with a file open: %v, want an error saying the mount was in use", err)
	}
	if _, serr := os.Stat(filepath.Join(nodes[0].DataDir+powerfs.BackingSuffix, "open")); serr != nil {
		t.Errorf("the busy node's files are not in its backing folder: %v", serr)
	}
	f.Close()
}

// TestMountDisksRefusesAFullDataFolder: a mount over a data folder that
// holds files would hide them.
func TestMountDisksRefusesAFullDataFolder(t *testing.T) {
	nodes := db.LayOut(t.TempDir(), 2)
	if err := os.MkdirAll(nodes[1].DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nodes[1].DataDir, "old"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := powerfs.Probe(); err != nil {
		powerfstest.SkipOrFail(t, err)
	}
	_, err := powerfs.MountDisks(nodes, powerfs.Options{})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("MountDisks over a data folder with files: %v", err)
	}
	all, _ := powerfs.Mounts()
	for _, m := range all {
		if strings.HasPrefix(m.Dir, filepath.Dir(nodes[0].DataDir)) {
			t.Errorf("n1's mount was left after MountDisks failed at n2: %s", m)
		}
	}
}

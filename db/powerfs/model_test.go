package powerfs_test

import (
	"bytes"
	"fmt"
	"github.com/garantia/garantia/db/powerfs"
	"github.com/garantia/garantia/db/powerfs/powerfstest"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The model test drives a real mount with seeded random operations and
// checks it against tmodel, a second, deliberately plain statement of the
// rules (whole byte slices, whole maps; nothing shared with state.go):
// before a cut the mount must show everything written, after a cut exactly
// what the rules say was durable.

// tnode is a file or folder of the test model.
type tnode struct {
	id  int
	dir bool
	// files
	cur, dur    []byte
	sizeChanged bool    // since the file's last fsync
	pending     []int64 // ordered: journaled sizes since the file's last fsync
	// folders
	curE, durE map[string]*tnode
	// ordered: metadata changed since the last commit
	metaDirty bool
}

type tmodel struct {
	mode  powerfs.Mode
	root  *tnode
	nodes []*tnode
}

func newTModel(mode powerfs.Mode) *tmodel {
	m := &tmodel{mode: mode}
	m.root = m.newNode(true)
	return m
}

func (m *tmodel) newNode(dir bool) *tnode {
	n := &tnode{id: len(m.nodes), dir: dir}
	if dir {
		n.curE, n.durE = map[string]*tnode{}, map[string]*tnode{}
	}
	m.nodes = append(m.nodes, n)
	return n
}

// lookup finds a path ("a/b") in the current tree, with its parent.
func (m *tmodel) lookup(p string) (parent, n *tnode) {
	d := m.root
	parts := strings.Split(p, "/")
	for i, name := range parts {
		c := d.curE[name]
		if i == len(parts)-1 {
			return d, c
		}
		if c == nil || !c.dir {
			return nil, nil
		}
		d = c
	}
	return nil, nil
}

func (m *tmodel) dirty(ns ...*tnode) {
	for _, n := range ns {
		if n != nil {
			n.metaDirty = true
		}
	}
}

func (m *tmodel) commit() {
	for _, n := range m.nodes {
		if n.dir {
			n.durE = maps(n.curE)
		} else {
			for _, s := range n.pending {
				n.dur = resized(n.dur, s)
			}
			n.pending = nil
		}
		n.metaDirty = false
	}
}

func maps(e map[string]*tnode) map[string]*tnode {
	out := make(map[string]*tnode, len(e))
	for k, v := range e {
		out[k] = v
	}
	return out
}

func resized(b []byte, size int64) []byte {
	out := make([]byte, size)
	copy(out, b)
	return out
}

func (m *tmodel) write(n *tnode, off int64, data []byte) {
	if end := off + int64(len(data)); end > int64(len(n.cur)) {
		n.cur = resized(n.cur, end)
		n.sizeChanged = true
	}
	copy(n.cur[off:], data)
}

func (m *tmodel) truncate(n *tnode, size int64) {
	if size != int64(len(n.cur)) {
		n.sizeChanged = true
	}
	n.cur = resized(n.cur, size)
	if m.mode == powerfs.Ordered {
		n.pending = append(n.pending, size)
		n.metaDirty = true
	}
}

func (m *tmodel) fsyncFile(n *tnode) {
	commit := n.metaDirty || n.sizeChanged
	n.dur = slices.Clone(n.cur)
	n.sizeChanged = false
	n.pending = nil
	if m.mode == powerfs.Ordered && commit {
		m.commit()
	}
}

func (m *tmodel) fsyncDir(d *tnode) {
	if m.mode == powerfs.Ordered {
		if d.metaDirty {
			m.commit()
		}
		return
	}
	d.durE = maps(d.curE)
}

// cut turns the durable tree into the current one. Folders are never
// renamed between folders here, so each has one durable parent at most.
func (m *tmodel) cut() {
	seen := map[*tnode]bool{m.root: true}
	var walk func(d *tnode)
	walk = func(d *tnode) {
		d.curE = maps(d.durE)
		for _, c := range d.durE {
			if seen[c] {
				continue
			}
			seen[c] = true
			if c.dir {
				walk(c)
			} else {
				c.cur = slices.Clone(c.dur)
				c.sizeChanged, c.pending = false, nil
			}
		}
	}
	walk(m.root)
	for _, n := range m.nodes {
		n.metaDirty = false
	}
}

// entry is one name of a tree as the test sees it.
type entry struct {
	dir  bool
	data []byte
	node int // model node id, or the inode number on the mount
}

func (m *tmodel) tree() map[string]entry {
	out := map[string]entry{}
	var walk func(d *tnode, p string)
	walk = func(d *tnode, p string) {
		for name, c := range d.curE {
			cp := path.Join(p, name)
			out[cp] = entry{dir: c.dir, data: c.cur, node: c.id}
			if c.dir {
				walk(c, cp)
			}
		}
	}
	walk(m.root, "")
	return out
}

func mountTree(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		e := entry{dir: d.IsDir(), node: int(st.Ino)}
		if !d.IsDir() {
			if e.data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("walking the mount: %v", err)
	}
	return out
}

// sameTree compares the mount with the model: same names, kinds and
// contents, and names of one model node are names of one inode.
func sameTree(got, want map[string]entry) error {
	var names []string
	for p := range want {
		names = append(names, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			names = append(names, p)
		}
	}
	sort.Strings(names)
	inoOf := map[int]int{}
	for _, p := range names {
		g, gok := got[p]
		w, wok := want[p]
		switch {
		case !gok:
			return fmt.Errorf("%s is missing (want %s)", p, describe(w))
		case !wok:
			return fmt.Errorf("%s exists (%s) but should not", p, describe(g))
		case g.dir != w.dir:
			return fmt.Errorf("%s is %s, want %s", p, describe(g), describe(w))
		case !bytes.Equal(g.data, w.data):
			return fmt.Errorf("%s holds %s, want %s", p, describe(g), describe(w))
		}
		if ino, ok := inoOf[w.node]; ok && ino != g.node && !w.dir {
			return fmt.Errorf("%s should be another name of the same file as an earlier name, but has inode %d, not %d", p, g.node, ino)
		}
		inoOf[w.node] = g.node
	}
	return nil
}

func describe(e entry) string {
	if e.dir {
		return "a folder"
	}
	if len(e.data) <= 48 {
		return fmt.Sprintf("%d bytes %q", len(e.data), e.data)
	}
	return fmt.Sprintf("%d bytes %q...", len(e.data), e.data[:48])
}

// modelRun drives one seeded sequence of operations and cuts.
type modelRun struct {
	t   *testing.T
	f   *powerfs.FS
	m   *tmodel
	r   *rand.Rand
	log []string
}

var (
	testDirs  = []string{"d1", "d2", "d1/e"}
	testFiles = []string{"f0", "f1", "f2"}
)

// somePath picks a file path: in the root or one of the folders.
func (x *modelRun) somePath() string {
	name := testFiles[x.r.IntN(len(testFiles))]
	if x.r.IntN(3) == 0 {
		return name
	}
	return testDirs[x.r.IntN(len(testDirs))] + "/" + name
}

func (x *modelRun) existingFile() (string, *tnode) {
	var files []string
	for p, e := range x.m.tree() {
		if !e.dir {
			files = append(files, p)
		}
	}
	if len(files) == 0 {
		return "", nil
	}
	sort.Strings(files)
	p := files[x.r.IntN(len(files))]
	_, n := x.m.lookup(p)
	return p, n
}

func (x *modelRun) abs(p string) string { return filepath.Join(x.f.Dir(), p) }

func (x *modelRun) do(format string, args ...any) {
	x.log = append(x.log, fmt.Sprintf(format, args...))
}

func (x *modelRun) fail(format string, args ...any) {
	x.t.Helper()
	tail := x.log
	if len(tail) > 40 {
		tail = tail[len(tail)-40:]
	}
	x.t.Fatalf("%s\nlast operations:\n  %s", fmt.Sprintf(format, args...), strings.Join(tail, "\n  "))
}

func (x *modelRun) check(when string) {
	x.t.Helper()
	if err := sameTree(mountTree(x.t, x.f.Dir()), x.m.tree()); err != nil {
		x.fail("%s: %v", when, err)
	}
}

// step does one random operation on the mount and the model alike. An
// operation the model says fails (a missing parent, say) must fail on the
// mount too, and then changes nothing.
func (x *modelRun) step() {
	r := x.r
	switch op := r.IntN(100); {
	case op < 25: // write, through a fresh descriptor, maybe appending
		p, n := x.existingFile()
		if n == nil {
			return
		}
		data := make([]byte, 1+r.IntN(3000))
		for i := range data {
			data[i] = byte('a' + r.IntN(26))
		}
		appendMode := r.IntN(4) == 0
		off := int64(r.IntN(len(n.cur) + 2000))
		flags := os.O_WRONLY
		if appendMode {
			flags |= os.O_APPEND
			off = int64(len(n.cur))
		}
		x.do("write %s at %d, %d bytes (append %v)", p, off, len(data), appendMode)
		fh, err := os.OpenFile(x.abs(p), flags, 0)
		if err != nil {
			x.fail("open %s: %v", p, err)
		}
		if appendMode {
			_, err = fh.Write(data)
		} else {
			_, err = fh.WriteAt(data, off)
		}
		fh.Close()
		if err != nil {
			x.fail("write %s: %v", p, err)
		}
		x.m.write(n, off, data)
	case op < 37: // fsync or fdatasync a file
		p, n := x.existingFile()
		if n == nil {
			return
		}
		data := r.IntN(2) == 0
		x.do("fsync %s (datasync %v)", p, data)
		fh, err := os.OpenFile(x.abs(p), os.O_RDONLY, 0)
		if err != nil {
			x.fail("open %s: %v", p, err)
		}
		if data {
			err = unix.Fdatasync(int(fh.Fd()))
		} else {
			err = fh.Sync()
		}
		fh.Close()
		if err != nil {
			x.fail("fsync %s: %v", p, err)
		}
		x.m.fsyncFile(n)
	case op < 49: // fsync a folder
		d := ""
		if i := r.IntN(len(testDirs) + 1); i < len(testDirs) {
			d = testDirs[i]
		}
		var dn *tnode
		if d == "" {
			dn = x.m.root
		} else if _, dn = x.m.lookup(d); dn == nil || !dn.dir {
			return
		}
		x.do("fsync folder %q", d)
		fh, err := os.Open(x.abs(d))
		if err != nil {
			x.fail("open folder %s: %v", d, err)
		}
		err = fh.Sync()
		fh.Close()
		if err != nil {
			x.fail("fsync folder %s: %v", d, err)
		}
		x.m.fsyncDir(dn)
	case op < 58: // create, maybe with data
		p := x.somePath()
		parent, n := x.m.lookup(p)
		x.do("create %s", p)
		fh, err := os.OpenFile(x.abs(p), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if parent == nil || n != nil {
			if err == nil {
				x.fail("create %s succeeded; the model says it exists or has no folder", p)
			}
			return
		}
		if err != nil {
			x.fail("create %s: %v", p, err)
		}
		c := x.m.newNode(false)
		parent.curE[path.Base(p)] = c
		x.m.dirty(parent, c)
		if r.IntN(2) == 0 {
			data := []byte(strings.Repeat(strconv.Itoa(c.id), 1+r.IntN(50)))
			if _, err := fh.Write(data); err != nil {
				x.fail("write %s: %v", p, err)
			}
			x.m.write(c, 0, data)
		}
		fh.Close()
	case op < 68: // rename a file (maybe over another, maybe across folders)
		from, n := x.existingFile()
		if n == nil {
			return
		}
		to := x.somePath()
		fp, _ := x.m.lookup(from)
		tp, tn := x.m.lookup(to)
		x.do("rename %s -> %s", from, to)
		err := os.Rename(x.abs(from), x.abs(to))
		if tp == nil || (tn != nil && tn.dir) {
			if err == nil {
				x.fail("rename %s -> %s succeeded; the model says it cannot", from, to)
			}
			return
		}
		if err != nil {
			x.fail("rename %s -> %s: %v", from, to, err)
		}
		if tn == n {
			return
		}
		delete(fp.curE, path.Base(from))
		tp.curE[path.Base(to)] = n
		x.m.dirty(fp, tp, n, tn)
	case op < 75: // remove a file
		p, n := x.existingFile()
		if n == nil {
			return
		}
		parent, _ := x.m.lookup(p)
		x.do("remove %s", p)
		if err := os.Remove(x.abs(p)); err != nil {
			x.fail("remove %s: %v", p, err)
		}
		delete(parent.curE, path.Base(p))
		x.m.dirty(parent, n)
	case op < 82: // truncate
		p, n := x.existingFile()
		if n == nil {
			return
		}
		size := int64(r.IntN(len(n.cur) + 1000))
		x.do("truncate %s to %d", p, size)
		if err := os.Truncate(x.abs(p), size); err != nil {
			x.fail("truncate %s: %v", p, err)
		}
		x.m.truncate(n, size)
	case op < 85: // hard link
		from, n := x.existingFile()
		if n == nil {
			return
		}
		to := x.somePath()
		tp, tn := x.m.lookup(to)
		x.do("link %s -> %s", from, to)
		err := os.Link(x.abs(from), x.abs(to))
		if tp == nil || tn != nil {
			if err == nil {
				x.fail("link %s -> %s succeeded; the model says it cannot", from, to)
			}
			return
		}
		if err != nil {
			x.fail("link %s -> %s: %v", from, to, err)
		}
		tp.curE[path.Base(to)] = n
		x.m.dirty(tp, n)
	case op < 90: // mkdir
		d := testDirs[r.IntN(len(testDirs))]
		parent, n := x.m.lookup(d)
		x.do("mkdir %s", d)
		err := os.Mkdir(x.abs(d), 0o755)
		if parent == nil || n != nil {
			if err == nil {
				x.fail("mkdir %s succeeded; the model says it cannot", d)
			}
			return
		}
		if err != nil {
			x.fail("mkdir %s: %v", d, err)
		}
		c := x.m.newNode(true)
		parent.curE[path.Base(d)] = c
		x.m.dirty(parent, c)
	case op < 93: // rmdir, emptying the folder first
		d := testDirs[r.IntN(len(testDirs))]
		parent, n := x.m.lookup(d)
		if n == nil || !n.dir {
			return
		}
		for _, name := range sortedKeys(n.curE) {
			c := n.curE[name]
			x.do("remove %s/%s", d, name)
			var err error
			if c.dir {
				err = os.RemoveAll(x.abs(d + "/" + name))
				for _, cc := range c.curE { // RemoveAll empties it first
					x.m.dirty(cc)
				}
				if len(c.curE) > 0 {
					x.m.dirty(c)
					c.curE = map[string]*tnode{}
				}
			} else {
				err = os.Remove(x.abs(d + "/" + name))
			}
			if err != nil {
				x.fail("remove %s/%s: %v", d, name, err)
			}
			delete(n.curE, name)
			x.m.dirty(n, c)
		}
		x.do("rmdir %s", d)
		if err := os.Remove(x.abs(d)); err != nil {
			x.fail("rmdir %s: %v", d, err)
		}
		delete(parent.curE, path.Base(d))
		x.m.dirty(parent, n)
	case op < 96: // rename a folder within its parent, and back
		d := testDirs[r.IntN(len(testDirs))]
		parent, n := x.m.lookup(d)
		if n == nil || !n.dir {
			return
		}
		to := d + "-moved"
		if _, t := x.m.lookup(to); t != nil {
			return
		}
		x.do("rename folder %s -> %s", d, to)
		if err := os.Rename(x.abs(d), x.abs(to)); err != nil {
			x.fail("rename %s: %v", d, err)
		}
		delete(parent.curE, path.Base(d))
		parent.curE[path.Base(to)] = n
		x.m.dirty(parent, n)
		if r.IntN(2) == 0 {
			x.do("rename folder %s -> %s", to, d)
			if err := os.Rename(x.abs(to), x.abs(d)); err != nil {
				x.fail("rename %s: %v", to, err)
			}
			delete(parent.curE, path.Base(to))
			parent.curE[path.Base(d)] = n
			x.m.dirty(parent, n)
		}
	default: // check the page-cache view
		x.check("before a cut, the mount must show everything written")
	}
}

func sortedKeys(m map[string]*tnode) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestModel runs seeded sequences of writes, fsyncs, fdatasyncs, creates,
// renames, removes, truncates, links, mkdirs, rmdirs, folder fsyncs and
// power cuts through a real mount, in both modes, and after every cut
// compares the whole tree with the model. POWERFS_SEED=N runs one seed.
func TestModel(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	if s := os.Getenv("POWERFS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("POWERFS_SEED=%q: %v", s, err)
		}
		seeds = []uint64{v}
	}
	for _, mode := range []powerfs.Mode{powerfs.Strict, powerfs.Ordered} {
		for _, seed := range seeds {
			// Half the seeds without the writeback cache, so both ways
			// writes reach the model are checked.
			noCache := seed%2 == 0
			t.Run(fmt.Sprintf("%s/seed=%d/writeback=%v", mode, seed, !noCache), func(t *testing.T) {
				f := powerfstest.Mount(t, powerfs.Options{Mode: mode, NoWritebackCache: noCache})
				x := &modelRun{t: t, f: f, m: newTModel(mode), r: rand.New(rand.NewPCG(seed, 7))}
				var lost, undone int
				for cut := range 12 {
					for range 40 {
						x.step()
					}
					x.check("before a cut, the mount must show everything written")
					rep, err := f.PowerCut()
					if err != nil {
						x.fail("power cut %d: %v", cut, err)
					}
					x.do("POWER CUT %d: %+v", cut, rep)
					x.m.cut()
					x.check(fmt.Sprintf("after power cut %d (seed %d, rerun with POWERFS_SEED=%d), the mount must hold exactly what was durable", cut, seed, seed))
					lost += int(rep.BytesLost)
					undone += rep.EntriesUndone
				}
				if lost == 0 && undone == 0 {
					t.Errorf("12 cuts lost %d bytes and undid %d entries: the sequence does not exercise the cut", lost, undone)
				}
				t.Logf("12 cuts: %d unsynced bytes lost, %d entries undone", lost, undone)
			})
		}
	}
}

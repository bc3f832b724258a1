package powerfs

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// hiddenDir is the folder in the backing root where the filesystem keeps
// the files that the current tree no longer names but the durable one
// still does (and, during a power cut, every file while the tree is
// rebuilt). The mount never shows it.
const hiddenDir = ".garantia-powerfs"

// sectorBytes is the unit a torn write survives in: each sector of the
// last unsynced write survives whole or not at all, independently, as on a
// disk that writes sectors atomically but in any order.
const sectorBytes = 512

type kind uint8

const (
	kindFile kind = iota
	kindDir
	kindSymlink
)

func (k kind) mode() uint32 {
	switch k {
	case kindDir:
		return syscall.S_IFDIR
	case kindSymlink:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

// extent is a stretch of a file's durable contents that the backing file
// no longer holds: the bytes (or, with data nil, n zero bytes) a power cut
// writes back.
type extent struct {
	off, n int64
	data   []byte
}

func (e extent) end() int64 { return e.off + e.n }

// mnode is one file, folder or symbolic link of the model: what the
// current tree holds (the backing folder) and what would survive a power
// cut.
type mnode struct {
	id   uint64 // ours, never reused: names the node in hiddenDir and is its FUSE generation
	ino  uint64 // the backing inode number while the backing object lives
	kind kind
	perm uint32 // permission bits, for folders rebuilt after a cut

	// Guarded by state.mu.
	curRefs   int               // names in the current tree
	durRefs   int               // names in durable folder entries (of live folders)
	inGrave   bool              // the backing object lives in hiddenDir under id
	cur, dur  map[string]*mnode // folders: entries now, entries as last made durable
	metaDirty bool              // ordered mode: metadata changed since the last commit

	// Guarded by dmu: the file's data.
	dmu         sync.Mutex
	dead        bool     // neither tree names it: its data no longer matters
	curSize     int64    // the backing file's size
	durSize     int64    // the size a power cut leaves
	undo        []extent // durable bytes the backing file lost, sorted, disjoint, inside [0, durSize)
	undoBytes   int64
	sizeChanged bool    // the size changed since the last fsync of the file
	pendingSize []int64 // ordered mode: sizes set by truncate or fallocate since the last fsync, journaled at the next commit
	last        *extent // the last write since the last fsync, if no truncation came after it (for torn writes)
}

// state is the model of one mount: every node, the rules, and the counts.
type state struct {
	backing string
	opts    Options

	mu    sync.Mutex
	nodes map[uint64]*mnode // by backing inode number
	root  *mnode
	dirty map[*mnode]struct{} // ordered mode: nodes with metaDirty set
	next  uint64

	undoBytes int64 // over every node; bounded by Options.MaxUndoBytes (guarded by undoMu)
	undoMu    sync.Mutex
}

func (s *state) grave() string { return filepath.Join(s.backing, hiddenDir) }

func (s *state) gravePath(n *mnode) string {
	return filepath.Join(s.grave(), strconv.FormatUint(n.id, 10))
}

// newState scans the backing folder: everything in it is durable, as on a
// disk just mounted. A hiddenDir left by a harness that died is removed
// first (its files were unnamed in the current tree).
func newState(backing string, opts Options, firstID uint64) (*state, error) {
	s := &state{backing: backing, opts: opts, nodes: map[uint64]*mnode{}, dirty: map[*mnode]struct{}{}, next: firstID}
	if err := os.RemoveAll(s.grave()); err != nil {
		return nil, fmt.Errorf("powerfs: removing leftovers in %s: %w", s.grave(), err)
	}
	if err := os.Mkdir(s.grave(), 0o700); err != nil {
		return nil, fmt.Errorf("powerfs: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("powerfs: backing folder %s: %w", backing, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, fmt.Errorf("powerfs: backing folder %s is not a folder", backing)
	}
	s.root = s.newNode(&st)
	s.root.curRefs, s.root.durRefs = 1, 1 // the root is always there
	if err := s.scan(s.root, backing, true); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *state) scan(dir *mnode, path string, isRoot bool) error {
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("powerfs: scanning %s: %w", path, err)
	}
	for _, e := range entries {
		name := e.Name()
		if isRoot && name == hiddenDir {
			continue
		}
		p := filepath.Join(path, name)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return fmt.Errorf("powerfs: scanning %s: %w", p, err)
		}
		n := s.nodes[st.Ino]
		if n == nil {
			switch st.Mode & syscall.S_IFMT {
			case syscall.S_IFREG, syscall.S_IFDIR, syscall.S_IFLNK:
			default:
				return fmt.Errorf("powerfs: %s is neither a file, a folder nor a symbolic link; the filesystem keeps only those", p)
			}
			n = s.newNode(&st)
		}
		dir.cur[name], dir.dur[name] = n, n
		n.curRefs++
		n.durRefs++
		if n.kind == kindDir {
			if err := s.scan(n, p, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// newNode registers the node of a backing object just created or found.
// Callers hold mu (or own s alone).
func (s *state) newNode(st *syscall.Stat_t) *mnode {
	s.next++
	n := &mnode{id: s.next, ino: st.Ino, perm: st.Mode & 0o7777, curSize: st.Size, durSize: st.Size}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		n.kind = kindDir
		n.cur, n.dur = map[string]*mnode{}, map[string]*mnode{}
	case syscall.S_IFLNK:
		n.kind = kindSymlink
	}
	s.nodes[n.ino] = n
	return n
}

// created records a new node named name in dir: durable only once dir's
// entries are (strict: an fsync of dir; ordered: the next commit), with
// its data as last synced (empty until then). Callers hold mu.
func (s *state) created(dir *mnode, name string, st *syscall.Stat_t) *mnode {
	n := s.newNode(st)
	n.durSize = 0 // nothing of a new file is durable until its fsync
	n.sizeChanged = st.Size != 0
	dir.cur[name] = n
	n.curRefs++
	s.touch(dir)
	s.touch(n)
	return n
}

// touch marks a node's metadata as changed since the last commit (ordered
// mode). Callers hold mu.
func (s *state) touch(n *mnode) {
	if s.opts.Mode != Ordered {
		return
	}
	n.metaDirty = true
	s.dirty[n] = struct{}{}
}

// unname removes the name from dir's current entries and the backing
// folder, or moves the backing object to hiddenDir instead when it held
// the object's last name and a durable entry still names it (a power cut
// must be able to bring it back). path is where the object is in the
// backing folder. Callers hold mu.
func (s *state) unname(dir *mnode, name string, path string) error {
	n := dir.cur[name]
	if n == nil {
		return nil
	}
	switch {
	case n.kind == kindDir:
		if err := syscall.Rmdir(path); err != nil {
			return err
		}
	case n.curRefs == 1 && n.durRefs > 0:
		if err := os.Rename(path, s.gravePath(n)); err != nil {
			return err
		}
		n.inGrave = true
	default:
		if err := syscall.Unlink(path); err != nil {
			return err
		}
	}
	delete(dir.cur, name)
	n.curRefs--
	s.touch(dir)
	s.touch(n)
	s.maybeRelease(n)
	return nil
}

// keepForCut moves the object named by path (about to be replaced by a
// rename) to hiddenDir when a durable entry still names it and path is its
// last current name. It reports whether it moved it. Callers hold mu.
func (s *state) keepForCut(n *mnode, path string) (bool, error) {
	if n.kind == kindDir || n.curRefs != 1 || n.durRefs == 0 {
		return false, nil
	}
	if err := os.Rename(path, s.gravePath(n)); err != nil {
		return false, err
	}
	n.inGrave = true
	return true, nil
}

// maybeRelease forgets a node neither tree names any more: its kept copy
// is removed, and a folder's durable entries no longer hold their nodes.
// Callers hold mu.
func (s *state) maybeRelease(n *mnode) {
	if n.curRefs > 0 || n.durRefs > 0 || n == s.root {
		return
	}
	if s.nodes[n.ino] == n {
		delete(s.nodes, n.ino)
	}
	delete(s.dirty, n)
	n.dmu.Lock()
	n.dead = true
	s.addUndo(-n.undoBytes)
	n.undo, n.undoBytes, n.last = nil, 0, nil
	n.dmu.Unlock()
	if n.inGrave {
		_ = os.Remove(s.gravePath(n)) // a leftover is removed with hiddenDir at the next cut or unmount
		n.inGrave = false
	}
	if n.kind == kindDir {
		old := n.dur
		n.dur = map[string]*mnode{}
		for _, c := range old {
			c.durRefs--
			s.maybeRelease(c)
		}
	}
}

// syncDirEntries makes a folder's current entries its durable ones.
// Callers hold mu.
func (s *state) syncDirEntries(d *mnode) {
	old := d.dur
	d.dur = make(map[string]*mnode, len(d.cur))
	for name, c := range d.cur {
		d.dur[name] = c
		c.durRefs++
	}
	for _, c := range old {
		c.durRefs--
		s.maybeRelease(c)
	}
}

// commit is ordered mode's journal commit: every namespace change so far
// (in every folder) becomes durable, and so do the sizes that truncations
// and fallocations set; written data stays as it was (delayed allocation:
// only the file's own fsync makes it durable). Callers hold mu.
func (s *state) commit() {
	for n := range s.dirty {
		if n.kind == kindDir {
			s.syncDirEntries(n)
		}
		n.metaDirty = false
	}
	for n := range s.dirty {
		if n.kind == kindFile {
			n.dmu.Lock()
			for _, size := range n.pendingSize {
				s.setDurableSize(n, size)
			}
			n.pendingSize = nil
			n.dmu.Unlock()
		}
	}
	clear(s.dirty)
}

// setDurableSize applies a journaled size change to the durable image:
// shorter drops the tail, longer adds zeros. Callers hold n.dmu.
func (s *state) setDurableSize(n *mnode, size int64) {
	switch {
	case size < n.durSize:
		kept := n.undo[:0]
		var freed int64
		for _, e := range n.undo {
			switch {
			case e.end() <= size:
				kept = append(kept, e)
			case e.off < size:
				cut := size - e.off
				freed += e.n - cut
				if e.data != nil {
					e.data = e.data[:cut]
				}
				e.n = cut
				kept = append(kept, e)
			default:
				freed += e.n
			}
		}
		n.undo = kept
		s.noteUndo(n, -freed)
	case size > n.durSize:
		n.undo = append(n.undo, extent{off: n.durSize, n: size - n.durSize}) // zeros; nothing is kept above durSize
	}
	n.durSize = size
}

func (s *state) noteUndo(n *mnode, delta int64) {
	n.undoBytes += delta
	s.addUndo(delta)
}

func (s *state) addUndo(delta int64) {
	s.undoMu.Lock()
	s.undoBytes += delta
	s.undoMu.Unlock()
}

// errUndoFull: keeping the durable bytes a write would overwrite would pass
// Options.MaxUndoBytes.
// The write fails with EIO.
var errUndoFull = fmt.Errorf("powerfs: the durable bytes kept for power cuts reached their limit (Options.MaxUndoBytes); fsync the files being overwritten: %w", syscall.EIO)

// preserve copies the durable bytes in [a, b) that the backing file still
// holds (those not kept yet) into undo, before a write or truncation
// overwrites them. Callers hold n.dmu.
func (s *state) preserve(n *mnode, fd int, a, b int64) error {
	b = min(b, n.durSize)
	if a >= b {
		return nil
	}
	var add []extent
	pos := a
	for _, e := range n.undo {
		if e.end() <= pos {
			continue
		}
		if e.off >= b {
			break
		}
		if e.off > pos {
			add = append(add, extent{off: pos, n: e.off - pos})
		}
		pos = max(pos, e.end())
	}
	if pos < b {
		add = append(add, extent{off: pos, n: b - pos})
	}
	if len(add) == 0 {
		return nil
	}
	var total int64
	for _, e := range add {
		total += e.n
	}
	s.undoMu.Lock()
	full := s.opts.MaxUndoBytes > 0 && s.undoBytes+total > s.opts.MaxUndoBytes
	s.undoMu.Unlock()
	if full {
		return errUndoFull
	}
	for i := range add {
		e := &add[i]
		e.data = make([]byte, e.n)
		if _, err := preadFull(fd, e.data, e.off); err != nil {
			return fmt.Errorf("powerfs: keeping %d durable bytes at %d: %w", e.n, e.off, err)
		}
	}
	n.undo = append(n.undo, add...)
	sort.Slice(n.undo, func(i, j int) bool { return n.undo[i].off < n.undo[j].off })
	s.noteUndo(n, total)
	return nil
}

func preadFull(fd int, b []byte, off int64) (int, error) {
	done := 0
	for done < len(b) {
		k, err := unix.Pread(fd, b[done:], off+int64(done))
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return done, err
		}
		if k == 0 {
			return done, fmt.Errorf("short read: %d of %d bytes: %w", done, len(b), syscall.EIO)
		}
		done += k
	}
	return done, nil
}

func pwriteFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		k, err := unix.Pwrite(fd, b, off)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return err
		}
		b, off = b[k:], off+int64(k)
	}
	return nil
}

// write writes data at off through fd, keeping first the durable bytes it
// overwrites.
func (s *state) write(n *mnode, fd int, data []byte, off int64) (int, error) {
	n.dmu.Lock()
	defer n.dmu.Unlock()
	if !n.dead {
		if err := s.preserve(n, fd, off, off+int64(len(data))); err != nil {
			return 0, err
		}
	}
	k, err := unix.Pwrite(fd, data, off)
	if k > 0 && !n.dead {
		if end := off + int64(k); end > n.curSize {
			n.curSize = end
			n.sizeChanged = true
		}
		n.last = &extent{off: off, n: int64(k)}
	}
	return k, err
}

// truncate sets the file's size through fd.
func (s *state) truncate(n *mnode, fd int, size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n.dmu.Lock()
	defer n.dmu.Unlock()
	if !n.dead {
		if err := s.preserve(n, fd, size, n.curSize); err != nil {
			return err
		}
	}
	if err := syscall.Ftruncate(fd, size); err != nil {
		return err
	}
	if n.dead {
		return nil
	}
	s.sized(n, size)
	return nil
}

// sized records a size set by truncate or fallocate. Callers hold mu and
// n.dmu.
func (s *state) sized(n *mnode, size int64) {
	if size != n.curSize {
		n.sizeChanged = true
	}
	n.curSize = size
	n.last = nil
	if s.opts.Mode == Ordered {
		n.pendingSize = append(n.pendingSize, size)
		s.touch(n)
	}
}

// allocate is fallocate: mode 0 (allocate, growing the size) and
// FALLOC_FL_KEEP_SIZE; neither changes a byte of data. Other modes
// (punching holes, zeroing, collapsing) are refused with EOPNOTSUPP, and
// callers fall back to writing.
func (s *state) allocate(n *mnode, fd int, off, length int64, mode uint32) error {
	if mode != 0 && mode != unix.FALLOC_FL_KEEP_SIZE {
		return syscall.EOPNOTSUPP
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n.dmu.Lock()
	defer n.dmu.Unlock()
	if err := unix.Fallocate(fd, mode, off, length); err != nil {
		return err
	}
	if mode == 0 && off+length > n.curSize && !n.dead {
		s.sized(n, off+length)
	}
	return nil
}

// fsyncFile makes the file's data durable: the backing file as it is now
// is what a cut leaves. In ordered mode it also commits the journal when
// the file has uncommitted metadata (it was created, linked, renamed or
// resized), as ext4's fsync commits the running transaction then.
func (s *state) fsyncFile(n *mnode, fd int, datasync bool) error {
	if !s.opts.NoBackingSync && fd >= 0 {
		var err error
		if datasync {
			err = unix.Fdatasync(fd)
		} else {
			err = unix.Fsync(fd)
		}
		if err != nil {
			return err
		}
	}
	if s.opts.Mode == Ordered {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	n.dmu.Lock()
	commit := n.metaDirty || n.sizeChanged
	if !n.dead {
		s.addUndo(-n.undoBytes)
		n.durSize = n.curSize
		n.undo, n.undoBytes, n.last = nil, 0, nil
		n.sizeChanged = false
		n.pendingSize = nil
	}
	n.dmu.Unlock()
	if s.opts.Mode == Ordered && commit {
		s.commit()
	}
	return nil
}

// fsyncDir makes a folder's entries durable (strict mode), or commits the
// journal if the folder changed since the last commit (ordered mode).
func (s *state) fsyncDir(d *mnode, path string) error {
	if !s.opts.NoBackingSync {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.curRefs == 0 && d != s.root {
		return nil // removed: its entries are all gone, and the cut keeps what it had
	}
	if s.opts.Mode == Ordered {
		if d.metaDirty {
			s.commit()
		}
		return nil
	}
	s.syncDirEntries(d)
	return nil
}

// CutReport says what a power cut undid.
type CutReport struct {
	// FilesReverted counts files whose contents went back to their last
	// fsync, BytesLost the unsynced bytes that were written and are gone
	// (an estimate: bytes written past the durable size plus bytes
	// restored under them).
	FilesReverted int   `json:"files_reverted"`
	BytesLost     int64 `json:"bytes_lost"`
	// EntriesUndone counts names that differ between the tree before the
	// cut and after it (created, removed or renamed and not yet durable).
	EntriesUndone int `json:"entries_undone"`
	// TornWrites counts files whose last unsynced write survived in part,
	// TornSectors the sectors of them that survived.
	TornWrites  int `json:"torn_writes"`
	TornSectors int `json:"torn_sectors"`
}

// cut rebuilds the backing folder as a power cut leaves it: every durable
// folder entry, every file's durable contents. The mount must be down (no
// request in flight). rng draws the torn writes, when they are on.
func (s *state) cut(rng *rand.Rand) (CutReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rep CutReport

	// Where each object lives now: its first name in the current tree, or
	// hiddenDir.
	where := map[*mnode]string{}
	var curDirs []string // folders of the current tree, parents first
	curNames := map[string]*mnode{}
	var walkCur func(d *mnode, path string)
	walkCur = func(d *mnode, path string) {
		for _, name := range sortedNames(d.cur) {
			c, p := d.cur[name], filepath.Join(path, name)
			curNames[p] = c
			if c.kind == kindDir {
				curDirs = append(curDirs, p)
				walkCur(c, p)
			} else if _, ok := where[c]; !ok {
				where[c] = p
			}
		}
	}
	walkCur(s.root, s.backing)
	for _, n := range s.nodes {
		if n.inGrave {
			where[n] = s.gravePath(n)
		}
	}

	// The durable tree: folders parents first, and (path, node) links. A
	// folder named twice (a rename between folders made durable in both)
	// is kept at its first name only.
	type link struct {
		path string
		n    *mnode
	}
	var durDirs []link
	var durLinks []link
	durFiles := map[*mnode]bool{}
	seen := map[*mnode]bool{s.root: true}
	var walkDur func(d *mnode, path string)
	walkDur = func(d *mnode, path string) {
		for _, name := range sortedNames(d.dur) {
			c, p := d.dur[name], filepath.Join(path, name)
			if old, ok := curNames[p]; !ok || old != c {
				rep.EntriesUndone++
			}
			delete(curNames, p)
			if c.kind == kindDir {
				if seen[c] {
					continue
				}
				seen[c] = true
				durDirs = append(durDirs, link{p, c})
				walkDur(c, p)
				continue
			}
			durLinks = append(durLinks, link{p, c})
			durFiles[c] = true
		}
	}
	walkDur(s.root, s.backing)
	rep.EntriesUndone += len(curNames) // names that exist now and will not

	// 1. Put back each durable file's contents.
	for _, l := range durLinks {
		n := l.n
		if !durFiles[n] || n.kind != kindFile {
			continue
		}
		durFiles[n] = false // once per file, however many names
		p, ok := where[n]
		if !ok {
			return rep, fmt.Errorf("powerfs: power cut: durable file %d has no backing object (a bug in the model)", n.id)
		}
		if err := s.revert(n, p, rng, &rep); err != nil {
			return rep, err
		}
	}
	// 2. Move every object out of the tree, into hiddenDir.
	for n, p := range where {
		if n.inGrave {
			continue
		}
		if err := os.Rename(p, s.gravePath(n)); err != nil {
			return rep, fmt.Errorf("powerfs: power cut: %w", err)
		}
	}
	var extra []string // further names of hard-linked files
	var collect func(d *mnode, path string)
	collect = func(d *mnode, path string) {
		for name, c := range d.cur {
			p := filepath.Join(path, name)
			if c.kind == kindDir {
				collect(c, p)
			} else if where[c] != p {
				extra = append(extra, p)
			}
		}
	}
	collect(s.root, s.backing)
	for _, p := range extra {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("powerfs: power cut: %w", err)
		}
	}
	// 3. Remove the current folders, children first (they hold only
	// folders now).
	for i := len(curDirs) - 1; i >= 0; i-- {
		if err := os.Remove(curDirs[i]); err != nil {
			return rep, fmt.Errorf("powerfs: power cut: %w", err)
		}
	}
	// 4. Build the durable tree.
	for _, l := range durDirs {
		if err := os.Mkdir(l.path, os.FileMode(l.n.perm&0o777)); err != nil {
			return rep, fmt.Errorf("powerfs: power cut: %w", err)
		}
		_ = os.Chmod(l.path, os.FileMode(l.n.perm&0o777)) // Mkdir applied the umask
	}
	for _, l := range durLinks {
		if err := os.Link(s.gravePath(l.n), l.path); err != nil {
			return rep, fmt.Errorf("powerfs: power cut: %w", err)
		}
	}
	// 5. Whatever is left in hiddenDir was not durable.
	if err := os.RemoveAll(s.grave()); err != nil {
		return rep, fmt.Errorf("powerfs: power cut: %w", err)
	}
	return rep, nil
}

// revert puts a file at path back to its durable contents, keeping part
// of its last unsynced write when torn writes are on. Callers hold mu.
func (s *state) revert(n *mnode, path string, rng *rand.Rand, rep *CutReport) error {
	n.dmu.Lock()
	defer n.dmu.Unlock()
	if len(n.undo) == 0 && n.curSize == n.durSize && n.last == nil {
		return nil // nothing unsynced
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("powerfs: power cut: %w", err)
	}
	defer f.Close()
	fd := int(f.Fd())
	type sector struct {
		off  int64
		data []byte
	}
	var torn []sector
	if s.opts.Torn && n.last != nil && rng != nil {
		w := *n.last
		for off := w.off; off < w.end() && off < n.curSize; {
			end := min((off/sectorBytes+1)*sectorBytes, w.end(), n.curSize)
			if rng.IntN(2) == 0 {
				b := make([]byte, end-off)
				if _, err := preadFull(fd, b, off); err != nil {
					return fmt.Errorf("powerfs: power cut: reading the torn write of %s: %w", path, err)
				}
				torn = append(torn, sector{off, b})
			}
			off = end
		}
	}
	rep.FilesReverted++
	rep.BytesLost += max(0, n.curSize-n.durSize)
	for _, e := range n.undo {
		data := e.data
		if data == nil {
			data = make([]byte, e.n)
		} else {
			rep.BytesLost += e.n
		}
		if err := pwriteFull(fd, data, e.off); err != nil {
			return fmt.Errorf("powerfs: power cut: restoring %s: %w", path, err)
		}
	}
	if err := f.Truncate(n.durSize); err != nil {
		return fmt.Errorf("powerfs: power cut: restoring %s: %w", path, err)
	}
	if len(torn) > 0 {
		rep.TornWrites++
		rep.TornSectors += len(torn)
	}
	for _, t := range torn {
		if err := pwriteFull(fd, t.data, t.off); err != nil {
			return fmt.Errorf("powerfs: power cut: keeping a torn write in %s: %w", path, err)
		}
	}
	return nil
}

func sortedNames(m map[string]*mnode) []string {
	out := make([]string, 0, len(m))
	for name := range m {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

package powerfs

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is the FUSE side of an mnode: every operation goes through to the
// backing object and tells the model what changed.
type node struct {
	fs.Inode
	st *state
	m  *mnode
}

var (
	_ fs.NodeLookuper   = (*node)(nil)
	_ fs.NodeGetattrer  = (*node)(nil)
	_ fs.NodeSetattrer  = (*node)(nil)
	_ fs.NodeOpener     = (*node)(nil)
	_ fs.NodeCreater    = (*node)(nil)
	_ fs.NodeMkdirer    = (*node)(nil)
	_ fs.NodeRmdirer    = (*node)(nil)
	_ fs.NodeUnlinker   = (*node)(nil)
	_ fs.NodeRenamer    = (*node)(nil)
	_ fs.NodeLinker     = (*node)(nil)
	_ fs.NodeSymlinker  = (*node)(nil)
	_ fs.NodeReadlinker = (*node)(nil)
	_ fs.NodeReaddirer  = (*node)(nil)
	_ fs.NodeFsyncer    = (*node)(nil)
	_ fs.NodeStatfser   = (*node)(nil)
)

// path is the node's path in the backing folder.
func (n *node) path() string {
	return filepath.Join(n.st.backing, n.Path(nil))
}

func (n *node) child(name string) string { return filepath.Join(n.path(), name) }

// hidden reports whether name in this folder is the filesystem's own.
func (n *node) hidden(name string) bool { return n.m == n.st.root && name == hiddenDir }

func (n *node) newChild(ctx context.Context, c *mnode) *fs.Inode {
	return n.NewInode(ctx, &node{st: n.st, m: c}, fs.StableAttr{Mode: c.kind.mode(), Ino: c.ino, Gen: c.id})
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.hidden(name) {
		return nil, syscall.ENOENT
	}
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	c := n.m.cur[name]
	if c == nil {
		return nil, syscall.ENOENT
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(n.child(name), &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	return n.newChild(ctx, c), 0
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	var err error
	if h, ok := f.(*handle); ok {
		err = syscall.Fstat(h.fd, &st)
	} else {
		err = syscall.Lstat(n.path(), &st)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	p := n.path()
	if m, ok := in.GetMode(); ok {
		if err := syscall.Chmod(p, m); err != nil {
			return fs.ToErrno(err)
		}
		if n.m.kind == kindDir {
			n.st.mu.Lock()
			n.m.perm = m & 0o7777
			n.st.mu.Unlock()
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		suid, sgid := -1, -1
		if uok {
			suid = int(uid)
		}
		if gok {
			sgid = int(gid)
		}
		if err := unix.Fchownat(unix.AT_FDCWD, p, suid, sgid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fs.ToErrno(err)
		}
	}
	if size, ok := in.GetSize(); ok {
		if n.m.kind != kindFile {
			return syscall.EINVAL
		}
		fd := -1
		if h, ok := f.(*handle); ok {
			fd = h.fd
		} else {
			var err error
			if fd, err = syscall.Open(p, syscall.O_RDWR|syscall.O_CLOEXEC, 0); err != nil {
				return fs.ToErrno(err)
			}
			defer syscall.Close(fd)
		}
		if err := n.st.truncate(n.m, fd, int64(size)); err != nil {
			return fs.ToErrno(err)
		}
	}
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if aok {
			ts[0] = unix.NsecToTimespec(atime.UnixNano())
		}
		if mok {
			ts[1] = unix.NsecToTimespec(mtime.UnixNano())
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fs.ToErrno(err)
		}
	}
	return n.Getattr(ctx, f, out)
}

// openFlags are the flags a backing file is opened with: the kernel sends
// every write with its offset (O_APPEND included), so the backing file is
// never in append mode; truncation goes through the model; and a file
// open for writing is open for reading too, so that the durable bytes a
// write overwrites can be kept first.
func openFlags(flags uint32) int {
	f := int(flags)&^(syscall.O_APPEND|syscall.O_TRUNC|syscall.O_CREAT|syscall.O_EXCL|fuse.FMODE_EXEC) | syscall.O_CLOEXEC
	if f&syscall.O_ACCMODE == syscall.O_WRONLY {
		f = f&^syscall.O_ACCMODE | syscall.O_RDWR
	}
	return f
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.m.kind != kindFile {
		return nil, 0, syscall.EINVAL
	}
	return n.open(n.path(), flags)
}

func (n *node) open(p string, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fd, err := syscall.Open(p, openFlags(flags), 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		if err := n.st.truncate(n.m, fd, 0); err != nil {
			syscall.Close(fd)
			return nil, 0, fs.ToErrno(err)
		}
	}
	// The kernel may keep its page cache across opens: nothing but this
	// mount changes the backing files, and a power cut remounts.
	return &handle{st: n.st, m: n.m, fd: fd}, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if n.hidden(name) {
		return nil, nil, 0, syscall.EPERM
	}
	st := n.st
	st.mu.Lock()
	p := n.child(name)
	if c := n.m.cur[name]; c != nil {
		st.mu.Unlock()
		if flags&syscall.O_EXCL != 0 {
			return nil, nil, 0, syscall.EEXIST
		}
		if c.kind != kindFile {
			return nil, nil, 0, syscall.EISDIR
		}
		ch := &node{st: st, m: c}
		fh, fl, errno := ch.open(p, flags)
		if errno != 0 {
			return nil, nil, 0, errno
		}
		var sa syscall.Stat_t
		if err := syscall.Fstat(fh.(*handle).fd, &sa); err != nil {
			fh.(*handle).close()
			return nil, nil, 0, fs.ToErrno(err)
		}
		out.Attr.FromStat(&sa)
		return n.newChild(ctx, c), fh, fl, 0
	}
	defer st.mu.Unlock()
	fd, err := syscall.Open(p, openFlags(flags)|syscall.O_CREAT|syscall.O_EXCL, mode)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	var sa syscall.Stat_t
	if err := syscall.Fstat(fd, &sa); err != nil {
		syscall.Close(fd)
		syscall.Unlink(p)
		return nil, nil, 0, fs.ToErrno(err)
	}
	c := st.created(n.m, name, &sa)
	out.Attr.FromStat(&sa)
	return n.newChild(ctx, c), &handle{st: st, m: c, fd: fd}, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return n.make(ctx, name, out, func(p string) error { return syscall.Mkdir(p, mode) }, syscall.Rmdir)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return n.make(ctx, name, out, func(p string) error { return syscall.Symlink(target, p) }, syscall.Unlink)
}

// make creates a folder or symbolic link called name in this folder with
// mk, and records it in the model; undo removes it again if it cannot be
// looked at.
func (n *node) make(ctx context.Context, name string, out *fuse.EntryOut, mk, undo func(path string) error) (*fs.Inode, syscall.Errno) {
	if n.hidden(name) {
		return nil, syscall.EPERM
	}
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	p := n.child(name)
	if err := mk(p); err != nil {
		return nil, fs.ToErrno(err)
	}
	var sa syscall.Stat_t
	if err := syscall.Lstat(p, &sa); err != nil {
		undo(p)
		return nil, fs.ToErrno(err)
	}
	c := n.st.created(n.m, name, &sa)
	if c.kind == kindSymlink {
		c.durSize = sa.Size // a link's target is written with it
	}
	out.Attr.FromStat(&sa)
	return n.newChild(ctx, c), 0
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.hidden(name) {
		return nil, syscall.EPERM
	}
	t, ok := target.(*node)
	if !ok || t.st != n.st {
		return nil, syscall.EXDEV
	}
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	if t.m.curRefs == 0 {
		return nil, syscall.ENOENT
	}
	p := n.child(name)
	if err := syscall.Link(t.path(), p); err != nil {
		return nil, fs.ToErrno(err)
	}
	var sa syscall.Stat_t
	if err := syscall.Lstat(p, &sa); err != nil {
		return nil, fs.ToErrno(err)
	}
	n.m.cur[name] = t.m
	t.m.curRefs++
	n.st.touch(n.m)
	n.st.touch(t.m)
	out.Attr.FromStat(&sa)
	return n.newChild(ctx, t.m), 0
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	buf := make([]byte, 4096)
	k, err := syscall.Readlink(n.path(), buf)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return buf[:k], 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, false)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, true)
}

// remove is unlink (a file or link) or rmdir (a folder) of name.
func (n *node) remove(name string, dir bool) syscall.Errno {
	if n.hidden(name) {
		return syscall.ENOENT
	}
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	c := n.m.cur[name]
	switch {
	case c == nil:
		return syscall.ENOENT
	case dir && c.kind != kindDir:
		return syscall.ENOTDIR
	case !dir && c.kind == kindDir:
		return syscall.EISDIR
	}
	return fs.ToErrno(n.st.unname(n.m, name, n.child(name)))
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || np.st != n.st {
		return syscall.EXDEV
	}
	if n.hidden(name) || np.hidden(newName) {
		return syscall.EPERM
	}
	if flags&^unix.RENAME_NOREPLACE != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE and RENAME_WHITEOUT are not modelled
	}
	st := n.st
	st.mu.Lock()
	defer st.mu.Unlock()
	src := n.m.cur[name]
	if src == nil {
		return syscall.ENOENT
	}
	tgt := np.m.cur[newName]
	if tgt != nil && flags&unix.RENAME_NOREPLACE != 0 {
		return syscall.EEXIST
	}
	if tgt == src {
		return 0 // two names of one file: rename does nothing
	}
	from, to := n.child(name), np.child(newName)
	moved := false
	if tgt != nil {
		if (src.kind == kindDir) != (tgt.kind == kindDir) {
			if src.kind == kindDir {
				return syscall.ENOTDIR
			}
			return syscall.EISDIR
		}
		var err error
		if moved, err = st.keepForCut(tgt, to); err != nil {
			return fs.ToErrno(err)
		}
	}
	if err := syscall.Rename(from, to); err != nil {
		if moved {
			_ = os.Rename(st.gravePath(tgt), to)
			tgt.inGrave = false
		}
		return fs.ToErrno(err)
	}
	if tgt != nil {
		delete(np.m.cur, newName)
		tgt.curRefs--
		st.touch(tgt)
		st.maybeRelease(tgt)
	}
	delete(n.m.cur, name)
	np.m.cur[newName] = src
	st.touch(n.m)
	st.touch(np.m)
	st.touch(src)
	return 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	entries := make([]fuse.DirEntry, 0, len(n.m.cur))
	for _, name := range sortedNames(n.m.cur) {
		c := n.m.cur[name]
		entries = append(entries, fuse.DirEntry{Name: name, Mode: c.kind.mode(), Ino: c.ino})
	}
	return fs.NewListDirStream(entries), 0
}

func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if n.m.kind == kindDir {
		return fs.ToErrno(n.st.fsyncDir(n.m, n.path()))
	}
	fd := -1
	if h, ok := f.(*handle); ok {
		fd = h.fd
	} else if !n.st.opts.NoBackingSync {
		var err error
		if fd, err = syscall.Open(n.path(), syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err != nil {
			return fs.ToErrno(err)
		}
		defer syscall.Close(fd)
	}
	return fs.ToErrno(n.st.fsyncFile(n.m, fd, flags&1 != 0))
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var s syscall.Statfs_t
	if err := syscall.Statfs(n.st.backing, &s); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatfsT(&s)
	return 0
}

// handle is an open file: a descriptor of the backing file.
type handle struct {
	st *state
	m  *mnode
	fd int
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultFd(uintptr(h.fd), off, len(buf)), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	k, err := h.st.write(h.m, h.fd, data, off)
	return uint32(k), fs.ToErrno(err)
}

func (h *handle) Flush(ctx context.Context) syscall.Errno { return 0 }

func (h *handle) Release(ctx context.Context) syscall.Errno {
	return fs.ToErrno(h.close())
}

func (h *handle) close() error { return syscall.Close(h.fd) }

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(h.fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	return fs.ToErrno(h.st.allocate(h.m, h.fd, int64(off), int64(size), mode))
}

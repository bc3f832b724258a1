package powerfs

import (
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Mode says when namespace changes (create, rename, remove, mkdir,
// rmdir, link, symlink) become durable.
type Mode int

const (
	// Strict: a change becomes durable only with an fsync of the folder
	// holding the name (for a rename between folders, each folder's side
	// on its own fsync). This is the POSIX reading that LazyFS and the
	// crash-consistency studies use; a program correct here is correct on
	// every Linux filesystem.
	Strict Mode = iota
	// Ordered is what ext4 with data=ordered (and its default delayed
	// allocation) gives: namespace changes, truncations and fallocations
	// go into one journal in the order made, and a commit makes all of
	// them durable at once. A commit happens at an fsync or fdatasync of
	// a file that was created, linked, renamed or resized since (its own
	// last sync, for size; the last commit, for the rest), and at an fsync
	// of a folder whose entries changed since the last commit. Written
	// data still becomes durable only with its own file's fsync (delayed
	// allocation writes it later). Not modelled, so not relied on: the
	// five-second periodic commit (a cut is taken to come first) and
	// auto_da_alloc's flush of a file renamed over another (as with
	// noauto_da_alloc).
	Ordered
)

func (m Mode) String() string {
	if m == Ordered {
		return "ordered"
	}
	return "strict"
}

// ParseMode parses "strict" or "ordered".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "strict":
		return Strict, nil
	case "ordered":
		return Ordered, nil
	}
	return 0, fmt.Errorf("powerfs: mode %q: want strict or ordered", s)
}

// Options configure a mount. The zero value is the strict mode without
// torn writes.
type Options struct {
	// Mode is when namespace changes become durable; Strict by default.
	Mode Mode
	// Torn: at a power cut, each file's last unsynced write survives in
	// part: each of its 512-byte sectors (aligned in the file) survives or
	// not, drawn from Seed. The rest of the file is as durable as ever.
	// (See NoWritebackCache for what the last write is.)
	Torn bool
	// Seed seeds the torn-write draws; one seed gives one sequence of
	// draws across the mount's cuts.
	Seed uint64
	// Label names the mount in /proc/self/mountinfo (its source is
	// "garantia-powerfs:pid=P:start=T:LABEL"), for people and for
	// StaleMounts. Characters outside [A-Za-z0-9._/-] become '_'.
	Label string
	// NoBackingSync: fsync and fdatasync update only the model and do not
	// reach the backing disk. Faster, but the node no longer feels the
	// disk's fsync latency; the default passes them through.
	NoBackingSync bool
	// MaxUndoBytes bounds the durable bytes kept in memory for files
	// overwritten or truncated since their last fsync; a write or
	// truncation that would pass it fails with EIO. (Appends keep
	// nothing.) 0 means 1 GiB, negative no bound.
	MaxUndoBytes int64
	// NoWritebackCache sends every write of a program through to this
	// process as it is made, instead of letting the kernel keep the pages
	// and send them in bigger writes later, at a sync or close at the
	// latest (FUSE's writeback cache, on by default: it keeps the rules
	// above, and a broker writing through the mount runs at the speed of a
	// plain folder). With the cache, the "last write" of Torn is the last
	// write the kernel sent, which may hold several writes of the program
	// to the same pages; without it, the program's own last write.
	NoWritebackCache bool
	// Debug logs every FUSE request to stderr.
	Debug bool
}

// fsType is the filesystem type in mountinfo ("fuse." + fsName) and the
// start of every mount's source: what StaleMounts looks for.
const fsName = "garantia-powerfs"

// Errors of Probe and Mount, each saying what the environment lacks.
var (
	// ErrNoFUSE: /dev/fuse does not exist or cannot be opened.
	ErrNoFUSE = errors.New("powerfs: FUSE is not available (/dev/fuse is missing or cannot be opened: load the fuse module, or give the container --device /dev/fuse)")
	// ErrMountDenied: the kernel or fusermount refused the mount.
	ErrMountDenied = errors.New("powerfs: mounting a FUSE filesystem is not permitted here (run as root, or install fuse3 for fusermount3 as another user; a container needs CAP_SYS_ADMIN)")
)

// FS is one mounted power-loss filesystem: Dir shows the backing folder,
// and PowerCut puts it back to what was durable.
type FS struct {
	backing, dir string
	opts         Options
	rng          *rand.Rand

	mu     sync.Mutex
	server *fuse.Server
	st     *state
	cuts   int
	closed bool
	nextID uint64 // node ids go on across cuts, so FUSE generations never repeat
}

// Mount mounts a power-loss filesystem over the folder backing at
// mountpoint (both must exist; they are different folders). Everything
// already in backing counts as durable. As root it mounts with mount(2)
// itself; otherwise through fusermount3 (or fusermount). The caller must
// Unmount it on every path; StaleMounts finds the mounts of processes
// that died without.
func Mount(backing, mountpoint string, opts Options) (*FS, error) {
	if opts.MaxUndoBytes == 0 {
		opts.MaxUndoBytes = 1 << 30
	}
	var err error
	if backing, err = filepath.Abs(backing); err != nil {
		return nil, err
	}
	if mountpoint, err = filepath.Abs(mountpoint); err != nil {
		return nil, err
	}
	if backing == mountpoint || strings.HasPrefix(mountpoint, backing+"/") || strings.HasPrefix(backing, mountpoint+"/") {
		return nil, fmt.Errorf("powerfs: backing folder %s and mount point %s must not contain each other", backing, mountpoint)
	}
	f := &FS{backing: backing, dir: mountpoint, opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 0x70776572))}
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *FS) mount() error {
	st, err := newState(f.backing, f.opts, f.nextID)
	if err != nil {
		return err
	}
	root := &node{st: st, m: st.root}
	timeout := time.Minute // only this mount changes the backing files; a cut remounts
	var zero time.Duration
	mo := fuse.MountOptions{
		FsName:        fsName + ":" + mountLabel(f.opts.Label),
		Name:          fsName,
		DisableXAttrs: true,
		MaxWrite:      1 << 20,
		Options:       []string{"default_permissions"},
		Debug:         f.opts.Debug,
		Logger:        log.New(io.Discard, "", 0),
	}
	if !f.opts.NoWritebackCache {
		// The kernel keeps written pages and sends them later, in bigger
		// writes: a program's write costs a copy, not a round trip
		// through this process. The model is unchanged: fsync, fdatasync
		// and close send every dirty page before they return (so what a
		// sync makes durable is all here when the FSYNC comes), and a cut
		// comes only after the node's process is dead, its files closed.
		mo.ExtraCapabilities = fuse.CAP_WRITEBACK_CACHE
	}
	if f.opts.Debug {
		mo.Logger = log.New(os.Stderr, "powerfs: ", log.Lmicroseconds)
	}
	if os.Geteuid() == 0 {
		mo.DirectMount = true // mount(2) without fusermount; falls back to it
		mo.AllowOther = true  // containers' users reach it too
	}
	server, err := fs.Mount(f.dir, root, &fs.Options{
		MountOptions:    mo,
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &zero,
		RootStableAttr:  &fs.StableAttr{Ino: st.root.ino, Gen: st.root.id},
	})
	if err != nil {
		_ = os.RemoveAll(st.grave())
		return mountError(f.dir, err)
	}
	f.server, f.st = server, st
	return nil
}

func mountError(dir string, err error) error {
	if _, serr := os.Stat("/dev/fuse"); serr != nil {
		return fmt.Errorf("%w: mounting %s: %v", ErrNoFUSE, dir, err)
	}
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || strings.Contains(err.Error(), "fusermount") ||
		strings.Contains(err.Error(), "permission") || strings.Contains(err.Error(), "not permitted") {
		return fmt.Errorf("%w: mounting %s: %v", ErrMountDenied, dir, err)
	}
	return fmt.Errorf("powerfs: mounting %s: %w", dir, err)
}

// Dir is the mount point: where the node's data folder lives.
func (f *FS) Dir() string { return f.dir }

// Backing is the folder the mount passes through to.
func (f *FS) Backing() string { return f.backing }

// Cuts counts the power cuts so far.
func (f *FS) Cuts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cuts
}

// ErrBusy: a power cut found files still open under the mount: the
// processes using it must be dead before their power goes.
var ErrBusy = errors.New("powerfs: files are still open under the mount; kill every process using it before cutting its power")

// PowerCut cuts the power of the machine the mount belongs to and brings
// it back: the mount goes away, the backing folder is rebuilt as the
// durable state (see Mode and Options.Torn), and the mount comes back
// empty-cached. The processes using the mount must be dead (the node is
// killed first); PowerCut returns ErrBusy, and changes nothing, if files
// are still open.
func (f *FS) PowerCut() (CutReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return CutReport{}, fmt.Errorf("powerfs: power cut of %s after Unmount", f.dir)
	}
	if err := f.unmountLocked(); err != nil {
		return CutReport{}, err
	}
	rep, err := f.st.cut(f.rng)
	f.nextID = f.st.next
	if err != nil {
		f.closed = true
		return rep, fmt.Errorf("%w (the mount at %s stays down; the backing folder %s is half rebuilt)", err, f.dir, f.backing)
	}
	if err := f.mount(); err != nil {
		f.closed = true
		return rep, fmt.Errorf("powerfs: mounting %s again after the power cut: %w", f.dir, err)
	}
	f.cuts++
	return rep, nil
}

func (f *FS) unmountLocked() error {
	if f.server == nil {
		return nil
	}
	// Server.Unmount uses umount(2) when it mounted with mount(2), else
	// fusermount, retrying briefly while the kernel lets go of files just
	// closed; then it waits for the serve loop to end.
	if err := f.server.Unmount(); err != nil {
		if errors.Is(err, syscall.EBUSY) || strings.Contains(strings.ToLower(err.Error()), "busy") {
			return fmt.Errorf("%w: %s", ErrBusy, f.dir)
		}
		return fmt.Errorf("powerfs: unmounting %s: %w", f.dir, err)
	}
	f.server.Wait()
	f.server = nil
	return nil
}

// Unmount unmounts the filesystem and leaves the backing folder as the
// mount showed it (everything written, durable or not). It is safe to call
// more than once; a mount still busy is detached lazily (MNT_DETACH) so
// that nothing is left mounted.
func (f *FS) Unmount() error {
	_, err := f.unmount()
	return err
}

// unmount is Unmount, also saying whether the mount was busy and only
// detached: its serve loop then goes on for the processes still using it,
// on the backing folder.
func (f *FS) unmount() (detached bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false, nil
	}
	err = f.unmountLocked()
	if errors.Is(err, ErrBusy) {
		// Still in use: detach it, and the serve loop ends when the last
		// user lets go.
		if err = detach(f.dir); err == nil {
			f.server = nil
			detached = true
		}
	}
	if err != nil {
		return false, err
	}
	f.closed = true
	if f.st != nil && !detached {
		if rerr := restoreGrave(f.st); rerr != nil {
			return false, rerr
		}
	}
	return detached, nil
}

// restoreGrave removes the hidden folder: what it held is named by no
// current entry, so the backing folder is the tree the mount showed.
func restoreGrave(st *state) error {
	if err := os.RemoveAll(st.grave()); err != nil {
		return fmt.Errorf("powerfs: removing %s: %w", st.grave(), err)
	}
	return nil
}

// detach unmounts dir lazily: the kernel drops it from the tree at once
// and frees it when the last user goes.
func detach(dir string) error {
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err == nil {
		return nil
	} else if os.Geteuid() == 0 {
		return fmt.Errorf("powerfs: unmounting %s: %w", dir, err)
	}
	for _, bin := range []string{"fusermount3", "fusermount"} {
		if out, err := execCommand(bin, "-u", "-z", dir); err == nil {
			return nil
		} else if !errors.Is(err, errNoBinary) {
			return fmt.Errorf("powerfs: %s -u -z %s: %v: %s", bin, dir, err, out)
		}
	}
	return fmt.Errorf("powerfs: cannot unmount %s: not root and no fusermount", dir)
}

// Probe mounts and unmounts an empty filesystem in a temporary folder:
// nil means power faults can run here; otherwise the error (ErrNoFUSE,
// ErrMountDenied, or another) says what is missing. Call it before any
// node starts.
func Probe() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("%w: %v", ErrNoFUSE, err)
	}
	tmp, err := os.MkdirTemp("", "garantia-powerfs-probe-")
	if err != nil {
		return fmt.Errorf("powerfs: probe: %w", err)
	}
	defer os.RemoveAll(tmp)
	backing, mnt := filepath.Join(tmp, "backing"), filepath.Join(tmp, "mnt")
	if err := os.Mkdir(backing, 0o755); err != nil {
		return fmt.Errorf("powerfs: probe: %w", err)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return fmt.Errorf("powerfs: probe: %w", err)
	}
	f, err := Mount(backing, mnt, Options{Label: "probe"})
	if err != nil {
		return err
	}
	werr := os.WriteFile(filepath.Join(mnt, "probe"), []byte("ok"), 0o644)
	if err := f.Unmount(); err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("powerfs: probe: writing through the mount: %w", werr)
	}
	return nil
}

// mountLabel is the mount's source after "garantia-powerfs:": this
// process's id and start time (so a cleaner can tell whether the process
// that serves it still lives) and the caller's label.
func mountLabel(label string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '/' || r == '-' {
			return r
		}
		return '_'
	}, label)
	return fmt.Sprintf("pid=%d:start=%d:%s", os.Getpid(), procStart(os.Getpid()), clean)
}

// procStart is the start time of process pid in clock ticks since boot
// (field 22 of /proc/PID/stat), or -1 if there is no such process.
func procStart(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return -1
	}
	v, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return -1
	}
	return v
}

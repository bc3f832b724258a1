package powerfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/garantia/garantia/db"
)

// BackingSuffix names the folder beside a node's data folder that holds
// its files while the data folder is a mount (nK/data.backing for
// nK/data): the disk under the power-loss filesystem.
const BackingSuffix = ".backing"

// busyRetry is how often CutPower tries again while the mount is busy: a
// process killed a moment ago may still hold files open (the kernel
// closes them as the process exits; a container's mount namespace goes
// a little after its process).
const busyRetry = 20 * time.Millisecond

// Disks are the power-loss filesystems under the data folders of a
// test's nodes, one mount per node: node nK's data folder (db.LayOut:
// nK/data) is the mount point, and nK/data.backing the folder it passes
// through to. Both backends keep a node's data there, the docker backend
// by bind-mounting the folder into the node's container, so the same
// Disks serve either. Disks implements db.PowerCutter.
type Disks struct {
	mu    sync.Mutex
	disks []*disk
}

var _ db.PowerCutter = (*Disks)(nil)

type disk struct {
	node    db.NodeFiles
	backing string
	fs      *FS
}

// MountDisks mounts a power-loss filesystem over the data folder of each
// of nodes, creating the data and backing folders (a data folder that
// holds files already is refused: the mount would hide them). Each mount
// gets opts with its own torn-write seed (opts.Seed and the node's id)
// and the label opts.Label + "/" + the node's name. On error the mounts
// made so far are unmounted. The caller must Unmount on every path.
func MountDisks(nodes []db.NodeFiles, opts Options) (*Disks, error) {
	d := &Disks{}
	for _, n := range nodes {
		dk, err := mountDisk(n, opts)
		if err != nil {
			return nil, errors.Join(err, d.Unmount())
		}
		d.disks = append(d.disks, dk)
	}
	return d, nil
}

func mountDisk(n db.NodeFiles, opts Options) (*disk, error) {
	backing := n.DataDir + BackingSuffix
	for _, dir := range []string{backing, n.DataDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("powerfs: %s: %w", n.Name, err)
		}
	}
	if entries, err := os.ReadDir(n.DataDir); err != nil {
		return nil, fmt.Errorf("powerfs: %s: %w", n.Name, err)
	} else if len(entries) > 0 {
		return nil, fmt.Errorf("powerfs: %s: the data folder %s is not empty; a mount over it would hide its files", n.Name, n.DataDir)
	}
	o := opts
	// Each node its own stream of torn-write draws, fixed by the seed.
	o.Seed = opts.Seed ^ uint64(n.ID)*0x9e3779b97f4a7c15
	o.Label = n.Name
	if opts.Label != "" {
		o.Label = opts.Label + "/" + n.Name
	}
	f, err := Mount(backing, n.DataDir, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	return &disk{node: n, backing: backing, fs: f}, nil
}

// CutPower cuts the power of node's filesystem (see FS.PowerCut) and
// reports what the cut undid. While files are still open under the mount
// (a process that is exiting) it tries again until ctx ends.
func (d *Disks) CutPower(ctx context.Context, node db.Node) (db.PowerLoss, error) {
	dk, err := d.lookup(node)
	if err != nil {
		return db.PowerLoss{}, err
	}
	tick := time.NewTicker(busyRetry)
	defer tick.Stop()
	for {
		rep, err := dk.fs.PowerCut()
		switch {
		case err == nil:
			return db.PowerLoss{FilesReverted: rep.FilesReverted, BytesLost: rep.BytesLost, EntriesUndone: rep.EntriesUndone,
				TornWrites: rep.TornWrites, TornSectors: rep.TornSectors}, nil
		case !errors.Is(err, ErrBusy):
			return db.PowerLoss{}, fmt.Errorf("%s: %w", node.Name, err)
		}
		select {
		case <-ctx.Done():
			return db.PowerLoss{}, fmt.Errorf("%s: %w (still busy when %w)", node.Name, err, ctx.Err())
		case <-tick.C:
		}
	}
}

func (d *Disks) lookup(node db.Node) (*disk, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dk := range d.disks {
		if dk.node.ID == node.ID && (node.Name == "" || node.Name == dk.node.Name) {
			return dk, nil
		}
	}
	return nil, fmt.Errorf("powerfs: %w: %q (id %d) has no power-loss filesystem", db.ErrUnknownNode, node.Name, node.ID)
}

// Unmount unmounts every filesystem and puts each node's files back in
// its data folder, so that the run folder looks as it does after a run
// without the filesystem: the empty mount point goes and the backing
// folder takes its name. A mount still in use (a node not stopped) is
// detached lazily (see FS.Unmount) and its files stay in the backing
// folder, which its serve loop still uses; that is an error. It is safe
// to call more than once; nodes must be stopped first.
func (d *Disks) Unmount() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, dk := range d.disks {
		if dk.fs == nil {
			continue
		}
		detached, err := dk.fs.unmount()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dk.fs = nil
		if detached {
			// Something still uses it, served from the backing folder:
			// the files stay there.
			errs = append(errs, fmt.Errorf("powerfs: %s: the mount was still in use and is only detached; its files stay in %s", dk.node.Name, dk.backing))
			continue
		}
		// The mount point is an empty folder again.
		if err := os.Remove(dk.node.DataDir); err != nil {
			errs = append(errs, fmt.Errorf("powerfs: %s: its files stay in %s: %w", dk.node.Name, dk.backing, err))
			continue
		}
		if err := os.Rename(dk.backing, dk.node.DataDir); err != nil {
			errs = append(errs, fmt.Errorf("powerfs: %s: its files stay in %s: %w", dk.node.Name, dk.backing, err))
		}
	}
	return errors.Join(errs...)
}

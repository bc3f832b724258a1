package runner

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/powerfs"
	"github.com/garantia/garantia/nemesis"
)

// The power-loss filesystem of a run: power faults cut the power of a
// node's data folder, so a run whose nemesis has them (or that asks for
// the filesystem with --powerfs) mounts one under every node's data
// folder before the nodes start and unmounts them after the nodes
// stopped.

// probePowerFS is powerfs.Probe; tests replace it to play a machine that
// cannot mount.
var probePowerFS = powerfs.Probe

// NeedsPowerFS reports whether a run of c puts its nodes' data folders on
// the power-loss filesystem: with --powerfs, or when its faults include
// power.
func (c *Config) NeedsPowerFS() bool {
	if c.PowerFS {
		return true
	}
	specs, _ := c.Specs()
	for _, s := range specs {
		if s.Kind == nemesis.Power {
			return true
		}
	}
	return false
}

// powerOptions are the filesystem's options for c.
func (c *Config) powerOptions() (powerfs.Options, error) {
	mode := powerfs.Strict
	if c.PowerMode != "" {
		m, err := powerfs.ParseMode(c.PowerMode)
		if err != nil {
			return powerfs.Options{}, flagErr("powerfs-mode", "want strict or ordered, got %q", c.PowerMode)
		}
		mode = m
	}
	return powerfs.Options{Mode: mode, Torn: c.PowerTorn, Seed: uint64(c.Seed)}, nil
}

// checkPowerFS makes sure, before anything of the run exists, that this
// machine can mount the filesystem the run needs: a run that cannot cut
// power must not start and report on faults it never had.
func (t *test) checkPowerFS() error {
	if !t.cfg.NeedsPowerFS() {
		return nil
	}
	if err := probePowerFS(); err != nil {
		return fmt.Errorf("%s needs the power-loss filesystem (FUSE), which this machine cannot mount; no node was started: %w", t.powerReason(), err)
	}
	return nil
}

// powerReason says why the run needs the filesystem.
func (t *test) powerReason() string {
	if t.cfg.PowerFS {
		return "--powerfs"
	}
	return "--nemesis power"
}

// mountDisks mounts the power-loss filesystem under every node's data
// folder (held: teardown unmounts them after the nodes stopped, and
// moves each node's files back into its data folder). Mounts that dead
// harnesses left are removed first.
func (t *test) mountDisks() error {
	if !t.cfg.NeedsPowerFS() {
		return nil
	}
	opts, err := t.cfg.powerOptions()
	if err != nil {
		return err
	}
	if removed, err := powerfs.RemoveStale(); err != nil {
		fmt.Fprintf(t.progress, "warning: removing the power-loss mounts of dead runs (garantia clean retries): %v\n", err)
	} else if len(removed) > 0 {
		fmt.Fprintf(t.progress, "removed %d power-loss mount(s) that dead runs left\n", len(removed))
	}
	opts.Label = t.info.Name + "/" + filepath.Base(t.folder.Dir)
	disks, err := powerfs.MountDisks(db.LayOut(t.folder.Dir, t.cfg.Nodes), opts)
	if err != nil {
		return fmt.Errorf("mount the power-loss filesystem under the nodes' data folders: %w", err)
	}
	t.disks = disks
	t.hold("the power-loss filesystems", func(context.Context) error {
		if err := disks.Unmount(); err != nil {
			return fmt.Errorf("unmount the power-loss filesystems: %w", err)
		}
		return nil
	})
	torn := ""
	if opts.Torn {
		torn = ", torn writes"
	}
	fmt.Fprintf(t.progress, "data folders on the power-loss filesystem (%s mode%s)\n", opts.Mode, torn)
	return nil
}

// powerCutter is what the nemesis cuts power with: nil when the data
// folders are plain folders.
func (t *test) powerCutter() db.PowerCutter {
	if t.disks == nil {
		return nil
	}
	return t.disks
}

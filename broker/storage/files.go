package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File names inside a partition directory.
const (
	logSuffix         = ".log"
	indexSuffix       = ".index"
	tmpSuffix         = ".tmp"
	epochCheckpoint   = "leader-epoch-checkpoint"
	recoveryPointFile = "recovery-point"
	cleanShutdownFile = "clean-shutdown"
	lockFile          = ".lock"
)

// segmentName is a segment file's name: its base offset in 20 digits, as
// Kafka names them, so that names sort as offsets do.
func segmentName(base int64, suffix string) string {
	return fmt.Sprintf("%020d%s", base, suffix)
}

// writeFileAtomic replaces dir/name with data so that after a crash the
// file holds either the old or the new contents: write a temporary file,
// fsync it, rename it over the old one, fsync the directory.
func writeFileAtomic(dir, name string, data []byte) error {
	path := filepath.Join(dir, name)
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s durably: %w", path, err)
	}
	return nil
}

// syncDir makes the directory's entries (created, renamed, removed files)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// removeIfExists removes path and ignores its absence.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

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

// WriteFileAtomic replaces dir/name with data so that after a crash the
// file holds either the old or the new contents: write a temporary file,
// fsync it, rename it over the old one, fsync the directory. The
// temporary file's name is unique (concurrent writers of one file do not
// clobber each other's) and ends in ".tmp", which a log's recovery removes
// when a crash left one behind.
func WriteFileAtomic(dir, name string, data []byte) error {
	path := filepath.Join(dir, name)
	f, err := os.CreateTemp(dir, name+".*"+tmpSuffix)
	if err != nil {
		return fmt.Errorf("writing %s durably: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644) // CreateTemp makes it 0600
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

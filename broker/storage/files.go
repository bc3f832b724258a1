package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/garantia/garantia/internal/atomicfile"
)

// File names inside a partition directory.
const (
	logSuffix         = ".log"
	indexSuffix       = ".index"
	tmpSuffix         = atomicfile.TempSuffix
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
// file holds either the old or the new contents (atomicfile.WriteFile). A
// temporary file a crash left behind ends in ".tmp", which a log's
// recovery removes.
func writeFileAtomic(dir, name string, data []byte) error {
	return atomicfile.WriteFile(filepath.Join(dir, name), data, 0o644)
}

// syncDir makes the directory's entries (created, renamed, removed files)
// durable.
func syncDir(dir string) error { return atomicfile.SyncDir(dir) }

// removeIfExists removes path and ignores its absence.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

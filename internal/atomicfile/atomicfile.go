package atomicfile

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// TempSuffix ends the name of every temporary file this package makes.
const TempSuffix = ".tmp"

// WriteFile replaces path with data, durably: after WriteFile returns, a
// crash leaves the new contents; before, the old ones (or no file).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write replaces path with what write writes, durably, as WriteFile does.
// When write fails, path is left as it was and the error is returned
// wrapped with path.
func Write(path string, perm os.FileMode, write func(io.Writer) error) error {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, name+".*"+TempSuffix)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm) // CreateTemp makes it 0600 whatever the umask
	}
	if err == nil {
		err = Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Rename moves a finished file (one that another program wrote, say a
// compiler) over path and makes the move durable. The caller has synced
// tmp's contents when they must survive a power cut; tmp must be in
// path's folder.
func Rename(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// Symlink points link at target, replacing whatever link was, atomically:
// it makes a new link beside it and renames it over the old one, so that a
// reader never finds link missing.
func Symlink(target, link string) error {
	tmp := link + "." + strconv.FormatUint(rand.Uint64(), 36) + TempSuffix
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("linking %s to %s: %w", link, target, err)
	}
	if err := Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("linking %s to %s: %w", link, target, err)
	}
	return nil
}

// MkdirAll creates dir and any missing parents, as os.MkdirAll does, and
// makes each new folder's entry durable (an fsync of the folder holding
// it), so that a power cut cannot take a folder away, with everything
// later written into it, after MkdirAll returned.
func MkdirAll(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- { // parents first
		if err := SyncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

// SyncDir makes dir's entries (files created, renamed or removed in it)
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing folder %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing folder %s: %w", dir, err)
	}
	return nil
}

package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Deleter is a Store that can delete a partition's log for good (a topic
// deletion, or the partitions of a deleted topic found at start).
type Deleter interface {
	// Delete closes the log of topic/partition and removes it with all its
	// data, durably: once it returns, the records cannot come back, not
	// after a crash either, and a later Partition(create=true) starts an
	// empty log. A partition that does not exist returns
	// ErrUnknownPartition.
	Delete(topic string, partition int32) error
}

var (
	_ Deleter = (*DiskStore)(nil)
	_ Deleter = (*MemStore)(nil)
)

// deletingSuffix marks a partition directory being deleted. Open skips it
// as "not a partition log", so a crash in the middle of a deletion never
// brings the partition back; the next Delete of any partition removes
// what such a crash left.
const deletingSuffix = ".deleting"

// Delete implements Deleter. The directory is first renamed (atomically,
// synced) out of the partition namespace, then removed.
func (s *DiskStore) Delete(topic string, partition int32) error {
	if err := validatePartition(topic, partition); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("store %s: %w", s.dir, ErrClosed)
	}
	tp := topicPartition{topic, partition}
	l, ok := s.logs[tp]
	if !ok {
		return fmt.Errorf("%w: %s in %s", ErrUnknownPartition, PartitionDir(topic, partition), s.dir)
	}
	delete(s.logs, tp)
	closeErr := l.Close()
	if errors.Is(closeErr, ErrClosed) {
		closeErr = nil
	}
	dir := filepath.Join(s.dir, PartitionDir(topic, partition))
	gone := dir + "." + strconv.FormatInt(time.Now().UnixNano(), 10) + deletingSuffix
	if err := os.Rename(dir, gone); err != nil {
		return fmt.Errorf("storage: deleting %s: %w", dir, errors.Join(err, closeErr))
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("storage: deleting %s: the rename is not durable: %w", dir, err)
	}
	var errs []error
	if closeErr != nil {
		// The log is gone whatever its close said; say it anyway.
		errs = append(errs, fmt.Errorf("closing %s before deleting it: %w", dir, closeErr))
	}
	errs = append(errs, s.removeDeletingLocked())
	return errors.Join(errs...)
}

// removeDeletingLocked removes every directory a deletion renamed,
// including those a crash left behind.
func (s *DiskStore) removeDeletingLocked() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("storage: listing %s: %w", s.dir, err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() && filepath.Ext(e.Name()) == deletingSuffix {
			if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("storage: removing %s: %w", e.Name(), err))
			}
		}
	}
	if err := syncDir(s.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Delete implements Deleter.
func (s *MemStore) Delete(topic string, partition int32) error {
	if err := validatePartition(topic, partition); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("mem store: %w", ErrClosed)
	}
	tp := topicPartition{topic, partition}
	l, ok := s.logs[tp]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownPartition, PartitionDir(topic, partition))
	}
	delete(s.logs, tp)
	if err := l.Close(); err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

package storage

import (
	"fmt"
	"sort"
	"sync"
)

// MemStore is an in-memory Store for unit tests of the storage's
// neighbours. Its logs keep the same rules as disk logs (CRC-32C and
// framing checks, offset assignment, epochs, Read limits, truncation) but
// nothing survives the process.
type MemStore struct {
	mu     sync.Mutex
	logs   map[topicPartition]*MemLog
	closed bool
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore { return &MemStore{logs: map[topicPartition]*MemLog{}} }

// Partition returns the log of topic/partition, creating it if create.
func (s *MemStore) Partition(topic string, partition int32, create bool) (PartitionLog, error) {
	if err := validatePartition(topic, partition); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("mem store: %w", ErrClosed)
	}
	tp := topicPartition{topic, partition}
	if l, ok := s.logs[tp]; ok {
		return l, nil
	}
	if !create {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPartition, PartitionDir(topic, partition))
	}
	l := NewMemLog(PartitionDir(topic, partition))
	s.logs[tp] = l
	return l, nil
}

// Topics lists every topic with its partition count.
func (s *MemStore) Topics() map[string]int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return topicsOf(s.logs)
}

// Close closes every log.
func (s *MemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("mem store: %w", ErrClosed)
	}
	s.closed = true
	for _, l := range s.logs {
		l.Close()
	}
	return nil
}

// MemLog is an in-memory PartitionLog.
type MemLog struct {
	name string

	mu      sync.RWMutex
	batches []memBatch
	end     int64
	epochs  epochCache
	closed  bool
	waiters chan struct{}
}

type memBatch struct {
	base, next int64
	data       []byte
}

var _ PartitionLog = (*MemLog)(nil)

// NewMemLog returns an empty in-memory log; name appears in errors.
func NewMemLog(name string) *MemLog { return &MemLog{name: name} }

func (l *MemLog) usableLocked() error {
	if l.closed {
		return fmt.Errorf("mem log %s: %w", l.name, ErrClosed)
	}
	return nil
}

// AppendAsLeader verifies, assigns offsets and the epoch, and keeps a copy.
func (l *MemLog) AppendAsLeader(set []byte, leaderEpoch int32) (int64, error) {
	hs, err := checkRecordSet(set, true)
	if err != nil {
		return -1, fmt.Errorf("storage: mem log %s: append as leader refused: %w", l.name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return -1, err
	}
	if latest := l.epochs.latest(); leaderEpoch < 0 || leaderEpoch < latest {
		return -1, fmt.Errorf("storage: mem log %s: append as leader with epoch %d after epoch %d: %w", l.name, leaderEpoch, latest, ErrInvalidEpoch)
	}
	base, pos := l.end, 0
	for _, h := range hs {
		b := append([]byte(nil), set[pos:pos+h.size()]...)
		stampBatch(b, l.end, leaderEpoch)
		h.baseOffset = l.end
		l.batches = append(l.batches, memBatch{base: l.end, next: h.next(), data: b})
		l.epochs.assign(leaderEpoch, l.end)
		l.end = h.next()
		pos += h.size()
	}
	l.notifyLocked()
	return base, nil
}

// AppendAsFollower keeps copies of batches that carry their own offsets.
func (l *MemLog) AppendAsFollower(set []byte) error {
	if len(set) == 0 {
		return nil
	}
	hs, err := checkRecordSet(set, false)
	if err != nil {
		return fmt.Errorf("storage: mem log %s: append as follower refused: %w", l.name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	expect, latest := l.end, l.epochs.latest()
	for i, h := range hs {
		if h.baseOffset != expect {
			return fmt.Errorf("storage: mem log %s: append as follower: batch %d starts at offset %d, want %d: %w", l.name, i, h.baseOffset, expect, ErrNonContiguous)
		}
		if h.epoch < 0 || h.epoch < latest {
			return fmt.Errorf("storage: mem log %s: append as follower: batch %d at offset %d has epoch %d after epoch %d: %w", l.name, i, h.baseOffset, h.epoch, latest, ErrInvalidEpoch)
		}
		expect, latest = h.next(), h.epoch
	}
	pos := 0
	for _, h := range hs {
		l.batches = append(l.batches, memBatch{base: h.baseOffset, next: h.next(), data: append([]byte(nil), set[pos:pos+h.size()]...)})
		l.epochs.assign(h.epoch, h.baseOffset)
		l.end = h.next()
		pos += h.size()
	}
	l.notifyLocked()
	return nil
}

// find returns the index of the batch holding offset, which lies in
// [0, end).
func (l *MemLog) find(offset int64) int {
	return sort.Search(len(l.batches), func(i int) bool { return l.batches[i].next > offset })
}

// Read returns copies of whole batches; see PartitionLog.
func (l *MemLog) Read(offset int64, maxBytes int, limit int64) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.usableLocked(); err != nil {
		return nil, err
	}
	if offset < 0 || offset > l.end {
		return nil, fmt.Errorf("storage: mem log %s: read at offset %d outside [0, %d]: %w", l.name, offset, l.end, ErrOffsetOutOfRange)
	}
	if offset >= min(limit, l.end) {
		return nil, nil
	}
	var out []byte
	for i := l.find(offset); i < len(l.batches); i++ {
		b := l.batches[i]
		if b.base >= limit || (len(out) > 0 && len(out)+len(b.data) > maxBytes) {
			break
		}
		out = append(out, b.data...)
	}
	return out, nil
}

// StartOffset is always 0.
func (l *MemLog) StartOffset() int64 { return 0 }

// EndOffset is the next offset.
func (l *MemLog) EndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.end
}

// LatestEpoch is the last batch's epoch, or -1.
func (l *MemLog) LatestEpoch() int32 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epochs.latest()
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch.
func (l *MemLog) EndOffsetForEpoch(epoch int32) (int32, int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epochs.endOffsetFor(epoch, l.end)
}

// TruncateTo drops the batches holding offset and above.
func (l *MemLog) TruncateTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	if offset < 0 || offset > l.end {
		return fmt.Errorf("storage: mem log %s: truncate to offset %d outside [0, %d]: %w", l.name, offset, l.end, ErrOffsetOutOfRange)
	}
	if offset == l.end {
		return nil
	}
	i := l.find(offset)
	l.end = l.batches[i].base
	l.batches = l.batches[:i]
	l.epochs.truncateFrom(l.end)
	l.notifyLocked()
	return nil
}

// Sync does nothing: memory is as durable as it gets.
func (l *MemLog) Sync() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.usableLocked()
}

// Notify returns a channel closed at the next change of EndOffset or on
// Close.
func (l *MemLog) Notify() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return closedChan
	}
	if l.waiters == nil {
		l.waiters = make(chan struct{})
	}
	return l.waiters
}

func (l *MemLog) notifyLocked() {
	if l.waiters != nil {
		close(l.waiters)
		l.waiters = nil
	}
}

// Close marks the log closed and wakes its waiters.
func (l *MemLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("mem log %s: %w", l.name, ErrClosed)
	}
	l.closed = true
	l.notifyLocked()
	return nil
}

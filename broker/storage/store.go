package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/garantia/garantia/internal/atomicfile"
)

// maxTopicNameLen is Kafka's limit on topic names.
const maxTopicNameLen = 249

// ValidateTopic checks a topic name against Kafka's rules: 1 to 249
// characters from [a-zA-Z0-9._-], and not "." or "..".
func ValidateTopic(topic string) error {
	if topic == "" || len(topic) > maxTopicNameLen {
		return fmt.Errorf("%w: topic name %q has %d characters, want 1 to %d", ErrInvalidTopic, topic, len(topic), maxTopicNameLen)
	}
	if topic == "." || topic == ".." {
		return fmt.Errorf("%w: topic name %q is reserved", ErrInvalidTopic, topic)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: topic name %q has %q at byte %d; allowed are a-z, A-Z, 0-9, '.', '_' and '-'", ErrInvalidTopic, topic, c, i)
		}
	}
	return nil
}

func validatePartition(topic string, partition int32) error {
	if err := ValidateTopic(topic); err != nil {
		return err
	}
	if partition < 0 {
		return fmt.Errorf("%w: partition %d of topic %q is negative", ErrInvalidTopic, partition, topic)
	}
	return nil
}

// PartitionDir is the directory name of a partition: "<topic>-<partition>",
// as Kafka names them.
func PartitionDir(topic string, partition int32) string {
	return topic + "-" + strconv.FormatInt(int64(partition), 10)
}

// parsePartitionDir splits a partition directory name; the topic may itself
// contain dashes, the partition number follows the last one.
func parsePartitionDir(name string) (string, int32, error) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return "", 0, fmt.Errorf("%q is not <topic>-<partition>", name)
	}
	topic := name[:i]
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not <topic>-<partition>: %w", name, err)
	}
	if err := validatePartition(topic, int32(p)); err != nil {
		return "", 0, err
	}
	if PartitionDir(topic, int32(p)) != name {
		return "", 0, fmt.Errorf("%q is not <topic>-<partition> in canonical form", name)
	}
	return topic, int32(p), nil
}

type topicPartition struct {
	topic     string
	partition int32
}

// DiskStore is the Store of one broker's data directory: a directory per
// partition, each a Log. It holds an exclusive lock on the data directory
// while open.
type DiskStore struct {
	dir  string
	opts Options
	lock *os.File

	mu      sync.Mutex
	logs    map[topicPartition]*Log
	reports []RecoveryReport
	closed  bool
}

var _ Store = (*DiskStore)(nil)

// Open opens (creating if needed) the data directory dataDir and recovers
// every partition log in it before returning. Subdirectories that are not
// named <topic>-<partition> are left alone (with a warning), so the
// directory can hold other state too.
func Open(dataDir string, opts Options) (*DiskStore, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	// The new folder's entry must survive a power cut, or every log
	// created in it goes with it.
	if err := atomicfile.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: creating data directory: %w", err)
	}
	lock, err := lockDir(dataDir)
	if err != nil {
		return nil, err
	}
	s := &DiskStore{dir: dataDir, opts: opts, lock: lock, logs: map[topicPartition]*Log{}}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		unlockDir(lock)
		return nil, fmt.Errorf("storage: listing data directory: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		topic, p, err := parsePartitionDir(e.Name())
		if err != nil {
			opts.Logger.Warn("ignoring a directory that is not a partition log", "dir", filepath.Join(dataDir, e.Name()), "err", err)
			continue
		}
		l, err := OpenLog(filepath.Join(dataDir, e.Name()), opts)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.logs[topicPartition{topic, p}] = l
		s.reports = append(s.reports, l.Recovery())
	}
	return s, nil
}

// Dir is the data directory.
func (s *DiskStore) Dir() string { return s.dir }

// Partition returns the log of topic/partition, creating it if create.
func (s *DiskStore) Partition(topic string, partition int32, create bool) (PartitionLog, error) {
	l, err := s.Log(topic, partition, create)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return l, nil
}

// Log is Partition with the concrete type, for Recovery and Dir.
func (s *DiskStore) Log(topic string, partition int32, create bool) (*Log, error) {
	if err := validatePartition(topic, partition); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("store %s: %w", s.dir, ErrClosed)
	}
	tp := topicPartition{topic, partition}
	if l, ok := s.logs[tp]; ok {
		return l, nil
	}
	if !create {
		return nil, fmt.Errorf("%w: %s in %s", ErrUnknownPartition, PartitionDir(topic, partition), s.dir)
	}
	l, err := OpenLog(filepath.Join(s.dir, PartitionDir(topic, partition)), s.opts)
	if err != nil {
		return nil, err
	}
	if err := syncDir(s.dir); err != nil { // the new partition directory must survive a crash
		l.Close()
		return nil, err
	}
	s.logs[tp] = l
	return l, nil
}

// Topics lists every topic with its partition count (highest partition
// number plus one).
func (s *DiskStore) Topics() map[string]int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return topicsOf(s.logs)
}

func topicsOf[L any](logs map[topicPartition]L) map[string]int32 {
	out := map[string]int32{}
	for tp := range logs {
		out[tp.topic] = max(out[tp.topic], tp.partition+1)
	}
	return out
}

// Recoveries returns the recovery report of every partition found at Open,
// sorted by partition directory name.
func (s *DiskStore) Recoveries() []RecoveryReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]RecoveryReport(nil), s.reports...)
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out
}

// Close closes every log and releases the data directory.
func (s *DiskStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("store %s: %w", s.dir, ErrClosed)
	}
	s.closed = true
	var errs []error
	for _, l := range s.logs {
		if err := l.Close(); !errors.Is(err, ErrClosed) { // one closed early is fine
			errs = append(errs, err)
		}
	}
	errs = append(errs, unlockDir(s.lock))
	return errors.Join(errs...)
}

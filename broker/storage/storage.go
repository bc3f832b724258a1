package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Errors a log returns, each naming the guarantee it protects. Returned
// errors wrap them with %w and say which file, offset and check failed.
var (
	// ErrCorruptBatch: a batch failed its CRC-32C or framing check and was
	// not written, so no corrupt bytes ever reach a consumer.
	ErrCorruptBatch = errors.New("storage: corrupt record batch (CRC-32C or framing check failed)")
	// ErrOffsetOutOfRange: a read or truncation named an offset outside
	// [StartOffset, EndOffset].
	ErrOffsetOutOfRange = errors.New("storage: offset out of range")
	// ErrNonContiguous: a follower append did not start at the log end
	// offset, which would leave a hole or overwrite history.
	ErrNonContiguous = errors.New("storage: batch does not start at the log end offset")
	// ErrInvalidEpoch: an append carried a negative leader epoch or one
	// below the log's latest, which would break the rule that epochs never
	// decrease along the log (the rule OffsetForLeaderEpoch relies on).
	ErrInvalidEpoch = errors.New("storage: leader epoch is negative or below the log's latest epoch")
	// ErrClosed: the log or store was used after Close.
	ErrClosed = errors.New("storage: closed")
	// ErrUnknownPartition: the partition does not exist and was not to be
	// created.
	ErrUnknownPartition = errors.New("storage: unknown topic partition")
	// ErrInvalidTopic: a topic name breaks Kafka's rules (1..249 characters
	// of [a-zA-Z0-9._-], not "." or "..") or a partition number is negative.
	ErrInvalidTopic = errors.New("storage: invalid topic name or partition")
)

// FsyncPolicy says when appended bytes are forced to stable storage. It
// implements pflag.Value (and flag.Value) so it can be a command-line flag.
type FsyncPolicy string

const (
	// FsyncAlways syncs every append before it returns: an acknowledged
	// write survives power loss. Concurrent appenders share one fsync
	// (group commit).
	FsyncAlways FsyncPolicy = "always"
	// FsyncInterval syncs in the background every Options.FsyncInterval.
	FsyncInterval FsyncPolicy = "interval"
	// FsyncNever leaves it to the operating system (Kafka's default). A
	// finished segment is still synced when the log rolls past it, and
	// everything is synced on Close.
	FsyncNever FsyncPolicy = "never"
)

// ParseFsyncPolicy parses "always", "interval" or "never".
func ParseFsyncPolicy(s string) (FsyncPolicy, error) {
	switch p := FsyncPolicy(s); p {
	case FsyncAlways, FsyncInterval, FsyncNever:
		return p, nil
	}
	return "", fmt.Errorf("storage: fsync policy %q: want always, interval or never", s)
}

// String returns the policy's name.
func (p FsyncPolicy) String() string { return string(p) }

// Set parses s into p (flag.Value).
func (p *FsyncPolicy) Set(s string) error {
	v, err := ParseFsyncPolicy(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Type names the flag's value type (pflag.Value).
func (p *FsyncPolicy) Type() string { return "always|interval|never" }

// Defaults of Options' zero fields.
const (
	DefaultSegmentBytes       = 64 << 20
	DefaultIndexIntervalBytes = 4 << 10
	DefaultFsyncInterval      = time.Second
	// MaxSegmentBytes bounds Options.SegmentBytes so that a segment (which
	// may overshoot by one record set) stays addressable by the index's
	// 32-bit positions.
	MaxSegmentBytes = 1 << 30
)

// Options configure a DiskStore or a single disk Log. The zero value is
// usable: FsyncNever, 64 MiB segments, an index entry every 4 KiB,
// slog.Default().
type Options struct {
	// Fsync is the fsync policy; "" means FsyncNever.
	Fsync FsyncPolicy
	// FsyncInterval is the period of FsyncInterval syncs; 0 means 1s.
	FsyncInterval time.Duration
	// SegmentBytes is the size at which the log rolls to a new segment
	// file; 0 means 64 MiB. A record set is never split, so a segment can
	// exceed it by one append (and holds at least one).
	SegmentBytes int64
	// IndexIntervalBytes is how many log bytes lie between two entries of
	// the sparse offset index; 0 means 4 KiB.
	IndexIntervalBytes int
	// TailCacheBytes is how many bytes of the newest batches each log
	// keeps in memory to answer reads of its tail without touching the
	// file; 0 means DefaultTailCacheBytes, a negative value none.
	TailCacheBytes int
	// AckBeforeSync is a bug switch (`--bug fsync-after-ack`): under
	// FsyncAlways an append returns as soon as its bytes are written, and
	// the fsync comes later, in the background every FsyncInterval, so a
	// power cut in between loses appends that were acknowledged. Off in
	// every real use.
	AckBeforeSync bool
	// Logger receives recovery reports (a Warn line for every truncated
	// torn or corrupt tail) and background fsync failures; nil means
	// slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Fsync == "" {
		o.Fsync = FsyncNever
	}
	if _, err := ParseFsyncPolicy(string(o.Fsync)); err != nil {
		return o, fmt.Errorf("storage options: Fsync: %w", err)
	}
	if o.FsyncInterval < 0 {
		return o, fmt.Errorf("storage options: FsyncInterval %v is negative", o.FsyncInterval)
	}
	if o.FsyncInterval == 0 {
		o.FsyncInterval = DefaultFsyncInterval
	}
	if o.SegmentBytes < 0 || o.SegmentBytes > MaxSegmentBytes {
		return o, fmt.Errorf("storage options: SegmentBytes %d is outside [1, %d]", o.SegmentBytes, MaxSegmentBytes)
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.IndexIntervalBytes < 0 {
		return o, fmt.Errorf("storage options: IndexIntervalBytes %d is negative", o.IndexIntervalBytes)
	}
	if o.IndexIntervalBytes == 0 {
		o.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if o.TailCacheBytes == 0 {
		o.TailCacheBytes = DefaultTailCacheBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// RecoveryReport says what opening a disk log found and did. A log that was
// closed cleanly scans only the bytes after its last index entry; after a
// crash it scans every segment from its recovery point (the first segment
// not known to be synced) to the end.
type RecoveryReport struct {
	// Partition is the log's directory name, "<topic>-<partition>".
	Partition string
	// Clean: the log was closed cleanly (its clean-shutdown marker was
	// present and matched), so only its tail was verified.
	Clean bool
	// SegmentsScanned and BytesScanned count what was read and checked
	// batch by batch (framing, CRC-32C, contiguous offsets, epochs).
	SegmentsScanned int
	BytesScanned    int64
	// IndexesRebuilt counts offset index files that were missing or
	// failed their sanity check and were rebuilt from the segment.
	IndexesRebuilt int
	// EpochCacheRebuilt: the leader-epoch checkpoint was missing or
	// unreadable and was rebuilt from the batch headers.
	EpochCacheRebuilt bool
	// Truncated: a torn or corrupt tail was cut off. The fields below
	// describe it.
	Truncated bool
	// Segment is the path of the segment file holding the first bad batch,
	// Position that batch's byte position in it, Reason what was wrong.
	Segment  string
	Position int64
	Reason   string
	// BytesDropped counts every byte removed: the rest of that segment and
	// all later segments.
	BytesDropped int64
	// FirstDroppedOffset is the first offset the dropped bytes held (the
	// log's new end offset). LastDroppedOffset is the last offset found in
	// the dropped bytes' batch headers, or -1 when none was readable.
	FirstDroppedOffset int64
	LastDroppedOffset  int64
	// StartOffset and EndOffset are the log's bounds after recovery.
	StartOffset int64
	EndOffset   int64
	// Duration is the time Open spent on recovery.
	Duration time.Duration
}

// PartitionLog is the append-only log of one topic partition. Each entry is
// one Kafka RecordBatch (magic v2) exactly as it travels on the wire, with
// its baseOffset and partitionLeaderEpoch fields set by the log. All methods
// are safe for concurrent use.
type PartitionLog interface {
	// AppendAsLeader verifies the record set (one or more concatenated
	// batches: framing, magic 2, CRC-32C, recordCount = lastOffsetDelta+1),
	// gives the batches consecutive offsets starting at EndOffset, stamps
	// leaderEpoch into them, writes them and returns the first base offset.
	// A set that fails verification returns ErrCorruptBatch, a negative
	// leaderEpoch or one below LatestEpoch ErrInvalidEpoch; either leaves
	// the log unchanged. The caller's slice is not modified. The batches
	// are readable as soon as they are written, before an FsyncAlways
	// fsync completes: consumers must read below the high watermark.
	AppendAsLeader(batch []byte, leaderEpoch int32) (baseOffset int64, err error)
	// AppendAsFollower writes batches whose offsets and epochs a leader
	// already assigned (one or more concatenated, each verified like a
	// leader's). The first must start at EndOffset and each next one where
	// the previous ended, else ErrNonContiguous. An empty slice is a no-op.
	AppendAsFollower(batches []byte) error
	// Read returns whole batches, starting with the one that holds offset,
	// of at most maxBytes in all (but always at least one batch if any is
	// readable) and none that starts at or after limit (the high watermark
	// for consumers, EndOffset for followers). An offset equal to EndOffset,
	// or at or above limit, returns no bytes; one outside [StartOffset,
	// EndOffset] returns ErrOffsetOutOfRange. The first batch may start
	// before offset (consumers skip the records below it). Every returned
	// batch has been CRC-checked on the way out.
	Read(offset int64, maxBytes int, limit int64) ([]byte, error)
	// StartOffset is the first offset still in the log.
	StartOffset() int64
	// EndOffset is the offset the next appended record gets (the log end
	// offset, LEO).
	EndOffset() int64
	// LatestEpoch is the leader epoch of the last batch, or -1 when empty.
	LatestEpoch() int32
	// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch at
	// most the requested one, and the offset where that epoch ended (the
	// start offset of the next higher epoch, or EndOffset when it is the
	// latest). With no such epoch (empty log, or the requested epoch below
	// the first one) it returns (-1, -1).
	EndOffsetForEpoch(epoch int32) (foundEpoch int32, endOffset int64)
	// TruncateTo drops every record at offset and above. An offset inside a
	// batch truncates before that whole batch, so EndOffset may end up
	// below offset. The truncation is durable (synced) before it returns,
	// whatever the fsync policy, so dropped records cannot come back after
	// a crash.
	TruncateTo(offset int64) error
	// Sync forces everything appended so far to stable storage.
	Sync() error
	// Notify returns a channel that is closed the next time EndOffset
	// changes (an append or a truncation) or the log closes; long-polling
	// fetches wait on it. Take the channel before checking EndOffset, or a
	// change in between is missed.
	Notify() <-chan struct{}
	// Close syncs everything (under every policy: a clean shutdown is what
	// lets the next open skip recovery) and releases the files.
	Close() error
}

// Store is the set of partition logs under one broker's data directory.
type Store interface {
	// Partition returns the log of topic/partition, creating it when create
	// is true, else ErrUnknownPartition if it does not exist. A bad topic
	// name or negative partition returns ErrInvalidTopic.
	Partition(topic string, partition int32, create bool) (PartitionLog, error)
	// Topics lists the topics found or created, with their partition count
	// (the highest partition number present plus one).
	Topics() map[string]int32
	// Close closes every log.
	Close() error
}

package storage

import "errors"

// Errors a log returns, each naming the guarantee it protects.
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
	// ErrClosed: the log or store was used after Close.
	ErrClosed = errors.New("storage: closed")
	// ErrUnknownPartition: the partition does not exist and was not to be
	// created.
	ErrUnknownPartition = errors.New("storage: unknown topic partition")
)

// FsyncPolicy says when appended bytes are forced to stable storage.
type FsyncPolicy string

const (
	// FsyncAlways syncs every append before it returns: an acknowledged
	// write survives power loss.
	FsyncAlways FsyncPolicy = "always"
	// FsyncInterval syncs in the background every Options.FsyncInterval.
	FsyncInterval FsyncPolicy = "interval"
	// FsyncNever leaves it to the operating system (Kafka's default).
	FsyncNever FsyncPolicy = "never"
)

// PartitionLog is the append-only log of one topic partition. Each entry is
// one Kafka RecordBatch (magic v2) exactly as it travels on the wire, with
// its baseOffset and partitionLeaderEpoch fields set by the log. All methods
// are safe for concurrent use.
type PartitionLog interface {
	// AppendAsLeader verifies the batch (framing, magic 2, CRC-32C), gives it
	// the offsets starting at EndOffset, stamps leaderEpoch into it, writes it
	// and returns its base offset. A batch that fails verification returns
	// ErrCorruptBatch and leaves the log unchanged.
	AppendAsLeader(batch []byte, leaderEpoch int32) (baseOffset int64, err error)
	// AppendAsFollower writes batches whose offsets and epochs a leader
	// already assigned (one or more concatenated). The first must start at
	// EndOffset, else ErrNonContiguous.
	AppendAsFollower(batches []byte) error
	// Read returns whole batches, starting with the one that holds offset,
	// of at most maxBytes in all (but always at least one batch if any is
	// readable) and none that starts at or after limit (the high watermark
	// for consumers, EndOffset for followers). An offset equal to EndOffset
	// returns no bytes; one outside [StartOffset, EndOffset] returns
	// ErrOffsetOutOfRange.
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
	// latest). With no such epoch it returns (-1, -1).
	EndOffsetForEpoch(epoch int32) (foundEpoch int32, endOffset int64)
	// TruncateTo drops every record at offset and above. An offset inside a
	// batch truncates before that whole batch.
	TruncateTo(offset int64) error
	// Sync forces everything appended so far to stable storage.
	Sync() error
	// Close syncs according to the policy and releases the files.
	Close() error
}

// Store is the set of partition logs under one broker's data directory.
type Store interface {
	// Partition returns the log of topic/partition, creating it when create
	// is true, else ErrUnknownPartition if it does not exist.
	Partition(topic string, partition int32, create bool) (PartitionLog, error)
	// Topics lists the topics found or created, with their partition count.
	Topics() map[string]int32
	// Close closes every log.
	Close() error
}

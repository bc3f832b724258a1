// Package storage is the broker's durable log storage: one append-only,
// CRC-checked segment log per topic partition, the PartitionLog and Store
// interfaces the server and replication code use, a disk implementation
// (Open, OpenLog) and an in-memory one for neighbours' unit tests
// (NewMemStore, NewMemLog).
//
// # What a log stores
//
// Entries are Kafka RecordBatch v2 bytes exactly as on the wire. The log
// sets each batch's baseOffset and partitionLeaderEpoch; both lie outside
// the batch CRC-32C, so it rewrites them in place without recomputing it.
// Every batch is verified (framing, magic 2, CRC-32C) before it is written,
// on recovery, and again before Read returns it: corrupt bytes never reach a
// consumer. Epochs never decrease along a log; the leader-epoch cache
// (epoch -> first offset) answers OffsetForLeaderEpoch.
//
// # On disk
//
// A data directory holds one directory per partition, "<topic>-<partition>"
// as in Kafka, each holding:
//
//	00000000000000000000.log    segment: batches back to back, named by base offset
//	00000000000000000000.index  sparse offset index: (offset-base uint32, byte uint32)
//	                            big-endian, an entry every Options.IndexIntervalBytes
//	leader-epoch-checkpoint     Kafka's format: "0", count, then "epoch startOffset" lines
//	recovery-point              the base offset of the first segment not known synced
//	clean-shutdown              "end_offset N", present only between Close and the next open
//	.lock                       flock held while the log is open
//
// A new segment starts when the active one would pass Options.SegmentBytes.
// Index files are a cache: written when a segment is sealed and on Close,
// checked when loaded (whole entries, increasing, inside the segment, last
// entry pointing at a batch with that offset) and rebuilt from the segment
// when the check fails. A read finds a batch by binary search in the index,
// then a short walk over batch headers.
//
// # Durability
//
// Options.Fsync chooses when appends reach stable storage: FsyncAlways
// syncs before the append returns (concurrent appenders share one fsync:
// group commit), FsyncInterval in the background, FsyncNever leaves it to
// the kernel. Under every policy a sealed segment is synced, its index
// written and the recovery point moved past it in the background; a new
// epoch reaches the checkpoint (synced) before its first batch is written;
// TruncateTo is synced before it returns (dropped records must not come
// back); Close syncs everything. After a failed write or fsync the log
// refuses further writes: the kernel may have dropped the dirty pages, so
// nothing more can be acknowledged until a reopen recovers the log.
//
// # Recovery
//
// Opening a log checks it batch by batch where it may be damaged, and no
// further, so that big logs open fast:
//
//   - after a clean Close (the marker is present and its end offset
//     matches), only the bytes after the last index entry of the last
//     segment;
//   - after a crash, every segment from the one holding the recovery point
//     to the end. Segments before it were synced whole before the recovery
//     point moved past them; they are trusted, unless their index fails its
//     check, in which case they are verified while it is rebuilt.
//
// At the first torn or corrupt batch (short header, bad length or magic,
// CRC-32C mismatch, a base offset that does not continue the log, an epoch
// that decreases) the segment is truncated there and every later segment
// removed. One Warn line "truncated torn/corrupt tail" names the partition,
// segment, byte position, reason, bytes dropped and the first and last
// offsets dropped; Log.Recovery and DiskStore.Recoveries return the same as
// a RecoveryReport. The epoch cache is taken from its checkpoint below the
// verified part and re-derived from the verified batches (from all batch
// headers if the checkpoint is missing). The partitionLeaderEpoch field is
// outside the CRC, so a flipped bit there is caught only when it makes the
// epoch negative or decrease.
package storage

package replication

import "github.com/garantia/garantia/broker/storage"

// truncationOffset decides where a follower truncates its log given the
// leader's answer for the follower's latest epoch (from
// OffsetForLeaderEpoch or a fetch's diverging epoch): leaderEpoch is the
// largest epoch at most the asked one that the leader has, leaderEnd where
// it ended in the leader's log (KIP-101, KIP-279). It never consults the
// follower's high watermark (KIP-101's bug).
//
//   - The leader has no such epoch (-1): the leader's whole log is of later
//     epochs, so every record the follower has differs from the leader's
//     at the same offset: truncate everything.
//   - The follower has leaderEpoch too: both logs agree up to where it
//     ended in both, so truncate to the smaller end (and never beyond the
//     follower's log end). Final.
//   - The follower never had leaderEpoch (its largest epoch below it is
//     older): truncate to where that older epoch ends in the follower's
//     log, which is where the follower's newer epochs begin, and ask again
//     for the now-latest epoch (final is false).
//   - The follower has no epoch at or below leaderEpoch: its records are
//     all of later epochs than anything the leader has there: truncate
//     everything.
func truncationOffset(log storage.PartitionLog, leaderEpoch int32, leaderEnd int64) (offset int64, final bool) {
	leo := log.EndOffset()
	if leaderEpoch < 0 || leaderEnd < 0 {
		return log.StartOffset(), true
	}
	epoch, end := log.EndOffsetForEpoch(leaderEpoch)
	switch {
	case epoch < 0:
		return log.StartOffset(), true
	case epoch == leaderEpoch:
		return min(end, leaderEnd, leo), true
	default:
		return min(end, leo), false
	}
}

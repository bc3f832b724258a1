package storage

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
)

// epochEntry says that leader epoch Epoch wrote its first batch at
// StartOffset.
type epochEntry struct {
	Epoch       int32
	StartOffset int64
}

// epochCache is the leader-epoch history of a log (Kafka's
// LeaderEpochFileCache): one entry per epoch that wrote batches, epochs and
// start offsets both strictly increasing. It is not safe for concurrent use;
// its log locks around it.
type epochCache struct {
	entries []epochEntry
}

// latest is the epoch of the last entry, or -1.
func (c *epochCache) latest() int32 {
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].Epoch
}

// assign records that epoch starts at offset, if epoch is newer than the
// latest. It reports whether the cache changed. Callers have checked that
// epoch is not below latest and offset is not below the log end.
func (c *epochCache) assign(epoch int32, offset int64) bool {
	if epoch <= c.latest() {
		return false
	}
	c.entries = append(c.entries, epochEntry{Epoch: epoch, StartOffset: offset})
	return true
}

// truncateFrom drops the epochs that start at or after end (the new log
// end offset) and reports whether the cache changed.
func (c *epochCache) truncateFrom(end int64) bool {
	i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].StartOffset >= end })
	if i == len(c.entries) {
		return false
	}
	c.entries = c.entries[:i]
	return true
}

// endOffsetFor answers OffsetForLeaderEpoch against a log whose end offset
// is leo: the largest epoch at most epoch and where it ended, or (-1, -1).
func (c *epochCache) endOffsetFor(epoch int32, leo int64) (int32, int64) {
	// i is the first entry above epoch; i-1 the one we want.
	i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].Epoch > epoch })
	if i == 0 {
		return -1, -1
	}
	found := c.entries[i-1].Epoch
	if i == len(c.entries) {
		return found, leo
	}
	return found, c.entries[i].StartOffset
}

func (c *epochCache) clone() epochCache {
	return epochCache{entries: append([]epochEntry(nil), c.entries...)}
}

func (c *epochCache) equal(o epochCache) bool {
	if len(c.entries) != len(o.entries) {
		return false
	}
	for i := range c.entries {
		if c.entries[i] != o.entries[i] {
			return false
		}
	}
	return true
}

// epochCheckpointVersion is the first line of a leader-epoch checkpoint;
// the format is Kafka's: version, count, then "epoch startOffset" lines.
const epochCheckpointVersion = 0

// marshal renders the cache in Kafka's leader-epoch-checkpoint format.
func (c *epochCache) marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n%d\n", epochCheckpointVersion, len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&b, "%d %d\n", e.Epoch, e.StartOffset)
	}
	return b.Bytes()
}

// parseEpochCheckpoint parses a leader-epoch checkpoint; errors name the
// file and line and say which rule broke.
func parseEpochCheckpoint(path string, data []byte) (epochCache, error) {
	var c epochCache
	err := ParseCheckpoint(path, data, epochCheckpointVersion, 1<<24, func(s string, f []string) error {
		if len(f) != 2 {
			return fmt.Errorf("%q is not \"epoch startOffset\"", s)
		}
		epoch, err1 := strconv.ParseInt(f[0], 10, 32)
		start, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || epoch < 0 || start < 0 {
			return fmt.Errorf("%q is not two non-negative numbers", s)
		}
		if len(c.entries) > 0 {
			last := c.entries[len(c.entries)-1]
			if int32(epoch) <= last.Epoch || start <= last.StartOffset {
				return fmt.Errorf("entry %q does not increase on %d %d (epochs and start offsets must both grow)", s, last.Epoch, last.StartOffset)
			}
		}
		c.entries = append(c.entries, epochEntry{Epoch: int32(epoch), StartOffset: start})
		return nil
	})
	return c, err
}

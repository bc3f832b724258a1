package replication

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"

	"github.com/garantia/garantia/internal/atomicfile"

	"github.com/garantia/garantia/broker/storage"
)

// CheckpointFile is the name, in the data directory, of the high
// watermark checkpoint (Kafka's replication-offset-checkpoint).
const CheckpointFile = "replication-offset-checkpoint"

// checkpointVersion is the first line of the file; the format is Kafka's:
// version, entry count, then "topic partition offset" lines.
const checkpointVersion = 0

// maxCheckpointEntries bounds what a (damaged) file can make us allocate.
const maxCheckpointEntries = 1 << 24

// tp names a topic partition.
type tp struct {
	topic string
	index int32
}

func (k tp) String() string { return k.topic + "-" + strconv.FormatInt(int64(k.index), 10) }

// readCheckpoint reads a high watermark checkpoint; a missing file is an
// empty checkpoint. Errors name the file and line and the rule broken.
func readCheckpoint(path string) (map[tp]int64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[tp]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("high watermark checkpoint: %w", err)
	}
	out := map[tp]int64{}
	err = storage.ParseCheckpoint(path, data, checkpointVersion, maxCheckpointEntries, func(s string, f []string) error {
		if len(f) != 3 {
			return fmt.Errorf("%q is not \"topic partition offset\"", s)
		}
		p, err1 := strconv.ParseInt(f[1], 10, 32)
		off, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || p < 0 || off < 0 {
			return fmt.Errorf("%q: partition and offset must be non-negative numbers", s)
		}
		out[tp{f[0], int32(p)}] = off
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// writeCheckpoint replaces the checkpoint atomically and durably: a
// temporary file, fsync, rename over the old one, fsync of the directory.
func writeCheckpoint(path string, hws map[tp]int64) error {
	keys := make([]tp, 0, len(hws))
	for k := range hws {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].index < keys[j].index
	})
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n%d\n", checkpointVersion, len(keys))
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %d %d\n", k.topic, k.index, hws[k])
	}
	if err := atomicfile.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("high watermark checkpoint: %w", err)
	}
	return nil
}

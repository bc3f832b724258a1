package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/garantia/garantia/internal/atomicfile"
)

// producerIDsFile holds the first producer id not yet handed out, in the
// data directory.
const producerIDsFile = "producer-ids"

// producerIDBlock is how many ids are reserved per durable write, as
// Kafka's ProducerIdManager reserves blocks, so that InitProducerID
// rarely waits on an fsync.
const producerIDBlock = 1000

// fileProducerIDs hands out producer ids that are never reused across
// restarts: before it hands out an id, the end of the block holding it is
// durably recorded, so a restart (even after SIGKILL) starts past it.
type fileProducerIDs struct {
	mu    sync.Mutex
	path  string // "" keeps nothing on disk (in-memory stores)
	next  int64
	limit int64 // ids below limit are reserved on disk
}

// openProducerIDs reads the allocator state from dir ("" for none).
func openProducerIDs(dir string) (*fileProducerIDs, error) {
	a := &fileProducerIDs{}
	if dir == "" {
		return a, nil
	}
	a.path = filepath.Join(dir, producerIDsFile)
	b, err := os.ReadFile(a.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return a, nil
	case err != nil:
		return nil, fmt.Errorf("producer ids: %w", err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v < 0 {
		return nil, fmt.Errorf("producer ids: %s: want one non-negative integer, got %q", a.path, strings.TrimSpace(string(b)))
	}
	a.next, a.limit = v, v
	return a, nil
}

// atLeast makes every future id at least min (the logs may hold ids from
// a block whose reservation was lost with the file).
func (a *fileProducerIDs) atLeast(min int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next < min {
		a.next = min
		a.limit = max(a.limit, min)
	}
}

// NextProducerID implements server.ProducerIDs.
func (a *fileProducerIDs) NextProducerID() (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.path != "" && a.next >= a.limit {
		limit := a.next + producerIDBlock
		if err := atomicfile.WriteFile(a.path, []byte(strconv.FormatInt(limit, 10)+"\n"), 0o644); err != nil {
			return 0, fmt.Errorf("producer ids: reserving block up to %d: %w", limit, err)
		}
		a.limit = limit
	}
	id := a.next
	a.next++
	return id, nil
}

// producerIDStride spreads producer ids over the cluster: node n hands out
// n, n+stride, n+2*stride, ..., so that no two brokers ever hand out the
// same id without asking anyone (an idempotent producer's state moves
// with its partition to whichever broker leads it next, so ids must be
// unique cluster-wide). Node ids must therefore be below it.
const producerIDStride = 1 << 16

// clusterProducerIDs hands out cluster-unique producer ids from a node's
// durable counter.
type clusterProducerIDs struct {
	local *fileProducerIDs
	node  int64
}

// NextProducerID implements server.ProducerIDs.
func (c *clusterProducerIDs) NextProducerID() (int64, error) {
	n, err := c.local.NextProducerID()
	if err != nil {
		return 0, err
	}
	return n*producerIDStride + c.node, nil
}

// atLeast makes every future id larger than maxSeen (the largest id in
// any log, whichever node handed it out).
func (c *clusterProducerIDs) atLeast(maxSeen int64) {
	if maxSeen >= 0 {
		c.local.atLeast(maxSeen/producerIDStride + 1)
	}
}

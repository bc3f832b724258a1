package partition

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
)

// rebuildReadBytes is the chunk size for scanning a log at open.
const rebuildReadBytes = 1 << 20

// Partition is one topic partition led by this node. All methods are safe
// for concurrent use.
type Partition struct {
	topic string
	index int32
	self  int32 // this node's id
	log   storage.PartitionLog

	// producerMu makes one producer's sequence check and log append one
	// step, so two batches of one producer can never both pass the check.
	// It is striped by producer id rather than one lock per partition, so
	// that appends of different producers (and of non-idempotent ones,
	// which take no stripe) reach the log concurrently and can share one
	// fsync under FsyncAlways (the log's group commit).
	producerMu [producerStripes]sync.Mutex

	stateMu   sync.Mutex
	producers map[int64]*producerState // guarded by stateMu
	maxPID    int64                    // largest producer id seen; guarded by stateMu

	mu          sync.Mutex
	leaderEpoch int32
	hw          int64
	appendedEnd int64           // end of the leader's completed (durable per policy) appends
	isr         []int32         // in-sync replicas, the leader included
	replicaLEO  map[int32]int64 // last log end offset each follower reported
	watchers    map[chan struct{}]struct{}
}

// producerStripes is the number of producer locks per partition.
const producerStripes = 16

// Open makes the partition state for log, led by node self at leaderEpoch,
// and rebuilds the idempotent producers' state by scanning the log's batch
// headers (batches carry producer id, epoch and base sequence).
//
// On one node the ISR is {self}; the high watermark starts at the log end
// offset, since everything in a single node's log was written by its only
// replica.
func Open(topic string, index, self int32, leaderEpoch int32, log storage.PartitionLog) (*Partition, error) {
	p := &Partition{
		topic:       topic,
		index:       index,
		self:        self,
		log:         log,
		producers:   make(map[int64]*producerState),
		maxPID:      -1,
		leaderEpoch: leaderEpoch,
		isr:         []int32{self},
		replicaLEO:  make(map[int32]int64),
		watchers:    make(map[chan struct{}]struct{}),
	}
	if err := p.rebuildProducers(); err != nil {
		return nil, fmt.Errorf("partition %s-%d: rebuilding producer state from the log: %w", topic, index, err)
	}
	p.hw = log.EndOffset()
	p.appendedEnd = p.hw
	return p, nil
}

func (p *Partition) rebuildProducers() error {
	offset, end := p.log.StartOffset(), p.log.EndOffset()
	for offset < end {
		b, err := p.log.Read(offset, rebuildReadBytes, end)
		if err != nil {
			return fmt.Errorf("reading at offset %d: %w", offset, err)
		}
		if len(b) == 0 {
			return fmt.Errorf("log returned no batch at offset %d below its end offset %d", offset, end)
		}
		next := offset
		err = wire.Batches(b, func(h wire.BatchHeader, _ []byte) bool {
			record(p.producers, h)
			p.maxPID = max(p.maxPID, h.ProducerID)
			next = h.LastOffset() + 1
			return true
		})
		if err != nil {
			return fmt.Errorf("batch at offset %d: %w", offset, err)
		}
		if next <= offset {
			return fmt.Errorf("log read at offset %d returned no whole batch", offset)
		}
		offset = next
	}
	return nil
}

// Topic is the partition's topic name.
func (p *Partition) Topic() string { return p.topic }

// Index is the partition number.
func (p *Partition) Index() int32 { return p.index }

// Log is the underlying log, for reads.
func (p *Partition) Log() storage.PartitionLog { return p.log }

// MaxProducerID is the largest producer id in the log when it was opened or
// appended since, or -1; the producer id allocator must stay above it.
func (p *Partition) MaxProducerID() int64 {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.maxPID
}

// LeaderEpoch is the current leader epoch.
func (p *Partition) LeaderEpoch() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leaderEpoch
}

// ISR returns a copy of the in-sync replica set.
func (p *Partition) ISR() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int32(nil), p.isr...)
}

// HighWatermark is the offset below which records are committed: visible
// to consumers and acknowledged to acks=all producers.
func (p *Partition) HighWatermark() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hw
}

// CheckLeaderEpoch validates a client's idea of the current leader epoch
// (KIP-320): -1 means the client does not know it, an older epoch is
// fenced, a newer one is unknown to this (stale) leader.
func (p *Partition) CheckLeaderEpoch(clientEpoch int32) error {
	if clientEpoch < 0 {
		return nil
	}
	cur := p.LeaderEpoch()
	switch {
	case clientEpoch < cur:
		return fmt.Errorf("%w: %s-%d: client epoch %d, leader epoch %d", kerr.FencedLeaderEpoch, p.topic, p.index, clientEpoch, cur)
	case clientEpoch > cur:
		return fmt.Errorf("%w: %s-%d: client epoch %d, leader epoch %d", kerr.UnknownLeaderEpoch, p.topic, p.index, clientEpoch, cur)
	}
	return nil
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch (KIP-101/279): the
// largest epoch at most epoch and the offset where it ended. The current
// epoch ends at the log end offset even before it has a batch; an epoch
// above the current one is unknown, (-1, -1).
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	cur := p.LeaderEpoch()
	switch {
	case epoch > cur:
		return -1, -1
	case epoch == cur:
		return cur, p.log.EndOffset()
	}
	return p.log.EndOffsetForEpoch(epoch)
}

// AppendResult says where a produced batch landed.
type AppendResult struct {
	BaseOffset int64
	LastOffset int64
	// Duplicate: the batch repeated one already in the log (an idempotent
	// producer's retry); offsets are those of the original and nothing was
	// appended.
	Duplicate bool
}

// AppendAsLeader verifies one produced batch (framing, magic 2, CRC-32C),
// checks its producer sequence, appends it at the log end with the current
// leader epoch and advances the high watermark as far as the ISR allows.
// Errors wrap the kerr error the client should see.
func (p *Partition) AppendAsLeader(batch []byte) (AppendResult, error) {
	h, err := wire.VerifyProducedBatch(batch)
	if err != nil {
		return AppendResult{}, fmt.Errorf("%w: %s-%d: %w", kerr.CorruptMessage, p.topic, p.index, err)
	}
	if h.Transactional() || h.Control() {
		return AppendResult{}, fmt.Errorf("%w: %s-%d: transactional and control batches are not supported", kerr.InvalidRecord, p.topic, p.index)
	}
	if h.ProducerID >= 0 && h.BaseSequence < 0 {
		return AppendResult{}, fmt.Errorf("%w: %s-%d: producer %d sent no base sequence", kerr.InvalidRecord, p.topic, p.index, h.ProducerID)
	}

	if h.ProducerID >= 0 {
		mu := &p.producerMu[uint64(h.ProducerID)%producerStripes]
		mu.Lock()
		defer mu.Unlock()
	}
	p.stateMu.Lock()
	c, err := check(p.producers, h)
	p.stateMu.Unlock()
	if err != nil {
		return AppendResult{}, fmt.Errorf("%s-%d: %w", p.topic, p.index, err)
	}
	if c.duplicate {
		return AppendResult{BaseOffset: c.baseOffset, LastOffset: c.baseOffset + int64(h.LastOffsetDelta), Duplicate: true}, nil
	}
	base, err := p.log.AppendAsLeader(batch, p.LeaderEpoch())
	if err != nil {
		if errors.Is(err, storage.ErrCorruptBatch) {
			return AppendResult{}, fmt.Errorf("%w: %s-%d: %w", kerr.CorruptMessage, p.topic, p.index, err)
		}
		return AppendResult{}, fmt.Errorf("%w: %s-%d: append: %w", kerr.KafkaStorageError, p.topic, p.index, err)
	}
	h.BaseOffset = base
	p.stateMu.Lock()
	record(p.producers, h)
	p.maxPID = max(p.maxPID, h.ProducerID)
	p.stateMu.Unlock()
	p.appended(h.LastOffset() + 1)
	return AppendResult{BaseOffset: base, LastOffset: h.LastOffset()}, nil
}

// appended notes that a leader append ending at end has returned, so it
// and everything before it are written (and synced, per the fsync policy:
// a log append returns only once everything before it is as durable as
// it). Appends may return out of order; the end only grows.
func (p *Partition) appended(end int64) {
	p.mu.Lock()
	p.appendedEnd = max(p.appendedEnd, end)
	p.mu.Unlock()
	p.maybeAdvanceHW()
}

// maybeAdvanceHW moves the high watermark to the smallest log end offset
// over the ISR (the leader's own being the end of its completed appends,
// not the raw log end, which may include an append still syncing) and
// wakes every waiter if it moved. It never moves the high watermark
// backwards.
func (p *Partition) maybeAdvanceHW() {
	p.mu.Lock()
	defer p.mu.Unlock()
	hw := p.appendedEnd
	for _, r := range p.isr {
		if r == p.self {
			continue
		}
		hw = min(hw, p.replicaLEO[r])
	}
	if hw <= p.hw {
		return
	}
	p.hw = hw
	for ch := range p.watchers {
		select {
		case ch <- struct{}{}:
		default: // already signalled; the waiter will re-check
		}
	}
}

// Watch makes ch receive a signal whenever the high watermark advances,
// until the returned function is called. Sends never block: ch should have
// a buffer of one, signals coalesce, and the waiter re-checks its
// condition after each. Several partitions may share one channel, so that
// a fetch over many partitions waits on one channel without a goroutine
// per partition.
func (p *Partition) Watch(ch chan struct{}) (stop func()) {
	p.mu.Lock()
	p.watchers[ch] = struct{}{}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.watchers, ch)
		p.mu.Unlock()
	}
}

// WaitForHighWatermark blocks until the high watermark is at least offset
// (the write at offset-1 is committed) or ctx ends.
func (p *Partition) WaitForHighWatermark(ctx context.Context, offset int64) error {
	if p.HighWatermark() >= offset {
		return nil
	}
	ch := make(chan struct{}, 1)
	defer p.Watch(ch)()
	for p.HighWatermark() < offset {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s-%d: waiting for the high watermark to reach %d: %w", p.topic, p.index, offset, ctx.Err())
		}
	}
	return nil
}

package partition

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
)

// rebuildReadBytes is the chunk size for scanning a log at open.
const rebuildReadBytes = 1 << 20

// producerStripes is the number of producer locks per partition.
const producerStripes = 16

// Role is what this node does for a partition.
type Role int8

const (
	// Stopped: this node holds the log but is not (or not yet) a replica
	// in the metadata it applied; it serves nothing for the partition.
	Stopped Role = iota
	// Leader: it takes writes, serves consumers and followers, tracks the
	// followers and owns the high watermark.
	Leader
	// Follower: it copies the leader's log by fetching.
	Follower
)

func (r Role) String() string {
	switch r {
	case Leader:
		return "leader"
	case Follower:
		return "follower"
	}
	return "stopped"
}

// ErrNotFollowing: a follower-side change (an append or truncation from a
// fetch) was based on a leader or leader epoch the partition no longer
// follows, so it was dropped; the fetcher carries on with the new state.
var ErrNotFollowing = errors.New("partition: no longer following that leader at that epoch")

// Config is what Open needs.
type Config struct {
	Topic string
	Index int32
	// Self is this node's broker id.
	Self int32
	Log  storage.PartitionLog
	// HighWatermark is the high watermark checkpointed before a restart
	// (0 when none): the partition starts from the smaller of it and the
	// log end offset. It is only a lower bound of what is committed.
	HighWatermark int64
	// StaleLeaderBug is `--bug stale-leader`: a leader whose ISR change the
	// controller does not commit (the controller is unreachable, or
	// answers that the leader was deposed) applies it locally anyway and
	// keeps acknowledging acks=all writes from its own log.
	StaleLeaderBug bool
	// ISRHint, when set, is called (with no lock held) when a follower's
	// fetch may let it join the ISR, so that the ISR manager need not wait
	// for its next tick.
	ISRHint func()
}

// followerState is what the leader knows of one follower (Kafka's
// Replica): its log end offset, as its last fetch offset says, and when it
// was last caught up.
type followerState struct {
	leo                int64     // -1 until it fetches from this leader
	lastCaughtUp       time.Time // last time it had everything the leader had
	lastFetch          time.Time
	lastFetchLeaderLEO int64 // the leader's log end offset at that fetch
}

// Partition is this node's replica of one topic partition: its log, its
// role (leader or follower) at a leader epoch, and, as leader, the
// followers' progress, the in-sync replica set and the high watermark. All
// methods are safe for concurrent use.
type Partition struct {
	topic          string
	index          int32
	self           int32
	log            storage.PartitionLog
	staleLeaderBug bool
	isrHint        func()

	// roleMu orders role changes against log changes: leader appends
	// hold it shared, role changes and follower appends and truncations
	// exclusively, so that a truncation never interleaves with a leader
	// append and no append lands under a role it was not checked against.
	roleMu sync.RWMutex

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

	mu             sync.Mutex
	role           Role
	leader         int32
	leaderEpoch    int32
	partitionEpoch int32
	replicas       []int32
	isr            []int32 // the committed ISR (as the controller last said)
	pendingISR     []int32 // an ISR change sent to the controller and not answered; nil if none
	fenced         bool    // the controller answered that this leader's epoch is over
	minISR         int32
	hw             int64
	appendedEnd    int64 // end of the leader's completed (durable per policy) appends
	epochStart     int64 // log end offset when this leader epoch began
	followers      map[int32]*followerState
	truncating     bool // follower: must reconcile its log with the leader's before fetching
	watchers       map[chan struct{}]struct{}
}

// Open makes the replica state for a log, in role Stopped, and rebuilds the
// idempotent producers' state by scanning the log's batch headers (batches
// carry producer id, epoch and base sequence). BecomeLeader or
// BecomeFollower gives it a role.
func Open(cfg Config) (*Partition, error) {
	p := &Partition{
		topic:          cfg.Topic,
		index:          cfg.Index,
		self:           cfg.Self,
		log:            cfg.Log,
		staleLeaderBug: cfg.StaleLeaderBug,
		isrHint:        cfg.ISRHint,
		producers:      make(map[int64]*producerState),
		maxPID:         -1,
		leader:         metadata.NoLeader,
		leaderEpoch:    -1,
		minISR:         1,
		watchers:       make(map[chan struct{}]struct{}),
	}
	if err := p.rebuildProducers(); err != nil {
		return nil, fmt.Errorf("partition %s-%d: rebuilding producer state from the log: %w", cfg.Topic, cfg.Index, err)
	}
	p.hw = min(max(cfg.HighWatermark, 0), cfg.Log.EndOffset())
	p.appendedEnd = cfg.Log.EndOffset()
	return p, nil
}

// rebuildProducers scans the whole log for producer state; callers hold
// roleMu exclusively or own the partition alone.
func (p *Partition) rebuildProducers() error {
	producers := make(map[int64]*producerState)
	maxPID := int64(-1)
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
			record(producers, h)
			maxPID = max(maxPID, h.ProducerID)
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
	p.stateMu.Lock()
	p.producers, p.maxPID = producers, max(p.maxPID, maxPID)
	p.stateMu.Unlock()
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

// State is a consistent view of a partition's replication state, for
// responses, logs and tests.
type State struct {
	Role           Role
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	// ISR is the committed in-sync replica set; PendingISR the change in
	// flight to the controller (nil when none).
	ISR, PendingISR []int32
	// Fenced: the controller said this leader's epoch is over; it takes no
	// more writes until the metadata gives it a new role.
	Fenced        bool
	HighWatermark int64
	LogEndOffset  int64
	// Truncating: a follower that has not yet reconciled its log with the
	// leader's (OffsetForLeaderEpoch).
	Truncating bool
}

// State returns the current replication state.
func (p *Partition) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return State{
		Role:           p.role,
		Leader:         p.leader,
		LeaderEpoch:    p.leaderEpoch,
		PartitionEpoch: p.partitionEpoch,
		ISR:            slices.Clone(p.isr),
		PendingISR:     slices.Clone(p.pendingISR),
		Fenced:         p.fenced,
		HighWatermark:  p.hw,
		LogEndOffset:   p.log.EndOffset(),
		Truncating:     p.truncating,
	}
}

// Role is the partition's current role.
func (p *Partition) Role() Role {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.role
}

// IsLeader reports whether this node leads the partition.
func (p *Partition) IsLeader() bool { return p.Role() == Leader }

// LeaderEpoch is the current leader epoch (-1 before any role).
func (p *Partition) LeaderEpoch() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leaderEpoch
}

// ISR returns a copy of the committed in-sync replica set.
func (p *Partition) ISR() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.isr)
}

// HighWatermark is the offset below which records are committed: visible
// to consumers and acknowledged to acks=all producers.
func (p *Partition) HighWatermark() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hw
}

// EstablishedHighWatermark is HighWatermark, and whether this leader
// knows it to be current. A new leader learns the high watermark only as
// its followers fetch: until it reaches the leader's log end at the start
// of its epoch, records the previous leader committed may lie above it.
// Kafka then answers ListOffsets with OFFSET_NOT_AVAILABLE (KIP-207) so that
// a client retries rather than take a stale end; so do we. A follower or a
// stopped replica reports false.
func (p *Partition) EstablishedHighWatermark() (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hw, p.role == Leader && p.hw >= p.epochStart
}

// BecomeLeader makes this node the partition's leader at st.LeaderEpoch
// (st is the partition's metadata, naming this node as leader), or, when
// it already leads at that epoch, takes the newer committed ISR from st.
// New appends are stamped with st.LeaderEpoch. Every follower in the ISR
// counts as caught up now, so that it has ReplicaLagTimeMax to fetch
// before it is dropped; the high watermark stays where it was until the
// followers report their log end offsets. It reports whether the role or
// epoch changed. A state older than the current one is ignored.
func (p *Partition) BecomeLeader(st metadata.Partition, minISR int32, now time.Time) bool {
	p.mu.Lock()
	if p.role != Stopped && st.LeaderEpoch < p.leaderEpoch {
		p.mu.Unlock()
		return false
	}
	if p.role == Leader && st.LeaderEpoch == p.leaderEpoch {
		p.minISR = max(minISR, 1)
		if st.PartitionEpoch > p.partitionEpoch {
			p.isr, p.partitionEpoch = slices.Clone(st.ISR), st.PartitionEpoch
			p.setReplicasLocked(st.Replicas, now)
		}
		p.mu.Unlock()
		p.maybeAdvanceHW()
		p.signal()
		return false
	}
	p.mu.Unlock()

	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	p.mu.Lock()
	leo := p.log.EndOffset()
	p.role, p.leader = Leader, p.self
	p.leaderEpoch, p.partitionEpoch = st.LeaderEpoch, st.PartitionEpoch
	p.isr, p.pendingISR, p.fenced = slices.Clone(st.ISR), nil, false
	p.minISR = max(minISR, 1)
	p.appendedEnd, p.epochStart = leo, leo
	p.hw = min(p.hw, leo)
	p.truncating = false
	p.followers = make(map[int32]*followerState)
	p.setReplicasLocked(st.Replicas, now)
	p.mu.Unlock()
	p.maybeAdvanceHW()
	p.signal()
	return true
}

// setReplicasLocked records the replica list and makes follower state for
// new followers: in-sync ones count as caught up now. Callers hold mu.
func (p *Partition) setReplicasLocked(replicas []int32, now time.Time) {
	p.replicas = slices.Clone(replicas)
	for _, r := range replicas {
		if r == p.self || p.followers[r] != nil {
			continue
		}
		f := &followerState{leo: -1, lastFetchLeaderLEO: -1}
		if slices.Contains(p.isr, r) {
			f.lastCaughtUp = now
		}
		p.followers[r] = f
	}
	for r := range p.followers {
		if !slices.Contains(replicas, r) {
			delete(p.followers, r)
		}
	}
}

// BecomeFollower makes this node follow st.Leader at st.LeaderEpoch (which
// may be NoLeader: the partition is offline and there is nothing to fetch).
// Acks=all writes still waiting fail with NOT_LEADER_OR_FOLLOWER. A
// follower with a non-empty log must reconcile it with the leader's
// (Truncating) before it fetches. It reports whether the leader or epoch
// changed; a state older than the current one is ignored.
func (p *Partition) BecomeFollower(st metadata.Partition) bool {
	p.mu.Lock()
	if p.role != Stopped && st.LeaderEpoch < p.leaderEpoch {
		p.mu.Unlock()
		return false
	}
	if p.role == Follower && st.LeaderEpoch == p.leaderEpoch && st.Leader == p.leader {
		p.isr, p.partitionEpoch = slices.Clone(st.ISR), st.PartitionEpoch
		p.replicas = slices.Clone(st.Replicas)
		p.mu.Unlock()
		return false
	}
	p.mu.Unlock()

	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	p.mu.Lock()
	p.role, p.leader = Follower, st.Leader
	p.leaderEpoch, p.partitionEpoch = st.LeaderEpoch, st.PartitionEpoch
	p.isr, p.pendingISR, p.fenced = slices.Clone(st.ISR), nil, false
	p.replicas = slices.Clone(st.Replicas)
	p.followers = nil
	p.truncating = p.log.EndOffset() > p.log.StartOffset()
	p.mu.Unlock()
	p.signal()
	return true
}

// Stop takes the partition out of service: this node is no longer one of
// its replicas. Waiting acks=all writes fail with NOT_LEADER_OR_FOLLOWER.
func (p *Partition) Stop() {
	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	p.mu.Lock()
	p.role, p.leader = Stopped, metadata.NoLeader
	p.followers, p.pendingISR, p.truncating = nil, nil, false
	p.mu.Unlock()
	p.signal()
}

// CheckLeaderEpoch validates a client's idea of the current leader epoch
// (KIP-320): -1 means the client does not know it, an older epoch is
// fenced, a newer one is unknown to this (stale) replica.
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
	// LeaderEpoch is the epoch the batch was appended under; an acks=all
	// wait is for this epoch's high watermark.
	LeaderEpoch int32
	// Duplicate: the batch repeated one already in the log (an idempotent
	// producer's retry); offsets are those of the original and nothing was
	// appended.
	Duplicate bool
}

// notLeader is the error of a write or wait on a partition this node does
// not lead (any more).
func (p *Partition) notLeader(why string) error {
	return fmt.Errorf("%w: %s-%d: %s", kerr.NotLeaderForPartition, p.topic, p.index, why)
}

// AppendAsLeader verifies one produced batch (framing, magic 2, CRC-32C),
// checks that this node leads (and, for acks=-1, that the ISR has at least
// min.insync.replicas members: NOT_ENOUGH_REPLICAS), checks its producer
// sequence, appends it at the log end with the current leader epoch and
// advances the high watermark as far as the ISR allows. Errors wrap the
// kerr error the client should see.
func (p *Partition) AppendAsLeader(batch []byte, acks int16) (AppendResult, error) {
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

	p.roleMu.RLock()
	defer p.roleMu.RUnlock()
	p.mu.Lock()
	role, epoch, fenced, isr, minISR := p.role, p.leaderEpoch, p.fenced, len(p.isr), p.minISR
	p.mu.Unlock()
	switch {
	case role != Leader:
		return AppendResult{}, p.notLeader("this node is " + role.String())
	case fenced && !p.staleLeaderBug:
		return AppendResult{}, p.notLeader(fmt.Sprintf("the controller said leader epoch %d is over", epoch))
	case acks == -1 && int32(isr) < minISR:
		return AppendResult{}, fmt.Errorf("%w: %s-%d: %d in-sync replicas, min.insync.replicas is %d", kerr.NotEnoughReplicas, p.topic, p.index, isr, minISR)
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
		return AppendResult{BaseOffset: c.baseOffset, LastOffset: c.baseOffset + int64(h.LastOffsetDelta), LeaderEpoch: epoch, Duplicate: true}, nil
	}
	base, err := p.log.AppendAsLeader(batch, epoch)
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
	return AppendResult{BaseOffset: base, LastOffset: h.LastOffset(), LeaderEpoch: epoch}, nil
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

// maximalISRLocked is the ISR the high watermark is computed over: the
// committed ISR together with any change in flight (Kafka's "maximal
// ISR"). A shrink therefore counts only once the controller committed it,
// and a joining follower counts as soon as it is proposed (it has
// everything up to the high watermark already). Callers hold mu.
func (p *Partition) maximalISRLocked() []int32 {
	out := slices.Clone(p.isr)
	for _, r := range p.pendingISR {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// maybeAdvanceHW moves a leader's high watermark to the smallest log end
// offset over the maximal ISR (the leader's own being the end of its
// completed appends, not the raw log end, which may include an append
// still syncing) and wakes every waiter if it moved. It never moves the
// high watermark backwards.
func (p *Partition) maybeAdvanceHW() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != Leader {
		return
	}
	hw := p.appendedEnd
	for _, r := range p.maximalISRLocked() {
		if r == p.self {
			continue
		}
		f := p.followers[r]
		if f == nil {
			return // an ISR member we know nothing of holds the high watermark
		}
		hw = min(hw, f.leo)
	}
	if hw <= p.hw {
		return
	}
	p.hw = hw
	p.signalLocked()
}

// signal wakes every watcher (a role, ISR or high watermark change).
func (p *Partition) signal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.signalLocked()
}

func (p *Partition) signalLocked() {
	for ch := range p.watchers {
		select {
		case ch <- struct{}{}:
		default: // already signalled; the waiter will re-check
		}
	}
}

// Watch makes ch receive a signal whenever the high watermark advances or
// the role or ISR changes, until the returned function is called. Sends
// never block: ch should have a buffer of one, signals coalesce, and the
// waiter re-checks its condition after each. Several partitions may share
// one channel, so that a fetch over many partitions waits on one channel
// without a goroutine per partition.
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

package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/hashicorp/raft"
)

// Command types of the metadata log.
const (
	// cmdRegister registers a broker (or its new address) with its
	// incarnation, and unfences it: metadata.RegisterBroker.
	cmdRegister = "register"
	// cmdRestart records a new incarnation of a registered broker and
	// fences it until it catches up: metadata.FenceBroker.
	cmdRestart = "restart"
	// cmdFence fences a broker that missed its session timeout.
	cmdFence = "fence"
	// cmdUnfence unfences a fenced broker that heartbeats again and has
	// caught up.
	cmdUnfence = "unfence"
	// cmdCreateTopic is metadata.CreateTopic.
	cmdCreateTopic = "create_topic"
	// cmdAlterISR is metadata.AlterISR.
	cmdAlterISR = "alter_isr"
	// cmdDeleteTopic is metadata.DeleteTopic.
	cmdDeleteTopic = "delete_topic"
	// cmdCreatePartitions is metadata.CreatePartitions.
	cmdCreatePartitions = "create_partitions"
)

// command is one entry of the metadata log: a small JSON record naming a
// transition and its arguments.
type command struct {
	Type        string             `json:"type"`
	Broker      *metadata.Broker   `json:"broker,omitempty"`
	BrokerID    int32              `json:"broker_id"`
	Incarnation uint64             `json:"incarnation,omitempty"`
	CreateTopic *createTopicParams `json:"create_topic,omitempty"`
	AlterISR    *alterISRParams    `json:"alter_isr,omitempty"`
	Topic       *topicParams       `json:"topic,omitempty"`
}

// applyResult is what fsm.Apply returns to the proposer through raft's
// ApplyFuture.Response: the transition's error (the state is unchanged
// then) and, for AlterISR, the committed partition state.
type applyResult struct {
	err       error
	partition *metadata.Partition
}

// fsmState is everything the state machine keeps, and its snapshot format.
type fsmState struct {
	Metadata *metadata.Snapshot `json:"metadata"`
	// Applied is the index of the last log entry applied.
	Applied uint64 `json:"applied"`
	// FencedAt is, per broker, the index of the entry that last fenced it:
	// it is unfenced only once its own node has applied that far.
	FencedAt map[int32]uint64 `json:"fenced_at"`
	// Incarnation is, per broker, the incarnation that registered last.
	Incarnation map[int32]uint64 `json:"incarnation"`
}

// fsm is the metadata state machine. Raft calls Apply, Snapshot and
// Restore from one goroutine; everything else reads under mu.
type fsm struct {
	log *slog.Logger

	mu sync.Mutex
	st fsmState
	// changed is closed when the metadata (or the known controller)
	// changes; applied when any entry is applied.
	changed chan struct{}
	applied chan struct{}
}

var _ raft.FSM = (*fsm)(nil)

func newFSM(log *slog.Logger) *fsm {
	return &fsm{
		log: log,
		st: fsmState{
			Metadata:    metadata.Empty(),
			FencedAt:    map[int32]uint64{},
			Incarnation: map[int32]uint64{},
		},
		changed: make(chan struct{}),
		applied: make(chan struct{}),
	}
}

// snapshot returns the newest applied metadata; it must not be modified.
func (f *fsm) snapshot() *metadata.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.Metadata
}

// changedCh returns the channel closed at the next change.
func (f *fsm) changedCh() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// notifyChanged wakes the watchers of Changed (the controller changed).
func (f *fsm) notifyChanged() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.changed)
	f.changed = make(chan struct{})
}

// appliedIndex is the index of the last entry applied.
func (f *fsm) appliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.Applied
}

// brokerState is what the controller needs to decide on a heartbeat.
type brokerState struct {
	broker      metadata.Broker
	known       bool
	incarnation uint64
	fencedAt    uint64
}

func (f *fsm) broker(id int32) brokerState {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.st.Metadata.Brokers[id]
	return brokerState{broker: b, known: ok, incarnation: f.st.Incarnation[id], fencedAt: f.st.FencedAt[id]}
}

// waitApplied blocks until entry index has been applied or ctx ends.
func (f *fsm) waitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		done := f.st.Applied >= index
		ch := f.applied
		f.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Apply implements raft.FSM. A command that its transition refuses (a
// stale epoch, an existing topic) leaves the state unchanged and returns
// the error to the proposer; it is not a failure of the state machine.
func (f *fsm) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res applyResult
	var next *metadata.Snapshot
	var cmd command
	if err := json.Unmarshal(l.Data, &cmd); err != nil {
		res.err = fmt.Errorf("controller: metadata log entry %d is not a command: %w", l.Index, errBadRequest)
		f.log.Error("controller: skipping a metadata log entry", "index", l.Index, "err", err)
	} else {
		next, res = f.transition(f.st.Metadata, &cmd, l.Index)
	}
	if next != nil {
		// The version is the log index, so every node agrees on it and it
		// only grows.
		next.Version = l.Index
		f.st.Metadata = next
		close(f.changed)
		f.changed = make(chan struct{})
	}
	f.st.Applied = l.Index
	close(f.applied)
	f.applied = make(chan struct{})
	return res
}

// transition applies cmd to s; f.mu is held. It returns nil when the
// metadata does not change.
func (f *fsm) transition(s *metadata.Snapshot, cmd *command, index uint64) (*metadata.Snapshot, applyResult) {
	fail := func(err error) (*metadata.Snapshot, applyResult) { return nil, applyResult{err: err} }
	switch cmd.Type {
	case cmdRegister:
		if cmd.Broker == nil {
			return fail(fmt.Errorf("controller: register command without a broker: %w", errBadRequest))
		}
		f.st.Incarnation[cmd.Broker.ID] = cmd.Incarnation
		return metadata.RegisterBroker(s, *cmd.Broker), applyResult{}
	case cmdRestart:
		b, ok := s.Brokers[cmd.BrokerID]
		if !ok {
			return fail(fmt.Errorf("controller: restart of broker %d: not registered: %w", cmd.BrokerID, errBadRequest))
		}
		f.st.Incarnation[cmd.BrokerID] = cmd.Incarnation
		f.st.FencedAt[cmd.BrokerID] = index
		if b.Fenced {
			return nil, applyResult{}
		}
		next, err := metadata.FenceBroker(s, cmd.BrokerID)
		if err != nil {
			return fail(err)
		}
		return next, applyResult{}
	case cmdFence:
		b, ok := s.Brokers[cmd.BrokerID]
		if !ok {
			return fail(fmt.Errorf("controller: fence broker %d: not registered: %w", cmd.BrokerID, errBadRequest))
		}
		if b.Fenced {
			// Idempotent: the proposer's view was stale.
			return nil, applyResult{}
		}
		next, err := metadata.FenceBroker(s, cmd.BrokerID)
		if err != nil {
			return fail(err)
		}
		f.st.FencedAt[cmd.BrokerID] = index
		return next, applyResult{}
	case cmdUnfence:
		b, ok := s.Brokers[cmd.BrokerID]
		if !ok {
			return fail(fmt.Errorf("controller: unfence broker %d: not registered: %w", cmd.BrokerID, errBadRequest))
		}
		if !b.Fenced {
			return nil, applyResult{}
		}
		next, err := metadata.UnfenceBroker(s, cmd.BrokerID)
		if err != nil {
			return fail(err)
		}
		return next, applyResult{}
	case cmdCreateTopic:
		p := cmd.CreateTopic
		if p == nil {
			return fail(fmt.Errorf("controller: create_topic command without arguments: %w", errBadRequest))
		}
		next, err := metadata.CreateTopic(s, p.Name, p.Partitions, p.ReplicationFactor, p.Config)
		if err != nil {
			return fail(err)
		}
		return next, applyResult{}
	case cmdAlterISR:
		p := cmd.AlterISR
		if p == nil {
			return fail(fmt.Errorf("controller: alter_isr command without arguments: %w", errBadRequest))
		}
		next, err := metadata.AlterISR(s, p.Topic, p.Index, p.LeaderEpoch, p.PartitionEpoch, p.ISR)
		if err != nil {
			return fail(err)
		}
		part, _ := next.Partition(p.Topic, p.Index)
		part = part.Clone()
		return next, applyResult{partition: &part}
	case cmdDeleteTopic, cmdCreatePartitions:
		p := cmd.Topic
		if p == nil {
			return fail(fmt.Errorf("controller: %s command without arguments: %w", cmd.Type, errBadRequest))
		}
		var next *metadata.Snapshot
		var err error
		if cmd.Type == cmdDeleteTopic {
			next, err = metadata.DeleteTopic(s, p.Name)
		} else {
			next, err = metadata.CreatePartitions(s, p.Name, p.Partitions)
		}
		if err != nil {
			return fail(err)
		}
		return next, applyResult{}
	default:
		return fail(fmt.Errorf("controller: unknown command type %q in metadata log entry %d: %w", cmd.Type, index, errBadRequest))
	}
}

// Snapshot implements raft.FSM. The metadata is immutable and the maps are
// copied, so Persist may run concurrently with later Applies.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.FencedAt = maps.Clone(st.FencedAt)
	st.Incarnation = maps.Clone(st.Incarnation)
	return &fsmSnapshot{st: st}, nil
}

// Restore implements raft.FSM: it replaces the whole state with a snapshot.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var st fsmState
	if err := json.NewDecoder(rc).Decode(&st); err != nil {
		return fmt.Errorf("controller: decoding a metadata snapshot: %w", err)
	}
	if st.Metadata == nil {
		return errors.New("controller: metadata snapshot has no metadata")
	}
	if st.Metadata.Brokers == nil {
		st.Metadata.Brokers = map[int32]metadata.Broker{}
	}
	if st.Metadata.Topics == nil {
		st.Metadata.Topics = map[string]*metadata.Topic{}
	}
	if st.FencedAt == nil {
		st.FencedAt = map[int32]uint64{}
	}
	if st.Incarnation == nil {
		st.Incarnation = map[int32]uint64{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.Applied < f.st.Applied {
		f.log.Warn("controller: restoring a metadata snapshot older than the applied state",
			"snapshot_index", st.Applied, "applied_index", f.st.Applied)
	}
	f.st = st
	close(f.changed)
	f.changed = make(chan struct{})
	close(f.applied)
	f.applied = make(chan struct{})
	return nil
}

type fsmSnapshot struct{ st fsmState }

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(&s.st); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("controller: writing a metadata snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

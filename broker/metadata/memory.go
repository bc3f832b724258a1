package metadata

import (
	"context"
	"sync"
)

// Memory is an in-memory Controller for tests: one instance is shared by
// every in-process node of a test cluster, and the test plays the
// controller's part by calling FenceBroker, UnfenceBroker and friends.
// It applies the same transitions as the Raft controller.
type Memory struct {
	mu      sync.Mutex
	snap    *Snapshot
	changed chan struct{}
	// down, when set, makes every change request fail with
	// ErrNoController, as when a broker is cut off from the controller.
	down bool
}

var (
	_ Controller  = (*Memory)(nil)
	_ Propagation = (*Memory)(nil)
)

// NewMemory returns an in-memory controller with these brokers registered
// and live.
func NewMemory(brokers ...Broker) *Memory {
	s := Empty()
	for _, b := range brokers {
		s = RegisterBroker(s, b)
	}
	return &Memory{snap: s, changed: make(chan struct{})}
}

// Snapshot implements Controller.
func (m *Memory) Snapshot() *Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap
}

// Changed implements Controller.
func (m *Memory) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// publish installs next and wakes the watchers; m.mu must be held.
func (m *Memory) publish(next *Snapshot) {
	m.snap = next
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *Memory) apply(f func(*Snapshot) (*Snapshot, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return ErrNoController
	}
	next, err := f(m.snap)
	if err != nil {
		return err
	}
	m.publish(next)
	return nil
}

// CreateTopic implements Controller.
func (m *Memory) CreateTopic(_ context.Context, name string, partitions int32, rf int16, cfg TopicConfig) error {
	return m.apply(func(s *Snapshot) (*Snapshot, error) { return CreateTopic(s, name, partitions, rf, cfg) })
}

// AlterISR implements Controller.
func (m *Memory) AlterISR(_ context.Context, topic string, index int32, leaderEpoch, partitionEpoch int32, isr []int32) (Partition, error) {
	var out Partition
	err := m.apply(func(s *Snapshot) (*Snapshot, error) {
		n, err := AlterISR(s, topic, index, leaderEpoch, partitionEpoch, isr)
		if err == nil {
			out, _ = n.Partition(topic, index)
			out = out.Clone()
		}
		return n, err
	})
	return out, err
}

// DeleteTopic implements Controller.
func (m *Memory) DeleteTopic(_ context.Context, name string) error {
	return m.apply(func(s *Snapshot) (*Snapshot, error) { return DeleteTopic(s, name) })
}

// CreatePartitions implements Controller.
func (m *Memory) CreatePartitions(_ context.Context, name string, count int32) error {
	return m.apply(func(s *Snapshot) (*Snapshot, error) { return CreatePartitions(s, name, count) })
}

// Sync implements Propagation: every node of a test shares this one
// state, so none is ever behind.
func (m *Memory) Sync(context.Context) error { return nil }

// WaitApplied implements Propagation; see Sync.
func (m *Memory) WaitApplied(context.Context, []int32, uint64) error { return nil }

// Close implements Controller; the shared state stays for other nodes.
func (m *Memory) Close() error { return nil }

// RegisterBroker registers (or re-registers) a broker as live.
func (m *Memory) RegisterBroker(b Broker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.publish(RegisterBroker(m.snap, b))
}

// FenceBroker fences a broker, as the controller does when it misses its
// session timeout, electing new leaders for what it led.
func (m *Memory) FenceBroker(id int32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := FenceBroker(m.snap, id)
	if err != nil {
		return err
	}
	m.publish(next)
	return nil
}

// UnfenceBroker unfences a broker, as the controller does when it
// heartbeats again.
func (m *Memory) UnfenceBroker(id int32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := UnfenceBroker(m.snap, id)
	if err != nil {
		return err
	}
	m.publish(next)
	return nil
}

// SetDown makes change requests fail with ErrNoController (down=true) or
// succeed again, to model a broker cut off from the controller.
func (m *Memory) SetDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// Update applies an arbitrary transition, for scenarios the named methods
// do not cover.
func (m *Memory) Update(f func(*Snapshot) (*Snapshot, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := f(m.snap)
	if err != nil {
		return err
	}
	m.publish(next)
	return nil
}

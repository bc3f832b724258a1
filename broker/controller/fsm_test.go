package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/hashicorp/raft"
)

func applyCmd(t *testing.T, f *fsm, index uint64, cmd any) applyResult {
	t.Helper()
	data, ok := cmd.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(cmd); err != nil {
			t.Fatal(err)
		}
	}
	res, ok := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(applyResult)
	if !ok {
		t.Fatalf("Apply returned a %T", res)
	}
	return res
}

func broker(id int32) *metadata.Broker {
	return &metadata.Broker{ID: id, Host: "127.0.0.1", Port: 9000 + id}
}

func TestFSMAppliesCommandsThroughTransitions(t *testing.T) {
	f := newFSM(slog.New(slog.DiscardHandler))
	steps := []struct {
		name    string
		cmd     any
		wantErr error // nil: success
		// changes: the metadata changes (Version becomes the index)
		changes bool
		check   func(t *testing.T, s *metadata.Snapshot)
	}{
		{name: "register 1", cmd: command{Type: cmdRegister, Broker: broker(1), Incarnation: 11}, changes: true},
		{name: "register 2", cmd: command{Type: cmdRegister, Broker: broker(2), Incarnation: 21}, changes: true},
		{name: "register 3", cmd: command{Type: cmdRegister, Broker: broker(3), Incarnation: 31}, changes: true},
		{name: "create q", cmd: command{Type: cmdCreateTopic, CreateTopic: &createTopicParams{Name: "q", Partitions: 3, ReplicationFactor: 3}}, changes: true},
		{name: "create q again", cmd: command{Type: cmdCreateTopic, CreateTopic: &createTopicParams{Name: "q", Partitions: 1, ReplicationFactor: 1}}, wantErr: metadata.ErrTopicExists},
		{name: "alter ISR at a stale leader epoch", cmd: command{Type: cmdAlterISR, AlterISR: &alterISRParams{Topic: "q", Index: 0, LeaderEpoch: 7, ISR: []int32{1}}}, wantErr: metadata.ErrFencedLeaderEpoch},
		{name: "shrink q-0", cmd: command{Type: cmdAlterISR, AlterISR: &alterISRParams{Topic: "q", Index: 0, ISR: []int32{1, 2}}}, changes: true},
		{name: "fence 1", cmd: command{Type: cmdFence, BrokerID: 1}, changes: true, check: func(t *testing.T, s *metadata.Snapshot) {
			p, _ := s.Partition("q", 0)
			if !s.Brokers[1].Fenced || p.Leader != 2 || p.LeaderEpoch != 1 {
				t.Errorf("after fencing 1: broker %+v, q-0 %+v", s.Brokers[1], p)
			}
		}},
		{name: "fence 1 again is a no-op", cmd: command{Type: cmdFence, BrokerID: 1}},
		{name: "fence unknown", cmd: command{Type: cmdFence, BrokerID: 9}, wantErr: errBadRequest},
		{name: "unfence 1", cmd: command{Type: cmdUnfence, BrokerID: 1}, changes: true},
		{name: "unfence 1 again is a no-op", cmd: command{Type: cmdUnfence, BrokerID: 1}},
		{name: "restart of 2 fences it", cmd: command{Type: cmdRestart, BrokerID: 2, Incarnation: 22}, changes: true, check: func(t *testing.T, s *metadata.Snapshot) {
			p, _ := s.Partition("q", 0)
			if !s.Brokers[2].Fenced || p.Leader == 2 || p.LeaderEpoch != 2 {
				t.Errorf("after restarting 2: broker %+v, q-0 %+v", s.Brokers[2], p)
			}
		}},
		{name: "restart of fenced 2 changes no metadata", cmd: command{Type: cmdRestart, BrokerID: 2, Incarnation: 23}},
		{name: "not JSON", cmd: []byte("{"), wantErr: errBadRequest},
		{name: "unknown type", cmd: command{Type: "frobnicate"}, wantErr: errBadRequest},
		{name: "register without broker", cmd: command{Type: cmdRegister}, wantErr: errBadRequest},
	}
	for i, st := range steps {
		index := uint64(10 + i)
		before := f.snapshot()
		res := applyCmd(t, f, index, st.cmd)
		if !errors.Is(res.err, st.wantErr) || (st.wantErr == nil) != (res.err == nil) {
			t.Errorf("%s: error %v, want %v", st.name, res.err, st.wantErr)
		}
		after := f.snapshot()
		if st.changes {
			if after.Version != index || after == before {
				t.Errorf("%s: version %d, want %d", st.name, after.Version, index)
			}
		} else if after != before {
			t.Errorf("%s: metadata changed (version %d → %d)", st.name, before.Version, after.Version)
		}
		if got := f.appliedIndex(); got != index {
			t.Errorf("%s: applied index %d, want %d", st.name, got, index)
		}
		if st.check != nil {
			st.check(t, after)
		}
	}
	bs := f.broker(2)
	if bs.incarnation != 23 || bs.fencedAt != uint64(10+13) {
		t.Errorf("broker 2 state %+v: want incarnation 23, fenced at %d", bs, 10+13)
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func TestFSMSnapshotRestoreRoundTrip(t *testing.T) {
	f := newFSM(slog.New(slog.DiscardHandler))
	for i, cmd := range []command{
		{Type: cmdRegister, Broker: broker(0), Incarnation: 5},
		{Type: cmdRegister, Broker: broker(1), Incarnation: 6},
		{Type: cmdCreateTopic, CreateTopic: &createTopicParams{Name: "q", Partitions: 2, ReplicationFactor: 2,
			Config: metadata.TopicConfig{MinInsyncReplicas: 2, UncleanLeaderElection: true}}},
		{Type: cmdFence, BrokerID: 1},
	} {
		if res := applyCmd(t, f, uint64(i+1), cmd); res.err != nil {
			t.Fatal(res.err)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Applies after the snapshot do not leak into it.
	applyCmd(t, f, 5, command{Type: cmdUnfence, BrokerID: 1})
	var sink memSink
	if err := snap.Persist(&sink); err != nil || sink.cancelled {
		t.Fatalf("persist: %v (cancelled %v)", err, sink.cancelled)
	}

	g := newFSM(slog.New(slog.DiscardHandler))
	changed := g.changedCh()
	if err := g.Restore(ioNopCloser{bytes.NewReader(sink.Bytes())}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Error("Restore did not close Changed")
	}
	want := f.st
	want.Metadata = nil
	got := g.st
	got.Metadata = nil
	if got.Applied != 4 || !reflect.DeepEqual(got.FencedAt, map[int32]uint64{1: 4}) ||
		!reflect.DeepEqual(got.Incarnation, want.Incarnation) {
		t.Errorf("restored side state %+v, want applied 4, fenced_at {1:4}, incarnations %v", got, want.Incarnation)
	}
	s := g.snapshot()
	p, _ := s.Partition("q", 1)
	if s.Version != 4 || !s.Brokers[1].Fenced || !s.Topics["q"].Config.UncleanLeaderElection ||
		s.Topics["q"].ID != metadata.TopicID("q") || len(p.Replicas) != 2 {
		t.Errorf("restored metadata: %+v, q-1 %+v", s, p)
	}

	for _, bad := range []string{"", "{", `{"applied":3}`} {
		h := newFSM(slog.New(slog.DiscardHandler))
		if err := h.Restore(ioNopCloser{bytes.NewReader([]byte(bad))}); err == nil {
			t.Errorf("restoring %q: no error", bad)
		}
	}
}

type ioNopCloser struct{ *bytes.Reader }

func (ioNopCloser) Close() error { return nil }

func TestFSMWaitApplied(t *testing.T) {
	f := newFSM(slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- f.waitApplied(context.Background(), 2) }()
	applyCmd(t, f, 1, command{Type: cmdRegister, Broker: broker(1)})
	select {
	case err := <-done:
		t.Fatalf("returned before index 2 was applied: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	// A refused command is applied too: waiters for its index wake.
	applyCmd(t, f, 2, command{Type: cmdFence, BrokerID: 7})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.waitApplied(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
}

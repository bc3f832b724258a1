package server

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/replication"
	"github.com/garantia/garantia/broker/storage"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// leaseController is an in-memory controller whose session with the
// controller is alive while active holds true.
type leaseController struct {
	*metadata.Memory
	active *atomic.Bool
}

func (c *leaseController) SessionActive() bool { return c.active.Load() }

var _ SessionLease = (*leaseController)(nil)

// TestLapsedSessionRefusesClients: a leader whose controller session has
// lapsed (it was cut off from the controller, which has fenced it and may
// have elected another leader) refuses clients' produces, fetches and
// offset look-ups with NOT_LEADER_OR_FOLLOWER, so that a consumer goes to
// find the new leader rather than reading OFFSET_OUT_OF_RANGE from the
// deposed one and resetting to the log's start. (Found by `garantia test
// --seed 8`: a non-monotonic poll of 1020 records back.) --bug
// stale-leader keeps serving, as the bug's deposed leader must.
func TestLapsedSessionRefusesClients(t *testing.T) {
	for _, tc := range []struct {
		name          string
		active, bug   bool
		wantNotLeader bool
	}{
		{"session active", true, false, false},
		{"session lapsed", false, false, true},
		{"session lapsed, bug stale-leader", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			active := &atomic.Bool{}
			active.Store(tc.active)
			ctrl := &leaseController{Memory: metadata.NewMemory(metadata.Broker{ID: 1, Host: "127.0.0.1", Port: 9092}), active: active}
			rm, err := replication.New(replication.Config{NodeID: 1, Store: storage.NewMemStore(), Controller: ctrl})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rm.Close() })
			s, err := New(Config{NodeID: 1, StaleLeaderBug: tc.bug}, ctrl, rm, &counterPIDs{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.createTopic(context.Background(), "q", 1, 1, metadata.TopicConfig{MinInsyncReplicas: 1}, false); err != nil {
				t.Fatal(err)
			}
			check := func(what string, err error) {
				t.Helper()
				if got := errors.Is(err, kerr.NotLeaderForPartition); got != tc.wantNotLeader {
					t.Errorf("%s: error %v; want NOT_LEADER_OR_FOLLOWER: %v", what, err, tc.wantNotLeader)
				}
			}

			fetch := kmsg.NewPtrFetchRequest()
			fetch.Version, fetch.MaxBytes = 12, 1<<20
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic = "q"
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 1<<20, -1
			ft.Partitions = append(ft.Partitions, fp)
			fetch.Topics = append(fetch.Topics, ft)
			check("consumer fetch", s.fetchTargets(fetch, false)[0].err)

			produce := kmsg.NewPtrProduceRequest()
			produce.Acks = 1
			_, _, _, err = s.produceOne(produce, "q", kmsg.NewProduceRequestTopicPartition())
			if !tc.wantNotLeader && errors.Is(err, kerr.NotLeaderForPartition) {
				t.Errorf("produce: %v", err)
			}
			if tc.wantNotLeader {
				check("produce", err)
			}

			lo := kmsg.NewListOffsetsRequestTopicPartition()
			lo.Timestamp, lo.CurrentLeaderEpoch = -1, -1
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			check("list offsets", s.listOffset("q", lo, &sp))

			// A follower's fetch is still served: replication goes on
			// until the metadata names the new leader.
			if _, _, err := s.leaderOf("q", 0); err != nil {
				t.Errorf("leaderOf for a follower's fetch: %v", err)
			}
		})
	}
}

package server

import (
	"context"
	"errors"
	"testing"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/replication"
	"github.com/garantia/garantia/broker/storage"
	"github.com/twmb/franz-go/pkg/kerr"
)

// laggingController is a metadata.Controller whose local view (Snapshot)
// is frozen at an older state than the controller it creates topics on,
// as on a broker that has not yet applied the latest metadata.
type laggingController struct {
	*metadata.Memory
	stale *metadata.Snapshot
}

func (c *laggingController) Snapshot() *metadata.Snapshot { return c.stale }

// TestCreateTopicTrustsControllerNotStaleView: a broker whose local
// metadata does not yet show a newly registered broker must still create
// a topic whose replication factor the controller can place; only the
// controller knows which brokers are live. (Found by `garantia test
// --seed 10`: the harness's CreateTopics right after startup was refused
// with INVALID_REPLICATION_FACTOR, "there are 2 live brokers".)
func TestCreateTopicTrustsControllerNotStaleView(t *testing.T) {
	mem := metadata.NewMemory(metadata.Broker{ID: 1, Host: "127.0.0.1", Port: 9092}, metadata.Broker{ID: 2, Host: "127.0.0.1", Port: 9093})
	stale := mem.Snapshot()
	mem.RegisterBroker(metadata.Broker{ID: 3, Host: "127.0.0.1", Port: 9094})
	ctrl := &laggingController{Memory: mem, stale: stale}
	rm, err := replication.New(replication.Config{NodeID: 1, Store: storage.NewMemStore(), Controller: ctrl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rm.Close() })
	s, err := New(Config{NodeID: 1}, ctrl, rm, &counterPIDs{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := metadata.TopicConfig{MinInsyncReplicas: 2}
	if err := s.createTopic(context.Background(), "q", 4, 3, cfg, false); err != nil {
		t.Fatalf("create with replication factor 3 on 3 registered brokers (local view shows 2): %v", err)
	}
	if got := len(mem.Snapshot().Topics["q"].Partitions); got != 4 {
		t.Fatalf("the controller has %d partitions of q, want 4", got)
	}
	// The controller still refuses what it cannot place.
	err = s.createTopic(context.Background(), "r", 1, 4, cfg, false)
	if !errors.Is(err, kerr.InvalidReplicationFactor) {
		t.Fatalf("replication factor 4 on 3 brokers: got %v, want INVALID_REPLICATION_FACTOR", err)
	}
}

package server

import (
	"context"
	"testing"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/replication"
	"github.com/garantia/garantia/broker/storage"
)

type counterPIDs struct{ next int64 }

func (c *counterPIDs) NextProducerID() (int64, error) { c.next++; return c.next, nil }

// newSingleServer is a server for node 1, the only broker of an in-memory
// controller, over an in-memory store, with the named topics created (two
// partitions each). Nothing is listening; tests call handlers directly.
// Its replica manager is closed when cleanup runs.
func newSingleServer(tb testing.TB, cfg Config, topics ...string) *Server {
	tb.Helper()
	cfg.NodeID = 1
	ctrl := metadata.NewMemory(metadata.Broker{ID: 1, Host: "127.0.0.1", Port: 9092})
	rm, err := replication.New(replication.Config{NodeID: 1, Store: storage.NewMemStore(), Controller: ctrl})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rm.Close() })
	s, err := New(cfg, ctrl, rm, &counterPIDs{})
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range topics {
		if err := s.createTopic(context.Background(), name, 2, 1, metadata.TopicConfig{MinInsyncReplicas: 1}, false); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

package controller

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/garantia/garantia/broker/metadata"
)

// TestDeleteTopicAndCreatePartitionsReachEveryNode: both changes go
// through the Raft log from any node, are applied on the caller before it
// returns, reach every node, and are refused with the metadata errors.
func TestDeleteTopicAndCreatePartitionsReachEveryNode(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, nil)
	leader := c.waitLeader(settle)
	c.waitRegistered(settle)
	follower := c.node(c.other(leader))

	if err := follower.CreateTopic(ctxFor(t, settle), "q", 2, 3, metadata.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := follower.CreatePartitions(ctxFor(t, settle), "q", 4); err != nil {
		t.Fatalf("grow q to 4 partitions from a follower: %v", err)
	}
	if _, ok := follower.Snapshot().Partition("q", 3); !ok {
		t.Fatal("the caller does not show partition 3 when CreatePartitions returns")
	}
	if err := follower.CreatePartitions(ctxFor(t, settle), "q", 3); !errors.Is(err, metadata.ErrInvalidPartitions) {
		t.Errorf("shrink q to 3: %v, want ErrInvalidPartitions", err)
	}
	c.waitAll(settle, "q with 4 partitions", func(s *metadata.Snapshot) (bool, string) {
		q := s.Topics["q"]
		return q != nil && len(q.Partitions) == 4, fmt.Sprintf("q: %+v", q)
	})

	id := follower.Snapshot().Topics["q"].ID
	if err := c.node(leader).DeleteTopic(ctxFor(t, settle), "q"); err != nil {
		t.Fatalf("delete q at the controller: %v", err)
	}
	if err := follower.DeleteTopic(ctxFor(t, settle), "q"); !errors.Is(err, metadata.ErrUnknownTopic) {
		t.Errorf("delete q twice: %v, want ErrUnknownTopic", err)
	}
	c.waitAll(settle, "q deleted", func(s *metadata.Snapshot) (bool, string) {
		return s.Topics["q"] == nil && s.Deletions["q"] == 1, fmt.Sprintf("q: %+v, deletions %v", s.Topics["q"], s.Deletions)
	})
	if err := follower.CreateTopic(ctxFor(t, settle), "q", 1, 3, metadata.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if got := follower.Snapshot().Topics["q"].ID; got == id {
		t.Errorf("q created again kept the deleted topic's id %x", id)
	}
}

// TestSyncAndWaitApplied: Sync brings a node to what the controller had
// applied; WaitApplied confirms that other nodes applied a version, and
// times out naming a node that cannot confirm (cut off).
func TestSyncAndWaitApplied(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, nil)
	leader := c.waitLeader(settle)
	c.waitRegistered(settle)
	caller := c.node(c.other(leader))
	if err := caller.CreateTopic(ctxFor(t, settle), "q", 3, 3, metadata.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	version := caller.Snapshot().Version
	for _, id := range c.ids {
		if err := c.node(id).Sync(ctxFor(t, settle)); err != nil {
			t.Fatalf("node %d: sync: %v", id, err)
		}
		if v := c.node(id).Snapshot().Version; v < version {
			t.Errorf("node %d at version %d after Sync, the topic was created at %d", id, v, version)
		}
	}
	if err := caller.WaitApplied(ctxFor(t, settle), c.ids, version); err != nil {
		t.Fatalf("wait for every node to apply version %d: %v", version, err)
	}

	// A node cut off from everyone cannot confirm a version it lacks.
	third := int32(-1)
	for _, id := range c.ids {
		if id != leader && c.node(id) != caller {
			third = id
		}
	}
	c.isolate(third, true)
	if err := c.node(leader).CreatePartitions(ctxFor(t, settle), "q", 4); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := caller.WaitApplied(ctx, []int32{third}, c.node(leader).Snapshot().Version)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for the isolated node %d: %v, want a deadline error", third, err)
	}
	c.isolate(third, false)
	if err := caller.WaitApplied(ctxFor(t, settle), []int32{third}, c.node(leader).Snapshot().Version); err != nil {
		t.Fatalf("after healing: %v", err)
	}
}

package metadata

import (
	"errors"
	"slices"
	"testing"
)

func TestDeleteTopicGivesTheNextTopicOfThatNameANewID(t *testing.T) {
	s := mustCreate(t, threeBrokers(), TopicConfig{})
	first := s.Topics["q"].ID
	if first != TopicID("q") {
		t.Fatalf("the first topic q has id %x, want TopicID(q) %x", first, TopicID("q"))
	}
	n, err := DeleteTopic(s, "q")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Topics["q"]; ok {
		t.Fatal("q is still in the metadata after its deletion")
	}
	if _, ok := s.Topics["q"]; !ok {
		t.Fatal("DeleteTopic modified the snapshot it was given")
	}
	if _, err := DeleteTopic(n, "q"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("deleting q twice: %v, want ErrUnknownTopic", err)
	}
	again, err := CreateTopic(n, "q", 1, 1, TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	second := again.Topics["q"].ID
	if second == first {
		t.Fatalf("q created again has the deleted topic's id %x: clients would take it for the old topic", first)
	}
	if second != TopicIDAfter("q", 1) {
		t.Fatalf("q created again: id %x, want TopicIDAfter(q, 1)", second)
	}
	// The deletion count survives cloning (and so every later change).
	if c := again.Clone().Deletions["q"]; c != 1 {
		t.Fatalf("deletions of q after clone: %d, want 1", c)
	}
}

func TestCreatePartitionsGrowsOnly(t *testing.T) {
	s := mustCreate(t, threeBrokers(), TopicConfig{}) // 3 partitions, RF 3
	before := s.Topics["q"].Partitions
	n, err := CreatePartitions(s, "q", 5)
	if err != nil {
		t.Fatal(err)
	}
	got := n.Topics["q"].Partitions
	if len(got) != 5 {
		t.Fatalf("q has %d partitions, want 5", len(got))
	}
	for i := range before {
		if !slices.Equal(got[i].Replicas, before[i].Replicas) || got[i].LeaderEpoch != before[i].LeaderEpoch {
			t.Errorf("partition %d changed: %+v -> %+v", i, before[i], got[i])
		}
	}
	for i := 3; i < 5; i++ {
		p := got[i]
		if p.Index != int32(i) || p.Topic != "q" || len(p.Replicas) != 3 || p.Leader != p.Replicas[0] || !slices.Equal(p.ISR, p.Replicas) {
			t.Errorf("new partition %d: %+v", i, p)
		}
	}
	if len(s.Topics["q"].Partitions) != 3 {
		t.Fatal("CreatePartitions modified the snapshot it was given")
	}
	for _, count := range []int32{5, 4, 0} {
		if _, err := CreatePartitions(n, "q", count); !errors.Is(err, ErrInvalidPartitions) {
			t.Errorf("grow 5 partitions to %d: %v, want ErrInvalidPartitions", count, err)
		}
	}
	if _, err := CreatePartitions(n, "nope", 9); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	fenced, err := FenceBroker(n, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreatePartitions(fenced, "q", 6); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Errorf("RF 3 with 2 live brokers: %v, want ErrInvalidReplicationFactor", err)
	}
}

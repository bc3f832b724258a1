package server

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/broker/partition"
)

// topicNameMaxBytes is Kafka's limit (249), which keeps "<topic>-<n>"
// directory names under common file name limits.
const topicNameMaxBytes = 249

// maxPartitionsPerTopic bounds a CreateTopics request so that one request
// cannot make the broker open millions of files.
const maxPartitionsPerTopic = 10000

// topic is a topic and the partitions this node leads.
type topic struct {
	name  string
	id    [16]byte
	parts []*partition.Partition
}

// topicID derives the topic's id from its name. Topics are never deleted
// here, so a name names one topic forever, and every node of a later
// cluster derives the same id without coordination.
func topicID(name string) [16]byte {
	sum := sha256.Sum256([]byte("garantia topic id\x00" + name))
	var id [16]byte
	copy(id[:], sum[:16])
	id[6] = id[6]&0x0f | 0x80 // mark it as a v8 (custom) UUID, never zero
	id[8] = id[8]&0x3f | 0x80
	return id
}

// validateTopicName applies Kafka's rules: 1 to 249 characters from
// [a-zA-Z0-9._-], and not "." or "..".
func validateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: topic name is empty", kerr.InvalidTopicException)
	case name == "." || name == "..":
		return fmt.Errorf("%w: topic name %q is not allowed", kerr.InvalidTopicException, name)
	case len(name) > topicNameMaxBytes:
		return fmt.Errorf("%w: topic name is %d characters, the limit is %d", kerr.InvalidTopicException, len(name), topicNameMaxBytes)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: topic name %q has %q at byte %d; only [a-zA-Z0-9._-] are allowed", kerr.InvalidTopicException, name, c, i)
		}
	}
	return nil
}

// openTopic opens (or creates) every partition of a topic in the store.
func (s *Server) openTopic(name string, partitions int32, create bool) (*topic, error) {
	t := &topic{name: name, id: topicID(name)}
	for i := int32(0); i < partitions; i++ {
		log, err := s.store.Partition(name, i, create)
		if err != nil {
			return nil, fmt.Errorf("%w: partition %d: %w", kerr.KafkaStorageError, i, err)
		}
		// One node leads every partition with an epoch that never changes
		// while it lives; starting from the log's latest epoch keeps epochs
		// monotonic across restarts.
		epoch := max(log.LatestEpoch(), 0)
		p, err := partition.Open(name, i, s.cfg.NodeID, epoch, log)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", kerr.KafkaStorageError, err)
		}
		t.parts = append(t.parts, p)
	}
	return t, nil
}

// errTopicExists is returned by createTopic for a name already in use.
var errTopicExists = kerr.TopicAlreadyExists

// createTopic validates and creates a topic with this node as the only
// replica. With validateOnly it checks and creates nothing.
func (s *Server) createTopic(name string, partitions int32, validateOnly bool) (*topic, error) {
	if err := validateTopicName(name); err != nil {
		return nil, err
	}
	if partitions < 1 || partitions > maxPartitionsPerTopic {
		return nil, fmt.Errorf("%w: %d partitions requested, allowed 1 to %d", kerr.InvalidPartitions, partitions, maxPartitionsPerTopic)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.topics[name]; ok {
		return nil, fmt.Errorf("%w: topic %q", errTopicExists, name)
	}
	if validateOnly {
		return nil, nil
	}
	t, err := s.openTopic(name, partitions, true)
	if err != nil {
		return nil, fmt.Errorf("creating topic %q: %w", name, err)
	}
	s.topics[name] = t
	s.byID[t.id] = t
	s.log.Info("topic created", "topic", name, "partitions", partitions)
	return t, nil
}

// topicByName returns the topic, auto-creating it when allowed.
func (s *Server) topicByName(name string, autoCreate bool) (*topic, error) {
	s.mu.RLock()
	t := s.topics[name]
	s.mu.RUnlock()
	if t != nil {
		return t, nil
	}
	if err := validateTopicName(name); err != nil {
		return nil, err
	}
	if !autoCreate || !s.cfg.AutoCreateTopics {
		return nil, fmt.Errorf("%w: topic %q", kerr.UnknownTopicOrPartition, name)
	}
	t, err := s.createTopic(name, s.cfg.DefaultPartitions, false)
	if errors.Is(err, errTopicExists) {
		// Another request created it between our look and our create.
		s.mu.RLock()
		t = s.topics[name]
		s.mu.RUnlock()
		return t, nil
	}
	return t, err
}

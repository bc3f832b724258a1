package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/broker/metadata"
)

// topicNameMaxBytes is Kafka's limit (249), which keeps "<topic>-<n>"
// directory names under common file name limits.
const topicNameMaxBytes = 249

// maxPartitionsPerTopic bounds a CreateTopics request so that one request
// cannot make the broker open millions of files.
const maxPartitionsPerTopic = 10000

// Topic configs a CreateTopics request may set; others are accepted and
// ignored (the broker has no use for retention and the like).
const (
	configMinInsyncReplicas     = "min.insync.replicas"
	configUncleanLeaderElection = "unclean.leader.election.enable"
)

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

// topicConfig reads a topic's replication settings from CreateTopics
// configs over the broker's defaults. A bad value is INVALID_CONFIG naming
// the config.
func (s *Server) topicConfig(configs map[string]*string) (metadata.TopicConfig, error) {
	cfg := s.cfg.DefaultTopicConfig
	if v := configs[configMinInsyncReplicas]; v != nil {
		n, err := strconv.ParseInt(*v, 10, 32)
		if err != nil || n < 1 {
			return cfg, fmt.Errorf("%w: %s=%q: want an integer of at least 1", kerr.InvalidConfig, configMinInsyncReplicas, *v)
		}
		cfg.MinInsyncReplicas = int32(n)
	}
	if v := configs[configUncleanLeaderElection]; v != nil {
		b, err := strconv.ParseBool(*v)
		if err != nil {
			return cfg, fmt.Errorf("%w: %s=%q: want true or false", kerr.InvalidConfig, configUncleanLeaderElection, *v)
		}
		cfg.UncleanLeaderElection = b
	}
	return cfg, nil
}

// controllerError maps a metadata change's error to the Kafka error a
// client should see.
func controllerError(err error) error {
	var ke *kerr.Error
	switch {
	case err == nil, errors.As(err, &ke):
		return err
	case errors.Is(err, metadata.ErrTopicExists):
		return fmt.Errorf("%w: %w", kerr.TopicAlreadyExists, err)
	case errors.Is(err, metadata.ErrInvalidReplicationFactor):
		return fmt.Errorf("%w: %w", kerr.InvalidReplicationFactor, err)
	case errors.Is(err, metadata.ErrInvalidPartitions):
		return fmt.Errorf("%w: %w", kerr.InvalidPartitions, err)
	case errors.Is(err, metadata.ErrUnknownTopic):
		return fmt.Errorf("%w: %w", kerr.UnknownTopicOrPartition, err)
	case errors.Is(err, metadata.ErrNotController), errors.Is(err, metadata.ErrNoController),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// Retriable: the client asks again (and finds the controller).
		return fmt.Errorf("%w: %w", kerr.NotController, err)
	}
	return fmt.Errorf("%w: %w", kerr.UnknownServerError, err)
}

// createTopic validates a topic and asks the controller to create it; with
// validateOnly it checks and creates nothing. Once created, this node's
// replicas of it are opened at once.
func (s *Server) createTopic(ctx context.Context, name string, partitions int32, rf int16, cfg metadata.TopicConfig, validateOnly bool) error {
	if err := validateTopicName(name); err != nil {
		return err
	}
	if partitions < 1 || partitions > maxPartitionsPerTopic {
		return fmt.Errorf("%w: %d partitions requested, allowed 1 to %d", kerr.InvalidPartitions, partitions, maxPartitionsPerTopic)
	}
	snap := s.ctrl.Snapshot()
	if _, ok := snap.Topics[name]; ok {
		return fmt.Errorf("%w: topic %q", kerr.TopicAlreadyExists, name)
	}
	if rf < 1 {
		return fmt.Errorf("%w: replication factor %d", kerr.InvalidReplicationFactor, rf)
	}
	if validateOnly {
		// Only a dry run judges the replication factor by this node's
		// metadata: it may lag the controller's (a broker that registered
		// a moment ago is not yet applied here), and refusing a real
		// create for it would fail a client that asked at the right time.
		// The controller checks live brokers itself when it creates.
		live := 0
		for _, b := range snap.Brokers {
			if !b.Fenced {
				live++
			}
		}
		if int(rf) > live {
			return fmt.Errorf("%w: replication factor %d, there are %d live brokers", kerr.InvalidReplicationFactor, rf, live)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	if err := s.ctrl.CreateTopic(ctx, name, partitions, rf, cfg); err != nil {
		return controllerError(fmt.Errorf("creating topic %q: %w", name, err))
	}
	s.replicas.Reconcile()
	s.log.Info("topic created", "topic", name, "partitions", partitions, "replication_factor", rf,
		"min_insync_replicas", cfg.MinInsyncReplicas, "unclean_leader_election", cfg.UncleanLeaderElection)
	return nil
}

// topicByName returns the topic from the metadata, auto-creating it when
// allowed.
func (s *Server) topicByName(ctx context.Context, name string, autoCreate bool) (*metadata.Topic, error) {
	if t := s.ctrl.Snapshot().Topics[name]; t != nil {
		return t, nil
	}
	if err := validateTopicName(name); err != nil {
		return nil, err
	}
	if s.isInternal(name) && s.cfg.Groups != nil {
		// Created with its own settings, as the first FindCoordinator
		// would.
		return s.offsetsTopic(ctx)
	}
	if !autoCreate || !s.cfg.AutoCreateTopics {
		// A client that names a topic this node does not know may have
		// learned of it from a broker further along.
		if err := s.sync.Sync(ctx); err == nil {
			if t := s.ctrl.Snapshot().Topics[name]; t != nil {
				return t, nil
			}
		}
		return nil, fmt.Errorf("%w: topic %q", kerr.UnknownTopicOrPartition, name)
	}
	err := s.createTopic(ctx, name, s.cfg.DefaultPartitions, s.cfg.DefaultReplicationFactor, s.cfg.DefaultTopicConfig, false)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return nil, err
	}
	// Created here, or by another request between our look and our create.
	if t := s.ctrl.Snapshot().Topics[name]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("%w: topic %q was created but is not in this node's metadata yet", kerr.LeaderNotAvailable, name)
}

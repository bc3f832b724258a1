package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/group"
	"github.com/garantia/garantia/broker/metadata"
)

// isInternal reports whether topic is the broker's own (the offsets
// topic): clients may read it, but not write, delete or grow it.
func (s *Server) isInternal(topic string) bool {
	return topic == group.OffsetsTopic
}

// waitTimeout is how long an admin request waits for the brokers to apply
// its change: the client's timeout_ms, at most the request timeout; 0 or
// less does not wait.
func (s *Server) waitTimeout(timeoutMillis int32) time.Duration {
	return min(time.Duration(max(timeoutMillis, 0))*time.Millisecond, s.cfg.RequestTimeout)
}

// waitApplied waits until brokers have applied this node's metadata (so
// that each serves what it says), up to timeout; REQUEST_TIMED_OUT names
// the brokers that did not confirm in time.
func (s *Server) waitApplied(ctx context.Context, brokers []int32, timeout time.Duration, what string) error {
	p, ok := s.ctrl.(metadata.Propagation)
	if !ok || len(brokers) == 0 {
		return nil
	}
	if timeout <= 0 {
		return nil
	}
	slices.Sort(brokers)
	brokers = slices.Compact(brokers)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := p.WaitApplied(ctx, brokers, s.ctrl.Snapshot().Version); err != nil {
		return fmt.Errorf("%w: %s, but brokers %v did not confirm applying it within %v: %w", kerr.RequestTimedOut, what, brokers, timeout, err)
	}
	return nil
}

// leadersOf are the leaders of topic's partitions from index from on.
func leadersOf(t *metadata.Topic, from int) []int32 {
	var out []int32
	for _, p := range t.Partitions[min(from, len(t.Partitions)):] {
		if p.Leader != metadata.NoLeader {
			out = append(out, p.Leader)
		}
	}
	return out
}

// handleDeleteTopics deletes topics through the controller. Every replica
// stops serving a deleted topic when it applies the deletion and deletes
// its logs; the answer waits (up to timeout_ms) until every replica has
// applied it, else REQUEST_TIMED_OUT (the deletion still happens).
func (s *Server) handleDeleteTopics(ctx context.Context, req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	topics := req.Topics
	if req.Version < 6 {
		topics = nil
		for _, name := range req.TopicNames {
			topics = append(topics, kmsg.DeleteTopicsRequestTopic{Topic: kmsg.StringPtr(name)})
		}
	}
	for _, rt := range topics {
		out := kmsg.NewDeleteTopicsResponseTopic()
		out.Topic, out.TopicID = rt.Topic, rt.TopicID
		name, err := s.deleteTopic(ctx, rt, req.TimeoutMillis)
		if name != "" {
			out.Topic = kmsg.StringPtr(name)
		}
		if err != nil {
			out.ErrorCode = errorCode(err)
			if req.Version >= 5 {
				out.ErrorMessage = kmsg.StringPtr(err.Error())
			}
			s.log.Info("delete topic refused", "topic", name, "err", err)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

func (s *Server) deleteTopic(ctx context.Context, rt kmsg.DeleteTopicsRequestTopic, timeoutMillis int32) (string, error) {
	snap := s.ctrl.Snapshot()
	var t *metadata.Topic
	switch {
	case rt.Topic != nil && *rt.Topic != "":
		t = snap.Topics[*rt.Topic]
		if t == nil {
			if err := s.sync.Sync(ctx); err == nil {
				t = s.ctrl.Snapshot().Topics[*rt.Topic]
			}
		}
		if t == nil {
			return *rt.Topic, fmt.Errorf("%w: topic %q", kerr.UnknownTopicOrPartition, *rt.Topic)
		}
	default:
		for _, c := range snap.Topics {
			if c.ID == rt.TopicID {
				t = c
			}
		}
		if t == nil {
			return "", fmt.Errorf("%w: topic id %x", kerr.UnknownTopicID, rt.TopicID)
		}
	}
	if s.isInternal(t.Name) {
		return t.Name, fmt.Errorf("%w: %q is the broker's internal offsets topic", kerr.InvalidTopicException, t.Name)
	}
	var replicas []int32
	for _, p := range t.Partitions {
		replicas = append(replicas, p.Replicas...)
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	if err := s.ctrl.DeleteTopic(cctx, t.Name); err != nil {
		return t.Name, controllerError(fmt.Errorf("deleting topic %q: %w", t.Name, err))
	}
	s.replicas.Reconcile()
	s.log.Info("topic deleted", "topic", t.Name, "partitions", len(t.Partitions))
	return t.Name, s.waitApplied(ctx, replicas, s.waitTimeout(timeoutMillis), fmt.Sprintf("topic %q was deleted", t.Name))
}

// handleCreatePartitions grows topics through the controller; the answer
// waits (up to timeout_ms) until the new partitions' leaders serve them.
func (s *Server) handleCreatePartitions(ctx context.Context, req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	seen := map[string]int{}
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	for _, rt := range req.Topics {
		out := kmsg.NewCreatePartitionsResponseTopic()
		out.Topic = rt.Topic
		if err := s.createPartitions(ctx, rt, seen[rt.Topic], req.ValidateOnly, req.TimeoutMillis); err != nil {
			out.ErrorCode = errorCode(err)
			out.ErrorMessage = kmsg.StringPtr(err.Error())
			s.log.Info("create partitions refused", "topic", rt.Topic, "count", rt.Count, "err", err)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

func (s *Server) createPartitions(ctx context.Context, rt kmsg.CreatePartitionsRequestTopic, copies int, validateOnly bool, timeoutMillis int32) error {
	snap := s.ctrl.Snapshot()
	t := snap.Topics[rt.Topic]
	switch {
	case copies > 1:
		return fmt.Errorf("%w: topic %q appears %d times in one request", kerr.InvalidRequest, rt.Topic, copies)
	case t == nil:
		return fmt.Errorf("%w: topic %q", kerr.UnknownTopicOrPartition, rt.Topic)
	case s.isInternal(rt.Topic):
		return fmt.Errorf("%w: %q is the broker's internal offsets topic; growing it would move every group", kerr.InvalidTopicException, rt.Topic)
	case rt.Assignment != nil:
		return fmt.Errorf("%w: manual replica assignment is not supported; give a partition count", kerr.InvalidReplicaAssignment)
	case rt.Count <= int32(len(t.Partitions)) || rt.Count > maxPartitionsPerTopic:
		return fmt.Errorf("%w: topic %q has %d partitions; %d requested (a topic only grows, to at most %d)", kerr.InvalidPartitions, rt.Topic, len(t.Partitions), rt.Count, maxPartitionsPerTopic)
	}
	if validateOnly {
		return nil
	}
	have := len(t.Partitions)
	cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	if err := s.ctrl.CreatePartitions(cctx, rt.Topic, rt.Count); err != nil {
		return controllerError(fmt.Errorf("growing topic %q to %d partitions: %w", rt.Topic, rt.Count, err))
	}
	s.replicas.Reconcile()
	s.log.Info("partitions created", "topic", rt.Topic, "from", have, "to", rt.Count)
	nt := s.ctrl.Snapshot().Topics[rt.Topic]
	if nt == nil {
		return nil // deleted meanwhile
	}
	return s.waitApplied(ctx, leadersOf(nt, have), s.waitTimeout(timeoutMillis), fmt.Sprintf("topic %q has %d partitions", rt.Topic, rt.Count))
}

// Config sources and types of DescribeConfigs (Kafka's enums).
const (
	sourceDynamicTopic = kmsg.ConfigSourceDynamicTopicConfig
	sourceStaticBroker = kmsg.ConfigSourceStaticBrokerConfig
	sourceDefault      = kmsg.ConfigSourceDefaultConfig
)

// configTypes gives the type of the settings DescribeConfigs reports;
// the rest are strings.
var configTypes = map[string]kmsg.ConfigType{
	configMinInsyncReplicas:     kmsg.ConfigTypeInt,
	configUncleanLeaderElection: kmsg.ConfigTypeBoolean,
	"retention.ms":              kmsg.ConfigTypeLong,
	"retention.bytes":           kmsg.ConfigTypeLong,
	"segment.bytes":             kmsg.ConfigTypeInt,
	"cleanup.policy":            kmsg.ConfigTypeList,
}

// handleDescribeConfigs reports the settings a topic or this broker
// really has. Nothing can be altered (AlterConfigs is not served), so
// every entry is read-only.
func (s *Server) handleDescribeConfigs(req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		out := kmsg.NewDescribeConfigsResponseResource()
		out.ResourceType, out.ResourceName = rr.ResourceType, rr.ResourceName
		entries, err := s.describeConfigs(rr)
		if err != nil {
			out.ErrorCode = errorCode(err)
			out.ErrorMessage = kmsg.StringPtr(err.Error())
		}
		for _, e := range entries {
			if rr.ConfigNames != nil && !slices.Contains(rr.ConfigNames, e.Name) {
				continue
			}
			e.ReadOnly = true
			e.IsDefault = e.Source == sourceDefault
			if t, ok := configTypes[e.Name]; ok {
				e.ConfigType = t
			} else {
				e.ConfigType = kmsg.ConfigTypeString
			}
			if req.IncludeSynonyms {
				syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				syn.Name, syn.Value, syn.Source = e.Name, e.Value, e.Source
				e.ConfigSynonyms = append(e.ConfigSynonyms, syn)
			}
			out.Configs = append(out.Configs, e)
		}
		resp.Resources = append(resp.Resources, out)
	}
	return resp
}

func configEntry(name, value string, source kmsg.ConfigSource) kmsg.DescribeConfigsResponseResourceConfig {
	e := kmsg.NewDescribeConfigsResponseResourceConfig()
	e.Name, e.Value, e.Source = name, kmsg.StringPtr(value), source
	return e
}

func (s *Server) describeConfigs(rr kmsg.DescribeConfigsRequestResource) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	switch rr.ResourceType {
	case kmsg.ConfigResourceTypeTopic:
		t := s.ctrl.Snapshot().Topics[rr.ResourceName]
		if t == nil {
			return nil, fmt.Errorf("%w: topic %q", kerr.UnknownTopicOrPartition, rr.ResourceName)
		}
		def := s.cfg.DefaultTopicConfig
		src := func(differs bool) kmsg.ConfigSource {
			if differs {
				return sourceDynamicTopic
			}
			return sourceDefault
		}
		segment := s.cfg.BrokerSettings["log.segment.bytes"]
		out := []kmsg.DescribeConfigsResponseResourceConfig{
			// The broker never deletes or compacts records.
			configEntry("cleanup.policy", "delete", sourceDefault),
			configEntry(configMinInsyncReplicas, strconv.Itoa(int(t.Config.MinInsyncReplicas)), src(t.Config.MinInsyncReplicas != def.MinInsyncReplicas)),
			configEntry("retention.bytes", "-1", sourceDefault),
			configEntry("retention.ms", "-1", sourceDefault),
		}
		if segment != "" {
			out = append(out, configEntry("segment.bytes", segment, sourceStaticBroker))
		}
		out = append(out, configEntry(configUncleanLeaderElection, strconv.FormatBool(t.Config.UncleanLeaderElection), src(t.Config.UncleanLeaderElection != def.UncleanLeaderElection)))
		return out, nil
	case kmsg.ConfigResourceTypeBroker:
		if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(s.cfg.NodeID)) {
			return nil, fmt.Errorf("%w: this is broker %d; ask broker %s for its own settings", kerr.InvalidRequest, s.cfg.NodeID, rr.ResourceName)
		}
		names := make([]string, 0, len(s.cfg.BrokerSettings))
		for name := range s.cfg.BrokerSettings {
			names = append(names, name)
		}
		sort.Strings(names)
		var out []kmsg.DescribeConfigsResponseResourceConfig
		for _, name := range names {
			out = append(out, configEntry(name, s.cfg.BrokerSettings[name], sourceStaticBroker))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: config resource type %d (only topics (2) and brokers (4) are described)", kerr.InvalidRequest, rr.ResourceType)
}

// handleDescribeCluster lists the brokers (unfenced ones; v2 can ask for
// the fenced too) and the controller.
func (s *Server) handleDescribeCluster(req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = req.EndpointType
	resp.ClusterAuthorizedOperations = -2147483648 // not computed
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		resp.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("endpoint type %d: only brokers (1) are described; the controllers speak Raft, not Kafka", req.EndpointType))
		return resp
	}
	snap := s.ctrl.Snapshot()
	resp.ClusterID = s.cfg.ClusterID
	resp.ControllerID = -1
	if b, ok := snap.Brokers[snap.ControllerID]; ok && !b.Fenced {
		resp.ControllerID = snap.ControllerID
	}
	ids := make([]int32, 0, len(snap.Brokers))
	for id := range snap.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		b := snap.Brokers[id]
		if b.Fenced && !req.IncludeFencedBrokers {
			continue
		}
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port, rb.IsFenced = b.ID, b.Host, b.Port, b.Fenced
		resp.Brokers = append(resp.Brokers, rb)
	}
	return resp
}

// handleFindCoordinator names the leader of the group's offsets
// partition, creating the offsets topic first if the cluster has none
// yet. Transactions are not supported: transactional ids are refused as
// InitProducerID refuses them.
func (s *Server) handleFindCoordinator(ctx context.Context, req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Port = key, -1, -1
		b, err := s.findCoordinator(ctx, key, req.CoordinatorType)
		if err != nil {
			c.ErrorCode = errorCode(err)
			c.ErrorMessage = kmsg.StringPtr(err.Error())
			s.log.Debug("no coordinator", "key", key, "err", err)
		} else {
			c.NodeID, c.Host, c.Port = b.ID, b.Host, b.Port
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 {
		c := resp.Coordinators[0]
		resp.Coordinators = nil
		resp.ErrorCode, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.NodeID, c.Host, c.Port
		if req.Version >= 1 {
			resp.ErrorMessage = c.ErrorMessage
		}
	}
	return resp
}

func (s *Server) findCoordinator(ctx context.Context, key string, keyType int8) (metadata.Broker, error) {
	switch {
	case keyType == 1:
		return metadata.Broker{}, fmt.Errorf("%w: transactions are not supported", kerr.TransactionalIDAuthorizationFailed)
	case keyType != 0:
		return metadata.Broker{}, fmt.Errorf("%w: coordinator key type %d", kerr.InvalidRequest, keyType)
	case key == "":
		return metadata.Broker{}, fmt.Errorf("%w: empty group id", kerr.InvalidGroupID)
	}
	t, err := s.offsetsTopic(ctx)
	if err != nil {
		return metadata.Broker{}, err
	}
	st := t.Partitions[group.PartitionFor(key, int32(len(t.Partitions)))]
	b, ok := s.ctrl.Snapshot().Brokers[st.Leader]
	if st.Leader == metadata.NoLeader || !ok || b.Fenced {
		return metadata.Broker{}, fmt.Errorf("%w: offsets partition %d has no live leader", kerr.CoordinatorNotAvailable, st.Index)
	}
	return b, nil
}

// offsetsTopic returns the offsets topic, creating it through the
// controller (with the configured partitions and replication factor) if
// the cluster has none yet. Too few live brokers for its replication
// factor is COORDINATOR_NOT_AVAILABLE: clients retry until they come.
func (s *Server) offsetsTopic(ctx context.Context) (*metadata.Topic, error) {
	if t := s.ctrl.Snapshot().Topics[group.OffsetsTopic]; t != nil {
		return t, nil
	}
	rf := s.cfg.OffsetsTopicReplicationFactor
	cfg := s.cfg.DefaultTopicConfig
	cfg.MinInsyncReplicas = min(cfg.MinInsyncReplicas, int32(rf))
	err := s.createTopic(ctx, group.OffsetsTopic, s.cfg.OffsetsTopicPartitions, rf, cfg, false)
	switch {
	case err == nil, errors.Is(err, kerr.TopicAlreadyExists):
	case errors.Is(err, kerr.InvalidReplicationFactor):
		return nil, fmt.Errorf("%w: creating the offsets topic: %w", kerr.CoordinatorNotAvailable, err)
	default:
		return nil, fmt.Errorf("%w: creating the offsets topic: %w", kerr.CoordinatorNotAvailable, err)
	}
	if t := s.ctrl.Snapshot().Topics[group.OffsetsTopic]; t != nil {
		return t, nil
	}
	if err := s.sync.Sync(ctx); err == nil {
		if t := s.ctrl.Snapshot().Topics[group.OffsetsTopic]; t != nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%w: the offsets topic was created but is not in this node's metadata yet", kerr.CoordinatorNotAvailable)
}

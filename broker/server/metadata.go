package server

import (
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxReplicationFactor is the number of brokers a topic can be spread
// over: this node alone until the cluster issue lands.
const maxReplicationFactor = 1

// handleMetadata describes this node as the only broker, the controller,
// and the leader, only replica and only ISR member of every partition.
func (s *Server) handleMetadata(req *kmsg.MetadataRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = s.cfg.NodeID, s.cfg.AdvertisedHost, s.cfg.AdvertisedPort
	resp.Brokers = []kmsg.MetadataResponseBroker{b}
	clusterID := s.cfg.ClusterID
	resp.ClusterID = &clusterID
	resp.ControllerID = s.cfg.NodeID

	// v0 asks for every topic with an empty list, v1+ with a null one.
	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		s.mu.RLock()
		all := make([]*topic, 0, len(s.topics))
		for _, t := range s.topics {
			all = append(all, t)
		}
		s.mu.RUnlock()
		sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
		for _, t := range all {
			resp.Topics = append(resp.Topics, s.describeTopic(t))
		}
		return resp
	}
	// Before v4 there was no flag and brokers auto-created if configured.
	autoCreate := req.Version < 4 || req.AllowAutoTopicCreation
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.TopicID = rt.TopicID
			s.mu.RLock()
			t := s.byID[rt.TopicID]
			s.mu.RUnlock()
			if t == nil {
				mt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			resp.Topics = append(resp.Topics, s.describeTopic(t))
			continue
		}
		t, err := s.topicByName(*rt.Topic, autoCreate)
		if err != nil {
			mt := kmsg.NewMetadataResponseTopic()
			name := *rt.Topic
			mt.Topic, mt.ErrorCode = &name, errorCode(err)
			if mt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
				s.log.Warn("metadata: topic unavailable", "topic", name, "err", err)
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, s.describeTopic(t))
	}
	return resp
}

func (s *Server) describeTopic(t *topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.name
	mt.Topic, mt.TopicID = &name, t.id
	for _, p := range t.parts {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Index()
		mp.Leader = s.cfg.NodeID
		mp.LeaderEpoch = p.LeaderEpoch()
		mp.Replicas = []int32{s.cfg.NodeID}
		mp.ISR = p.ISR()
		mp.OfflineReplicas = []int32{}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// handleCreateTopics creates topics with this node as their only replica.
func (s *Server) handleCreateTopics(req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	// Kafka refuses every copy of a name that appears twice in one request.
	seen := make(map[string]int, len(req.Topics))
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	for _, rt := range req.Topics {
		ct := kmsg.NewCreateTopicsResponseTopic()
		ct.Topic = rt.Topic
		fail := func(err error) {
			ct.ErrorCode = errorCode(err)
			msg := err.Error()
			ct.ErrorMessage = &msg
			ct.NumPartitions, ct.ReplicationFactor = -1, -1
		}
		n, err := s.createTopicFromRequest(rt, seen[rt.Topic], req.ValidateOnly)
		if err != nil {
			fail(err)
		} else {
			ct.TopicID = topicID(rt.Topic)
			ct.NumPartitions = n
			ct.ReplicationFactor = 1
		}
		resp.Topics = append(resp.Topics, ct)
	}
	return resp
}

// createTopicFromRequest validates one CreateTopics entry and creates the
// topic; it returns the partition count (for a validate-only request, what
// would have been created).
func (s *Server) createTopicFromRequest(rt kmsg.CreateTopicsRequestTopic, copies int, validateOnly bool) (int32, error) {
	if copies > 1 {
		return 0, fmt.Errorf("%w: topic %q appears %d times in one request", kerr.InvalidRequest, rt.Topic, copies)
	}
	if err := validateTopicName(rt.Topic); err != nil {
		return 0, err
	}
	partitions, rf := rt.NumPartitions, rt.ReplicationFactor
	if len(rt.ReplicaAssignment) > 0 {
		if partitions != -1 || rf != -1 {
			return 0, fmt.Errorf("%w: both a replica assignment and partitions/replication factor given", kerr.InvalidRequest)
		}
		for i, a := range rt.ReplicaAssignment {
			if a.Partition != int32(i) {
				return 0, fmt.Errorf("%w: assignments must name partitions 0..n-1 in order, got %d at %d", kerr.InvalidReplicaAssignment, a.Partition, i)
			}
			if len(a.Replicas) != 1 || a.Replicas[0] != s.cfg.NodeID {
				return 0, fmt.Errorf("%w: partition %d assigned to %v; only this node (%d) exists", kerr.InvalidReplicaAssignment, a.Partition, a.Replicas, s.cfg.NodeID)
			}
		}
		partitions, rf = int32(len(rt.ReplicaAssignment)), 1
	}
	if partitions == -1 {
		partitions = s.cfg.DefaultPartitions
	}
	if rf == -1 {
		rf = 1
	}
	if rf < 1 || rf > maxReplicationFactor {
		return 0, fmt.Errorf("%w: replication factor %d, there are %d brokers", kerr.InvalidReplicationFactor, rf, maxReplicationFactor)
	}
	if _, err := s.createTopic(rt.Topic, partitions, validateOnly); err != nil {
		return 0, err
	}
	return partitions, nil
}

package server

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/group"
	"github.com/garantia/garantia/broker/metadata"
)

// handleMetadata describes the cluster as this node's metadata has it:
// the unfenced brokers, the controller, and each partition's leader,
// leader epoch, replicas, ISR and offline (fenced) replicas.
func (s *Server) handleMetadata(ctx context.Context, req *kmsg.MetadataRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	clusterID := s.cfg.ClusterID
	resp.ClusterID = &clusterID

	// v0 asks for every topic with an empty list, v1+ with a null one.
	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		snap := s.ctrl.Snapshot()
		names := make([]string, 0, len(snap.Topics))
		for name := range snap.Topics {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			resp.Topics = append(resp.Topics, describeTopic(snap, snap.Topics[name]))
		}
		s.describeBrokers(resp, snap)
		return resp
	}
	// Before v4 there was no flag and brokers auto-created if configured.
	autoCreate := req.Version < 4 || req.AllowAutoTopicCreation
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.TopicID = rt.TopicID
			snap := s.ctrl.Snapshot()
			var t *metadata.Topic
			for _, c := range snap.Topics {
				if c.ID == rt.TopicID {
					t = c
				}
			}
			if t == nil {
				mt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			resp.Topics = append(resp.Topics, describeTopic(snap, t))
			continue
		}
		t, err := s.topicByName(ctx, *rt.Topic, autoCreate)
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
		resp.Topics = append(resp.Topics, describeTopic(s.ctrl.Snapshot(), t))
	}
	// The brokers last, from the newest snapshot: every leader named above
	// is listed unless it was fenced meanwhile.
	s.describeBrokers(resp, s.ctrl.Snapshot())
	return resp
}

// describeBrokers lists the unfenced brokers and the controller. Clients
// send CreateTopics to the controller; any of our brokers can take it (it
// goes through the metadata controller), so when the metadata names none
// that clients can reach, this node stands in.
func (s *Server) describeBrokers(resp *kmsg.MetadataResponse, snap *metadata.Snapshot) {
	ids := make([]int32, 0, len(snap.Brokers))
	for id, b := range snap.Brokers {
		if !b.Fenced {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		b := snap.Brokers[id]
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = b.ID, b.Host, b.Port
		resp.Brokers = append(resp.Brokers, mb)
	}
	resp.ControllerID = s.cfg.NodeID
	if b, ok := snap.Brokers[snap.ControllerID]; ok && !b.Fenced {
		resp.ControllerID = snap.ControllerID
	}
}

func describeTopic(snap *metadata.Snapshot, t *metadata.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic, mt.TopicID = &name, t.ID
	mt.IsInternal = t.Name == group.OffsetsTopic
	for _, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Index
		mp.Leader = p.Leader
		mp.LeaderEpoch = p.LeaderEpoch
		mp.Replicas = slices.Clone(p.Replicas)
		mp.ISR = slices.Clone(p.ISR)
		mp.OfflineReplicas = []int32{}
		for _, r := range p.Replicas {
			if b, ok := snap.Brokers[r]; !ok || b.Fenced {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		if p.Leader == metadata.NoLeader {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// handleCreateTopics asks the controller to create each topic, with the
// requested (or default) partitions, replication factor,
// min.insync.replicas and unclean.leader.election.enable.
func (s *Server) handleCreateTopics(ctx context.Context, req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	// Kafka refuses every copy of a name that appears twice in one request.
	seen := make(map[string]int, len(req.Topics))
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	for _, rt := range req.Topics {
		ct := kmsg.NewCreateTopicsResponseTopic()
		ct.Topic = rt.Topic
		n, rf, err := s.createTopicFromRequest(ctx, rt, seen[rt.Topic], req.ValidateOnly, req.TimeoutMillis)
		if err != nil {
			ct.ErrorCode = errorCode(err)
			msg := err.Error()
			ct.ErrorMessage = &msg
			ct.NumPartitions, ct.ReplicationFactor = -1, -1
			if ct.ErrorCode != kerr.TopicAlreadyExists.Code {
				s.log.Info("create topic refused", "topic", rt.Topic, "err", err)
			}
		} else {
			if t := s.ctrl.Snapshot().Topics[rt.Topic]; t != nil {
				ct.TopicID = t.ID
			}
			ct.NumPartitions, ct.ReplicationFactor = n, rf
		}
		resp.Topics = append(resp.Topics, ct)
	}
	return resp
}

// createTopicFromRequest validates one CreateTopics entry and creates the
// topic; it returns the partition count and replication factor (for a
// validate-only request, what would have been created). The answer waits
// (up to timeoutMillis) until every partition's leader has applied the
// creation, so that a client that produces right after (acks=0 even) finds
// each leader serving its partitions; past it, REQUEST_TIMED_OUT says the
// topic exists but some leaders may not serve it yet, as in Kafka.
func (s *Server) createTopicFromRequest(ctx context.Context, rt kmsg.CreateTopicsRequestTopic, copies int, validateOnly bool, timeoutMillis int32) (int32, int16, error) {
	if copies > 1 {
		return 0, 0, fmt.Errorf("%w: topic %q appears %d times in one request", kerr.InvalidRequest, rt.Topic, copies)
	}
	if s.isInternal(rt.Topic) {
		return 0, 0, fmt.Errorf("%w: %q is the broker's internal offsets topic; it creates it itself", kerr.InvalidTopicException, rt.Topic)
	}
	if err := validateTopicName(rt.Topic); err != nil {
		return 0, 0, err
	}
	if len(rt.ReplicaAssignment) > 0 {
		return 0, 0, fmt.Errorf("%w: manual replica assignment is not supported; give a partition count and replication factor", kerr.InvalidReplicaAssignment)
	}
	partitions, rf := rt.NumPartitions, rt.ReplicationFactor
	if partitions == -1 {
		partitions = s.cfg.DefaultPartitions
	}
	if rf == -1 {
		rf = s.cfg.DefaultReplicationFactor
	}
	configs := make(map[string]*string, len(rt.Configs))
	for _, c := range rt.Configs {
		configs[c.Name] = c.Value
	}
	cfg, err := s.topicConfig(configs)
	if err != nil {
		return 0, 0, err
	}
	if err := s.createTopic(ctx, rt.Topic, partitions, rf, cfg, validateOnly); err != nil {
		return 0, 0, err
	}
	if !validateOnly {
		if t := s.ctrl.Snapshot().Topics[rt.Topic]; t != nil {
			if err := s.waitApplied(ctx, leadersOf(t, 0), s.waitTimeout(timeoutMillis), fmt.Sprintf("topic %q was created", rt.Topic)); err != nil {
				return 0, 0, err
			}
		}
	}
	return partitions, rf, nil
}

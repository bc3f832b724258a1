package group

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/wire"
)

// Handled reports whether Handle answers requests of this kind.
func Handled(req kmsg.Request) bool {
	switch req.(type) {
	case *kmsg.JoinGroupRequest, *kmsg.SyncGroupRequest, *kmsg.HeartbeatRequest, *kmsg.LeaveGroupRequest,
		*kmsg.OffsetCommitRequest, *kmsg.OffsetFetchRequest, *kmsg.DescribeGroupsRequest,
		*kmsg.ListGroupsRequest, *kmsg.DeleteGroupsRequest:
		return true
	}
	return false
}

// Handle does the work of one group request now (in the order requests
// arrive on a connection) and returns either the response or, when the
// answer must wait (a JoinGroup for the end of the join phase, a
// SyncGroup for the leader's assignment, an OffsetCommit for the high
// watermark), a function that waits for it; the caller runs that function
// where waiting blocks no other request's work.
func (c *Coordinator) Handle(ctx context.Context, req kmsg.Request, cl Client) (kmsg.Response, func(context.Context) kmsg.Response) {
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		return c.handleJoin(ctx, r, cl)
	case *kmsg.SyncGroupRequest:
		return c.handleSync(ctx, r)
	case *kmsg.HeartbeatRequest:
		return c.handleHeartbeat(ctx, r), nil
	case *kmsg.LeaveGroupRequest:
		return c.handleLeave(ctx, r), nil
	case *kmsg.OffsetCommitRequest:
		return c.handleOffsetCommit(ctx, r)
	case *kmsg.OffsetFetchRequest:
		return c.handleOffsetFetch(ctx, r), nil
	case *kmsg.DescribeGroupsRequest:
		return c.handleDescribeGroups(ctx, r), nil
	case *kmsg.ListGroupsRequest:
		return c.handleListGroups(r), nil
	case *kmsg.DeleteGroupsRequest:
		return c.handleDeleteGroups(ctx, r)
	}
	panic(fmt.Sprintf("group: Handle given a %T", req))
}

// withGroup runs fn under the shard lock of the shard holding id; create
// makes the group when it does not exist. It returns the error the client
// should see when this node does not serve the group.
func (c *Coordinator) withGroup(ctx context.Context, id string, create bool, fn func(g *group)) *kerr.Error {
	if id == "" {
		return kerr.InvalidGroupID
	}
	s, e := c.shardFor(ctx, id)
	if e != nil {
		return e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != active {
		return kerr.NotCoordinator
	}
	g := s.groups[id]
	if g == nil && create {
		g = s.newGroup(id)
	}
	fn(g)
	return nil
}

func (c *Coordinator) handleJoin(ctx context.Context, req *kmsg.JoinGroupRequest, cl Client) (kmsg.Response, func(context.Context) kmsg.Response) {
	var resp kmsg.Response
	var p *parked
	e := c.withGroup(ctx, req.Group, true, func(g *group) { resp, p = g.join(req, cl) })
	if e != nil {
		r := req.ResponseKind().(*kmsg.JoinGroupResponse)
		r.ErrorCode, r.Generation, r.MemberID = e.Code, -1, req.MemberID
		return r, nil
	}
	if p != nil {
		return nil, p.wait
	}
	return resp, nil
}

func (c *Coordinator) handleSync(ctx context.Context, req *kmsg.SyncGroupRequest) (kmsg.Response, func(context.Context) kmsg.Response) {
	var resp kmsg.Response
	var p *parked
	e := c.withGroup(ctx, req.Group, false, func(g *group) {
		if g == nil {
			r := req.ResponseKind().(*kmsg.SyncGroupResponse)
			r.ErrorCode = kerr.UnknownMemberID.Code
			resp = r
			return
		}
		resp, p = g.sync(req)
	})
	if e != nil {
		r := req.ResponseKind().(*kmsg.SyncGroupResponse)
		r.ErrorCode = e.Code
		return r, nil
	}
	if p != nil {
		return nil, p.wait
	}
	return resp, nil
}

func (c *Coordinator) handleHeartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	e := c.withGroup(ctx, req.Group, false, func(g *group) {
		if g == nil {
			resp.ErrorCode = kerr.UnknownMemberID.Code
			return
		}
		if he := g.heartbeat(req); he != nil {
			resp.ErrorCode = he.Code
		}
	})
	if e != nil {
		resp.ErrorCode = e.Code
	}
	return resp
}

func (c *Coordinator) handleLeave(ctx context.Context, req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	members := req.Members
	if req.Version < 3 {
		members = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	e := c.withGroup(ctx, req.Group, false, func(g *group) {
		for _, rm := range members {
			out := kmsg.NewLeaveGroupResponseMember()
			out.MemberID, out.InstanceID = rm.MemberID, rm.InstanceID
			if g == nil {
				out.ErrorCode = kerr.UnknownMemberID.Code
			} else {
				id, le := g.leave(rm.MemberID, rm.InstanceID)
				out.MemberID = id
				if le != nil {
					out.ErrorCode = le.Code
				}
			}
			resp.Members = append(resp.Members, out)
		}
	})
	switch {
	case e != nil:
		resp.ErrorCode, resp.Members = e.Code, nil
	case req.Version < 3:
		resp.ErrorCode, resp.Members = resp.Members[0].ErrorCode, nil
	}
	return resp
}

// handleOffsetCommit validates the committer as Kafka does (a member of
// the current generation, or a group used only for offsets with
// generation -1), appends the offsets to the log and answers once they
// committed (the high watermark passed them and the shard applied them).
func (c *Coordinator) handleOffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) (kmsg.Response, func(context.Context) kmsg.Response) {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	codes := map[topicPartition]int16{}
	fillAll := func(code int16) {
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				codes[topicPartition{t.Topic, p.Partition}] = code
			}
		}
	}
	build := func() kmsg.Response {
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, codes[topicPartition{t.Topic, p.Partition}]
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	if req.Version >= 10 {
		fillAll(kerr.UnsupportedVersion.Code)
		return build(), nil
	}
	generation, memberID := req.Generation, req.MemberID
	if req.Version == 0 {
		generation = -1
	}
	var wait func(context.Context) *kerr.Error
	e := c.withGroup(ctx, req.Group, generation < 0, func(g *group) {
		if g == nil {
			// Kafka: a commit naming a generation to a group that does
			// not exist is from a member of a group that is gone.
			fillAll(kerr.IllegalGeneration.Code)
			return
		}
		if ve := g.validateCommit(generation, memberID, req.InstanceID); ve != nil {
			fillAll(ve.Code)
			return
		}
		now := time.Now()
		var records []wire.Record
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				md := ""
				if p.Metadata != nil {
					md = *p.Metadata
				}
				if len(md) > c.cfg.MaxMetadataBytes {
					codes[topicPartition{t.Topic, p.Partition}] = kerr.OffsetMetadataTooLarge.Code
					continue
				}
				epoch := p.LeaderEpoch
				if req.Version < 6 {
					epoch = -1
				}
				records = append(records, offsetRecord(g.id, t.Topic, p.Partition, &committed{Offset: p.Offset, LeaderEpoch: epoch, Metadata: md, CommitTime: now}))
			}
		}
		if len(records) == 0 {
			return
		}
		w, ae := g.s.appendLocked(records)
		if ae != nil {
			fillAll0(codes, req, ae.Code)
			return
		}
		wait = w
	})
	if e != nil {
		fillAll(e.Code)
		return build(), nil
	}
	if wait == nil {
		return build(), nil
	}
	return nil, func(ctx context.Context) kmsg.Response {
		if we := wait(ctx); we != nil {
			fillAll0(codes, req, we.Code)
		}
		return build()
	}
}

// fillAll0 sets code on every partition of req that has no error yet.
func fillAll0(codes map[topicPartition]int16, req *kmsg.OffsetCommitRequest, code int16) {
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			k := topicPartition{t.Topic, p.Partition}
			if codes[k] == 0 {
				codes[k] = code
			}
		}
	}
}

// validateCommit is Kafka's check of an offset commit: generation -1 and
// no member commits to a group with no members (offsets only); otherwise
// the committer must be a member of the current generation, and not while
// the generation's assignment is still being handed out.
func (g *group) validateCommit(generation int32, memberID string, instanceID *string) *kerr.Error {
	if g.state == stateDead {
		return kerr.CoordinatorNotAvailable
	}
	if generation < 0 && g.state == stateEmpty {
		return nil
	}
	if e := g.checkInstance(instanceID, memberID); e != nil {
		return e
	}
	m := g.members[memberID]
	if m == nil {
		if generation >= 0 && g.state == stateEmpty {
			return kerr.IllegalGeneration
		}
		return kerr.UnknownMemberID
	}
	if generation != g.generation {
		return kerr.IllegalGeneration
	}
	if g.state == stateCompletingRebalance {
		return kerr.RebalanceInProgress
	}
	g.touch(m)
	return nil
}

// handleOffsetFetch answers from the committed offsets the shard applied.
// A partition with no committed offset gets offset -1 and no error.
func (c *Coordinator) handleOffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			out := kmsg.NewOffsetFetchResponseGroup()
			out.Group = rg.Group
			var want map[string][]int32
			if rg.Topics != nil {
				want = map[string][]int32{}
				for _, t := range rg.Topics {
					want[t.Topic] = append(want[t.Topic], t.Partitions...)
				}
			}
			topics, e := c.fetchOffsets(ctx, rg.Group, want, req.Version)
			if e != nil {
				out.ErrorCode = e.Code
			}
			for _, t := range topics {
				ot := kmsg.NewOffsetFetchResponseGroupTopic()
				ot.Topic = t.Topic
				for _, p := range t.Partitions {
					op := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					op.Partition, op.Offset, op.LeaderEpoch, op.Metadata, op.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
					ot.Partitions = append(ot.Partitions, op)
				}
				out.Topics = append(out.Topics, ot)
			}
			resp.Groups = append(resp.Groups, out)
		}
		return resp
	}
	var want map[string][]int32
	if req.Topics != nil || req.Version < 2 {
		want = map[string][]int32{}
		for _, t := range req.Topics {
			want[t.Topic] = append(want[t.Topic], t.Partitions...)
		}
	}
	topics, e := c.fetchOffsets(ctx, req.Group, want, req.Version)
	if e != nil {
		if req.Version >= 2 {
			resp.ErrorCode = e.Code
		}
		// v0 and v1 have no top-level error: every partition carries it.
		topics = nil
		for name, parts := range want {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = name
			for _, p := range parts {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = p, -1, e.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			topics = append(topics, rt)
		}
	}
	resp.Topics = topics
	return resp
}

// fetchOffsets reads a group's committed offsets for want (nil: every
// partition the group has an offset for).
func (c *Coordinator) fetchOffsets(ctx context.Context, id string, want map[string][]int32, version int16) ([]kmsg.OffsetFetchResponseTopic, *kerr.Error) {
	var out []kmsg.OffsetFetchResponseTopic
	e := c.withGroup(ctx, id, false, func(g *group) {
		get := func(k topicPartition) kmsg.OffsetFetchResponseTopicPartition {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = k.partition, -1, -1
			empty := ""
			rp.Metadata = &empty
			if g == nil {
				return rp
			}
			if o, ok := g.offsets[k]; ok {
				md := o.Metadata
				rp.Offset, rp.LeaderEpoch, rp.Metadata = o.Offset, o.LeaderEpoch, &md
			}
			return rp
		}
		if want == nil {
			want = map[string][]int32{}
			if g != nil {
				for k := range g.offsets {
					want[k.topic] = append(want[k.topic], k.partition)
				}
			}
		}
		names := make([]string, 0, len(want))
		for name := range want {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			parts := slices.Clone(want[name])
			slices.Sort(parts)
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = name
			for _, p := range slices.Compact(parts) {
				rt.Partitions = append(rt.Partitions, get(topicPartition{name, p}))
			}
			out = append(out, rt)
		}
	})
	return out, e
}

func (c *Coordinator) handleDescribeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group = id
		dg.AuthorizedOperations = -2147483648 // not requested / not computed
		e := c.withGroup(ctx, id, false, func(g *group) {
			if g == nil {
				dg.State = stateDead.String()
				if req.Version >= 6 {
					dg.ErrorCode = kerr.GroupIDNotFound.Code
				}
				return
			}
			dg.State, dg.ProtocolType, dg.Protocol = g.state.String(), g.protocolType, g.protocol
			for _, mid := range g.order {
				m := g.members[mid]
				dm := kmsg.NewDescribeGroupsResponseGroupMember()
				dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
				if g.state == stateStable {
					// Kafka shows metadata and assignments of a Stable
					// group only; mid-rebalance they are not settled.
					dm.ProtocolMetadata, dm.MemberAssignment = m.metadataFor(g.protocol), m.assignment
				}
				dg.Members = append(dg.Members, dm)
			}
		})
		if e != nil {
			dg.ErrorCode = e.Code
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

// handleListGroups lists the groups of every offsets partition this node
// leads, as Kafka's ListGroups does per broker.
func (c *Coordinator) handleListGroups(req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if c.cfg.SessionActive != nil && !c.cfg.SessionActive() {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	states := map[string]bool{}
	for _, st := range req.StatesFilter {
		states[st] = true
	}
	typeOK := len(req.TypesFilter) == 0 || slices.ContainsFunc(req.TypesFilter, func(t string) bool { return t == "classic" || t == "Classic" })
	stillLoading := false
	for _, s := range c.activeShards() {
		s.mu.Lock()
		if s.state == loading {
			stillLoading = true
		}
		for _, g := range s.groups {
			if (len(states) > 0 && !states[g.state.String()]) || !typeOK {
				continue
			}
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = g.id, g.protocolType, g.state.String(), "classic"
			resp.Groups = append(resp.Groups, lg)
		}
		s.mu.Unlock()
	}
	if stillLoading {
		// Kafka answers the whole request with the error while a
		// partition loads: a partial list would hide groups.
		resp.ErrorCode, resp.Groups = kerr.CoordinatorLoadInProgress.Code, nil
	}
	sort.Slice(resp.Groups, func(i, j int) bool { return resp.Groups[i].Group < resp.Groups[j].Group })
	return resp
}

// handleDeleteGroups deletes empty groups: a tombstone for the group and
// for each of its offsets, answered once committed. A group with members
// is NON_EMPTY_GROUP.
func (c *Coordinator) handleDeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) (kmsg.Response, func(context.Context) kmsg.Response) {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	type waiting struct {
		i    int
		wait func(context.Context) *kerr.Error
	}
	var waits []waiting
	for _, id := range req.Groups {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = id
		var wait func(context.Context) *kerr.Error
		e := c.withGroup(ctx, id, false, func(g *group) {
			switch {
			case g == nil || g.state == stateDead:
				dg.ErrorCode = kerr.GroupIDNotFound.Code
				return
			case g.state != stateEmpty:
				dg.ErrorCode = kerr.NonEmptyGroup.Code
				return
			}
			records := []wire.Record{groupRecord(id, nil)}
			keys := make([]topicPartition, 0, len(g.offsets))
			for k := range g.offsets {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool {
				return keys[i].topic < keys[j].topic || keys[i].topic == keys[j].topic && keys[i].partition < keys[j].partition
			})
			for _, k := range keys {
				records = append(records, offsetRecord(id, k.topic, k.partition, nil))
			}
			w, ae := g.s.appendLocked(records)
			if ae != nil {
				dg.ErrorCode = ae.Code
				return
			}
			g.shutdown()
			delete(g.s.groups, id)
			g.s.log.Info("group deleted", "group", id, "offsets", len(keys))
			wait = w
		})
		if e != nil {
			dg.ErrorCode = e.Code
		}
		if wait != nil {
			waits = append(waits, waiting{len(resp.Groups), wait})
		}
		resp.Groups = append(resp.Groups, dg)
	}
	if len(waits) == 0 {
		return resp, nil
	}
	return nil, func(ctx context.Context) kmsg.Response {
		for _, w := range waits {
			if e := w.wait(ctx); e != nil {
				resp.Groups[w.i].ErrorCode = e.Code
			}
		}
		return resp
	}
}

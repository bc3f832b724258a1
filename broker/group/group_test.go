package group

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/wire"
)

type wireRecord = wire.Record

// TestRebalanceGenerationsAndAssignment walks a group through two
// generations: two members join one generation with one leader that sees
// both subscriptions; the leader's assignment reaches the other member's
// parked SyncGroup; a third member's arrival makes heartbeats answer
// REBALANCE_IN_PROGRESS until all three rejoin the next generation.
func TestRebalanceGenerationsAndAssignment(t *testing.T) {
	e := newEnv(t, 1, []int32{self}, nil)
	e.waitActive(1)
	a, aJoin := e.joinNew("g", Client{ID: "a"})
	ra := recv(t, aJoin).(*kmsg.JoinGroupResponse)
	if ra.ErrorCode != 0 || ra.Generation != 1 || ra.LeaderID != a || len(ra.Members) != 1 {
		t.Fatalf("lone member's join: %+v", ra)
	}
	// a syncs alone: generation 1 is stable with a's assignment.
	sa := e.do(syncReq("g", a, 1, map[string]string{a: "A1"}), Client{}).(*kmsg.SyncGroupResponse)
	if sa.ErrorCode != 0 || string(sa.MemberAssignment) != "A1" {
		t.Fatalf("sync of generation 1: %+v", sa)
	}

	b, bJoin := e.joinNew("g", Client{ID: "b"})
	if code := heartbeat(e, "g", a, 1); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("a's heartbeat while b joins: %d, want REBALANCE_IN_PROGRESS", code)
	}
	select {
	case r := <-bJoin:
		t.Fatalf("b's join answered before a rejoined: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	aJoin = e.async(joinReq("g", a, "range", "a"), Client{ID: "a"})
	ra, rb := recv(t, aJoin).(*kmsg.JoinGroupResponse), recv(t, bJoin).(*kmsg.JoinGroupResponse)
	if ra.ErrorCode != 0 || rb.ErrorCode != 0 || ra.Generation != 2 || rb.Generation != 2 {
		t.Fatalf("generation 2 joins: a %+v, b %+v", ra, rb)
	}
	if ra.LeaderID != a || rb.LeaderID != a || len(ra.Members) != 2 || len(rb.Members) != 0 {
		t.Fatalf("the first member leads and alone sees the members: a %+v, b %+v", ra, rb)
	}
	if *ra.Protocol != "range" || *ra.ProtocolType != "consumer" {
		t.Fatalf("protocol %q type %q", *ra.Protocol, *ra.ProtocolType)
	}
	// b syncs first and waits for the leader's assignment.
	bSync := e.async(syncReq("g", b, 2, nil), Client{})
	select {
	case r := <-bSync:
		t.Fatalf("b's sync answered before the leader's: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	if code := heartbeat(e, "g", b, 2); code != 0 {
		t.Fatalf("heartbeat while completing the rebalance: %d", code)
	}
	sa = e.do(syncReq("g", a, 2, map[string]string{a: "A2", b: "B2"}), Client{}).(*kmsg.SyncGroupResponse)
	sb := recv(t, bSync).(*kmsg.SyncGroupResponse)
	if sa.ErrorCode != 0 || sb.ErrorCode != 0 || string(sa.MemberAssignment) != "A2" || string(sb.MemberAssignment) != "B2" {
		t.Fatalf("generation 2 assignments: a %+v, b %+v", sa, sb)
	}
	for _, tc := range []struct {
		member string
		gen    int32
		want   int16
	}{{a, 2, 0}, {b, 2, 0}, {a, 1, kerr.IllegalGeneration.Code}, {"nobody", 2, kerr.UnknownMemberID.Code}} {
		if code := heartbeat(e, "g", tc.member, tc.gen); code != tc.want {
			t.Errorf("heartbeat of %s at generation %d: %d, want %d", tc.member, tc.gen, code, tc.want)
		}
	}
	// A sync of an old generation is refused; a sync of a stable
	// generation returns the member's assignment again.
	if r := e.do(syncReq("g", b, 1, nil), Client{}).(*kmsg.SyncGroupResponse); r.ErrorCode != kerr.IllegalGeneration.Code {
		t.Errorf("sync at an old generation: %d", r.ErrorCode)
	}
	if r := e.do(syncReq("g", b, 2, nil), Client{}).(*kmsg.SyncGroupResponse); r.ErrorCode != 0 || string(r.MemberAssignment) != "B2" {
		t.Errorf("sync again at the stable generation: %+v", r)
	}

	// The group's metadata record holds the assignment (a failover keeps it).
	d := e.do(&kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"g", "none"}}, Client{}).(*kmsg.DescribeGroupsResponse)
	if g := d.Groups[0]; g.State != "Stable" || len(g.Members) != 2 || g.Protocol != "range" {
		t.Errorf("describe g: %+v", g)
	}
	if g := d.Groups[1]; g.State != "Dead" || g.ErrorCode != 0 {
		t.Errorf("describe an unknown group: %+v", g)
	}

	// b leaves: a's heartbeat sees the rebalance, a alone forms generation 3.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group = 5, "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: b}}
	if r := e.do(leave, Client{}).(*kmsg.LeaveGroupResponse); r.ErrorCode != 0 || r.Members[0].ErrorCode != 0 {
		t.Fatalf("leave: %+v", r)
	}
	if code := heartbeat(e, "g", a, 2); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("a's heartbeat after b left: %d", code)
	}
	ra = e.do(joinReq("g", a, "range", "a"), Client{}).(*kmsg.JoinGroupResponse)
	if ra.ErrorCode != 0 || ra.Generation != 3 || len(ra.Members) != 1 {
		t.Fatalf("join after b left: %+v", ra)
	}
}

// TestSessionExpiryRemovesMember: a member that stops heartbeating is
// removed after its session timeout and the group rebalances without it.
func TestSessionExpiryRemovesMember(t *testing.T) {
	// Both join the first generation: it waits for more members.
	e := newEnv(t, 1, []int32{self}, func(c *Config) { c.InitialRebalanceDelay = 200 * time.Millisecond })
	e.waitActive(1)
	a, aJoin := e.joinNew("g", Client{ID: "a"})
	b, bJoin := e.joinNew("g", Client{ID: "b"})
	_ = recv(t, aJoin)
	rb := recv(t, bJoin).(*kmsg.JoinGroupResponse)
	if rb.Generation != 1 || rb.ErrorCode != 0 {
		t.Fatalf("b's join: %+v", rb)
	}
	bSync := e.async(syncReq("g", b, rb.Generation, nil), Client{})
	e.do(syncReq("g", a, rb.Generation, map[string]string{a: "x", b: "y"}), Client{})
	recv(t, bSync)
	// Shorten b's session: its next JoinGroup would do it, but b is
	// silent from now on; a keeps heartbeating.
	e.coord.mu.Lock()
	s := e.coord.shards[0]
	e.coord.mu.Unlock()
	s.mu.Lock()
	g := s.groups["g"]
	g.members[b].sessionTimeout = 100 * time.Millisecond
	g.armSession(g.members[b])
	s.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code := heartbeat(e, "g", a, rb.Generation)
		if code == kerr.RebalanceInProgress.Code {
			break
		}
		if code != 0 || time.Now().After(deadline) {
			t.Fatalf("a's heartbeat: %d (b's session never expired?)", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ra := e.do(joinReq("g", a, "range", "a"), Client{}).(*kmsg.JoinGroupResponse)
	if ra.ErrorCode != 0 || len(ra.Members) != 1 || ra.Members[0].MemberID != a {
		t.Fatalf("rejoin without b: %+v", ra)
	}
}

// TestCommitWaitsForHighWatermark: an offset commit is answered only once
// every in-sync replica has the record, and OffsetFetch does not show it
// before that.
func TestCommitWaitsForHighWatermark(t *testing.T) {
	e := newEnv(t, 1, []int32{self, 2}, nil)
	part := e.part(0)
	// The follower catches up with the empty log: the high watermark is
	// established and the shard loads.
	if _, err := part.ReplicaFetch(2, 0, -1, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitActive(1)
	commit := e.async(commitReq("simple", "", -1, "t", map[int32]int64{0: 42}), Client{})
	select {
	case r := <-commit:
		t.Fatalf("commit answered before the follower had the record: %v", commitCodes(r))
	case <-time.After(100 * time.Millisecond):
	}
	if got, code := e.fetchOffsets("simple", "t", 0); code != 0 || got[0] != -1 {
		t.Fatalf("offset visible before it committed: %v (code %d)", got, code)
	}
	// The follower fetches from the log end: it has the record now.
	if _, err := part.ReplicaFetch(2, part.Log().EndOffset(), 0, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	if codes := commitCodes(recv(t, commit)); codes[0] != 0 {
		t.Fatalf("commit after replication: %v", codes)
	}
	if got, _ := e.fetchOffsets("simple", "t", 0, 1); got[0] != 42 || got[1] != -1 {
		t.Fatalf("fetch after the commit: %v, want 0:42 1:-1", got)
	}

	// A commit that does not reach the follower in time fails with a
	// retriable error, and is not visible.
	e.coord.cfg.CommitTimeout = 100 * time.Millisecond
	r := e.do(commitReq("simple", "", -1, "t", map[int32]int64{0: 50}), Client{})
	if codes := commitCodes(r); codes[0] != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("unreplicated commit: %v, want COORDINATOR_NOT_AVAILABLE", codes)
	}
	if got, _ := e.fetchOffsets("simple", "t", 0); got[0] != 42 {
		t.Fatalf("an uncommitted offset is visible: %v", got)
	}
	// When it does commit later, it takes effect (an acks=all write whose
	// wait timed out may still commit).
	if _, err := part.ReplicaFetch(2, part.Log().EndOffset(), 0, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the late commit to apply", func() bool { got, _ := e.fetchOffsets("simple", "t", 0); return got[0] == 50 })
}

// TestOffsetsEarlyAckBug: with the offsets-early-ack switch a commit is
// acknowledged and served while the follower does not have it; without
// it (TestCommitWaitsForHighWatermark) the commit waits.
func TestOffsetsEarlyAckBug(t *testing.T) {
	e := newEnv(t, 1, []int32{self, 2}, func(c *Config) { c.OffsetsEarlyAckBug = true })
	part := e.part(0)
	if _, err := part.ReplicaFetch(2, 0, -1, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitActive(1)
	if codes := commitCodes(e.do(commitReq("simple", "", -1, "t", map[int32]int64{0: 42}), Client{})); codes[0] != 0 {
		t.Fatalf("commit with the bug: %v, want an acknowledgement", codes)
	}
	if hw, end := part.HighWatermark(), part.Log().EndOffset(); hw >= end {
		t.Fatalf("high watermark %d, log end %d: the follower has the record, so the test shows nothing", hw, end)
	}
	if got, code := e.fetchOffsets("simple", "t", 0); code != 0 || got[0] != 42 {
		t.Fatalf("fetch with the bug: %v (code %d), want the uncommitted 42", got, code)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCommitValidation: Kafka's rules for who may commit.
func TestCommitValidation(t *testing.T) {
	e := newEnv(t, 1, []int32{self}, nil)
	e.waitActive(1)
	a, aJoin := e.joinNew("g", Client{ID: "a"})
	gen := recv(t, aJoin).(*kmsg.JoinGroupResponse).Generation
	for _, tc := range []struct {
		name   string
		group  string
		member string
		gen    int32
		want   int16
	}{
		{"member while the assignment is pending", "g", a, gen, kerr.RebalanceInProgress.Code},
		{"unknown member", "g", "nobody", gen, kerr.UnknownMemberID.Code},
		{"offsets-only commit to a group with members", "g", "", -1, kerr.UnknownMemberID.Code},
		{"generation to a group that does not exist", "gone", "x", 3, kerr.IllegalGeneration.Code},
		{"offsets-only commit to a new group", "simple", "", -1, 0},
	} {
		if got := commitCodes(e.do(commitReq(tc.group, tc.member, tc.gen, "t", map[int32]int64{0: 1}), Client{}))[0]; got != tc.want {
			t.Errorf("%s: code %d, want %d", tc.name, got, tc.want)
		}
	}
	e.do(syncReq("g", a, gen, map[string]string{a: "x"}), Client{})
	if got := commitCodes(e.do(commitReq("g", a, gen, "t", map[int32]int64{0: 7}), Client{}))[0]; got != 0 {
		t.Fatalf("member commit in a stable generation: %d", got)
	}
	if got := commitCodes(e.do(commitReq("g", a, gen-1, "t", map[int32]int64{0: 8}), Client{}))[0]; got != kerr.IllegalGeneration.Code {
		t.Fatalf("commit at an old generation: %d", got)
	}
	big := commitReq("g", a, gen, "t", map[int32]int64{1: 9})
	md := string(bytes.Repeat([]byte("x"), DefaultMaxMetadataBytes+1))
	big.Topics[0].Partitions[0].Metadata = &md
	if got := commitCodes(e.do(big, Client{}))[1]; got != kerr.OffsetMetadataTooLarge.Code {
		t.Fatalf("oversized metadata: %d", got)
	}
	if got, _ := e.fetchOffsets("g", "t", 0, 1); got[0] != 7 || got[1] != -1 {
		t.Fatalf("offsets: %v", got)
	}
}

// TestFailoverLoadsGroupsAndOffsets: when the leadership of the offsets
// partition moves away and comes back at a new epoch, the coordinator
// unloads (parked requests answered NOT_COORDINATOR) and the new shard
// loads the group (its generation, members and assignments) and the
// committed offsets from the log, so that members carry on without a
// rebalance.
func TestFailoverLoadsGroupsAndOffsets(t *testing.T) {
	e := newEnv(t, 2, []int32{self}, nil)
	e.waitActive(2)
	a, aJoin := e.joinNew("g", Client{ID: "a"})
	gen := recv(t, aJoin).(*kmsg.JoinGroupResponse).Generation
	e.do(syncReq("g", a, gen, map[string]string{a: "assigned"}), Client{})
	if got := commitCodes(e.do(commitReq("g", a, gen, "t", map[int32]int64{0: 11, 1: 12}), Client{})); got[0] != 0 || got[1] != 0 {
		t.Fatal(got)
	}
	// A second member's join is parked when the leadership moves.
	_, bJoin := e.joinNew("g", Client{ID: "b"})

	idx := PartitionFor("g", 2)
	e.moveLeadership(idx, 2) // away: node 2 leads
	if r := recv(t, bJoin).(*kmsg.JoinGroupResponse); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("parked join on unload: %+v", r)
	}
	if code := heartbeat(e, "g", a, gen); code != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat to a node that no longer leads: %d", code)
	}
	e.moveLeadership(idx, self) // back, at a newer epoch
	e.waitActive(2)
	// b never rejoined: the restored group is a's generation, Stable.
	if code := heartbeat(e, "g", a, gen); code != 0 {
		t.Fatalf("a's heartbeat after the failover: %d", code)
	}
	if r := e.do(syncReq("g", a, gen, nil), Client{}).(*kmsg.SyncGroupResponse); r.ErrorCode != 0 || string(r.MemberAssignment) != "assigned" {
		t.Fatalf("a's assignment after the failover: %+v", r)
	}
	if got, _ := e.fetchOffsets("g", "t", 0, 1); got[0] != 11 || got[1] != 12 {
		t.Fatalf("offsets after the failover: %v", got)
	}
}

// moveLeadership makes leader the partition's leader at the next epoch,
// playing the controller and the replica manager.
func (e *env) moveLeadership(idx, leader int32) {
	e.t.Helper()
	if err := e.meta.Update(func(s *metadata.Snapshot) (*metadata.Snapshot, error) {
		n := s.Clone()
		p := &n.Topics[OffsetsTopic].Partitions[idx]
		p.Leader = leader
		p.LeaderEpoch++
		p.PartitionEpoch++
		if leader != self {
			p.Replicas, p.ISR = []int32{self, leader}, []int32{self, leader}
		} else {
			p.Replicas, p.ISR = []int32{self}, []int32{self}
		}
		n.Version++
		return n, nil
	}); err != nil {
		e.t.Fatal(err)
	}
	st, _ := e.meta.Snapshot().Partition(OffsetsTopic, idx)
	if leader == self {
		e.part(idx).BecomeLeader(st, 1, time.Now())
	} else {
		e.part(idx).BecomeFollower(st)
		waitFor(e.t, "the shard to unload", func() bool {
			e.coord.mu.Lock()
			defer e.coord.mu.Unlock()
			return e.coord.shards[idx] == nil
		})
	}
}

// TestNotCoordinatorAndLoading: a group in a partition another node leads
// is NOT_COORDINATOR; one whose partition is still loading (the new
// leader's high watermark does not yet cover what earlier epochs wrote)
// is COORDINATOR_LOAD_IN_PROGRESS, and served once it does.
func TestNotCoordinatorAndLoading(t *testing.T) {
	e := newEnv(t, 1, []int32{self, 2}, func(c *Config) { c.CommitTimeout = 50 * time.Millisecond })
	part := e.part(0)
	if _, err := part.ReplicaFetch(2, 0, -1, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitActive(1)
	// Node 2 never gets this record: it is in node 1's log, not committed.
	if got := commitCodes(e.do(commitReq("s", "", -1, "t", map[int32]int64{0: 1}), Client{})); got[0] != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("unreplicated commit: %v", got)
	}
	// Node 1 leads again at the next epoch: its high watermark (0) is
	// below its log end (1) until node 2 reports.
	if err := e.meta.Update(func(s *metadata.Snapshot) (*metadata.Snapshot, error) {
		n := s.Clone()
		p := &n.Topics[OffsetsTopic].Partitions[0]
		p.LeaderEpoch++
		p.PartitionEpoch++
		n.Version++
		return n, nil
	}); err != nil {
		t.Fatal(err)
	}
	st, _ := e.meta.Snapshot().Partition(OffsetsTopic, 0)
	part.BecomeLeader(st, 1, time.Now())
	waitFor(t, "the new epoch's shard", func() bool {
		e.coord.mu.Lock()
		defer e.coord.mu.Unlock()
		s := e.coord.shards[0]
		return s != nil && s.epoch == st.LeaderEpoch
	})
	r := e.do(joinReq("g", "", "range", "x"), Client{}).(*kmsg.JoinGroupResponse)
	if r.ErrorCode != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("join while loading: %d, want COORDINATOR_LOAD_IN_PROGRESS", r.ErrorCode)
	}
	if _, err := part.ReplicaFetch(2, 1, 0, st.LeaderEpoch, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitActive(1)
	// The record node 2 now has is committed, and loaded.
	if got, code := e.fetchOffsets("s", "t", 0); code != 0 || got[0] != 1 {
		t.Fatalf("after loading: %v (code %d)", got, code)
	}

	// Another node leads the partition now.
	e.moveLeadership(0, 2)
	if r := e.do(joinReq("g", "", "range", "x"), Client{}).(*kmsg.JoinGroupResponse); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("join at a node that does not lead: %d, want NOT_COORDINATOR", r.ErrorCode)
	}
	if _, code := e.fetchOffsets("s", "t", 0); code != kerr.NotCoordinator.Code {
		t.Fatalf("fetch at a node that does not lead: %d", code)
	}
}

// TestStaticMemberRejoinsWithoutRebalance: a static member that restarts
// (same instance id, empty member id) takes its place in a Stable group
// with its old assignment and no new generation; the old member id is
// fenced.
func TestStaticMemberRejoinsWithoutRebalance(t *testing.T) {
	e := newEnv(t, 1, []int32{self}, nil)
	e.waitActive(1)
	inst := "instance-1"
	j := joinReq("g", "", "range", "s")
	j.InstanceID = &inst
	r := e.do(j, Client{ID: "s"}).(*kmsg.JoinGroupResponse)
	if r.ErrorCode != 0 || r.Generation != 1 {
		t.Fatalf("static member's first join (no MEMBER_ID_REQUIRED): %+v", r)
	}
	old := r.MemberID
	e.do(syncReq("g", old, 1, map[string]string{old: "mine"}), Client{})

	j = joinReq("g", "", "range", "s")
	j.InstanceID = &inst
	r = e.do(j, Client{ID: "s"}).(*kmsg.JoinGroupResponse)
	if r.ErrorCode != 0 || r.Generation != 1 || r.MemberID == old || !r.SkipAssignment {
		t.Fatalf("static rejoin: %+v (old member id %s)", r, old)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = 4, "g", old, 1, &inst
	if code := e.do(hb, Client{}).(*kmsg.HeartbeatResponse).ErrorCode; code != kerr.FencedInstanceID.Code {
		t.Fatalf("the old member id's heartbeat: %d, want FENCED_INSTANCE_ID", code)
	}
	hb.MemberID = r.MemberID
	if code := e.do(hb, Client{}).(*kmsg.HeartbeatResponse).ErrorCode; code != 0 {
		t.Fatalf("the new member id's heartbeat: %d", code)
	}
	s := syncReq("g", r.MemberID, 1, nil)
	s.InstanceID = &inst
	if got := e.do(s, Client{}).(*kmsg.SyncGroupResponse); string(got.MemberAssignment) != "mine" {
		t.Fatalf("the assignment kept: %+v", got)
	}
	// Leaving by instance id (a static member's LeaveGroup v3+).
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group = 5, "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{InstanceID: &inst}}
	if got := e.do(leave, Client{}).(*kmsg.LeaveGroupResponse); got.Members[0].ErrorCode != 0 || got.Members[0].MemberID != r.MemberID {
		t.Fatalf("leave by instance id: %+v", got)
	}
}

// TestDeleteGroupsAndListGroups: only an empty group can be deleted; its
// offsets go with it.
func TestDeleteGroupsAndListGroups(t *testing.T) {
	e := newEnv(t, 3, []int32{self}, nil)
	e.waitActive(3)
	e.do(commitReq("empty", "", -1, "t", map[int32]int64{0: 5}), Client{})
	a, aJoin := e.joinNew("busy", Client{ID: "a"})
	recv(t, aJoin)
	_ = a
	l := e.do(&kmsg.ListGroupsRequest{Version: 5}, Client{}).(*kmsg.ListGroupsResponse)
	if l.ErrorCode != 0 || len(l.Groups) != 2 || l.Groups[0].Group != "busy" || l.Groups[1].GroupState != "Empty" {
		t.Fatalf("list: %+v", l)
	}
	l = e.do(&kmsg.ListGroupsRequest{Version: 4, StatesFilter: []string{"Empty"}}, Client{}).(*kmsg.ListGroupsResponse)
	if len(l.Groups) != 1 || l.Groups[0].Group != "empty" {
		t.Fatalf("list Empty groups: %+v", l)
	}
	d := e.do(&kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"empty", "busy", "none"}}, Client{}).(*kmsg.DeleteGroupsResponse)
	want := []int16{0, kerr.NonEmptyGroup.Code, kerr.GroupIDNotFound.Code}
	for i, g := range d.Groups {
		if g.ErrorCode != want[i] {
			t.Errorf("delete %s: %d, want %d", g.Group, g.ErrorCode, want[i])
		}
	}
	if got, _ := e.fetchOffsets("empty", "t", 0); got[0] != -1 {
		t.Fatalf("the deleted group's offset: %v", got)
	}
}

// TestRecordsRoundTrip: the records the coordinator writes decode back.
func TestRecordsRoundTrip(t *testing.T) {
	now := time.UnixMilli(time.Now().UnixMilli())
	g := &group{protocolType: "consumer", protocol: "range", generation: 4, leader: "m1", stateSince: now,
		members: map[string]*member{"m1": {id: "m1", clientID: "c", protocols: []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("sub")}}, assignment: []byte("as"), sessionTimeout: time.Second}},
		order:   []string{"m1"}}
	batch := encodeBatch([]wireRecord{
		offsetRecord("g", "t", 3, &committed{Offset: 9, LeaderEpoch: 2, Metadata: "md", CommitTime: now}),
		offsetRecord("g", "t", 4, nil),
		groupRecord("g", g.metadataValue()),
		groupRecord("h", nil),
	}, now)
	var got []record
	if err := decodeBatch(batch, func(_ int64, r record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d records", len(got))
	}
	if o := got[0]; o.offset == nil || o.offset.Partition != 3 || o.offsetValue.Offset != 9 || o.offsetValue.LeaderEpoch != 2 || o.offsetValue.Metadata != "md" {
		t.Errorf("offset record: %+v %+v", o.offset, o.offsetValue)
	}
	if o := got[1]; o.offset == nil || o.offsetValue != nil {
		t.Errorf("offset tombstone: %+v", o)
	}
	if v := got[2].groupValue; v == nil || v.Generation != 4 || *v.Leader != "m1" || len(v.Members) != 1 || string(v.Members[0].Assignment) != "as" || string(v.Members[0].Subscription) != "sub" {
		t.Errorf("group record: %+v", v)
	}
	if o := got[3]; o.group == nil || o.group.Group != "h" || o.groupValue != nil {
		t.Errorf("group tombstone: %+v", o)
	}
}

// FuzzDecodeRecord: no key and value bytes make the decoder panic.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(offsetRecord("g", "t", 1, &committed{Offset: 1}).Key, offsetRecord("g", "t", 1, &committed{Offset: 1}).Value)
	v := &kmsg.GroupMetadataValue{ProtocolType: "consumer", Members: []kmsg.GroupMetadataValueMember{{MemberID: "m"}}}
	r := groupRecord("g", v)
	f.Add(r.Key, r.Value)
	f.Add([]byte{0, 9}, []byte{1})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		_, _ = decodeRecord(key, value)
	})
}

func TestPartitionForMatchesKafka(t *testing.T) {
	// Java: "my-group".hashCode() = -1906497762 -> 1906497762 % 50 = 12;
	// "".hashCode() = 0; "polygenelubricants".hashCode() is MIN_VALUE, which
	// Kafka's Utils.abs maps to 0.
	for _, tc := range []struct {
		group string
		n     int32
		want  int32
	}{{"my-group", 50, 12}, {"", 50, 0}, {"polygenelubricants", 50, 0}} {
		if got := PartitionFor(tc.group, tc.n); got != tc.want {
			t.Errorf("PartitionFor(%q, %d) = %d, want %d", tc.group, tc.n, got, tc.want)
		}
	}
	_ = context.Background
}

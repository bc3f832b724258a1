package group

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/wire"
)

// newMemberJoinTimeout is how long a member that joined for the first
// time may wait in a rebalance before it is dropped (Kafka's
// GroupCoordinator.NewMemberJoinTimeoutMs): a new member that never
// finishes joining must not hold up the group for ever.
const newMemberJoinTimeout = 5 * time.Minute

// groupState is the classic protocol's group state, named as Kafka names
// it in DescribeGroups and ListGroups.
type groupState int8

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (st groupState) String() string {
	switch st {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	}
	return "Dead"
}

type topicPartition struct {
	topic     string
	partition int32
}

// committed is a committed offset as the log holds it.
type committed struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitTime  time.Time
}

// parked is a JoinGroup or SyncGroup waiting for the rebalance to get
// far enough to answer it.
type parked struct {
	req kmsg.Request
	ch  chan kmsg.Response // buffered: the answer never blocks the group
}

func park(req kmsg.Request) *parked { return &parked{req: req, ch: make(chan kmsg.Response, 1)} }

// wait is what the connection's writer runs for a parked request.
func (p *parked) wait(ctx context.Context) kmsg.Response {
	select {
	case r := <-p.ch:
		return r
	case <-ctx.Done():
		// The connection is closing; nothing will be written.
		resp := p.req.ResponseKind()
		setErrorCode(resp, kerr.NotCoordinator)
		return resp
	}
}

// fail answers a parked request with an error.
func (p *parked) fail(e *kerr.Error) {
	resp := p.req.ResponseKind()
	setErrorCode(resp, e)
	p.ch <- resp
}

func setErrorCode(resp kmsg.Response, e *kerr.Error) {
	switch r := resp.(type) {
	case *kmsg.JoinGroupResponse:
		r.ErrorCode = e.Code
		r.Generation = -1
	case *kmsg.SyncGroupResponse:
		r.ErrorCode = e.Code
	}
}

// member is one member of a group.
type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol
	assignment       []byte

	join     *parked // its JoinGroup awaiting the end of the join phase
	sync     *parked // its SyncGroup awaiting the leader's assignment
	isNew    bool    // joined in the current join phase for the first time
	joinedAt time.Time
	lastSeen time.Time
	timer    *time.Timer
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func (m *member) sameProtocols(ps []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(m.protocols, ps, func(a, b kmsg.JoinGroupRequestProtocol) bool {
		return a.Name == b.Name && bytes.Equal(a.Metadata, b.Metadata)
	})
}

// group is one consumer group (or any group of the classic protocol).
// Every method runs under its shard's mutex.
type group struct {
	s  *shard
	id string

	state        groupState
	stateSince   time.Time
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	order        []string               // member ids in join order (the leader is chosen from it)
	pending      map[string]*time.Timer // member ids handed out by MEMBER_ID_REQUIRED, not yet rejoined
	static       map[string]string      // group.instance.id -> member id
	offsets      map[topicPartition]committed

	initialJoin    bool // the first rebalance of an empty group, waiting for more members
	newMemberAdded bool
	joinTimer      *time.Timer
	syncTimer      *time.Timer
	pendingSync    map[string]bool
	assigning      bool // the leader's assignment is being written
}

func (s *shard) newGroup(id string) *group {
	g := &group{
		s:          s,
		id:         id,
		stateSince: time.Now(),
		members:    map[string]*member{},
		pending:    map[string]*time.Timer{},
		static:     map[string]string{},
		offsets:    map[topicPartition]committed{},
	}
	s.groups[id] = g
	return g
}

func (g *group) setState(st groupState) {
	if g.state != st {
		g.s.log.Debug("group state", "group", g.id, "from", g.state.String(), "to", st.String(), "generation", g.generation)
	}
	g.state, g.stateSince = st, time.Now()
}

// restore takes a group's state from its metadata record (on load): a
// group with members is Stable at its generation, the members' sessions
// start when the shard becomes active.
func (g *group) restore(v *kmsg.GroupMetadataValue) {
	for _, m := range g.members {
		if m.timer != nil {
			m.timer.Stop()
		}
	}
	g.protocolType, g.generation = v.ProtocolType, v.Generation
	g.protocol, g.leader = "", ""
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.Leader != nil {
		g.leader = *v.Leader
	}
	g.members, g.order, g.static = map[string]*member{}, nil, map[string]string{}
	for _, vm := range v.Members {
		m := &member{
			id: vm.MemberID, instanceID: vm.InstanceID, clientID: vm.ClientID, clientHost: vm.ClientHost,
			sessionTimeout:   time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			rebalanceTimeout: time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			protocolType:     v.ProtocolType,
			protocols:        []kmsg.JoinGroupRequestProtocol{{Name: g.protocol, Metadata: vm.Subscription}},
			assignment:       vm.Assignment,
		}
		g.members[m.id] = m
		g.order = append(g.order, m.id)
		if m.instanceID != nil {
			g.static[*m.instanceID] = m.id
		}
	}
	if len(g.members) == 0 {
		g.setState(stateEmpty)
	} else {
		g.setState(stateStable)
	}
}

// activate starts the session of every member restored from the log.
func (g *group) activate(now time.Time) {
	for _, m := range g.members {
		m.lastSeen = now
		g.armSession(m)
	}
}

// shutdown answers every parked request NOT_COORDINATOR and stops every
// timer (the shard is unloading).
func (g *group) shutdown() {
	for _, m := range g.members {
		if m.join != nil {
			m.join.fail(kerr.NotCoordinator)
			m.join = nil
		}
		if m.sync != nil {
			m.sync.fail(kerr.NotCoordinator)
			m.sync = nil
		}
		if m.timer != nil {
			m.timer.Stop()
		}
	}
	for _, t := range g.pending {
		t.Stop()
	}
	g.stopTimer(&g.joinTimer)
	g.stopTimer(&g.syncTimer)
	g.setState(stateDead)
}

func (g *group) stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// later runs fn under the shard's lock after d, if the shard is still
// active and the group still the shard's.
func (g *group) later(d time.Duration, fn func()) *time.Timer {
	return time.AfterFunc(d, func() {
		g.s.mu.Lock()
		defer g.s.mu.Unlock()
		if g.s.state != active || g.s.groups[g.id] != g {
			return
		}
		fn()
	})
}

// armSession (re)starts a member's session timer. The timer only checks:
// a heartbeat just moves lastSeen.
func (g *group) armSession(m *member) {
	if m.timer != nil {
		m.timer.Stop()
	}
	deadline := m.lastSeen.Add(m.sessionTimeout)
	m.timer = g.later(time.Until(deadline), func() { g.checkSession(m) })
}

func (g *group) touch(m *member) { m.lastSeen = time.Now() }

// checkSession removes a member whose session expired. A member waiting
// in a rebalance is alive (it is waiting for us), unless it is new and
// has waited longer than newMemberJoinTimeout.
func (g *group) checkSession(m *member) {
	if g.members[m.id] != m {
		return
	}
	now := time.Now()
	switch {
	case m.join != nil && m.isNew && now.Sub(m.joinedAt) >= newMemberJoinTimeout:
	case m.join != nil || m.sync != nil:
		m.lastSeen = now
		g.armSession(m)
		return
	case now.Sub(m.lastSeen) < m.sessionTimeout:
		g.armSession(m)
		return
	}
	g.s.log.Info("group member's session expired; removing it", "group", g.id, "member", m.id,
		"session_timeout", m.sessionTimeout, "generation", g.generation)
	g.removeMemberAndUpdate(m, kerr.UnknownMemberID)
}

// protocolsMatch is Kafka's check that a joining member can be in the
// group: a protocol type, at least one protocol, and (with members) the
// group's type and a protocol every member supports.
func (g *group) protocolsMatch(protocolType string, ps []kmsg.JoinGroupRequestProtocol) bool {
	if protocolType == "" || len(ps) == 0 {
		return false
	}
	if len(g.members) == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range ps {
		if g.supportedByAll(p.Name, "") {
			return true
		}
	}
	return false
}

// supportedByAll reports whether every member but except supports
// protocol.
func (g *group) supportedByAll(protocol, except string) bool {
	for id, m := range g.members {
		if id != except && !slices.ContainsFunc(m.protocols, func(p kmsg.JoinGroupRequestProtocol) bool { return p.Name == protocol }) {
			return false
		}
	}
	return true
}

// selectProtocol is Kafka's vote: among the protocols every member
// supports, each member votes for the first in its own preference order;
// the most votes wins (ties: the earliest member's preference).
func (g *group) selectProtocol() string {
	votes := map[string]int{}
	var first []string
	for i, id := range g.order {
		m := g.members[id]
		for _, p := range m.protocols {
			if g.supportedByAll(p.Name, "") {
				if i == 0 {
					first = append(first, p.Name)
				}
			}
		}
		for _, p := range m.protocols {
			if g.supportedByAll(p.Name, "") {
				votes[p.Name]++
				break
			}
		}
	}
	best, bestVotes := "", -1
	for _, name := range first {
		if votes[name] > bestVotes {
			best, bestVotes = name, votes[name]
		}
	}
	return best
}

// join handles a JoinGroup for this group. It answers at once (an error,
// MEMBER_ID_REQUIRED, or the current generation to a member that changed
// nothing) or parks the request until the join phase ends.
func (g *group) join(req *kmsg.JoinGroupRequest, cl Client) (kmsg.Response, *parked) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	fail := func(e *kerr.Error) (kmsg.Response, *parked) {
		resp.ErrorCode, resp.Generation = e.Code, -1
		return resp, nil
	}
	cfg := &g.s.c.cfg
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 {
		rebalance = session
	}
	switch {
	case session < cfg.MinSessionTimeout || session > cfg.MaxSessionTimeout:
		return fail(kerr.InvalidSessionTimeout)
	case g.state == stateDead:
		return fail(kerr.CoordinatorNotAvailable)
	case !g.protocolsMatch(req.ProtocolType, req.Protocols):
		return fail(kerr.InconsistentGroupProtocol)
	}
	newMember := func(id string) *member {
		now := time.Now()
		return &member{
			id: id, instanceID: req.InstanceID, clientID: cl.ID, clientHost: cl.Host,
			sessionTimeout: session, rebalanceTimeout: rebalance,
			protocolType: req.ProtocolType, protocols: req.Protocols,
			isNew: true, joinedAt: now, lastSeen: now,
		}
	}

	if req.MemberID == "" {
		if req.InstanceID != nil {
			if old, ok := g.static[*req.InstanceID]; ok && g.members[old] != nil {
				return g.replaceStatic(g.members[old], newMember(newMemberID(cl.ID, req.InstanceID)), req)
			}
			// A static member is known by its instance id: it joins at
			// once, without the member id round trip (KIP-345).
			m := newMember(newMemberID(cl.ID, req.InstanceID))
			p := park(req)
			g.addMemberAndRebalance(m, p)
			return nil, p
		}
		id := newMemberID(cl.ID, nil)
		if req.Version >= 4 {
			// KIP-394: the client must come back with this id, so that a
			// client that retries its first join does not leave members
			// behind that the group then waits for.
			g.pending[id] = g.later(session, func() {
				delete(g.pending, id)
				g.maybeCompleteJoin()
			})
			resp.MemberID = id
			return fail(kerr.MemberIDRequired)
		}
		p := park(req)
		g.addMemberAndRebalance(newMember(id), p)
		return nil, p
	}

	if t, ok := g.pending[req.MemberID]; ok {
		t.Stop()
		delete(g.pending, req.MemberID)
		p := park(req)
		g.addMemberAndRebalance(newMember(req.MemberID), p)
		return nil, p
	}
	if e := g.checkInstance(req.InstanceID, req.MemberID); e != nil {
		return fail(e)
	}
	m := g.members[req.MemberID]
	if m == nil {
		return fail(kerr.UnknownMemberID)
	}
	g.touch(m)
	switch g.state {
	case statePreparingRebalance:
		p := park(req)
		g.updateMemberAndRebalance(m, req, p)
		return nil, p
	case stateCompletingRebalance:
		if m.sameProtocols(req.Protocols) {
			g.fillJoin(resp, m)
			return resp, nil
		}
		p := park(req)
		g.updateMemberAndRebalance(m, req, p)
		return nil, p
	case stateStable:
		if m.id != g.leader && m.sameProtocols(req.Protocols) {
			g.fillJoin(resp, m)
			return resp, nil
		}
		// The leader rejoins to make a new assignment (the second round
		// of a cooperative rebalance), or a member's subscription changed.
		p := park(req)
		g.updateMemberAndRebalance(m, req, p)
		return nil, p
	}
	return fail(kerr.UnknownMemberID)
}

// checkInstance is the static membership check of every request naming
// an instance id: it must map to the member id given.
func (g *group) checkInstance(instanceID *string, memberID string) *kerr.Error {
	if instanceID == nil {
		return nil
	}
	known, ok := g.static[*instanceID]
	switch {
	case !ok:
		return kerr.UnknownMemberID
	case known != memberID:
		return kerr.FencedInstanceID
	}
	return nil
}

// replaceStatic lets a static member that restarted (same instance id, new
// member id) take its predecessor's place. The predecessor is fenced. In a
// Stable group whose subscription did not change there is no rebalance
// (KIP-345): the new member id is written to the log and the member gets
// the current generation, keeping its assignment.
func (g *group) replaceStatic(old, m *member, req *kmsg.JoinGroupRequest) (kmsg.Response, *parked) {
	same := old.sameProtocols(req.Protocols)
	for _, p := range []**parked{&old.join, &old.sync} {
		if *p != nil {
			(*p).fail(kerr.FencedInstanceID)
			*p = nil
		}
	}
	if old.timer != nil {
		old.timer.Stop()
	}
	m.assignment = old.assignment
	m.isNew = false
	delete(g.members, old.id)
	g.members[m.id] = m
	g.order[slices.Index(g.order, old.id)] = m.id
	g.static[*m.instanceID] = m.id
	if g.leader == old.id {
		g.leader = m.id
	}
	if g.pendingSync[old.id] {
		delete(g.pendingSync, old.id)
		g.pendingSync[m.id] = true
	}
	g.armSession(m)
	p := park(req)
	if g.state != stateStable || !same {
		g.updateMemberAndRebalance(m, req, p)
		return nil, p
	}
	g.s.log.Info("static member rejoined with a new member id; no rebalance", "group", g.id, "instance", *m.instanceID, "old_member", old.id, "member", m.id)
	wait, e := g.s.appendLocked([]wire.Record{groupRecord(g.id, g.metadataValue())})
	if e != nil {
		p.fail(e)
		return nil, p
	}
	gen := g.generation
	go func() {
		e := wait(g.s.c.ctx)
		g.s.mu.Lock()
		defer g.s.mu.Unlock()
		if e == nil && (g.generation != gen || g.members[m.id] != m) {
			e = kerr.RebalanceInProgress
		}
		if e != nil {
			p.fail(e)
			return
		}
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		g.fillJoin(resp, m)
		resp.SkipAssignment = m.id == g.leader
		p.ch <- resp
	}()
	return nil, p
}

// addMemberAndRebalance adds a new member (its JoinGroup parked) and
// starts or advances a rebalance.
func (g *group) addMemberAndRebalance(m *member, p *parked) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	g.members[m.id] = m
	g.order = append(g.order, m.id)
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	if g.leader == "" || g.members[g.leader] == nil {
		g.leader = m.id
	}
	m.join = p
	g.newMemberAdded = true
	g.armSession(m)
	g.s.log.Info("member joined a group", "group", g.id, "member", m.id, "client", m.clientID, "state", g.state.String(), "members", len(g.members))
	g.prepareRebalance("member " + m.id + " joined")
}

// updateMemberAndRebalance takes a known member's new JoinGroup.
func (g *group) updateMemberAndRebalance(m *member, req *kmsg.JoinGroupRequest, p *parked) {
	m.protocols = req.Protocols
	m.sessionTimeout = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if req.Version > 0 {
		m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	if m.join != nil && m.join != p {
		// A retried JoinGroup replaces the one parked before; the old
		// connection's answer is moot.
		m.join.fail(kerr.RebalanceInProgress)
	}
	m.join = p
	g.prepareRebalance("member " + m.id + " rejoined")
}

// removeMemberAndUpdate removes a member (left, expired, fenced) and moves
// the group on: a rebalance if it was Stable or assigning, or the end of
// the join phase if the others were only waiting for it.
func (g *group) removeMemberAndUpdate(m *member, answer *kerr.Error) {
	g.removeMember(m, answer)
	switch g.state {
	case stateStable, stateCompletingRebalance:
		g.prepareRebalance("member " + m.id + " left")
	case statePreparingRebalance:
		g.maybeCompleteJoin()
	}
}

func (g *group) removeMember(m *member, answer *kerr.Error) {
	for _, p := range []**parked{&m.join, &m.sync} {
		if *p != nil {
			(*p).fail(answer)
			*p = nil
		}
	}
	if m.timer != nil {
		m.timer.Stop()
	}
	delete(g.members, m.id)
	g.order = slices.DeleteFunc(g.order, func(id string) bool { return id == m.id })
	delete(g.pendingSync, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
		if len(g.order) > 0 {
			g.leader = g.order[0]
		}
	}
}

// maxRebalanceTimeout is the longest rebalance timeout of the members:
// how long a join phase waits for them to rejoin.
func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// prepareRebalance moves the group to PreparingRebalance: members learn
// it from their next heartbeat (REBALANCE_IN_PROGRESS) and rejoin. The
// join phase ends when all members and pending ids have rejoined, or at
// the longest rebalance timeout; the first rebalance of an empty group
// waits InitialRebalanceDelay more for further members.
func (g *group) prepareRebalance(reason string) {
	if g.state == stateCompletingRebalance {
		// The assignment of the generation being synced is void.
		for _, m := range g.members {
			if m.sync != nil {
				m.sync.fail(kerr.RebalanceInProgress)
				m.sync = nil
			}
		}
		g.assigning = false
	}
	if g.state != statePreparingRebalance {
		wasEmpty := g.state == stateEmpty
		g.stopTimer(&g.syncTimer)
		g.pendingSync = nil
		g.setState(statePreparingRebalance)
		g.s.log.Info("group rebalancing", "group", g.id, "reason", reason, "generation", g.generation, "members", len(g.members))
		delay := g.s.c.cfg.InitialRebalanceDelay
		timeout := g.maxRebalanceTimeout()
		if wasEmpty && delay > 0 {
			g.initialJoin, g.newMemberAdded = true, false
			g.scheduleInitialJoin(min(delay, timeout), max(timeout-delay, 0))
			return
		}
		g.stopTimer(&g.joinTimer)
		gen := g.generation
		g.joinTimer = g.later(timeout, func() {
			if g.generation == gen && g.state == statePreparingRebalance {
				g.completeJoin()
			}
		})
	}
	g.maybeCompleteJoin()
}

// scheduleInitialJoin is Kafka's InitialDelayedJoin: wait delay; if new
// members came meanwhile and time is left, wait again.
func (g *group) scheduleInitialJoin(delay, remaining time.Duration) {
	g.stopTimer(&g.joinTimer)
	gen := g.generation
	g.joinTimer = g.later(delay, func() {
		if g.generation != gen || g.state != statePreparingRebalance || !g.initialJoin {
			return
		}
		if g.newMemberAdded && remaining > 0 {
			g.newMemberAdded = false
			next := min(g.s.c.cfg.InitialRebalanceDelay, remaining)
			g.scheduleInitialJoin(next, remaining-next)
			return
		}
		g.completeJoin()
	})
}

// maybeCompleteJoin ends the join phase once every member (and every id
// handed out with MEMBER_ID_REQUIRED) has rejoined.
func (g *group) maybeCompleteJoin() {
	if g.state != statePreparingRebalance || g.initialJoin || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if m.join == nil {
			return
		}
	}
	g.completeJoin()
}

// completeJoin ends the join phase: members that did not rejoin are
// removed, the generation grows, a protocol is chosen and every waiting
// member gets its JoinGroup answer (the leader with every member's
// metadata, to compute the assignment). Then the group waits for the
// leader's SyncGroup (CompletingRebalance), or is Empty if nobody is left.
func (g *group) completeJoin() {
	g.stopTimer(&g.joinTimer)
	g.initialJoin = false
	for _, id := range slices.Clone(g.order) {
		if m := g.members[id]; m.join == nil {
			g.s.log.Info("group member did not rejoin in time; removing it", "group", g.id, "member", id)
			g.removeMember(m, kerr.UnknownMemberID)
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.protocol, g.leader = "", ""
		g.setState(stateEmpty)
		g.s.log.Info("group is empty", "group", g.id, "generation", g.generation)
		// Record that the members are gone, so that a failover does not
		// bring them back; a failed write only means they expire there.
		if wait, e := g.s.appendLocked([]wire.Record{groupRecord(g.id, g.metadataValue())}); e == nil {
			go wait(g.s.c.ctx)
		}
		return
	}
	g.protocol = g.selectProtocol()
	g.setState(stateCompletingRebalance)
	g.pendingSync = map[string]bool{}
	for _, id := range g.order {
		m := g.members[id]
		resp := m.join.req.ResponseKind().(*kmsg.JoinGroupResponse)
		g.fillJoin(resp, m)
		m.join.ch <- resp
		m.join, m.isNew = nil, false
		g.touch(m)
		g.pendingSync[id] = true
	}
	g.s.log.Info("group join phase complete", "group", g.id, "generation", g.generation, "protocol", g.protocol,
		"leader", g.leader, "members", len(g.members))
	gen := g.generation
	g.syncTimer = g.later(g.maxRebalanceTimeout(), func() {
		if g.generation != gen || len(g.pendingSync) == 0 || (g.state != stateCompletingRebalance && g.state != stateStable) {
			return
		}
		for id := range g.pendingSync {
			if m := g.members[id]; m != nil {
				g.s.log.Info("group member did not sync in time; removing it", "group", g.id, "member", id, "generation", gen)
				g.removeMember(m, kerr.UnknownMemberID)
			}
		}
		g.pendingSync = nil
		g.prepareRebalance("members did not sync")
	})
}

// fillJoin fills a JoinGroup answer with the current generation.
func (g *group) fillJoin(resp *kmsg.JoinGroupResponse, m *member) {
	resp.Generation = g.generation
	pt, proto := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &proto
	resp.LeaderID, resp.MemberID = g.leader, m.id
	if m.id != g.leader {
		return
	}
	for _, id := range g.order {
		o := g.members[id]
		resp.Members = append(resp.Members, kmsg.JoinGroupResponseMember{
			MemberID: o.id, InstanceID: o.instanceID, ProtocolMetadata: o.metadataFor(g.protocol),
		})
	}
}

// emptyConsumerAssignment is what a member of a "consumer" group the
// leader gave nothing gets: a decodable empty assignment (an empty byte
// string is not one for every client).
var emptyConsumerAssignment = func() []byte {
	a := kmsg.NewConsumerMemberAssignment()
	return a.AppendTo(nil)
}()

// sync handles a SyncGroup: a member waiting for its assignment parks
// until the leader's arrives and is written to the log.
func (g *group) sync(req *kmsg.SyncGroupRequest) (kmsg.Response, *parked) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(e *kerr.Error) (kmsg.Response, *parked) {
		resp.ErrorCode = e.Code
		return resp, nil
	}
	m := g.members[req.MemberID]
	if g.state == stateDead {
		return fail(kerr.CoordinatorNotAvailable)
	}
	if e := g.checkInstance(req.InstanceID, req.MemberID); e != nil {
		return fail(e)
	}
	if m == nil {
		return fail(kerr.UnknownMemberID)
	}
	switch {
	case req.Generation != g.generation:
		return fail(kerr.IllegalGeneration)
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocol:
		return fail(kerr.InconsistentGroupProtocol)
	}
	g.touch(m)
	switch g.state {
	case statePreparingRebalance:
		return fail(kerr.RebalanceInProgress)
	case stateStable:
		delete(g.pendingSync, m.id)
		g.fillSync(resp, m)
		return resp, nil
	case stateCompletingRebalance:
		delete(g.pendingSync, m.id)
		if m.sync != nil {
			m.sync.fail(kerr.RebalanceInProgress)
		}
		p := park(req)
		m.sync = p
		if m.id == g.leader && !g.assigning {
			g.assign(req.GroupAssignment)
		}
		return nil, p
	}
	return fail(kerr.UnknownMemberID)
}

func (g *group) fillSync(resp *kmsg.SyncGroupResponse, m *member) {
	pt, proto := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &proto
	resp.MemberAssignment = m.assignment
}

// assign writes the leader's assignment (members it left out get an empty
// one) to the log with the group's metadata; once that commits the group
// is Stable and every parked SyncGroup gets its assignment.
func (g *group) assign(as []kmsg.SyncGroupRequestGroupAssignment) {
	given := map[string][]byte{}
	for _, a := range as {
		given[a.MemberID] = a.MemberAssignment
	}
	next := map[string][]byte{}
	for id := range g.members {
		a := given[id]
		if len(a) == 0 && g.protocolType == "consumer" {
			a = emptyConsumerAssignment
		}
		next[id] = a
	}
	v := g.metadataValue()
	for i := range v.Members {
		v.Members[i].Assignment = next[v.Members[i].MemberID]
	}
	wait, e := g.s.appendLocked([]wire.Record{groupRecord(g.id, v)})
	if e != nil {
		g.failSyncs(e)
		return
	}
	g.assigning = true
	gen := g.generation
	go func() {
		e := wait(g.s.c.ctx)
		g.s.mu.Lock()
		defer g.s.mu.Unlock()
		if g.s.state != active || g.s.groups[g.id] != g || g.generation != gen || g.state != stateCompletingRebalance || !g.assigning {
			return // a rebalance (or an unload) answered the parked syncs
		}
		g.assigning = false
		if e != nil {
			g.failSyncs(e)
			return
		}
		for id, m := range g.members {
			m.assignment = next[id]
			if m.sync != nil {
				resp := m.sync.req.ResponseKind().(*kmsg.SyncGroupResponse)
				g.fillSync(resp, m)
				m.sync.ch <- resp
				m.sync = nil
			}
		}
		g.setState(stateStable)
		g.s.log.Info("group stable", "group", g.id, "generation", g.generation, "members", len(g.members))
	}()
}

// failSyncs answers every parked SyncGroup with e after the assignment
// could not be written, and rebalances: the generation has no assignment.
func (g *group) failSyncs(e *kerr.Error) {
	for _, m := range g.members {
		if m.sync != nil {
			m.sync.fail(e)
			m.sync = nil
		}
	}
	g.s.log.Info("group assignment not written; rebalancing", "group", g.id, "generation", g.generation, "err", e)
	g.prepareRebalance("the assignment could not be written: " + e.Message)
}

// heartbeat handles a Heartbeat: it keeps the member's session and tells
// it whether a rebalance is under way.
func (g *group) heartbeat(req *kmsg.HeartbeatRequest) *kerr.Error {
	m := g.members[req.MemberID]
	if g.state == stateDead {
		return kerr.CoordinatorNotAvailable
	}
	// A fenced static member learns it is fenced, not merely unknown.
	if e := g.checkInstance(req.InstanceID, req.MemberID); e != nil {
		return e
	}
	if m == nil {
		return kerr.UnknownMemberID
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration
	}
	g.touch(m)
	switch g.state {
	case statePreparingRebalance:
		return kerr.RebalanceInProgress
	case stateCompletingRebalance, stateStable:
		return nil
	}
	return kerr.UnknownMemberID
}

// leave handles one member of a LeaveGroup: by member id, or (static
// members) by instance id.
func (g *group) leave(memberID string, instanceID *string) (string, *kerr.Error) {
	if instanceID != nil {
		known, ok := g.static[*instanceID]
		switch {
		case !ok:
			return memberID, kerr.UnknownMemberID
		case memberID != "" && memberID != known:
			return memberID, kerr.FencedInstanceID
		}
		memberID = known
	}
	if t, ok := g.pending[memberID]; ok {
		t.Stop()
		delete(g.pending, memberID)
		g.maybeCompleteJoin()
		return memberID, nil
	}
	m := g.members[memberID]
	if m == nil {
		return memberID, kerr.UnknownMemberID
	}
	g.s.log.Info("member left a group", "group", g.id, "member", memberID, "generation", g.generation)
	g.removeMemberAndUpdate(m, kerr.UnknownMemberID)
	return memberID, nil
}

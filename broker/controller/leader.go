package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/hashicorp/raft"
)

// leaderState is what the controller keeps in memory, not in the log,
// while this node is the Raft leader: when each broker last heartbeat.
type leaderState struct {
	mu sync.Mutex
	// ready is set once the state machine has applied everything earlier
	// leaders committed (a Barrier): only then are the metadata judged.
	ready    bool
	lastSeen map[int32]time.Time
	// inflight marks brokers with a fence/unfence/register proposal under
	// way, so concurrent heartbeats and the fencing loop do not pile up
	// proposals for one broker.
	inflight map[int32]bool
}

func newLeaderState() *leaderState {
	return &leaderState{lastSeen: map[int32]time.Time{}, inflight: map[int32]bool{}}
}

// begin records that broker id was seen now (when seen) and claims the
// right to propose for it; false when another proposal is under way or the
// state is not ready.
func (ls *leaderState) begin(id int32, seen bool, now time.Time) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if seen {
		ls.lastSeen[id] = now
	}
	if !ls.ready || ls.inflight[id] {
		return false
	}
	ls.inflight[id] = true
	return true
}

// claimExpired claims the right to fence broker id if its session is
// still expired: a heartbeat may have come since expired listed it.
func (ls *leaderState) claimExpired(id int32, now time.Time, session time.Duration) (silent time.Duration, ok bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	silent = now.Sub(ls.lastSeen[id])
	if ls.inflight[id] || silent <= session {
		return silent, false
	}
	ls.inflight[id] = true
	return silent, true
}

func (ls *leaderState) end(id int32) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	delete(ls.inflight, id)
}

// expired returns the unfenced brokers of s silent for longer than
// session, giving a fresh session to the brokers it has not seen yet.
func (ls *leaderState) expired(s *metadata.Snapshot, now time.Time, session time.Duration) []int32 {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var out []int32
	for id, b := range s.Brokers {
		if b.Fenced {
			continue
		}
		last, ok := ls.lastSeen[id]
		if !ok {
			ls.lastSeen[id] = now
			continue
		}
		if now.Sub(last) > session && !ls.inflight[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (c *Controller) leaderSession() *leaderState {
	c.leaderMu.Lock()
	defer c.leaderMu.Unlock()
	return c.leader
}

func (c *Controller) setLeaderSession(ls *leaderState) {
	c.leaderMu.Lock()
	defer c.leaderMu.Unlock()
	c.leader = ls
}

// runLeadership follows Raft's leadership notifications, running the
// leader's liveness loop while this node leads.
func (c *Controller) runLeadership(notify <-chan bool) {
	defer c.wg.Done()
	var stop context.CancelFunc
	var done chan struct{}
	stopSession := func() {
		if stop != nil {
			stop()
			<-done
			stop = nil
			c.setLeaderSession(nil)
		}
	}
	defer stopSession()
	for {
		select {
		case <-c.ctx.Done():
			return
		case leading := <-notify:
			stopSession()
			if !leading {
				c.log.Info("controller: no longer the controller")
				continue
			}
			ctx, cancel := context.WithCancel(c.ctx)
			ls := newLeaderState()
			c.setLeaderSession(ls)
			stop, done = cancel, make(chan struct{})
			go func() {
				defer close(done)
				c.runLeader(ctx, ls)
			}()
		}
	}
}

// runLeader is the controller's liveness loop: it fences every broker
// whose session expired.
func (c *Controller) runLeader(ctx context.Context, ls *leaderState) {
	// Apply everything earlier leaders committed before judging anyone:
	// the metadata this node shows may lag the log it now leads.
	for {
		err := c.raft.Barrier(c.cfg.RequestTimeout).Error()
		if err == nil {
			break
		}
		if lostLeadership(err) || ctx.Err() != nil {
			return
		}
		c.log.Warn("controller: waiting for the metadata log to apply", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	now := time.Now()
	s := c.fsm.snapshot()
	ls.mu.Lock()
	// A fresh session for everyone: a controller failover alone must
	// not fence anybody. Heartbeats already received are no older.
	for id := range s.Brokers {
		ls.lastSeen[id] = now
	}
	ls.ready = true
	ls.mu.Unlock()
	c.log.Info("controller: this node is the controller", "term", c.raft.CurrentTerm(),
		"metadata_index", s.Version, "brokers", len(s.Brokers))

	// Check often enough that fencing comes at most a tenth of a session
	// late.
	tick := min(max(c.cfg.SessionTimeout/10, 10*time.Millisecond), c.cfg.HeartbeatInterval)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		now := time.Now()
		for _, id := range ls.expired(c.fsm.snapshot(), now, c.cfg.SessionTimeout) {
			silent, ok := ls.claimExpired(id, time.Now(), c.cfg.SessionTimeout)
			if !ok {
				continue
			}
			err := c.fence(ctx, id, silent)
			ls.end(id)
			if lostLeadership(err) {
				return
			}
		}
	}
}

func (c *Controller) fence(ctx context.Context, id int32, silent time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	res, index, err := c.propose(pctx, &command{Type: cmdFence, BrokerID: id})
	switch {
	case err != nil:
		c.log.Warn("controller: could not fence a silent broker", "broker", id, "silent_for", silent.Round(time.Millisecond), "err", err)
		return err
	case res.err != nil:
		c.log.Error("controller: fencing a silent broker", "broker", id, "err", res.err)
		return res.err
	}
	c.log.Info("controller: fenced a broker that missed its session", "broker", id,
		"silent_for", silent.Round(time.Millisecond), "metadata_index", index)
	return nil
}

// lostLeadership reports whether err means this node is no longer (or not
// yet) the leader, or is shutting down.
func lostLeadership(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrRaftShutdown) || errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

// propose appends cmd to the log and waits until this (leader) node has
// applied it. err is a Raft error (the change may or may not commit);
// res.err a refusal by the transition (nothing changed).
func (c *Controller) propose(ctx context.Context, cmd *command) (res applyResult, index uint64, err error) {
	data, err := json.Marshal(cmd)
	if err != nil {
		return res, 0, err
	}
	timeout := c.cfg.RequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return res, 0, context.DeadlineExceeded
	}
	// The timeout bounds the enqueueing only; once enqueued the future
	// resolves at commit, or when the leader steps down (at most a leader
	// lease after it loses its quorum), or at shutdown.
	f := c.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		return res, 0, err
	}
	res, _ = f.Response().(applyResult)
	return res, f.Index(), nil
}

// handle answers one request as the controller (opWaitApplied as any
// node).
func (c *Controller) handle(ctx context.Context, req *request) *response {
	if req.Op == opWaitApplied {
		return c.serveWaitApplied(ctx, req.Index)
	}
	if c.raft.State() != raft.Leader {
		return c.notController()
	}
	switch {
	case req.Op == opReadIndex:
		return &response{LeaderID: c.cfg.NodeID, Index: c.fsm.appliedIndex()}
	case req.Op == opDeleteTopic && req.Topic != nil:
		return c.serveChange(ctx, &command{Type: cmdDeleteTopic, Topic: req.Topic})
	case req.Op == opCreatePartitions && req.Topic != nil:
		return c.serveChange(ctx, &command{Type: cmdCreatePartitions, Topic: req.Topic})
	case req.Op == opHeartbeat && req.Heartbeat != nil:
		return c.serveHeartbeat(ctx, req.Heartbeat)
	case req.Op == opCreateTopic && req.CreateTopic != nil:
		return c.serveChange(ctx, &command{Type: cmdCreateTopic, CreateTopic: req.CreateTopic})
	case req.Op == opAlterISR && req.AlterISR != nil:
		return c.serveChange(ctx, &command{Type: cmdAlterISR, AlterISR: req.AlterISR})
	default:
		return errorResponse(fmt.Errorf("controller: request %q without its arguments or of an unknown kind: %w", req.Op, errBadRequest))
	}
}

// serveWaitApplied answers once this node has applied the metadata log up
// to index, or with NO_CONTROLLER (retryable) when ctx ends first.
func (c *Controller) serveWaitApplied(ctx context.Context, index uint64) *response {
	if err := c.waitApplied(ctx, index); err != nil {
		return errorResponse(fmt.Errorf("broker %d: applied the metadata log to index %d, not yet to %d: %w: %w",
			c.cfg.NodeID, c.fsm.appliedIndex(), index, metadata.ErrNoController, err))
	}
	return &response{LeaderID: c.LeaderID(), Index: c.fsm.appliedIndex()}
}

func (c *Controller) notController() *response {
	r := errorResponse(fmt.Errorf("broker %d: %w", c.cfg.NodeID, metadata.ErrNotController))
	if id := c.LeaderID(); id != c.cfg.NodeID {
		r.LeaderID = id
	}
	return r
}

// uncommitted answers a change Raft could not commit here: the caller
// retries, at whichever node is the controller by then.
func (c *Controller) uncommitted(err error) *response {
	r := errorResponse(fmt.Errorf("broker %d could not commit the change: %w: %w", c.cfg.NodeID, metadata.ErrNoController, err))
	if id := c.LeaderID(); id != c.cfg.NodeID {
		r.LeaderID = id
	}
	return r
}

func (c *Controller) serveChange(ctx context.Context, cmd *command) *response {
	res, index, err := c.propose(ctx, cmd)
	if err != nil {
		return c.uncommitted(err)
	}
	if res.err != nil {
		r := errorResponse(res.err)
		r.LeaderID = c.cfg.NodeID
		return r
	}
	return &response{LeaderID: c.cfg.NodeID, Index: index, Partition: res.partition}
}

// serveHeartbeat keeps a broker's session and moves its registration along:
// a new broker is registered; a new incarnation of a known one is fenced
// (it may have lost its unflushed log tail, so it must not keep leading);
// a fenced broker whose node has applied the entry that fenced it is
// unfenced (registered again if its address changed).
func (c *Controller) serveHeartbeat(ctx context.Context, hb *heartbeatRequest) *response {
	ls := c.leaderSession()
	if ls == nil {
		// Raft made this node leader a moment ago; the liveness state
		// follows right after.
		return c.uncommitted(errors.New("becoming the controller"))
	}
	id := hb.Broker.ID
	ok := &response{LeaderID: c.cfg.NodeID}
	if !ls.begin(id, true, time.Now()) {
		return ok
	}
	defer ls.end(id)
	st := c.fsm.broker(id)
	moved := st.broker.Host != hb.Broker.Host || st.broker.Port != hb.Broker.Port
	caughtUp := hb.AppliedIndex >= st.fencedAt
	b := hb.Broker
	b.Fenced = false
	var cmd *command
	switch {
	case !st.known:
		cmd = &command{Type: cmdRegister, Broker: &b, BrokerID: id, Incarnation: hb.Incarnation}
	case st.incarnation != hb.Incarnation:
		cmd = &command{Type: cmdRestart, BrokerID: id, Incarnation: hb.Incarnation}
	case moved && (!st.broker.Fenced || caughtUp):
		cmd = &command{Type: cmdRegister, Broker: &b, BrokerID: id, Incarnation: hb.Incarnation}
	case st.broker.Fenced && caughtUp:
		cmd = &command{Type: cmdUnfence, BrokerID: id}
	default:
		return ok
	}
	res, index, err := c.propose(ctx, cmd)
	if err != nil {
		return c.uncommitted(err)
	}
	if res.err != nil {
		c.log.Error("controller: applying a heartbeat", "broker", id, "command", cmd.Type, "err", res.err)
		r := errorResponse(res.err)
		r.LeaderID = c.cfg.NodeID
		return r
	}
	c.log.Info("controller: broker state changed on heartbeat", "broker", id, "command", cmd.Type,
		"incarnation", hb.Incarnation, "applied_index", hb.AppliedIndex, "metadata_index", index)
	ok.Index = index
	return ok
}

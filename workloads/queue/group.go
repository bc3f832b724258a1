package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/histories"
)

// How consumers get their partitions (Config.ConsumeVia), as Jepsen's
// :sub-via.
const (
	// ConsumeAssign: every consumer assigns itself partitions (Kafka's
	// assign); no group, no commits.
	ConsumeAssign = "assign"
	// ConsumeSubscribe: every consumer joins the group and subscribes to
	// the topic (Kafka's subscribe); the group decides who reads which
	// partition, and consumers commit what they read.
	ConsumeSubscribe = "subscribe"
	// ConsumeMixed: each assign-or-subscribe draw picks one of the two at
	// random, so a process switches between them, as Jepsen's
	// --sub-via assign,subscribe does.
	ConsumeMixed = "mixed"
)

// ConsumeVias lists the ways to consume, for flags and their help.
var ConsumeVias = []string{ConsumeAssign, ConsumeSubscribe, ConsumeMixed}

// DefaultGroup is the consumer group subscribing consumers join.
const DefaultGroup = "garantia-queue"

// Group timing: members notice a rebalance within a heartbeat; a member
// that vanished without leaving is dropped after the session timeout (the
// brokers' --group-min-session-timeout must allow it); a rebalance waits
// for a member at most the rebalance timeout, which must outlast a commit
// that holds the member's rebalance back (see BlockRebalanceOnPoll).
const (
	groupHeartbeat      = 300 * time.Millisecond
	groupSessionTimeout = 3 * time.Second
	// GroupMinSessionTimeout is the least session timeout the brokers
	// must accept (their --group-min-session-timeout).
	GroupMinSessionTimeout = time.Second
	// GroupInitialRebalanceDelay is the brokers' wait for more members
	// before a new group's first rebalance that suits a test (their
	// --group-initial-rebalance-delay; Kafka's default is 3s).
	GroupInitialRebalanceDelay = 100 * time.Millisecond
	// groupLeaveTimeout bounds a leaving member's LeaveGroup: a member
	// that cannot leave is dropped at its session timeout anyway.
	groupLeaveTimeout = 2 * time.Second
	// finalFetchTimeout bounds the final fetch of the committed offsets.
	finalFetchTimeout = 15 * time.Second
)

// GroupBrokerArgs are the broker flags a workload whose consumers
// subscribe needs: a session timeout as short as its members', and a
// first rebalance that waits a moment rather than Kafka's 3s.
func GroupBrokerArgs() []string {
	return []string{
		"--group-min-session-timeout", GroupMinSessionTimeout.String(),
		"--group-initial-rebalance-delay", GroupInitialRebalanceDelay.String(),
	}
}

// The Kafka API keys the hook counts requests of.
const keyOffsetCommit = 8

// consumerMode is what a process's consumer client is.
type consumerMode uint8

const (
	noConsumer consumerMode = iota
	assignedConsumer
	groupConsumer
)

// rebalanceLog collects a group consumer's rebalance events, which kgo
// reports from its own goroutines, until the process's next completion
// takes them.
type rebalanceLog struct {
	mu      sync.Mutex
	entries []histories.Rebalance
}

func (l *rebalanceLog) add(typ string, m map[string][]int32) {
	var keys []string
	for _, ps := range m {
		for _, p := range ps {
			keys = append(keys, strconv.Itoa(int(p)))
		}
	}
	if len(keys) == 0 {
		// kgo calls revoke at the end of every session even when nothing
		// is revoked; an entry of no keys says nothing.
		return
	}
	slices.SortFunc(keys, histories.CompareKeys)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, histories.Rebalance{Type: typ, Keys: keys})
}

// take returns the events since the last take, nil when there were none.
func (l *rebalanceLog) take() []histories.Rebalance {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.entries
	l.entries = nil
	return out
}

// groupConsumerOpts are the options of a consumer that joins the group:
// Kafka's subscribe with manual commits, so that every commit is an op of
// the history.
func (w *Workload) groupConsumerOpts(process int64, h *hook, log *rebalanceLog, fetches *memberFetches) []kgo.Opt {
	return append(w.commonOpts(process, "consumer", h),
		kgo.ConsumerGroup(w.cfg.Group),
		kgo.ConsumeTopics(w.cfg.Topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		// No commit the history does not record: not on a timer, not on
		// revoke, not on leave.
		kgo.DisableAutoCommit(),
		// A partition the group never committed is read from its start.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Between a poll and the commit of what it returned, the member
		// keeps its partitions: a rebalance waits for AllowRebalance, so
		// the commit never rewinds a partition another member took over.
		kgo.BlockRebalanceOnPoll(),
		kgo.HeartbeatInterval(groupHeartbeat),
		kgo.SessionTimeout(groupSessionTimeout),
		kgo.RebalanceTimeout(2*w.cfg.OpTimeout),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			log.add(histories.RebalanceAssigned, m)
			if len(m) > 0 {
				fetches.invoke()
			}
		}),
		kgo.OnOffsetsFetched(func(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
			fetches.complete(resp)
			return nil
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			log.add(histories.RebalanceRevoked, m)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			log.add(histories.RebalanceLost, m)
		}),
		kgo.FetchMaxWait(250*time.Millisecond),
	)
}

// allKeys are every partition of the topic as keys, in order.
func (w *Workload) allKeys() []string {
	keys := make([]string, w.cfg.Partitions)
	for p := range keys {
		keys[p] = strconv.Itoa(p)
	}
	return keys
}

// subscribe makes the process's consumer a member of the group,
// subscribed to the topic: every key of it, which the group shares out
// among its members. A consumer that assigned itself partitions is closed
// first (Kafka's consumer cannot do both); one already subscribed stays as
// it is, as Kafka's subscribe to the same topics changes nothing. Like
// Kafka's, it returns at once: the consumer joins in the background.
func (wk *worker) subscribe(ctx context.Context) error {
	w := wk.w
	keys := w.allKeys()
	if _, err := w.record(histories.Op{Process: wk.process, Type: histories.Invoke, F: histories.FSubscribe,
		Group: w.cfg.Group, Value: histories.Value{Keys: keys}}); err != nil {
		return err
	}
	if wk.mode == assignedConsumer {
		wk.closeConsumer()
	}
	if wk.cons == nil {
		wk.consHook = &hook{names: w.cfg.NodeNames}
		wk.rebalances = &rebalanceLog{}
		wk.fetches = &memberFetches{w: w, process: wk.newProcessID()}
		cl, err := kgo.NewClient(w.groupConsumerOpts(wk.process, wk.consHook, wk.rebalances, wk.fetches)...)
		if err != nil {
			return fmt.Errorf("new group consumer: %w", err)
		}
		wk.cons, wk.mode = cl, groupConsumer
	}
	wk.assigned = nil
	_, err := w.record(wk.withRebalances(histories.Op{Process: wk.process, Type: histories.OK, F: histories.FSubscribe,
		Group: w.cfg.Group, Value: histories.Value{Keys: keys}}))
	return err
}

// withRebalances gives a completion of the process the rebalances its
// consumer went through since its previous completion.
func (wk *worker) withRebalances(op histories.Op) histories.Op {
	op.RebalanceLog = wk.rebalances.take()
	return op
}

// commit commits, for each key a poll of the group consumer just read,
// the offset after the last record read: what the application has
// processed (Kafka's commitSync). The coordinator's answer decides the
// outcome (see commitOutcome); an info commit retires the process.
func (wk *worker) commit(ctx context.Context, polls map[string][]histories.Record, epochs map[string]int32) error {
	w := wk.w
	keys := make([]string, 0, len(polls))
	for k, recs := range polls {
		if len(recs) > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, histories.CompareKeys)
	offs := make([]histories.KeyOffset, len(keys))
	req := map[int32]kgo.EpochOffset{}
	for i, k := range keys {
		recs := polls[k]
		next := recs[len(recs)-1].Offset + 1
		offs[i] = histories.KeyOffset{Key: k, Offset: next}
		p, _ := strconv.Atoi(k)
		req[int32(p)] = kgo.EpochOffset{Epoch: epochs[k], Offset: next}
	}
	value := histories.Value{Offsets: offs}
	if _, err := w.record(histories.Op{Process: wk.process, Type: histories.Invoke, F: histories.FCommit,
		Group: w.cfg.Group, Value: value}); err != nil {
		return err
	}
	wk.consHook.resetCommits()
	cctx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
	var codes []int16
	var cerr error
	wk.cons.CommitOffsetsSync(cctx, map[string]map[int32]kgo.EpochOffset{w.cfg.Topic: req},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			cerr = err
			if resp != nil {
				for _, t := range resp.Topics {
					for _, p := range t.Partitions {
						codes = append(codes, p.ErrorCode)
					}
				}
			}
		})
	cancel()
	done := histories.Op{Process: wk.process, F: histories.FCommit, Group: w.cfg.Group, Value: value,
		Node: wk.consHook.lastNode()}
	var why error
	done.Type, why = commitOutcome(cerr, codes, len(req), int(wk.consHook.commits.Load()))
	if why != nil {
		done.Error = wk.consHook.describeCommit(why)
	}
	if _, err := w.record(wk.withRebalances(done)); err != nil {
		return err
	}
	if done.Type == histories.Info {
		wk.retire()
	}
	return nil
}

// committed fetches the group's committed offsets of every key back
// (Kafka's OffsetFetch, which the coordinator serves from what its log
// committed). A fetch changes nothing, so one that got no answer failed.
func (wk *worker) committed(ctx context.Context) error {
	w := wk.w
	keys := w.allKeys()
	if _, err := w.record(histories.Op{Process: wk.process, Type: histories.Invoke, F: histories.FCommitted,
		Group: w.cfg.Group, Value: histories.Value{Keys: keys}}); err != nil {
		return err
	}
	if wk.prod == nil {
		if err := wk.newProducer(); err != nil {
			return err
		}
	}
	done := histories.Op{Process: wk.process, F: histories.FCommitted, Group: w.cfg.Group, Value: histories.Value{Keys: keys}}
	got, err := w.fetchCommitted(ctx, wk.prod)
	if err != nil {
		done.Type, done.Error = histories.Fail, err.Error()
	} else {
		done.Type, done.Value = histories.OK, histories.Value{Offsets: got}
	}
	_, err = w.record(wk.withRebalances(done))
	return err
}

// fetchCommitted asks the group's coordinator for the committed offset of
// every partition, in key order; OffsetUnknown where there is none.
func (w *Workload) fetchCommitted(ctx context.Context, cl *kgo.Client) ([]histories.KeyOffset, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = w.cfg.Group
	t := kmsg.NewOffsetFetchRequestTopic()
	t.Topic = w.cfg.Topic
	for p := 0; p < w.cfg.Partitions; p++ {
		t.Partitions = append(t.Partitions, int32(p))
	}
	req.Topics = append(req.Topics, t)
	fctx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
	defer cancel()
	resp, err := req.RequestWith(fctx, cl)
	if err != nil {
		return nil, fmt.Errorf("offset fetch: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("offset fetch: %w", err)
	}
	got := map[int32]int64{}
	for _, rt := range resp.Topics {
		if rt.Topic != w.cfg.Topic {
			continue
		}
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return nil, fmt.Errorf("offset fetch: partition %d: %w", rp.Partition, err)
			}
			got[rp.Partition] = rp.Offset
		}
	}
	out := make([]histories.KeyOffset, w.cfg.Partitions)
	for p := range out {
		off, ok := got[int32(p)]
		if !ok {
			return nil, fmt.Errorf("offset fetch: the coordinator did not answer for partition %d", p)
		}
		if off < 0 {
			off = histories.OffsetUnknown // Kafka's -1: nothing committed
		}
		out[p] = histories.KeyOffset{Key: strconv.Itoa(p), Offset: off}
	}
	return out, nil
}

// FetchCommitted is the final fetch of the group's committed offsets, after
// every fault healed: a fresh process asks, and asks again after a pause
// while the coordinator does not answer, until ctx ends. Every attempt is
// recorded. It returns an error only when the history could not be
// written.
func (w *Workload) FetchCommitted(ctx context.Context) error {
	wk := &worker{w: w, process: w.nextProcess.Add(1) - 1, drainer: true, next: map[int32]int64{}, reached: map[int32]int64{}}
	defer wk.close()
	for {
		n := w.fail.Load()
		if err := wk.committed(ctx); err != nil {
			return err
		}
		if w.fail.Load() == n || ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// commitOutcome is the completion type of a commit of n partitions that
// returned err and per-partition codes after requests OffsetCommit
// requests reached a broker, and the error to record. It is fail only
// when nothing can have been written: no request reached a broker, or
// exactly one did and every partition was refused with an error the
// coordinator answers before it appends (refusedCommit).
func commitOutcome(err error, codes []int16, n, requests int) (histories.Type, error) {
	var errs []error
	refused := 0
	for _, c := range codes {
		if e := kerr.ErrorForCode(c); e != nil {
			errs = append(errs, e)
			if refusedBeforeCommit(e) {
				refused++
			}
		}
	}
	switch {
	case err == nil && len(errs) == 0 && len(codes) == n:
		return histories.OK, nil
	case err == nil && len(errs) == 0:
		return histories.Info, fmt.Errorf("the coordinator answered for %d of %d partitions", len(codes), n)
	}
	if err != nil {
		errs = append([]error{err}, errs...)
	}
	why := errors.Join(dedup(errs)...)
	switch {
	case requests == 0:
		return histories.Fail, why
	case requests == 1 && err == nil && refused == len(codes) && len(codes) == n:
		return histories.Fail, why
	}
	return histories.Info, why
}

// dedup drops repeated errors (a group error comes back once per
// partition).
func dedup(errs []error) []error {
	var out []error
	for _, e := range errs {
		if !slices.ContainsFunc(out, func(o error) bool { return o.Error() == e.Error() }) {
			out = append(out, e)
		}
	}
	return out
}

// refusedCommit are the errors a coordinator answers an offset commit
// with before it appends anything to the offsets topic: the committer is
// not a member of the current generation (or the generation's assignment
// is still being handed out), the group is still loading, the request is
// too big or not allowed. COORDINATOR_NOT_AVAILABLE and NOT_COORDINATOR
// are not here: a coordinator answers them also after the append, when
// the high watermark did not pass the record in time or it lost the
// leadership meanwhile, and the offsets may commit later.
var refusedCommit = []*kerr.Error{
	kerr.IllegalGeneration,
	kerr.UnknownMemberID,
	kerr.RebalanceInProgress,
	kerr.FencedInstanceID,
	kerr.CoordinatorLoadInProgress,
	kerr.OffsetMetadataTooLarge,
	kerr.InvalidCommitOffsetSize,
	kerr.GroupAuthorizationFailed,
	kerr.TopicAuthorizationFailed,
	kerr.UnknownTopicOrPartition,
	kerr.InvalidGroupID,
	kerr.UnsupportedVersion,
}

func refusedBeforeCommit(err error) bool {
	for _, k := range refusedCommit {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// describeCommit is err's text, with the connection error behind it.
func (h *hook) describeCommit(err error) string {
	if p := h.commitConnErr.Load(); p != nil && !strings.Contains(err.Error(), *p) {
		return err.Error() + " (" + *p + ")"
	}
	return err.Error()
}

func (h *hook) resetCommits() {
	h.commits.Store(0)
	h.commitConnErr.Store(nil)
}

// memberFetches records a group member's own fetches of the committed
// offsets, which its client makes in the background whenever the group
// assigns it partitions (the offsets it resumes from), as committed ops of
// a process of their own: they run beside the member's process's ops. The
// invocation is recorded when the assignment arrives, before the client
// asks (kgo calls OnPartitionsAssigned, then fetches); the completion when
// the answer does (OnOffsetsFetched). A fetch kgo abandons stays open
// until the next one answers, which then completes it: the op spans both,
// which holds the moment the answer was made. A fetch still open when the
// member leaves completes as fail.
type memberFetches struct {
	w       *Workload
	process int64
	mu      sync.Mutex
	open    bool
}

func (m *memberFetches) invoke() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open {
		return
	}
	m.open = true
	m.w.recordBackground(histories.Op{Process: m.process, Type: histories.Invoke, F: histories.FCommitted, Group: m.w.cfg.Group})
}

func (m *memberFetches) complete(resp *kmsg.OffsetFetchResponse) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.open {
		return // no invocation to pair it with: its start is unknown
	}
	m.open = false
	done := histories.Op{Process: m.process, Type: histories.OK, F: histories.FCommitted, Group: m.w.cfg.Group}
	if offs, err := m.w.fetchedOffsets(resp); err != nil {
		done.Type, done.Error = histories.Fail, err.Error()
	} else {
		done.Value = histories.Value{Offsets: offs}
	}
	m.w.recordBackground(done)
}

// close completes a fetch still open as fail: the member left first.
func (m *memberFetches) close() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open {
		m.open = false
		m.w.recordBackground(histories.Op{Process: m.process, Type: histories.Fail, F: histories.FCommitted, Group: m.w.cfg.Group,
			Error: "the member left the group before its offsets were fetched"})
	}
}

// fetchedOffsets are the topic's offsets in an OffsetFetch response of the
// group, in key order (either response format: kgo answers a member in
// the v8+ one).
func (w *Workload) fetchedOffsets(resp *kmsg.OffsetFetchResponse) ([]histories.KeyOffset, error) {
	code := resp.ErrorCode
	type part struct {
		p    int32
		off  int64
		code int16
	}
	var parts []part
	if len(resp.Groups) > 0 {
		for _, g := range resp.Groups {
			if g.Group != w.cfg.Group {
				continue
			}
			code = g.ErrorCode
			for _, t := range g.Topics {
				if t.Topic == w.cfg.Topic {
					for _, p := range t.Partitions {
						parts = append(parts, part{p.Partition, p.Offset, p.ErrorCode})
					}
				}
			}
		}
	} else {
		for _, t := range resp.Topics {
			if t.Topic == w.cfg.Topic {
				for _, p := range t.Partitions {
					parts = append(parts, part{p.Partition, p.Offset, p.ErrorCode})
				}
			}
		}
	}
	if err := kerr.ErrorForCode(code); err != nil {
		return nil, fmt.Errorf("offset fetch: %w", err)
	}
	slices.SortFunc(parts, func(a, b part) int { return int(a.p) - int(b.p) })
	out := make([]histories.KeyOffset, 0, len(parts))
	for i, p := range parts {
		if err := kerr.ErrorForCode(p.code); err != nil {
			return nil, fmt.Errorf("offset fetch: partition %d: %w", p.p, err)
		}
		if i > 0 && parts[i-1].p == p.p {
			return nil, fmt.Errorf("offset fetch: partition %d answered twice", p.p)
		}
		off := p.off
		if off < 0 {
			off = histories.OffsetUnknown
		}
		out = append(out, histories.KeyOffset{Key: strconv.Itoa(int(p.p)), Offset: off})
	}
	return out, nil
}

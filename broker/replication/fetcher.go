package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/partition"
)

const (
	// peerTimeout bounds one exchange with a leader beyond the fetch's own
	// wait, so that a connection into a network partition (no RST, no
	// FIN) is given up and redialled.
	peerTimeout = 5 * time.Second
	// retryBackoff is how long a partition waits after a retriable error
	// (the leader has not applied the same metadata yet, or ours is old).
	retryBackoff = 100 * time.Millisecond
	// errorBackoffMax bounds the wait after a failed exchange (the leader
	// is down or unreachable).
	errorBackoffMax = time.Second
	// fetchVersion and offsetForEpochVersion are the request versions a
	// follower speaks: Fetch v12 is the newest with ReplicaID in the body
	// and has CurrentLeaderEpoch, LastFetchedEpoch and DivergingEpoch
	// (KIP-320, KIP-595); OffsetForLeaderEpoch v4 has ReplicaID.
	fetchVersion          = 12
	offsetForEpochVersion = 4
)

// fetchPart is one partition a fetcher fetches.
type fetchPart struct {
	p       *partition.Partition
	retryAt time.Time // after a retriable error, not before
}

// fetcher copies the partitions this node follows from one leader (Kafka's
// ReplicaFetcherThread): one goroutine, one connection, one request at a
// time covering every such partition. A partition whose follower state is
// Truncating first reconciles its log with OffsetForLeaderEpoch; the
// others fetch from their log end offset, naming the epoch of their last
// batch so that the leader can tell them where they diverge.
type fetcher struct {
	m      *Manager
	leader int32
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	parts     map[tp]*fetchPart
	wake      chan struct{}
	interrupt context.CancelFunc // ends the exchange in flight, if any

	conn    *peerConn // used by the fetcher goroutine only
	failing bool      // the last exchange failed (logged once per outage)
}

// startFetcher starts a fetcher for leader; callers hold m.mu.
func (m *Manager) startFetcher(leader int32) *fetcher {
	ctx, cancel := context.WithCancel(m.ctx)
	f := &fetcher{
		m:      m,
		leader: leader,
		log:    m.log.With("leader", leader),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		parts:  map[tp]*fetchPart{},
		wake:   make(chan struct{}, 1),
	}
	go f.run()
	return f
}

// stop ends the fetcher and waits for its goroutine.
func (f *fetcher) stop() {
	f.cancel()
	<-f.done
}

// assign sets the partitions to fetch. New ones, or all with urgent (some
// partition just started following this leader, at a new epoch), are
// fetched at once: the exchange in flight (a long poll) is cut short.
func (f *fetcher) assign(parts map[tp]*partition.Partition, urgent bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := make(map[tp]*fetchPart, len(parts))
	for k, p := range parts {
		if old := f.parts[k]; old != nil && old.p == p && !urgent {
			next[k] = old
			continue
		}
		next[k] = &fetchPart{p: p}
		urgent = true
	}
	f.parts = next
	if urgent {
		if f.interrupt != nil {
			f.interrupt()
		}
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

func (f *fetcher) run() {
	defer close(f.done)
	defer f.closeConn()
	var backoff time.Duration
	for f.ctx.Err() == nil {
		err := f.round()
		if err == nil {
			if f.failing {
				f.log.Info("replication from the leader resumed")
				f.failing = false
			}
			backoff = 0
			continue
		}
		if f.ctx.Err() != nil {
			return
		}
		f.closeConn()
		if !f.failing {
			f.log.Warn("fetching from the leader failed; retrying", "err", err)
			f.failing = true
		} else {
			f.log.Debug("fetching from the leader failed again", "err", err)
		}
		backoff = min(max(2*backoff, 50*time.Millisecond), errorBackoffMax)
		f.sleep(backoff)
	}
}

func (f *fetcher) closeConn() {
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}

// sleep waits d, or until woken or stopped.
func (f *fetcher) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-f.wake:
	case <-f.ctx.Done():
	}
}

// item is one partition in one round.
type item struct {
	k  tp
	fp *fetchPart
	st partition.FollowerState
}

// round does one exchange with the leader (or waits, if there is nothing
// to fetch now).
func (f *fetcher) round() error {
	now := time.Now()
	f.mu.Lock()
	var items []item
	wait := time.Hour // until woken: nothing assigned
	for k, fp := range f.parts {
		if d := fp.retryAt.Sub(now); d > 0 {
			wait = min(wait, d)
			continue
		}
		st, ok := fp.p.Following()
		if !ok || st.Leader != f.leader {
			continue // the next reconciliation moves it elsewhere
		}
		items = append(items, item{k, fp, st})
	}
	f.mu.Unlock()
	if len(items) == 0 {
		f.sleep(wait)
		return nil
	}
	if f.conn == nil {
		addr, err := f.m.peerAddr(f.leader)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(f.ctx, f.m.cfg.DialTimeout)
		f.conn, err = dialPeer(ctx, addr, "garantia-replica-"+strconv.Itoa(int(f.m.cfg.NodeID)), f.m.cfg.DialTimeout)
		cancel()
		if err != nil {
			return fmt.Errorf("connecting to leader %d at %s: %w", f.leader, addr, err)
		}
	}
	var truncating, fetching []item
	for _, it := range items {
		if it.st.Truncating && !f.m.cfg.Bugs.HWTruncation {
			truncating = append(truncating, it)
		} else {
			fetching = append(fetching, it)
		}
	}
	if len(truncating) > 0 {
		return f.truncate(truncating)
	}
	return f.fetch(fetching)
}

// exchange runs one request with a timeout, registered as the exchange in
// flight so that assign can cut it short. An exchange cut short returns
// errInterrupted, after which the connection must be redialled.
func (f *fetcher) exchange(req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(f.ctx, timeout)
	defer cancel()
	f.mu.Lock()
	f.interrupt = cancel
	f.mu.Unlock()
	resp, err := f.conn.roundTrip(ctx, req)
	f.mu.Lock()
	f.interrupt = nil
	f.mu.Unlock()
	if err != nil && errors.Is(ctx.Err(), context.Canceled) && f.ctx.Err() == nil {
		f.closeConn()
		return nil, errInterrupted
	}
	return resp, err
}

// errInterrupted: assign cut the exchange short to fetch new partitions.
var errInterrupted = errors.New("exchange interrupted to fetch new partitions")

// retry makes a partition wait before it is fetched again.
func (f *fetcher) retry(fp *partition.Partition, after time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.parts {
		if x.p == fp {
			x.retryAt = time.Now().Add(after)
		}
	}
}

// truncate reconciles the logs of partitions that just started following
// this leader: OffsetForLeaderEpoch for the epoch of each one's last batch
// says where that epoch ended at the leader, and the follower truncates
// there (see truncationOffset), never to its own high watermark.
func (f *fetcher) truncate(items []item) error {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version, req.ReplicaID = offsetForEpochVersion, f.m.cfg.NodeID
	byTopic := map[string]int{}
	asked := map[tp]item{}
	for _, it := range items {
		log := it.fp.p.Log()
		latest := log.LatestEpoch()
		if latest < 0 {
			// An empty log has nothing to reconcile.
			if err := it.fp.p.TruncateFollower(it.st.Leader, it.st.LeaderEpoch, log.EndOffset(), true); err != nil && !errors.Is(err, partition.ErrNotFollowing) {
				f.log.Error("ending truncation of an empty log failed", "partition", it.k.String(), "err", err)
			}
			continue
		}
		i, ok := byTopic[it.k.topic]
		if !ok {
			i = len(req.Topics)
			byTopic[it.k.topic] = i
			t := kmsg.NewOffsetForLeaderEpochRequestTopic()
			t.Topic = it.k.topic
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = it.k.index, it.st.LeaderEpoch, latest
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		asked[it.k] = it
	}
	if len(asked) == 0 {
		return nil
	}
	kresp, err := f.exchange(req, peerTimeout)
	if errors.Is(err, errInterrupted) {
		return nil
	}
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			it, ok := asked[tp{rt.Topic, rp.Partition}]
			if !ok {
				continue
			}
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				f.log.Debug("OffsetForLeaderEpoch refused; retrying", "partition", it.k.String(), "err", err)
				f.retry(it.fp.p, retryBackoff)
				continue
			}
			f.truncateTo(it, rp.LeaderEpoch, rp.EndOffset, "OffsetForLeaderEpoch")
		}
	}
	return nil
}

// truncateTo applies the leader's answer (leaderEpoch ended at leaderEnd)
// to one follower.
func (f *fetcher) truncateTo(it item, leaderEpoch int32, leaderEnd int64, how string) {
	log := it.fp.p.Log()
	leo, ourEpoch := log.EndOffset(), log.LatestEpoch()
	offset, final := truncationOffset(log, leaderEpoch, leaderEnd)
	err := it.fp.p.TruncateFollower(it.st.Leader, it.st.LeaderEpoch, offset, final)
	switch {
	case errors.Is(err, partition.ErrNotFollowing):
	case err != nil:
		f.log.Error("truncating a diverging follower log failed", "partition", it.k.String(), "to", offset, "err", err)
		f.retry(it.fp.p, errorBackoffMax)
	case offset < leo:
		f.log.Info("truncated a diverging log tail", "partition", it.k.String(), "via", how,
			"our_epoch", ourEpoch, "leader_epoch", leaderEpoch, "leader_epoch_end", leaderEnd,
			"truncated_to", offset, "dropped_to", leo-1, "final", final)
	}
}

// fetch fetches every partition from its log end offset.
func (f *fetcher) fetch(items []item) error {
	maxWait := f.m.cfg.FetchMaxWait
	req := kmsg.NewPtrFetchRequest()
	req.Version = fetchVersion
	req.ReplicaID = f.m.cfg.NodeID
	req.MaxWaitMillis = int32(maxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = f.m.cfg.FetchMaxBytes
	req.SessionID, req.SessionEpoch = 0, -1 // full fetches, no session
	type sentPart struct {
		it     item
		offset int64
	}
	sent := map[tp]sentPart{}
	byTopic := map[string]int{}
	for _, it := range items {
		log := it.fp.p.Log()
		i, ok := byTopic[it.k.topic]
		if !ok {
			i = len(req.Topics)
			byTopic[it.k.topic] = i
			t := kmsg.NewFetchRequestTopic()
			t.Topic = it.k.topic
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = it.k.index
		rp.CurrentLeaderEpoch = it.st.LeaderEpoch
		rp.FetchOffset = log.EndOffset()
		rp.LastFetchedEpoch = log.LatestEpoch()
		if f.m.cfg.Bugs.HWTruncation {
			rp.LastFetchedEpoch = -1 // before KIP-101 nothing checked the follower's log
		}
		rp.LogStartOffset = log.StartOffset()
		rp.PartitionMaxBytes = f.m.cfg.PartitionFetchMaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		sent[it.k] = sentPart{it, rp.FetchOffset}
	}
	kresp, err := f.exchange(req, maxWait+peerTimeout)
	if errors.Is(err, errInterrupted) {
		return nil
	}
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("fetch from leader %d: %w", f.leader, err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			s, ok := sent[tp{rt.Topic, rp.Partition}]
			if !ok {
				continue
			}
			f.apply(s.it, s.offset, &rp)
		}
	}
	return nil
}

// apply handles one partition of a fetch response.
func (f *fetcher) apply(it item, offset int64, rp *kmsg.FetchResponseTopicPartition) {
	p := it.fp.p
	err := kerr.ErrorForCode(rp.ErrorCode)
	switch {
	case err == nil && rp.DivergingEpoch.EndOffset >= 0:
		// KIP-320: our last epoch ends earlier at the leader, or the
		// leader never had it.
		f.truncateTo(it, rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset, "fetch diverging epoch")
	case err == nil:
		if _, err := p.AppendFetched(it.st.Leader, it.st.LeaderEpoch, offset, rp.RecordBatches, rp.HighWatermark); err != nil && !errors.Is(err, partition.ErrNotFollowing) {
			f.log.Error("appending fetched batches failed; the partition truncates and refetches", "partition", it.k.String(), "offset", offset, "err", err)
			p.MarkTruncating(it.st.Leader, it.st.LeaderEpoch)
			f.retry(p, errorBackoffMax)
		}
	case errors.Is(err, kerr.OffsetOutOfRange) && f.m.cfg.Bugs.HWTruncation:
		// Before KIP-101 a follower ahead of its leader truncated to the
		// leader's end; the leader's high watermark stands in for it.
		to := max(min(rp.HighWatermark, p.Log().EndOffset()), 0)
		if err := p.TruncateFollower(it.st.Leader, it.st.LeaderEpoch, to, true); err != nil && !errors.Is(err, partition.ErrNotFollowing) {
			f.log.Error("bug hw-truncation: truncating to the leader's high watermark failed", "partition", it.k.String(), "err", err)
			f.retry(p, errorBackoffMax)
		}
	case errors.Is(err, kerr.OffsetOutOfRange):
		f.log.Warn("leader says our fetch offset is out of range; reconciling with OffsetForLeaderEpoch", "partition", it.k.String(), "offset", offset)
		p.MarkTruncating(it.st.Leader, it.st.LeaderEpoch)
	case errors.Is(err, kerr.FencedLeaderEpoch), errors.Is(err, kerr.UnknownLeaderEpoch),
		errors.Is(err, kerr.NotLeaderForPartition), errors.Is(err, kerr.UnknownTopicOrPartition),
		errors.Is(err, kerr.LeaderNotAvailable):
		// The leader and this node have not applied the same metadata
		// yet; whoever is behind catches up soon.
		f.log.Debug("fetch refused for now; retrying", "partition", it.k.String(), "err", err)
		f.retry(p, retryBackoff)
	default:
		f.log.Warn("fetch refused", "partition", it.k.String(), "err", err)
		f.retry(p, errorBackoffMax)
	}
}

package queue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/histories"
)

// topicReadyTimeout bounds how long CreateTopic waits for every partition
// to have a leader.
const topicReadyTimeout = 20 * time.Second

func (w *Workload) adminClient() (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(w.cfg.Brokers...),
		kgo.ClientID("garantia-admin"),
		kgo.DialTimeout(time.Second),
		kgo.RequestTimeoutOverhead(5*time.Second),
		kgo.RetryTimeout(5*time.Second),
		kgo.MetadataMinAge(100*time.Millisecond),
	)
}

// CreateTopic creates the topic with Partitions partitions and
// ReplicationFactor replicas, and waits until every partition has a
// leader. A topic that already exists with the right partition count is
// accepted.
func (w *Workload) CreateTopic(ctx context.Context) error {
	cl, err := w.adminClient()
	if err != nil {
		return fmt.Errorf("queue: admin client: %w", err)
	}
	defer cl.Close()

	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(topicReadyTimeout.Milliseconds())
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic = w.cfg.Topic
	t.NumPartitions = int32(w.cfg.Partitions)
	t.ReplicationFactor = int16(w.cfg.ReplicationFactor)
	names := make([]string, 0, len(w.cfg.TopicConfigs))
	for k := range w.cfg.TopicConfigs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name = k
		v := w.cfg.TopicConfigs[k]
		c.Value = &v
		t.Configs = append(t.Configs, c)
	}
	req.Topics = append(req.Topics, t)

	ctx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
	defer cancel()
	for {
		err := w.createOnce(ctx, cl, req)
		if err == nil {
			break
		}
		// Right after startup a broker's view of the cluster may still
		// lag (a freshly registered broker not yet counted live, no
		// controller yet): INVALID_REPLICATION_FACTOR and the retriable
		// errors clear by themselves, so retry them until the timeout.
		if !errors.Is(err, kerr.InvalidReplicationFactor) && !kerr.IsRetriable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (retried for %s)", err, topicReadyTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// Wait until the metadata lists every partition with a leader.
	var last error
	for {
		last = w.topicReady(ctx, cl)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("queue: topic %s not ready within %s: %w", w.cfg.Topic, topicReadyTimeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// createOnce sends req once and returns the topic's error, if any; a
// topic that already exists (an earlier attempt that timed out on our
// side) is success.
func (w *Workload) createOnce(ctx context.Context, cl *kgo.Client, req *kmsg.CreateTopicsRequest) error {
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("queue: create topic %s: %w", w.cfg.Topic, err)
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("queue: create topic %s: the broker answered for %d topics, want 1", w.cfg.Topic, len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		msg := ""
		if m := resp.Topics[0].ErrorMessage; m != nil {
			msg = ": " + *m
		}
		return fmt.Errorf("queue: create topic %s (partitions %d, replication factor %d): %w%s",
			w.cfg.Topic, w.cfg.Partitions, w.cfg.ReplicationFactor, err, msg)
	}
	return nil
}

func (w *Workload) topicReady(ctx context.Context, cl *kgo.Client) error {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(w.cfg.Topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != w.cfg.Topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return err
		}
		if len(t.Partitions) != w.cfg.Partitions {
			return fmt.Errorf("the topic has %d partitions, want %d", len(t.Partitions), w.cfg.Partitions)
		}
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, err)
			}
			if p.Leader < 0 {
				return fmt.Errorf("partition %d has no leader", p.Partition)
			}
		}
		// The metadata may come from a broker that learned of a leader
		// before the leader itself did, which would turn the first sends
		// away with NOT_LEADER: wait until every leader serves its
		// partitions.
		if offs, errs := w.listOffsets(ctx, cl, offsetEarliest); len(offs) < w.cfg.Partitions {
			return fmt.Errorf("not every partition leader serves its partition yet: %w", errors.Join(errs...))
		}
		return nil
	}
	return errors.New("the topic is not in the metadata")
}

// EndOffsets asks the partition leaders for each partition's end offset
// (ListOffsets latest: the high watermark, the end of what consumers may
// read). Partitions that did not answer are missing from the map.
func (w *Workload) EndOffsets(ctx context.Context) (map[int32]int64, error) {
	cl, err := w.adminClient()
	if err != nil {
		return nil, fmt.Errorf("queue: admin client: %w", err)
	}
	defer cl.Close()
	return w.endOffsets(ctx, cl)
}

func (w *Workload) endOffsets(ctx context.Context, cl *kgo.Client) (map[int32]int64, error) {
	out, errs := w.listOffsets(ctx, cl, offsetLatest)
	if len(out) == 0 {
		return out, fmt.Errorf("queue: list offsets of %s: no partition answered: %w", w.cfg.Topic, errors.Join(errs...))
	}
	return out, nil
}

// The special timestamps of a ListOffsets request.
const (
	offsetLatest   = -1 // the high watermark: the end of what consumers may read
	offsetEarliest = -2 // the log's start
)

// listOffsets asks each partition's leader for the offset at timestamp
// (offsetLatest, offsetEarliest or a time). Partitions that did not answer are missing
// from the map, and errs says why.
func (w *Workload) listOffsets(ctx context.Context, cl *kgo.Client, timestamp int64) (out map[int32]int64, errs []error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = w.cfg.Topic
	for p := 0; p < w.cfg.Partitions; p++ {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = int32(p)
		rp.CurrentLeaderEpoch = -1
		rp.Timestamp = timestamp
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = append(req.Topics, t)
	out = map[int32]int64{}
	// kgo splits the request per partition leader; a shard that failed
	// leaves its partitions out, which the callers tolerate. A leader
	// whose high watermark is not yet established answers latest with
	// OFFSET_NOT_AVAILABLE (KIP-207): asked again later, it will know.
	for _, shard := range cl.RequestSharded(ctx, req) {
		if shard.Err != nil {
			errs = append(errs, shard.Err)
			continue
		}
		resp := shard.Resp.(*kmsg.ListOffsetsResponse)
		for _, rt := range resp.Topics {
			if rt.Topic != w.cfg.Topic {
				continue
			}
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					errs = append(errs, fmt.Errorf("partition %d: %w", rp.Partition, err))
					continue
				}
				out[rp.Partition] = rp.Offset
			}
		}
	}
	return out, errs
}

// Drain is the final read: for every partition, a fresh process with a
// fresh consumer assigns that one key and polls from the log's start until
// it has read up to the partition's end offset (asked now: call Drain
// after every fault has healed; it asks again after a pause, and drains
// again any partition whose end grew meanwhile, see drainSettle).
// Everything is recorded as ordinary assign and poll operations. A
// consumer whose poll ends info is replaced by a fresh process that starts
// over. Drain stops at DrainTimeout, or after a run of empty polls (the
// end offset is never reached when the log lost records below it), and
// returns an error only if the history could not be written.
//
// The drain is framed by histories.FDrain markers: an invocation when it
// begins, and ok once every partition was read up to the end offset it had
// then, or info naming the partitions that fell short and why (the
// deadline, an interrupt, records that never came). Only a drain that
// completed proves that a value no poll read is gone rather than not yet
// reached.
func (w *Workload) Drain(ctx context.Context) error {
	marker := histories.Op{Process: histories.NemesisProcess, Type: histories.Invoke, F: histories.FDrain}
	if _, err := w.rec.Record(marker); err != nil {
		return fmt.Errorf("queue: record the drain's start: %w", err)
	}
	shortfall, err := w.drain(ctx)
	if err != nil {
		return err
	}
	if w.cfg.ConsumeVia != ConsumeAssign {
		// The group's committed offsets, fetched once more after every
		// fault healed: the last chance to see one lost.
		fctx, cancel := context.WithTimeout(ctx, finalFetchTimeout)
		err := w.FetchCommitted(fctx)
		cancel()
		if err != nil {
			return err
		}
	}
	marker.Type = histories.OK
	if shortfall != "" {
		marker.Type, marker.Error = histories.Info, shortfall
	}
	if _, err := w.rec.Record(marker); err != nil {
		return fmt.Errorf("queue: record the drain's end: %w", err)
	}
	return nil
}

// drain runs the drain and says how it fell short of every partition's
// end offset at its start ("" when it did not).
func (w *Workload) drain(ctx context.Context) (shortfall string, err error) {
	dctx, cancel := context.WithTimeout(ctx, w.cfg.DrainTimeout)
	defer cancel()

	var ends map[int32]int64
	for {
		var err error
		ends, err = w.EndOffsets(dctx)
		if err == nil && len(ends) == w.cfg.Partitions {
			break
		}
		if dctx.Err() != nil {
			break // drain what we can, with unknown ends
		}
		select {
		case <-dctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	start := maps.Clone(ends)
	reached := make(map[int32]int64, w.cfg.Partitions)
	defer func() {
		if err == nil {
			shortfall = drainShortfall(ctx, dctx, w.cfg.Partitions, start, reached)
		}
	}()

	todo := make([]int32, w.cfg.Partitions)
	for p := range todo {
		todo[p] = int32(p)
	}
	for round := 1; ; round++ {
		if err := w.drainPartitions(dctx, todo, ends, reached); err != nil {
			return "", err
		}
		// Settle: right after the heal a partition's end offset can still
		// lag behind what was acknowledged (a restarted or newly elected
		// leader's high watermark moves up only once its followers have
		// fetched). Ask again after a pause and drain again whatever
		// grew, until the ends hold still, as Jepsen's final reads wait
		// for the cluster to recover.
		if round == drainRounds || dctx.Err() != nil {
			return "", nil
		}
		select {
		case <-dctx.Done():
			return "", nil
		case <-time.After(drainSettle):
		}
		now, err := w.EndOffsets(dctx)
		if err != nil {
			return "", nil // drained what could be; the checker judges
		}
		todo = todo[:0]
		for p, end := range now {
			if old, ok := ends[p]; ok && end > old {
				todo = append(todo, p)
				ends[p] = end
			}
		}
		if len(todo) == 0 {
			return "", nil
		}
		sort.Slice(todo, func(i, j int) bool { return todo[i] < todo[j] })
	}
}

// drainShortfall says which of the partitions were not read up to their
// end offset at the drain's start (start; a partition missing from it had
// no known end), given where the drain's reads reached, and why the drain
// stopped: ctx ended (an interrupt), dctx ran out (the drain's deadline)
// or the records never came. "" when every partition was read to its end.
func drainShortfall(ctx, dctx context.Context, partitions int, start, reached map[int32]int64) string {
	var short []string
	for p := int32(0); p < int32(partitions); p++ {
		end, known := start[p]
		switch {
		case !known:
			short = append(short, fmt.Sprintf("partition %d: no end offset known when the drain began", p))
		case reached[p] < end:
			short = append(short, fmt.Sprintf("partition %d: read to offset %d of %d", p, reached[p], end))
		}
	}
	if len(short) == 0 {
		return ""
	}
	why := "the records below the end offset never came"
	switch {
	case ctx.Err() != nil:
		why = "interrupted: " + ctx.Err().Error()
	case dctx.Err() != nil:
		why = "the drain timeout passed"
	}
	return "drain incomplete (" + why + "): " + strings.Join(short, "; ")
}

// drainSettle is the pause before Drain asks the end offsets again, and
// drainRounds bounds how often it drains a partition whose end grew.
const (
	drainSettle = 500 * time.Millisecond
	drainRounds = 5
)

// drainPartitions drains each partition of ps concurrently up to its end
// in ends (unknown: until a run of empty polls), and raises reached to
// where each partition's reads got.
func (w *Workload) drainPartitions(ctx context.Context, ps []int32, ends map[int32]int64, reached map[int32]int64) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make([]error, len(ps))
	for i, p := range ps {
		end, ok := ends[p]
		if !ok {
			end = -1
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := w.drainPartition(ctx, p, end)
			mu.Lock()
			reached[p] = max(reached[p], got)
			mu.Unlock()
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// drainEmptyPolls is how many empty polls in a row end a partition's drain
// before its end offset: the records below it are gone.
const drainEmptyPolls = 10

// drainPollTimeout bounds each drain poll; Jepsen's final polls wait 1s.
const drainPollTimeout = 500 * time.Millisecond

// drainPartition drains p up to end and returns the offset after the last
// record its reads returned.
func (w *Workload) drainPartition(ctx context.Context, p int32, end int64) (int64, error) {
	wk := &worker{w: w, process: w.nextProcess.Add(1) - 1, drainer: true, next: map[int32]int64{}, reached: map[int32]int64{}}
	defer wk.close()
	for ctx.Err() == nil {
		done, err := wk.drain(ctx, p, end)
		if err != nil || done {
			return wk.reached[p], err
		}
	}
	return wk.reached[p], nil
}

// drain reads p with the worker's current process; done reports that the
// partition needs no more draining (false: a poll ended info, the worker
// now runs a fresh process, which must assign and start over).
func (wk *worker) drain(ctx context.Context, p int32, end int64) (done bool, err error) {
	if err := wk.assign(ctx, []int32{p}, map[int32]bool{p: true}); err != nil {
		return true, err
	}
	empty := 0
	for ctx.Err() == nil {
		pos := wk.next[p] // 0 before the first record
		if end >= 0 && pos >= end {
			return true, nil
		}
		process := wk.process
		if err := wk.poll(ctx, drainPollTimeout); err != nil {
			return true, err
		}
		if wk.process != process {
			return false, nil
		}
		if wk.next[p] > pos {
			empty = 0
		} else if empty++; empty >= drainEmptyPolls {
			return true, nil
		}
	}
	return true, nil
}

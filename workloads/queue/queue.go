package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/garantia/garantia/histories"
)

// DefaultTopic is the topic the workload writes to.
const DefaultTopic = "garantia-queue"

// Defaults of Config's bounds.
const (
	DefaultOpTimeout      = 5 * time.Second
	DefaultPollTimeout    = 100 * time.Millisecond
	DefaultMaxPollRecords = 1000
	DefaultDrainTimeout   = 30 * time.Second
)

// The operation mix, out of mixTotal draws: Jepsen's queue workload sends
// and polls about equally and reassigns (or subscribes) now and then.
// When consumers subscribe, mixCommitted of the polls fetch the group's
// committed offsets instead; subscribed consumers commit after every poll
// that read something, as an op of its own.
const (
	mixAssign    = 2  // of 64
	mixSend      = 31 // of 64
	mixCommitted = 2  // of 64, taken from the polls' share
	mixTotal     = 64 // the rest are polls
)

// Config configures the queue workload.
type Config struct {
	// Brokers are the seed addresses (host:port) the clients dial.
	Brokers []string
	// NodeNames names brokers by id for the history's node field ("n1");
	// an id not in the map is recorded as "broker-<id>".
	NodeNames map[int32]string
	// Topic is the topic written and read; "" means DefaultTopic.
	Topic string
	// Partitions is the number of keys (partitions of Topic), 1 or more.
	Partitions int
	// ReplicationFactor is the topic's replication factor, 1 or more.
	ReplicationFactor int
	// TopicConfigs are passed to CreateTopics (min.insync.replicas, ...).
	TopicConfigs map[string]string
	// Acks is "0", "1" or "all".
	Acks string
	// Concurrency is the number of workers (concurrent processes).
	Concurrency int
	// Rate is the target of operations per second over all workers; 0 or
	// less means as fast as the brokers answer.
	Rate float64
	// Seed seeds each worker's schedule (worker i uses seed and i).
	Seed int64
	// OpTimeout bounds one send (kgo's delivery timeout and the broker's
	// produce timeout are derived from it); 0 means DefaultOpTimeout.
	OpTimeout time.Duration
	// PollTimeout bounds one poll; 0 means DefaultPollTimeout.
	PollTimeout time.Duration
	// MaxPollRecords bounds the records one poll returns; 0 means
	// DefaultMaxPollRecords.
	MaxPollRecords int
	// DrainTimeout bounds the final drain; 0 means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// ConsumeVia is how consumers get their partitions: ConsumeAssign
	// (the default, for ""), ConsumeSubscribe or ConsumeMixed.
	ConsumeVia string
	// Group is the consumer group subscribing consumers join; "" means
	// DefaultGroup.
	Group string
}

// Counts are the operations completed so far (for progress lines).
type Counts struct {
	Invoked, OK, Info, Fail int64
}

// Workload is one run of the queue workload. Create it with New; then
// CreateTopic, Run, Drain, in that order.
type Workload struct {
	cfg  Config
	rec  *histories.Recorder
	acks kgo.Acks

	values      atomic.Int64 // the last value handed out
	nextProcess atomic.Int64 // the next never-used process id, for drains
	invoked     atomic.Int64
	ok          atomic.Int64
	info        atomic.Int64
	fail        atomic.Int64

	warnMu   sync.Mutex
	warnings []string

	// leaving counts group consumers still leaving the group in the
	// background (see closeConsumer); Run waits for them.
	leaving sync.WaitGroup
	// bgErr is the first error recording an op from a client's background
	// (see memberFetches): the history could not be written.
	bgMu  sync.Mutex
	bgErr error
}

// recordBackground records an op that a client's callback reports; an
// error is kept for Run to return.
func (w *Workload) recordBackground(op histories.Op) {
	if _, err := w.record(op); err != nil {
		w.bgMu.Lock()
		if w.bgErr == nil {
			w.bgErr = err
		}
		w.bgMu.Unlock()
	}
}

// backgroundErr is the first error of recordBackground.
func (w *Workload) backgroundErr() error {
	w.bgMu.Lock()
	defer w.bgMu.Unlock()
	return w.bgErr
}

// maxWarnings bounds the warnings kept (each is also an op's error).
const maxWarnings = 100

// ParseAcks maps "0", "1" and "all" (or "-1") to kgo's acks.
func ParseAcks(s string) (kgo.Acks, error) {
	switch s {
	case "0":
		return kgo.NoAck(), nil
	case "1":
		return kgo.LeaderAck(), nil
	case "all", "-1":
		return kgo.AllISRAcks(), nil
	}
	return kgo.Acks{}, fmt.Errorf("acks: want 0, 1 or all, got %q", s)
}

// New checks cfg, fills in its defaults and returns a workload recording
// into rec.
func New(cfg Config, rec *histories.Recorder) (*Workload, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("queue: Brokers: no broker address")
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Partitions < 1 {
		return nil, fmt.Errorf("queue: Partitions: want 1 or more, got %d", cfg.Partitions)
	}
	if cfg.ReplicationFactor < 1 {
		return nil, fmt.Errorf("queue: ReplicationFactor: want 1 or more, got %d", cfg.ReplicationFactor)
	}
	if cfg.Concurrency < 1 {
		return nil, fmt.Errorf("queue: Concurrency: want 1 or more, got %d", cfg.Concurrency)
	}
	acks, err := ParseAcks(cfg.Acks)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	if cfg.OpTimeout < time.Second {
		// kgo refuses record timeouts under a second.
		return nil, fmt.Errorf("queue: OpTimeout: want 1s or more, got %s", cfg.OpTimeout)
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = DefaultPollTimeout
	}
	if cfg.MaxPollRecords <= 0 {
		cfg.MaxPollRecords = DefaultMaxPollRecords
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.ConsumeVia == "" {
		cfg.ConsumeVia = ConsumeAssign
	}
	if !slices.Contains(ConsumeVias, cfg.ConsumeVia) {
		return nil, fmt.Errorf("queue: ConsumeVia: want %s, got %q", strings.Join(ConsumeVias, ", "), cfg.ConsumeVia)
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if rec == nil {
		return nil, errors.New("queue: no recorder")
	}
	w := &Workload{cfg: cfg, rec: rec, acks: acks}
	w.nextProcess.Store(int64(cfg.Concurrency))
	return w, nil
}

// Counts returns the operations completed so far.
func (w *Workload) Counts() Counts {
	return Counts{Invoked: w.invoked.Load(), OK: w.ok.Load(), Info: w.info.Load(), Fail: w.fail.Load()}
}

// Warnings returns what the workload saw that the history cannot express
// well (an unparseable record value), at most maxWarnings of them.
func (w *Workload) Warnings() []string {
	w.warnMu.Lock()
	defer w.warnMu.Unlock()
	return append([]string(nil), w.warnings...)
}

func (w *Workload) warn(format string, args ...any) {
	w.warnMu.Lock()
	defer w.warnMu.Unlock()
	if len(w.warnings) < maxWarnings {
		w.warnings = append(w.warnings, fmt.Sprintf(format, args...))
	}
}

// Run runs Concurrency workers until limit has passed or ctx is done, and
// returns once every operation in flight has completed and been recorded.
// Operations in flight when the limit passes complete normally; those in
// flight when ctx is canceled are cut short (and recorded as such). It
// returns an error only when the harness failed (the history could not be
// written); failed operations are history, not errors.
func (w *Workload) Run(ctx context.Context, limit time.Duration) error {
	loopCtx, cancelLoop := context.WithTimeout(ctx, limit)
	defer cancelLoop()
	p := newPacer(w.cfg.Rate)

	var wg sync.WaitGroup
	errs := make([]error, w.cfg.Concurrency)
	for i := 0; i < w.cfg.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk := w.newWorker(i)
			defer wk.close()
			for loopCtx.Err() == nil {
				if err := p.wait(loopCtx); err != nil {
					break
				}
				if err := wk.step(ctx); err != nil {
					errs[i] = fmt.Errorf("queue: worker %d: %w", i, err)
					cancelLoop() // one broken history stops the test
					return
				}
			}
		}()
	}
	wg.Wait()
	w.leaving.Wait()
	return errors.Join(append(errs, w.backgroundErr())...)
}

// worker runs one logical process at a time; after an info completion it
// continues as a fresh process with fresh clients.
type worker struct {
	w       *Workload
	thread  int
	process int64
	rng     *rand.Rand
	// drainer marks a drain worker: it takes fresh process ids from the
	// shared counter, as its thread has no place in the run's id scheme.
	drainer bool
	// lastID is the last process id newProcessID handed out (or the
	// first process's).
	lastID int64

	prod     *kgo.Client
	prodHook *hook
	cons     *kgo.Client
	consHook *hook
	// mode is what cons is: none, a consumer of assigned partitions, or a
	// member of the group.
	mode consumerMode
	// rebalances collects the group consumer's rebalances for the next
	// completion; nil without a group consumer.
	rebalances *rebalanceLog
	// fetches records the group consumer's own offset fetches; nil
	// without a group consumer.
	fetches *memberFetches
	// assigned are the partitions the consumer reads, sorted; nil before
	// the process's first assign.
	assigned []int32
	// next is where the consumer resumes each assigned partition: the
	// offset after the last record it returned.
	next map[int32]int64
	// reached is, per partition, the offset after the last record any
	// process of this thread read: where a newly assigned partition
	// starts unless the assign rewinds it. It outlives retired
	// processes; it only says where to start reading, never what to expect.
	reached map[int32]int64
}

func (w *Workload) newWorker(thread int) *worker {
	return &worker{
		w:       w,
		thread:  thread,
		process: int64(thread),
		// One stream per worker: the schedule of a worker does not depend
		// on how the others interleave.
		rng:     rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(thread))),
		next:    map[int32]int64{},
		reached: map[int32]int64{},
	}
}

// opKind is what a schedule draw asks a worker to do.
type opKind int

const (
	opSend opKind = iota
	opPoll
	opAssign
	opSubscribe
	opCommitted
)

// scheduledOp is one entry of a worker's schedule.
type scheduledOp struct {
	kind opKind
	key  int32   // for sends
	keys []int32 // for assigns
	// rewind marks, for assigns, the keys that start at the log's start
	// if they are new to the process.
	rewind map[int32]bool
}

// rewindOneIn is the odds (1 in rewindOneIn) that an assign reads a newly
// assigned partition from the log's start rather than from where this
// thread last read it. Rereading whole logs checks old offsets again
// (truncation, rewritten offsets), but every reread costs the log's
// length; the final drain reads everything once more anyway.
const rewindOneIn = 32

// draw draws the worker's next operation from its seeded stream. A poll
// drawn before the process's first assign (or subscribe) becomes one: a
// fresh process has nothing to poll yet. With ConsumeAssign the draws are
// exactly as they were before consumers could subscribe.
func (wk *worker) draw() scheduledOp {
	n := wk.rng.IntN(mixTotal)
	via := wk.w.cfg.ConsumeVia
	switch {
	case n < mixAssign, n >= mixAssign+mixSend && wk.mode == noConsumer:
		if via == ConsumeSubscribe || (via == ConsumeMixed && wk.rng.IntN(2) == 0) {
			return scheduledOp{kind: opSubscribe}
		}
		keys, rewind := wk.drawKeys()
		return scheduledOp{kind: opAssign, keys: keys, rewind: rewind}
	case n < mixAssign+mixSend:
		return scheduledOp{kind: opSend, key: int32(wk.rng.IntN(wk.w.cfg.Partitions))}
	case n >= mixTotal-mixCommitted && via != ConsumeAssign:
		return scheduledOp{kind: opCommitted}
	}
	return scheduledOp{kind: opPoll}
}

// step draws and runs one operation.
func (wk *worker) step(ctx context.Context) error {
	d := wk.draw()
	switch d.kind {
	case opAssign:
		return wk.assign(ctx, d.keys, d.rewind)
	case opSubscribe:
		return wk.subscribe(ctx)
	case opSend:
		return wk.send(ctx, d.key)
	case opCommitted:
		return wk.committed(ctx)
	}
	return wk.poll(ctx, wk.w.cfg.PollTimeout)
}

// drawKeys draws a non-empty set of partitions, each with probability
// 1/2, and for each partition whether it rewinds (see rewindOneIn). Every
// partition takes the same draws whatever the process's state, so that
// the schedule does not depend on timing.
func (wk *worker) drawKeys() (ps []int32, rewind map[int32]bool) {
	rewind = map[int32]bool{}
	for len(ps) == 0 {
		for p := 0; p < wk.w.cfg.Partitions; p++ {
			pick := wk.rng.IntN(2) == 0
			back := wk.rng.IntN(rewindOneIn) == 0
			if pick {
				ps = append(ps, int32(p))
				rewind[int32(p)] = back
			}
		}
	}
	return ps, rewind
}

// retire ends the current process after an info completion: its clients
// may hold state whose outcome is unknown, so they are closed, and the
// worker continues under a process id never used before.
func (wk *worker) retire() {
	wk.close()
	wk.process = wk.newProcessID()
	wk.assigned = nil
	wk.next = map[int32]int64{}
}

// newProcessID hands out a process id never used before: the next of the
// worker's thread's ids, thread, thread+concurrency, thread+2*concurrency,
// ... (Jepsen's rule), which its processes and its group members' fetches
// (memberFetches) share; a drain worker's come from the shared counter,
// as its thread has no place in that scheme.
func (wk *worker) newProcessID() int64 {
	if wk.drainer {
		return wk.w.nextProcess.Add(1) - 1
	}
	if wk.lastID < wk.process {
		wk.lastID = wk.process
	}
	wk.lastID += int64(wk.w.cfg.Concurrency)
	for {
		cur := wk.w.nextProcess.Load()
		if wk.lastID < cur || wk.w.nextProcess.CompareAndSwap(cur, wk.lastID+1) {
			break
		}
	}
	return wk.lastID
}

func (wk *worker) close() {
	if wk.prod != nil {
		wk.prod.Close()
		wk.prod = nil
	}
	wk.closeConsumer()
}

// closeConsumer closes the process's consumer. A group member leaves the
// group first, within groupLeaveTimeout (one that cannot reach the
// coordinator is dropped at its session timeout instead), in the
// background: the process is done with it, and the worker need not wait
// for a coordinator that a fault cut off. Run waits for every leave.
func (wk *worker) closeConsumer() {
	cl := wk.cons
	if cl == nil {
		return
	}
	if wk.mode == groupConsumer {
		wk.w.leaving.Add(1)
		fetches := wk.fetches
		go func() {
			defer wk.w.leaving.Done()
			cl.AllowRebalance()
			ctx, cancel := context.WithTimeout(context.Background(), groupLeaveTimeout)
			_ = cl.LeaveGroupContext(ctx)
			cancel()
			cl.Close()
			fetches.close()
		}()
	} else {
		cl.Close()
	}
	wk.cons, wk.mode, wk.rebalances, wk.fetches = nil, noConsumer, nil, nil
}

func (w *Workload) record(op histories.Op) (histories.Op, error) {
	op, err := w.rec.Record(op)
	if err != nil {
		return op, fmt.Errorf("record %s %s of process %d: %w", op.Type, op.F, op.Process, err)
	}
	switch op.Type {
	case histories.Invoke:
		w.invoked.Add(1)
	case histories.OK:
		w.ok.Add(1)
	case histories.Info:
		w.info.Add(1)
	case histories.Fail:
		w.fail.Add(1)
	}
	return op, nil
}

// send produces one fresh value to partition p.
func (wk *worker) send(ctx context.Context, p int32) error {
	w := wk.w
	v := w.values.Add(1)
	key := strconv.Itoa(int(p))
	invoked := []histories.Mop{{F: histories.MopSend, Key: key, Value: v, Offset: histories.OffsetPending}}
	if _, err := w.record(histories.Op{Process: wk.process, Type: histories.Invoke, F: histories.FSend,
		Value: histories.Value{Mops: invoked}}); err != nil {
		return err
	}
	done := histories.Op{Process: wk.process, F: histories.FSend, Value: histories.Value{Mops: invoked}}

	if wk.prod == nil {
		if err := wk.newProducer(); err != nil {
			return err
		}
	}
	wk.prodHook.reset()
	// The op is bounded by kgo's own timeouts; this context is a backstop
	// and the path by which Ctrl-C cuts the op short.
	opCtx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout+time.Second)
	r, err := wk.prod.ProduceSync(opCtx, &kgo.Record{
		Topic:     w.cfg.Topic,
		Partition: p,
		Value:     []byte(strconv.FormatInt(v, 10)),
	}).First()
	cancel()
	writes, node := wk.prodHook.snapshot()
	done.Type = Classify(err, writes)
	done.Node = node
	switch {
	case err != nil:
		done.Error = wk.prodHook.describe(err)
	case r.Partition != p:
		// The manual partitioner makes this impossible; if it happens
		// the record is somewhere we do not track.
		done.Type = histories.Info
		done.Error = fmt.Sprintf("acknowledged on partition %d, sent to %d", r.Partition, p)
	default:
		off := r.Offset
		if w.cfg.Acks == "0" || off < 0 {
			// acks=0 has no reply, so no offset.
			off = histories.OffsetUnknown
		}
		done.Value = histories.Value{Mops: []histories.Mop{{F: histories.MopSend, Key: key, Value: v, Offset: off}}}
	}
	if _, err := w.record(wk.withRebalances(done)); err != nil {
		return err
	}
	if done.Type == histories.Info {
		wk.retire()
	}
	return nil
}

// newProducer gives the process its producer client.
func (wk *worker) newProducer() error {
	wk.prodHook = &hook{names: wk.w.cfg.NodeNames}
	cl, err := kgo.NewClient(wk.w.producerOpts(wk.process, wk.prodHook)...)
	if err != nil {
		return fmt.Errorf("new producer: %w", err)
	}
	wk.prod = cl
	return nil
}

// assign points the consumer at ps. Partitions it keeps resume where they
// were; a new one starts at the log's start if rewind says so or this
// thread never read it, else where this thread last read it. The process
// keeps one consumer client across assigns, as a real consumer does.
func (wk *worker) assign(ctx context.Context, ps []int32, rewind map[int32]bool) error {
	w := wk.w
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	keys := make([]string, len(ps))
	for i, p := range ps {
		keys[i] = strconv.Itoa(int(p))
	}
	if _, err := w.record(histories.Op{Process: wk.process, Type: histories.Invoke, F: histories.FAssign,
		Value: histories.Value{Keys: keys}}); err != nil {
		return err
	}
	if wk.mode == groupConsumer {
		// Kafka's consumer unsubscribes before it assigns: the member
		// leaves the group, and the new consumer starts from where this
		// thread read.
		wk.closeConsumer()
		wk.assigned = nil
		clear(wk.next)
	}
	wanted := make(map[int32]bool, len(ps))
	for _, p := range ps {
		wanted[p] = true
	}
	var dropped []int32
	for _, p := range wk.assigned {
		if wanted[p] {
			delete(wanted, p) // kept: it resumes where it is
		} else {
			dropped = append(dropped, p)
			delete(wk.next, p)
		}
	}
	added := make(map[int32]kgo.Offset, len(wanted))
	for p := range wanted {
		if n, ok := wk.reached[p]; ok && !rewind[p] {
			added[p] = kgo.NewOffset().At(n)
		} else {
			added[p] = kgo.NewOffset().AtStart()
		}
	}
	if wk.cons == nil {
		wk.consHook = &hook{names: w.cfg.NodeNames}
		cl, err := kgo.NewClient(w.consumerOpts(wk.process, wk.consHook, added)...)
		if err != nil {
			return fmt.Errorf("new consumer: %w", err)
		}
		wk.cons, wk.mode = cl, assignedConsumer
	} else {
		if len(dropped) > 0 {
			wk.cons.RemoveConsumePartitions(map[string][]int32{w.cfg.Topic: dropped})
		}
		if len(added) > 0 {
			wk.cons.AddConsumePartitions(map[string]map[int32]kgo.Offset{w.cfg.Topic: added})
		}
	}
	wk.assigned = ps
	_, err := w.record(wk.withRebalances(histories.Op{Process: wk.process, Type: histories.OK, F: histories.FAssign,
		Value: histories.Value{Keys: keys}}))
	return err
}

// poll runs one poll of the consumer, waiting at most timeout for records.
func (wk *worker) poll(ctx context.Context, timeout time.Duration) error {
	w := wk.w
	invoked := []histories.Mop{{F: histories.MopPoll}}
	if _, err := w.record(histories.Op{Process: wk.process, Type: histories.Invoke, F: histories.FPoll,
		Value: histories.Value{Mops: invoked}}); err != nil {
		return err
	}
	done := histories.Op{Process: wk.process, F: histories.FPoll, Value: histories.Value{Mops: invoked}}
	res := wk.w.pollOnce(ctx, wk.cons, timeout)
	done.Node = wk.consHook.lastNode()
	switch {
	case res.corrupt != "":
		// A value that is not one of ours: the history cannot say what
		// this poll read, so its outcome is unknown.
		done.Type = histories.Info
		done.Error = res.corrupt
		w.warn("process %d: %s", wk.process, res.corrupt)
	case res.err != nil && res.n == 0:
		done.Type = Classify(res.err, 1)
		done.Error = res.err.Error()
	default:
		done.Type = histories.OK
		if res.err != nil {
			done.Error = res.err.Error()
		}
		done.Value = histories.Value{Mops: []histories.Mop{{F: histories.MopPoll, Polls: res.polls}}}
		wk.noteRead(res.polls)
	}
	if _, err := w.record(wk.withRebalances(done)); err != nil {
		return err
	}
	if done.Type == histories.Info {
		wk.retire()
		return nil
	}
	if wk.mode == groupConsumer {
		// The member commits what it read, then lets the group rebalance.
		if done.Type == histories.OK {
			if err := wk.commit(ctx, res.polls, res.epochs); err != nil {
				return err
			}
		}
		if wk.cons != nil {
			wk.cons.AllowRebalance()
		}
	}
	return nil
}

// noteRead moves the process's positions past what a poll returned.
func (wk *worker) noteRead(polls map[string][]histories.Record) {
	for key, recs := range polls {
		if len(recs) == 0 {
			continue
		}
		p, _ := strconv.Atoi(key)
		n := recs[len(recs)-1].Offset + 1
		wk.next[int32(p)] = n
		if n > wk.reached[int32(p)] {
			wk.reached[int32(p)] = n
		}
	}
}

type pollResult struct {
	polls map[string][]histories.Record
	// epochs are, per key read, the leader epoch of its last record: a
	// commit of the offset after it names that epoch (KIP-320).
	epochs  map[string]int32
	n       int    // records read
	err     error  // errors other than the poll's own timeout
	corrupt string // set when a record's value is not a decimal integer
}

// pollOnce polls cl once for at most timeout.
func (w *Workload) pollOnce(ctx context.Context, cl *kgo.Client, timeout time.Duration) pollResult {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	fetches := cl.PollRecords(pctx, w.cfg.MaxPollRecords)
	cancel()
	res := pollResult{polls: map[string][]histories.Record{}, epochs: map[string]int32{}}
	var errs []error
	fetches.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return // our own poll timeout: an empty poll, not an error
		}
		errs = append(errs, fmt.Errorf("%s/%d: %w", topic, p, err))
	})
	res.err = errors.Join(errs...)
	fetches.EachRecord(func(r *kgo.Record) {
		if res.corrupt != "" {
			return
		}
		v, err := strconv.ParseInt(string(r.Value), 10, 64)
		if err != nil {
			res.corrupt = fmt.Sprintf("partition %d offset %d: value %q is not a decimal integer", r.Partition, r.Offset, truncate(r.Value, 64))
			return
		}
		key := strconv.Itoa(int(r.Partition))
		res.polls[key] = append(res.polls[key], histories.Record{Offset: r.Offset, Value: v})
		res.epochs[key] = r.LeaderEpoch
		res.n++
	})
	return res
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func (w *Workload) commonOpts(process int64, role string, h *hook) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(w.cfg.Brokers...),
		kgo.ClientID(fmt.Sprintf("garantia-%s-%d", role, process)),
		// Fail fast on a dead node: the op is recorded and the next one
		// tries again, rather than one op hanging for kgo's defaults.
		kgo.DialTimeout(time.Second),
		kgo.RequestTimeoutOverhead(2 * time.Second),
		kgo.RetryTimeout(w.cfg.OpTimeout),
		// Refresh metadata quickly after a failure (a restarted node, a
		// new leader); the default 5s would stall every op meanwhile.
		kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.WithHooks(h),
	}
}

func (w *Workload) producerOpts(process int64, h *hook) []kgo.Opt {
	produceTimeout := w.cfg.OpTimeout * 3 / 5
	if produceTimeout < 100*time.Millisecond {
		produceTimeout = 100 * time.Millisecond
	}
	return append(w.commonOpts(process, "producer", h),
		kgo.RequiredAcks(w.acks),
		// Idempotent writes need InitProducerID and acks=all; the test
		// wants plain produce semantics for every acks setting.
		kgo.DisableIdempotentWrite(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// One produce request per record: a retry of a request whose
		// reply was lost could append the value twice, and the history
		// would blame the broker for a duplicate the client made.
		kgo.RecordRetries(0),
		kgo.RecordDeliveryTimeout(w.cfg.OpTimeout),
		kgo.ProduceRequestTimeout(produceTimeout),
		kgo.ProducerLinger(0),
	)
}

func (w *Workload) consumerOpts(process int64, h *hook, offsets map[int32]kgo.Offset) []kgo.Opt {
	return append(w.commonOpts(process, "consumer", h),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.cfg.Topic: offsets}),
		// Short long-polls: a poll is bounded by PollTimeout anyway.
		kgo.FetchMaxWait(250*time.Millisecond),
	)
}

// hook counts the produce requests a client wrote (any bytes reaching a
// connection count: the broker may have read them) and remembers the last
// broker a produce or fetch went to, for the history's node field.
type hook struct {
	names  map[int32]string
	writes atomic.Int64
	node   atomic.Int32 // broker id + 1; 0 for none
	// connErr is the last connection error of a produce request: kgo
	// reports a request lost on the wire only as ErrRecordRetries, and
	// the history's error should say what happened.
	connErr atomic.Pointer[string]
	// commits and commitConnErr are the same for OffsetCommit requests.
	commits       atomic.Int64
	commitConnErr atomic.Pointer[string]
}

var (
	_ kgo.HookBrokerWrite    = (*hook)(nil)
	_ kgo.HookBrokerRead     = (*hook)(nil)
	_ kgo.HookFetchBatchRead = (*hook)(nil)
)

const (
	keyProduce = 0 // Kafka API key of Produce
	keyFetch   = 1 // Kafka API key of Fetch
)

func (h *hook) OnBrokerWrite(meta kgo.BrokerMetadata, key int16, bytesWritten int, _, _ time.Duration, err error) {
	if key == keyOffsetCommit {
		if bytesWritten > 0 {
			h.commits.Add(1)
			h.node.Store(meta.NodeID + 1)
		}
		if err != nil {
			msg := "writing the offset commit: " + err.Error()
			h.commitConnErr.Store(&msg)
		}
		return
	}
	if key != keyProduce {
		return
	}
	if bytesWritten > 0 {
		h.writes.Add(1)
		h.node.Store(meta.NodeID + 1)
	}
	if err != nil {
		msg := "writing the produce request: " + err.Error()
		h.connErr.Store(&msg)
	}
}

func (h *hook) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	switch {
	case key == keyProduce && err != nil:
		msg := "reading the produce response: " + err.Error()
		h.connErr.Store(&msg)
	case key == keyOffsetCommit && err != nil:
		msg := "reading the offset commit response: " + err.Error()
		h.commitConnErr.Store(&msg)
	}
}

func (h *hook) OnFetchBatchRead(meta kgo.BrokerMetadata, _ string, _ int32, _ kgo.FetchBatchMetrics) {
	h.node.Store(meta.NodeID + 1)
}

func (h *hook) reset() {
	h.writes.Store(0)
	h.node.Store(0)
	h.connErr.Store(nil)
}

// describe is err's text, with the connection error behind it (kgo
// reports a lost request as retries exhausted or a record timeout).
func (h *hook) describe(err error) string {
	if p := h.connErr.Load(); p != nil && !strings.Contains(err.Error(), *p) {
		return err.Error() + " (" + *p + ")"
	}
	return err.Error()
}

func (h *hook) snapshot() (writes int, node string) {
	return int(h.writes.Load()), h.lastNode()
}

func (h *hook) lastNode() string {
	if h == nil {
		return ""
	}
	id := h.node.Load()
	if id == 0 {
		return ""
	}
	id--
	if n, ok := h.names[id]; ok {
		return n
	}
	return "broker-" + strconv.Itoa(int(id))
}

// pacer spaces operations to a total rate over all workers.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

// pacerBurst is how far the schedule may fall behind before it forgets:
// after a stall (a paused node) the workers do not fire a burst of every
// op they missed.
const pacerBurst = 50 * time.Millisecond

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the next slot of the schedule or ctx is done.
func (p *pacer) wait(ctx context.Context) error {
	if p == nil {
		return ctx.Err()
	}
	p.mu.Lock()
	now := time.Now()
	if floor := now.Add(-pacerBurst); p.next.Before(floor) {
		p.next = floor
	}
	at := p.next
	p.next = p.next.Add(p.interval)
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

package synth

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/garantia/garantia/histories"
)

// Generate simulates cfg and returns the whole history.
func Generate(cfg Config) ([]histories.Op, error) {
	ops := make([]histories.Op, 0, cfg.Ops+cfg.Ops/50+64)
	err := Stream(cfg, func(op histories.Op) error {
		ops = append(ops, op)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ops, nil
}

// Stream simulates cfg and hands each event to emit, in history order, as
// it happens, so that a large history need not be held in memory. It stops
// at the first error emit returns and returns it. Emitted ops share no
// memory with each other or with the simulator.
func Stream(cfg Config, emit func(histories.Op) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s := newSim(cfg, emit)
	if err := s.runMain(); err != nil {
		return err
	}
	return s.runDrain()
}

// Simulated latencies in nanoseconds. They only shape the interleaving; the
// numbers are in the range of a broker on a LAN.
const (
	thinkMax_ns      = 1_000_000   // pause between a thread's operations
	applyMin_ns      = 100_000     // invoke to effect, fixed part
	applyMean_ns     = 1_000_000   // invoke to effect, exponential part
	replyMin_ns      = 50_000      // effect to completion, fixed part
	replyMean_ns     = 300_000     // effect to completion, exponential part
	timeoutMin_ns    = 50_000_000  // an info op completes after a timeout
	timeoutMax_ns    = 200_000_000 // of this many nanoseconds at most
	lateApplyMax_ns  = 100_000_000 // an info send may take effect this long after it timed out
	nemesisReply_ns  = 5_000_000   // nemesis action to its completion
	staleCommitSpanN = 2           // a stale group commit lags up to this many MaxPollRecords
)

// Error strings of failed and indeterminate operations, as a Kafka client
// would report them.
var (
	failErrors = []string{"NOT_LEADER_FOR_PARTITION", "NOT_ENOUGH_REPLICAS", "UNKNOWN_TOPIC_OR_PARTITION"}
	infoErrors = []string{"request timed out", "connection reset by peer"}
)

type evKind uint8

const (
	evInvoke evKind = iota
	evApply
	evComplete
	evNemesis
	evNemesisDone
)

// event is a scheduled step of the simulation. Ties in time are broken by
// seq, the order of scheduling, so the run is deterministic.
type event struct {
	at   int64
	seq  uint64
	kind evKind
	th   *thread
	op   *simOp
}

// eventHeap is a binary min-heap on (at, seq); written out rather than via
// container/heap to avoid boxing an interface per event.
type eventHeap []event

func (h eventHeap) less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].seq < h[j].seq)
}

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && a.less(l, m) {
			m = l
		}
		if r < n && a.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

// thread is one client worker; its process id changes after each info.
type thread struct {
	process  int64
	assigned []int   // sorted key indices
	pos      []int64 // next offset to read, per key; meaningful if assigned
	drainKey int     // the key this drain thread reads, or -1
	done     bool
	// commit, when set, is what the thread commits next: the positions its
	// last ok poll left (CommitRate).
	commit []histories.KeyOffset
}

// simOp is an operation in flight.
type simOp struct {
	th      *thread
	process int64
	f       string
	outcome histories.Type
	sends   []histories.Mop // send: key and value; Offset set when applied
	keys    []int           // assign: the new assignment
	polls   map[string][]histories.Record
	offsets []histories.KeyOffset // commit: what it commits; committed: what it read
	errMsg  string
}

type nemesisFault struct {
	start, stop string
	value       func(*rand.Rand) string
}

var nemesisFaults = []nemesisFault{
	{"start-partition", "stop-partition", func(r *rand.Rand) string {
		return []string{`"majority"`, `"majorities-ring"`, `"one"`}[r.IntN(3)]
	}},
	{"kill", "start", nodeList},
	{"pause", "resume", nodeList},
}

func nodeList(r *rand.Rand) string {
	return fmt.Sprintf(`["n%d"]`, 1+r.IntN(5))
}

type sim struct {
	cfg  Config
	rng  *rand.Rand
	emit func(histories.Op) error

	heap      eventHeap
	seq       uint64
	index     int64
	now       int64
	lastOut   int64 // time of the last event emitted
	keyNames  []string
	logs      [][]int64 // per key: the value at each offset
	committed []int64   // per key: the consumer group's committed offset
	hasCommit []bool
	nextValue int64

	budget      int // main-phase operations still to invoke
	mainOpen    bool
	maxProcess  int64
	activeFault int // index into nemesisFaults, or -1
	faultValue  string
	nemF        string // the nemesis action in flight
	nemValue    string
}

func newSim(cfg Config, emit func(histories.Op) error) *sim {
	s := &sim{
		cfg:         cfg,
		rng:         rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed_0f_5e_9_7e57)),
		emit:        emit,
		keyNames:    make([]string, cfg.Keys),
		logs:        make([][]int64, cfg.Keys),
		committed:   make([]int64, cfg.Keys),
		hasCommit:   make([]bool, cfg.Keys),
		nextValue:   1,
		budget:      (cfg.Ops + 1) / 2,
		mainOpen:    true,
		maxProcess:  -1,
		activeFault: -1,
	}
	for k := range s.keyNames {
		s.keyNames[k] = strconv.Itoa(k)
	}
	return s
}

func (s *sim) schedule(at int64, kind evKind, th *thread, op *simOp) {
	s.seq++
	s.heap.push(event{at: at, seq: s.seq, kind: kind, th: th, op: op})
}

// expNs is a latency: min plus an exponential part with the given mean.
func (s *sim) expNs(min, mean int64) int64 {
	return min + int64(s.rng.ExpFloat64()*float64(mean))
}

// runMain simulates the main phase, until every operation of the budget
// has completed and every late info send has landed.
func (s *sim) runMain() error {
	for i := 0; i < s.cfg.Processes; i++ {
		th := &thread{process: int64(i), pos: make([]int64, s.cfg.Keys), drainKey: -1}
		s.noteProcess(th.process)
		s.schedule(s.rng.Int64N(thinkMax_ns), evInvoke, th, nil)
	}
	if s.cfg.NemesisInterval > 0 && s.budget > 0 {
		s.schedule(s.expNs(0, int64(s.cfg.NemesisInterval)), evNemesis, nil, nil)
	}
	return s.loop()
}

// runDrain is Jepsen's final-polls: once everything in flight has landed,
// one fresh process per non-empty key reads it from offset 0 to the end.
// The drain markers around it (histories.FDrain) say that it read every
// key to its end, which makes an acknowledged value no poll read a
// durability failure rather than lag.
func (s *sim) runDrain() error {
	if err := s.out(histories.Op{Process: histories.NemesisProcess, Type: histories.Invoke, F: histories.FDrain}); err != nil {
		return err
	}
	if err := s.startDrain(); err != nil {
		return err
	}
	return s.out(histories.Op{Process: histories.NemesisProcess, Type: histories.OK, F: histories.FDrain})
}

func (s *sim) startDrain() error {
	for k := range s.logs {
		if len(s.logs[k]) == 0 {
			continue
		}
		th := &thread{process: s.maxProcess + 1, pos: make([]int64, s.cfg.Keys), drainKey: k}
		s.noteProcess(th.process)
		s.schedule(s.lastOut+s.rng.Int64N(thinkMax_ns), evInvoke, th, nil)
	}
	return s.loop()
}

func (s *sim) noteProcess(p int64) {
	if p > s.maxProcess {
		s.maxProcess = p
	}
}

func (s *sim) loop() error {
	for len(s.heap) > 0 {
		e := s.heap.pop()
		s.now = e.at
		var err error
		switch e.kind {
		case evInvoke:
			err = s.invoke(e.th)
		case evApply:
			s.apply(e.op)
		case evComplete:
			err = s.complete(e.op)
		case evNemesis:
			err = s.nemesis()
		case evNemesisDone:
			err = s.nemesisDone()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *sim) out(op histories.Op) error {
	op.Index = s.index
	op.Time = s.now
	s.lastOut = s.now
	s.index++
	return s.emit(op)
}

// invoke starts th's next operation, or retires th when there is none.
func (s *sim) invoke(th *thread) error {
	op := &simOp{th: th, process: th.process, outcome: histories.OK}
	if th.drainKey >= 0 {
		// Drain threads never fail: they stand for Jepsen's final polls,
		// which retry until they have caught up.
		if th.assigned == nil {
			op.f = histories.FAssign
			op.keys = []int{th.drainKey}
		} else {
			op.f = histories.FPoll
		}
	} else {
		if s.budget == 0 {
			th.done = true
			s.mainOpen = false
			return nil
		}
		s.budget--
		r := s.rng.Float64()
		switch {
		case th.commit != nil:
			op.f = histories.FCommit
			op.offsets, th.commit = th.commit, nil
		case s.cfg.FetchRate > 0 && s.rng.Float64() < s.cfg.FetchRate:
			op.f = histories.FCommitted
		case len(th.assigned) == 0 || (r >= s.cfg.SendRate && r < s.cfg.SendRate+s.cfg.AssignRate):
			op.f = histories.FAssign
			op.keys = s.randomAssignment()
		case r < s.cfg.SendRate:
			op.f = histories.FSend
			n := 1 + s.rng.IntN(s.cfg.MopsPerSend)
			op.sends = make([]histories.Mop, n)
			for i := range op.sends {
				op.sends[i] = histories.Mop{F: histories.MopSend, Key: s.keyNames[s.rng.IntN(s.cfg.Keys)], Value: s.nextValue, Offset: histories.OffsetPending}
				s.nextValue++
			}
		default:
			op.f = histories.FPoll
		}
		r = s.rng.Float64()
		switch {
		case r < s.cfg.InfoRate:
			op.outcome = histories.Info
			op.errMsg = infoErrors[s.rng.IntN(len(infoErrors))]
		case r < s.cfg.InfoRate+s.cfg.FailRate:
			op.outcome = histories.Fail
			op.errMsg = failErrors[s.rng.IntN(len(failErrors))]
		}
	}

	inv := histories.Op{Process: op.process, Type: histories.Invoke, F: op.f, Value: s.invokeValue(op)}
	if op.f == histories.FCommit || op.f == histories.FCommitted {
		inv.Group = Group
	}
	if err := s.out(inv); err != nil {
		return err
	}

	switch op.outcome {
	case histories.OK:
		applyAt := s.now + s.expNs(applyMin_ns, applyMean_ns)
		s.schedule(applyAt, evApply, th, op)
		s.schedule(applyAt+s.expNs(replyMin_ns, replyMean_ns), evComplete, th, op)
	case histories.Fail:
		s.schedule(s.now+s.expNs(applyMin_ns, applyMean_ns), evComplete, th, op)
	case histories.Info:
		doneAt := s.now + timeoutMin_ns + s.rng.Int64N(timeoutMax_ns-timeoutMin_ns)
		// An indeterminate send or commit may still land, even after its
		// client gave up; other indeterminate ops die with their retired
		// process.
		if (op.f == histories.FSend || op.f == histories.FCommit) && s.rng.IntN(2) == 0 {
			s.schedule(s.now+1+s.rng.Int64N(doneAt+lateApplyMax_ns-s.now), evApply, th, op)
		}
		s.schedule(doneAt, evComplete, th, op)
	}
	return nil
}

// randomAssignment picks 1..max(1, Keys/2) distinct keys, sorted.
func (s *sim) randomAssignment() []int {
	n := 1 + s.rng.IntN(max(1, s.cfg.Keys/2))
	keys := s.rng.Perm(s.cfg.Keys)[:n]
	slices.Sort(keys)
	return keys
}

// apply is the moment an operation takes effect on the log.
func (s *sim) apply(op *simOp) {
	th := op.th
	switch op.f {
	case histories.FSend:
		for i := range op.sends {
			k, _ := strconv.Atoi(op.sends[i].Key)
			op.sends[i].Offset = int64(len(s.logs[k]))
			s.logs[k] = append(s.logs[k], op.sends[i].Value)
		}
	case histories.FAssign:
		// Kafka's assign: a partition that stays assigned keeps its
		// position; a new one resumes from the group's committed offset
		// (sometimes a stale one), or from 0 when nothing was committed.
		if th.drainKey >= 0 {
			th.assigned = op.keys
			th.pos[th.drainKey] = 0 // seek to beginning
			return
		}
		for _, k := range op.keys {
			if slices.Contains(th.assigned, k) {
				continue
			}
			start := int64(0)
			if s.hasCommit[k] {
				start = s.committed[k]
				if s.rng.IntN(10) == 0 {
					start -= s.rng.Int64N(int64(staleCommitSpanN*s.cfg.MaxPollRecords) + 1)
					start = max(start, 0)
				}
			}
			th.pos[k] = start
		}
		th.assigned = op.keys
	case histories.FPoll:
		op.polls = make(map[string][]histories.Record)
		budget := s.cfg.MaxPollRecords
		n := len(th.assigned)
		first := 0
		if n > 0 {
			first = s.rng.IntN(n) // Kafka rotates the partitions a fetch serves first
		}
		for i := 0; i < n && budget > 0; i++ {
			k := th.assigned[(first+i)%n]
			from := th.pos[k]
			to := min(int64(len(s.logs[k])), from+int64(budget))
			if to <= from {
				continue
			}
			recs := make([]histories.Record, 0, to-from)
			for o := from; o < to; o++ {
				recs = append(recs, histories.Record{Offset: o, Value: s.logs[k][o]})
			}
			op.polls[s.keyNames[k]] = recs
			budget -= int(to - from)
			th.pos[k] = to
			if s.cfg.CommitRate == 0 && s.cfg.FetchRate == 0 {
				// commitSync before the poll returns, unrecorded.
				s.committed[k] = to
				s.hasCommit[k] = true
			}
		}
	case histories.FCommit:
		for _, o := range op.offsets {
			k, _ := strconv.Atoi(o.Key)
			s.committed[k] = o.Offset
			s.hasCommit[k] = true
		}
	case histories.FCommitted:
		op.offsets = make([]histories.KeyOffset, s.cfg.Keys)
		for k := range op.offsets {
			op.offsets[k] = histories.KeyOffset{Key: s.keyNames[k], Offset: histories.OffsetUnknown}
			if s.hasCommit[k] {
				op.offsets[k].Offset = s.committed[k]
			}
		}
	}
}

func (s *sim) complete(op *simOp) error {
	th := op.th
	c := histories.Op{Process: op.process, Type: op.outcome, F: op.f, Error: op.errMsg}
	if op.outcome == histories.OK {
		switch op.f {
		case histories.FSend:
			mops := slices.Clone(op.sends)
			if s.cfg.Acks0 {
				for i := range mops {
					mops[i].Offset = histories.OffsetUnknown
				}
			}
			c.Value.Mops = mops
		case histories.FPoll:
			c.Value.Mops = []histories.Mop{{F: histories.MopPoll, Polls: op.polls}}
		case histories.FAssign:
			c.Value.Keys = s.names(op.keys)
		case histories.FCommit, histories.FCommitted:
			c.Value.Offsets = slices.Clone(op.offsets)
		}
	} else {
		c.Value = s.invokeValue(op)
	}
	if op.f == histories.FCommit || op.f == histories.FCommitted {
		c.Group = Group
	}
	if err := s.out(c); err != nil {
		return err
	}
	if op.f == histories.FPoll && op.outcome == histories.OK && s.cfg.CommitRate > 0 && len(op.polls) > 0 &&
		th.drainKey < 0 && s.rng.Float64() < s.cfg.CommitRate {
		for _, k := range sortedKeys(op.polls) {
			recs := op.polls[k]
			th.commit = append(th.commit, histories.KeyOffset{Key: k, Offset: recs[len(recs)-1].Offset + 1})
		}
	}
	if op.outcome == histories.Info {
		// Jepsen's rule: the indeterminate op may still take effect, so its
		// process is retired and the thread carries on as a fresh one, with
		// a fresh consumer that has nothing assigned.
		th.process += int64(s.cfg.Processes)
		s.noteProcess(th.process)
		th.assigned = nil
		th.commit = nil
	}
	if th.drainKey >= 0 && th.assigned != nil && th.pos[th.drainKey] >= int64(len(s.logs[th.drainKey])) {
		th.done = true
		return nil
	}
	s.schedule(s.now+s.rng.Int64N(thinkMax_ns), evInvoke, th, nil)
	return nil
}

// invokeValue is an op's value as invoked; failed and indeterminate
// completions repeat it, as Jepsen's clients do.
func (s *sim) invokeValue(op *simOp) histories.Value {
	switch op.f {
	case histories.FSend:
		mops := make([]histories.Mop, len(op.sends))
		for i, m := range op.sends {
			mops[i] = histories.Mop{F: histories.MopSend, Key: m.Key, Value: m.Value, Offset: histories.OffsetPending}
		}
		return histories.Value{Mops: mops}
	case histories.FPoll:
		return histories.Value{Mops: []histories.Mop{{F: histories.MopPoll}}}
	case histories.FAssign:
		return histories.Value{Keys: s.names(op.keys)}
	case histories.FCommit:
		return histories.Value{Offsets: slices.Clone(op.offsets)}
	case histories.FCommitted:
		return histories.Value{Keys: slices.Clone(s.keyNames)}
	}
	return histories.Value{}
}

func (s *sim) names(keys []int) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = s.keyNames[k]
	}
	return out
}

// nemesis starts a fault or heals the active one, logging it as Jepsen
// does: an info "invocation" and an info completion, process -1. Once the
// main phase is over it only heals.
func (s *sim) nemesis() error {
	var f, value string
	if s.activeFault >= 0 {
		f, value = nemesisFaults[s.activeFault].stop, s.faultValue
		if f == "stop-partition" {
			value = `"healed"`
		}
		s.activeFault = -1
	} else {
		if !s.mainOpen {
			return nil
		}
		s.activeFault = s.rng.IntN(len(nemesisFaults))
		f, value = nemesisFaults[s.activeFault].start, nemesisFaults[s.activeFault].value(s.rng)
		s.faultValue = value
	}
	if err := s.out(histories.Op{Process: histories.NemesisProcess, Type: histories.Info, F: f}); err != nil {
		return err
	}
	s.nemF, s.nemValue = f, value
	s.schedule(s.now+nemesisReply_ns, evNemesisDone, nil, nil)
	return nil
}

// nemesisDone logs the completion of the nemesis action in flight and
// schedules the next one.
func (s *sim) nemesisDone() error {
	if err := s.out(histories.Op{Process: histories.NemesisProcess, Type: histories.Info, F: s.nemF, Value: histories.Value{Raw: []byte(s.nemValue)}}); err != nil {
		return err
	}
	next := s.now + s.expNs(0, int64(s.cfg.NemesisInterval))
	if !s.mainOpen {
		next = s.now // heal right away: the drain runs on a healed cluster
	}
	s.schedule(next, evNemesis, nil, nil)
	return nil
}

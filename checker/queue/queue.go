package queue

import (
	"sort"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

// Anomaly names, as in Jepsen's Kafka workload.
const (
	LostWrite           = "lost-write"
	Unseen              = "unseen"
	Duplicate           = "duplicate"
	InconsistentOffsets = "inconsistent-offsets"
	PollSkip            = "poll-skip"
	NonmonotonicPoll    = "nonmonotonic-poll"
	NonmonotonicSend    = "nonmonotonic-send"
	IntPollSkip         = "int-poll-skip"
	IntNonmonotonicPoll = "int-nonmonotonic-poll"
	IntSendSkip         = "int-send-skip"
	IntNonmonotonicSend = "int-nonmonotonic-send"
)

// Descriptions holds one line per anomaly name, for `garantia check --help`.
var Descriptions = map[string]string{
	LostWrite:           "an acknowledged (or proven committed) message was never read, though a poll read its partition past it",
	Unseen:              "an acknowledged message was never read and nothing after it was; after the final drain, a durability failure",
	Duplicate:           "one message appears at two or more offsets of its partition",
	InconsistentOffsets: "two or more different messages were reported at one offset of a partition",
	PollSkip:            "a consumer's next poll of a partition skipped over messages that exist",
	NonmonotonicPoll:    "a consumer's next poll of a partition went back to or before where its previous poll ended",
	NonmonotonicSend:    "a producer's send to a partition landed at or before its previous send there",
	IntPollSkip:         "within one poll, consecutive messages of a partition skipped over messages that exist",
	IntNonmonotonicPoll: "within one poll, a partition's messages went backwards or repeated",
	IntSendSkip:         "within one op, consecutive sends to a partition were not adjacent (reported, allowed)",
	IntNonmonotonicSend: "within one op, a later send to a partition landed at or before an earlier one",
}

// DefaultMaxExamples is how many examples per anomaly Check keeps when
// Options.MaxExamples is 0.
const DefaultMaxExamples = 8

// skippedMax bounds Example.Skipped: a skip of a million records must not
// become a million-element example.
const skippedMax = 16

// Options configure Check.
type Options struct {
	// MaxExamples bounds the examples kept per anomaly; 0 means the default
	// 8, <0 means all.
	MaxExamples int
}

// Result is the queue section of results.json.
type Result struct {
	// Valid is invalid when any anomaly not allowed was found, unknown
	// when nothing was acknowledged or read, valid otherwise.
	Valid verdict.Verdict `json:"valid"`
	// AnomalyTypes names the anomalies found, sorted.
	AnomalyTypes []string `json:"anomaly-types"`
	// AllowedTypes names the anomalies found that do not make the result
	// invalid (int-send-skip; poll-skip and nonmonotonic-poll when the
	// history subscribes), sorted. A subset of AnomalyTypes.
	AllowedTypes []string `json:"allowed-anomaly-types"`
	// Anomalies holds, per anomaly name found, its count and examples.
	Anomalies map[string]*Anomaly `json:"anomalies"`
	// Counts are per-value totals for the matrix and reports.
	Counts Counts `json:"counts"`
}

// Anomaly is every case of one anomaly type: how many, and the first few.
type Anomaly struct {
	// Count is the number of cases, examples kept or not.
	Count int `json:"count"`
	// Examples are the first cases in history (or key, then offset)
	// order, at most Options.MaxExamples of them.
	Examples []Example `json:"examples"`
}

// Example is one case of an anomaly. Which fields are set depends on the
// anomaly; Explanation always says it in one line.
type Example struct {
	// Key is the partition.
	Key string `json:"key"`
	// Value is the message the case is about (lost-write, unseen,
	// duplicate).
	Value *int64 `json:"value,omitempty"`
	// Values are the messages involved: for inconsistent-offsets, those
	// at the offset (ascending); for skips and nonmonotonic cases, the
	// earlier and the later message.
	Values []int64 `json:"values,omitempty"`
	// Offset is where Value was acknowledged or seen (lost-write, unseen)
	// or the contested offset (inconsistent-offsets).
	Offset *int64 `json:"offset,omitempty"`
	// Offsets are every offset of a duplicate (ascending), or the
	// earlier and later offset of a skip or nonmonotonic case.
	Offsets []int64 `json:"offsets,omitempty"`
	// Delta is how many log positions a skip or nonmonotonic case moved:
	// 1 would have been the next record.
	Delta *int64 `json:"delta,omitempty"`
	// Skipped are the first messages a skip jumped over (at most 16;
	// Delta-1 were skipped in all).
	Skipped []int64 `json:"skipped,omitempty"`
	// MaxReadOffset is, for lost-write and unseen, the highest offset of
	// the key that any ok poll read (absent when none was read).
	MaxReadOffset *int64 `json:"max-read-offset,omitempty"`
	// Explanation says what happened, in one line.
	Explanation string `json:"explanation"`
	// Ops are the ops that show it: lost-write [writer, poll that read
	// the highest offset]; unseen [writer]; duplicate and
	// inconsistent-offsets the first op to show each offset or value;
	// skips and nonmonotonic cases [earlier op, later op], or [op] for
	// the int-* kinds.
	Ops []OpRef `json:"ops"`
}

// OpRef points at one event of the history: the completion of an op, or
// its invocation when it never completed.
type OpRef struct {
	Index   int64          `json:"index"`
	Process int64          `json:"process"`
	Time    int64          `json:"time"`
	Type    histories.Type `json:"type"`
	F       string         `json:"f"`
}

// Counts are totals per sent value (values are unique) and per read value.
type Counts struct {
	// Sent is the number of send micro-operations: Acknowledged + Failed
	// + Indeterminate.
	Sent int `json:"sent"`
	// Acknowledged sends completed ok (acks=0 ones included).
	Acknowledged int `json:"acknowledged"`
	// Failed sends definitely did not happen.
	Failed int `json:"failed"`
	// Indeterminate sends completed info or never completed.
	Indeterminate int `json:"indeterminate"`
	// IndeterminateRead are the indeterminate sends an ok poll read.
	IndeterminateRead int `json:"indeterminate-read"`
	// Read is the number of distinct (key, value) pairs ok polls returned.
	Read int `json:"read"`
	// Lost, Unseen and Duplicated are the counts of lost-write, unseen
	// and duplicate.
	Lost       int `json:"lost"`
	Unseen     int `json:"unseen"`
	Duplicated int `json:"duplicated"`
}

// Check analyses a history. It never fails: events it cannot use
// (nemesis ops, unknown types, completions without invocation) are skipped
// or taken as they are, as doc.go describes. It reads ops and does not keep
// or modify them.
func Check(ops []histories.Op, opts Options) *Result {
	max := opts.MaxExamples
	if max == 0 {
		max = DefaultMaxExamples
	}
	c := &analysis{
		ops:    ops,
		keyIDs: make(map[string]int32),
		col:    collector{max: max, m: make(map[string]*Anomaly)},
	}
	c.pair()
	c.commitInfo()
	for _, id := range c.keyOrder() {
		ks := c.keys[id]
		ks.build()
		c.logAnomalies(ks)
		c.durability(ks)
	}
	c.order()
	return c.result()
}

func (c *analysis) result() *Result {
	r := &Result{
		AnomalyTypes: []string{},
		AllowedTypes: []string{},
		Anomalies:    c.col.m,
		Counts:       c.counts,
	}
	bad := false
	for name := range c.col.m {
		r.AnomalyTypes = append(r.AnomalyTypes, name)
		if c.allowed(name) {
			r.AllowedTypes = append(r.AllowedTypes, name)
		} else {
			bad = true
		}
	}
	sort.Strings(r.AnomalyTypes)
	sort.Strings(r.AllowedTypes)
	if a := c.col.m[LostWrite]; a != nil {
		r.Counts.Lost = a.Count
	}
	if a := c.col.m[Unseen]; a != nil {
		r.Counts.Unseen = a.Count
	}
	if a := c.col.m[Duplicate]; a != nil {
		r.Counts.Duplicated = a.Count
	}
	switch {
	case bad:
		r.Valid = verdict.Invalid
	case r.Counts.Acknowledged == 0 && r.Counts.Read == 0:
		// Nothing was acknowledged and nothing read: the history proves
		// nothing either way (a cluster that never came up).
		r.Valid = verdict.Unknown
	default:
		r.Valid = verdict.Valid
	}
	return r
}

// allowed mirrors Jepsen's allowed-error-types: anomalies that are
// interesting but within Kafka's contract.
func (c *analysis) allowed(name string) bool {
	switch name {
	case IntSendSkip:
		// Other producers' records interleave with an op's sends.
		return true
	case PollSkip, NonmonotonicPoll:
		// A subscribed consumer may be rebalanced anywhere between polls.
		return c.subscribed
	}
	return false
}

// collector counts every case and keeps the first max examples.
type collector struct {
	max int
	m   map[string]*Anomaly
}

// hit counts one case of name and says whether to build its example.
func (c *collector) hit(name string) bool {
	a := c.m[name]
	if a == nil {
		a = &Anomaly{Examples: []Example{}}
		c.m[name] = a
	}
	a.Count++
	return c.max < 0 || len(a.Examples) < c.max
}

func (c *collector) add(name string, ex Example) {
	a := c.m[name]
	a.Examples = append(a.Examples, ex)
}

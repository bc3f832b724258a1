package queue

import (
	"fmt"
	"sort"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/anomaly"
)

// The number of examples kept per anomaly (Options.MaxExamples).
const (
	// DefaultMaxExamples is what Options.MaxExamples 0 means.
	DefaultMaxExamples = 8
	// AllExamples keeps every example.
	AllExamples = -1
	// NoExamples keeps none: counts only.
	NoExamples = -2
)

// skippedMax bounds Example.Skipped: a skip of a million records must not
// become a million-element example.
const skippedMax = 16

// Options configure Check.
type Options struct {
	// MaxExamples bounds the examples kept per anomaly: 0 means
	// DefaultMaxExamples, AllExamples all of them, NoExamples none.
	MaxExamples int
	// AssumeDrained judges unseen values as though the history recorded a
	// completed final drain before its end: for histories from tools that
	// record no drain markers but end by reading every partition to its
	// end (Jepsen's final polls).
	AssumeDrained bool
}

// Result is the queue section of results.json.
type Result struct {
	// Valid is invalid when a case of some anomaly is neither allowed nor
	// inconclusive; else unknown when some case is inconclusive, or when
	// nothing was acknowledged or read; else valid.
	Valid verdict.Verdict `json:"valid"`
	// AnomalyTypes names the anomalies found, sorted.
	AnomalyTypes []string `json:"anomaly-types"`
	// AllowedTypes names the anomalies found all of whose cases are
	// allowed (int-send-skip; poll-skip and nonmonotonic-poll of subscribed
	// consumers), sorted. A subset of AnomalyTypes.
	AllowedTypes []string `json:"allowed-anomaly-types"`
	// InconclusiveTypes names the anomalies found all of whose cases prove
	// nothing either way (unseen values the final drain does not cover),
	// sorted. A subset of AnomalyTypes.
	InconclusiveTypes []string `json:"inconclusive-anomaly-types"`
	// Anomalies holds, per anomaly name found, its count and examples.
	Anomalies map[string]*Anomaly `json:"anomalies"`
	// Counts are per-value totals for the matrix and reports.
	Counts Counts `json:"counts"`
	// Drain says whether the history records its final drain, which is
	// what makes an unseen value a failure rather than lag.
	Drain Drain `json:"final-drain"`
}

// Anomaly is every case of one anomaly type: how many, and the first few.
type Anomaly struct {
	// Count is the number of cases, examples kept or not.
	Count int `json:"count"`
	// Allowed counts the cases within Kafka's contract (see
	// Result.AllowedTypes).
	Allowed int `json:"allowed,omitempty"`
	// Inconclusive counts the cases that prove nothing (see
	// Result.InconclusiveTypes).
	Inconclusive int `json:"inconclusive,omitempty"`
	// Examples are the first cases in history (or key, then offset)
	// order, at most Options.MaxExamples of them.
	Examples []Example `json:"examples"`
}

// Example is one case of an anomaly. Which fields are set depends on the
// anomaly; Explanation always says it in one line.
type Example struct {
	// Key is the partition.
	Key string `json:"key"`
	// Group is the consumer group, for lost-offset-commit (absent for
	// the empty group's name).
	Group string `json:"group,omitempty"`
	// Value is the message the case is about (lost-write, unseen,
	// duplicate, G1a, garbage-read).
	Value *histories.Val `json:"value,omitempty"`
	// Values are the messages involved: for inconsistent-offsets, those
	// at the offset; for skips and nonmonotonic cases, the earlier and the
	// later message.
	Values []histories.Val `json:"values,omitempty"`
	// Offset is where Value was acknowledged or seen (lost-write, unseen,
	// garbage-read) or the contested offset (inconsistent-offsets).
	Offset *int64 `json:"offset,omitempty"`
	// Offsets are the offsets of a duplicate (ascending, the first 16;
	// the explanation says how many), the earlier and later offset of a
	// skip or nonmonotonic case, or, for lost-offset-commit, the offset
	// known committed and the one fetched after it (-1: none).
	Offsets []int64 `json:"offsets,omitempty"`
	// Delta is how many log positions a skip or nonmonotonic case moved:
	// 1 would have been the next record.
	Delta *int64 `json:"delta,omitempty"`
	// Skipped are the first messages a skip jumped over (at most 16;
	// Delta-1 were skipped in all).
	Skipped []histories.Val `json:"skipped,omitempty"`
	// MaxReadOffset is, for lost-write and unseen, the offset of the
	// furthest position of the key that ok polls are known to have read up
	// to (absent when none was read).
	MaxReadOffset *int64 `json:"max-read-offset,omitempty"`
	// Allowed marks a case within Kafka's contract; Inconclusive one that
	// proves nothing without the final drain.
	Allowed      bool `json:"allowed,omitempty"`
	Inconclusive bool `json:"inconclusive,omitempty"`
	// Explanation says what happened, in one line.
	Explanation string `json:"explanation"`
	// Ops are the ops that show it: lost-write [writer, poll that read
	// the furthest]; unseen [writer]; duplicate and inconsistent-offsets
	// the first op to show each offset or value; G1a [failed writer,
	// reader]; garbage-read [reader]; skips and nonmonotonic cases
	// [earlier op, later op], or [op] for the int-* kinds;
	// lost-offset-commit [the acknowledged commit, or the committed that
	// saw its offset; the committed that contradicts it].
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
	// and duplicate; UnseenInconclusive are the unseen values the final
	// drain does not cover.
	Lost               int `json:"lost"`
	Unseen             int `json:"unseen"`
	UnseenInconclusive int `json:"unseen-inconclusive"`
	Duplicated         int `json:"duplicated"`
	// Commits are the totals of the consumer groups' committed offsets;
	// absent when the history commits and fetches none.
	Commits *CommitCounts `json:"commits,omitempty"`
}

// Drain is what the history says about its final drain, for results.json
// and the summary.
type Drain struct {
	// State is completed, not-recorded, unfinished, cut-short, or assumed
	// (Options.AssumeDrained with no completed drain recorded).
	State string `json:"state"`
	// Explanation says what that means for unseen values.
	Explanation string `json:"explanation"`
}

// Check analyses a history. It never fails: h is well formed by
// construction (see histories.History). It reads h and does not keep it.
func Check(h *histories.History, opts Options) *Result {
	max := opts.MaxExamples
	switch {
	case max == 0:
		max = DefaultMaxExamples
	case max == NoExamples:
		max = 0
	case max < 0:
		max = -1
	}
	a := newAnalysis(h, opts, max)
	a.gather()
	a.commitInfo()
	for _, id := range a.keyOrder() {
		ks := a.keys[id]
		ks.build()
		a.logAnomalies(ks)
		a.durability(ks)
	}
	a.order()
	a.commits()
	return a.result()
}

func (a *analysis) result() *Result {
	r := &Result{
		AnomalyTypes:      []string{},
		AllowedTypes:      []string{},
		InconclusiveTypes: []string{},
		Anomalies:         a.col.m,
		Counts:            a.counts,
		Drain:             a.drain,
	}
	bad, inconclusive := false, false
	for name, an := range a.col.m {
		r.AnomalyTypes = append(r.AnomalyTypes, name)
		switch {
		case an.Allowed == an.Count:
			r.AllowedTypes = append(r.AllowedTypes, name)
		case an.Inconclusive == an.Count:
			r.InconclusiveTypes = append(r.InconclusiveTypes, name)
		}
		if an.Count > an.Allowed+an.Inconclusive {
			bad = true
		}
		inconclusive = inconclusive || an.Inconclusive > 0
	}
	sort.Strings(r.AnomalyTypes)
	sort.Strings(r.AllowedTypes)
	sort.Strings(r.InconclusiveTypes)
	if an := a.col.m[anomaly.LostWrite]; an != nil {
		r.Counts.Lost = an.Count
	}
	if an := a.col.m[anomaly.Unseen]; an != nil {
		r.Counts.Unseen, r.Counts.UnseenInconclusive = an.Count, an.Inconclusive
	}
	if an := a.col.m[anomaly.Duplicate]; an != nil {
		r.Counts.Duplicated = an.Count
	}
	switch {
	case bad:
		r.Valid = verdict.Invalid
	case inconclusive:
		r.Valid = verdict.Unknown
	case r.Counts.Acknowledged == 0 && r.Counts.Read == 0 && (r.Counts.Commits == nil || r.Counts.Commits.Fetched == 0):
		// Nothing was acknowledged, read or fetched: the history proves
		// nothing either way (a cluster that never came up).
		r.Valid = verdict.Unknown
	default:
		r.Valid = verdict.Valid
	}
	return r
}

// drainInfo says what the history's drain markers mean for unseen values.
func drainInfo(h *histories.History, assumed bool) Drain {
	d := h.Drain
	switch {
	case d.State == histories.DrainCompleted && !assumed:
		return Drain{State: d.State.String(), Explanation: fmt.Sprintf(
			"the final drain (op #%d..#%d) read every partition to its end: an acknowledged value it did not read is a durability failure (values acknowledged after it began excepted)",
			h.Events[d.Start].Index, h.Events[d.End].Index)}
	case assumed:
		return Drain{State: "assumed", Explanation: "--assume-drained says the history ends by reading every partition to its end: an acknowledged value never read is a durability failure"}
	case d.State == histories.DrainCutShort:
		why := ""
		if d.Error != "" {
			why = fmt.Sprintf(" (%s)", d.Error)
		}
		return Drain{State: d.State.String(), Explanation: fmt.Sprintf(
			"the final drain (op #%d) was cut short%s: an acknowledged value no poll read may just not have been reached, so unseen is inconclusive",
			h.Events[d.Start].Index, why)}
	case d.State == histories.DrainUnfinished:
		return Drain{State: d.State.String(), Explanation: fmt.Sprintf(
			"the final drain (op #%d) never completed (the history ends inside it): an acknowledged value no poll read may just not have been reached, so unseen is inconclusive",
			h.Events[d.Start].Index)}
	}
	return Drain{State: d.State.String(), Explanation: "the history records no final drain (no drain markers): an acknowledged value no poll read may just not have been reached, so unseen is inconclusive; if the history ends by reading every partition to its end (as Jepsen's final polls do), check it with --assume-drained"}
}

// allowedPoll says whether a poll-skip or nonmonotonic-poll of a consumer
// is within Kafka's contract: a subscribed consumer may be rebalanced to
// any position between polls.
func allowedPoll(subscribed bool) bool { return subscribed }

// collector counts every case and keeps the first max examples.
type collector struct {
	max int // -1: all
	m   map[string]*Anomaly
}

// hit counts one case of name (allowed or inconclusive as said) and says
// whether to build its example.
func (c *collector) hit(name string, allowed, inconclusive bool) bool {
	an := c.m[name]
	if an == nil {
		an = &Anomaly{Examples: []Example{}}
		c.m[name] = an
	}
	an.Count++
	if allowed {
		an.Allowed++
	}
	if inconclusive {
		an.Inconclusive++
	}
	return c.max < 0 || len(an.Examples) < c.max
}

func (c *collector) add(name string, ex Example) {
	an := c.m[name]
	an.Examples = append(an.Examples, ex)
}

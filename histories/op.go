package histories

import (
	"fmt"
	"strconv"
)

// Type says where an event stands in an operation's life.
type Type string

// The four event types of Jepsen's history model.
const (
	// Invoke starts an operation.
	Invoke Type = "invoke"
	// OK completes an operation that definitely happened.
	OK Type = "ok"
	// Fail completes an operation that definitely did not happen.
	Fail Type = "fail"
	// Info completes an operation whose outcome is unknown: it may take
	// effect at any later time, so its process is retired.
	Info Type = "info"
)

// Valid reports whether t is one of the four known types.
func (t Type) Valid() bool {
	switch t {
	case Invoke, OK, Fail, Info:
		return true
	}
	return false
}

// Client operation functions (the op's f). Nemesis operations use their own
// names (start-partition, kill, ...) and carry a free-form [Value.Raw].
const (
	FSend      = "send"      // value: send micro-operations
	FPoll      = "poll"      // value: poll micro-operations
	FTxn       = "txn"       // value: a mix of send and poll micro-operations
	FAssign    = "assign"    // value: the keys the process now reads
	FSubscribe = "subscribe" // value: the keys the process subscribes to
	FCrash     = "crash"     // a client crashed; value unused
	// FCommit commits a consumer group's offsets (Kafka's OffsetCommit,
	// the consumer's commitSync): value the offsets, {"3": 89}, each the
	// offset of the next record the group is to read (the last record
	// consumed plus one, Kafka's convention). The op's Group names the
	// group. ok: the coordinator acknowledged every offset; fail: it
	// definitely wrote none; info: it may have written them, now or later.
	FCommit = "commit"
	// FCommitted fetches a group's committed offsets back (Kafka's
	// OffsetFetch, the consumer's committed()): invoked with the keys,
	// ["3", "5"], completed ok with what the coordinator answered,
	// {"3": 89, "5": null}, null meaning the group has no committed offset
	// there. The op's Group names the group.
	FCommitted = "committed"
)

// NemesisProcess is the process id of every nemesis event, and of the
// harness's own markers (FDrain).
const NemesisProcess = -1

// FDrain marks the final drain, the harness's read of every partition to
// its end after the last fault healed. Without a completed drain, a value
// that no poll read may simply not have been reached yet, so "unseen" is
// inconclusive. The harness records, as process NemesisProcess:
//
//	{"type":"invoke","f":"drain","value":null}   the drain begins
//	{"type":"ok","f":"drain","value":null}       every partition was read to
//	                                             the end offset it had when
//	                                             the drain began
//	{"type":"info","f":"drain","value":null,"error":"..."}
//	                                             the drain was cut short
//	                                             (interrupt, deadline)
const FDrain = "drain"

// Op is one event of a history: one line of history.jsonl.
type Op struct {
	// Index is the position in the history: 0, 1, 2, ...
	Index int64
	// Time is nanoseconds since the test started, on a monotonic clock.
	Time int64
	// Process is the logical client process, or NemesisProcess.
	Process int64
	// Type is invoke, ok, fail or info.
	Type Type
	// F is the operation's function: send, poll, txn, assign, ... or a
	// nemesis function.
	F string
	// Value is the operation's argument or result.
	Value Value
	// Node optionally names the node the client talked to.
	Node string
	// Error optionally says why an op failed or is indeterminate.
	Error string
	// RebalanceLog is Jepsen's :rebalance-log: the changes of assigned
	// partitions a subscribed consumer went through while the op ran. A
	// key named there may be read out of order within the op.
	RebalanceLog []Rebalance
	// Group optionally names the consumer group of the op: the group a
	// subscribe joins, a commit commits to and a committed fetches from.
	Group string
}

// Rebalance is one entry of an op's rebalance log, as Jepsen's consumer
// rebalance listener records them: {"type": "revoked", "keys": ["3"]}.
// (Jepsen's entries are maps; keys other than :type and :keys are not
// kept.)
type Rebalance struct {
	// Type is what happened to the keys: RebalanceAssigned,
	// RebalanceRevoked or RebalanceLost, or "" when the entry does not
	// say. Other words are kept as written.
	Type string
	// Keys are the keys the event moved: assigned to the consumer, revoked
	// from it or lost by it.
	Keys []string
}

// The rebalance events of a consumer group member, named as Jepsen's
// rebalance listener names them after Kafka's ConsumerRebalanceListener.
const (
	// RebalanceAssigned: the group gave the consumer these keys
	// (onPartitionsAssigned).
	RebalanceAssigned = "assigned"
	// RebalanceRevoked: the consumer gave these keys up in a rebalance
	// (onPartitionsRevoked), and may have committed their offsets first.
	RebalanceRevoked = "revoked"
	// RebalanceLost: the consumer lost these keys without giving them up
	// (onPartitionsLost): its session expired or it was fenced, and
	// another member may already read them.
	RebalanceLost = "lost"
)

// Value is an op's value. At most one of its fields is set: Mops for send,
// poll and txn; Keys for assign, subscribe and a committed's invocation;
// Offsets for commit and a committed's completion; Raw for anything else
// (nemesis descriptions), kept verbatim. All empty encodes as JSON null.
type Value struct {
	// Mops are the micro-operations of a send, poll or txn.
	Mops []Mop
	// Keys are the keys of an assign or subscribe, or those a committed
	// asks for. A non-nil empty slice encodes as [] and a nil one as null.
	Keys []string
	// Offsets are a commit's offsets, or what a committed read, in the
	// order written: a JSON object {"3": 89, "5": null}. A non-nil empty
	// slice encodes as {}.
	Offsets []KeyOffset
	// Raw is any other value as the JSON text it was written as.
	Raw []byte
}

// KeyOffset is one entry of a commit's or a committed's value: a key and
// a group's committed offset there, or OffsetUnknown (null) when a
// committed found none. A commit's offsets are never null.
type KeyOffset struct {
	Key    string
	Offset int64
}

// MopF names a micro-operation.
type MopF string

// The micro-operations of the queue workload.
const (
	MopSend MopF = "send"
	MopPoll MopF = "poll"
)

// Special values of [Mop.Offset] and [Record.Offset].
const (
	// OffsetPending marks a send in its invocation form, ["send", k, v]:
	// no reply has been recorded in this micro-op.
	OffsetPending int64 = -2
	// OffsetUnknown marks a completed send whose offset the broker did not
	// report, ["send", k, [null, v]], as with acks=0, or a record read
	// without its offset, [null, v] (Jepsen's histories allow both), or a
	// key a committed found no committed offset for.
	OffsetUnknown int64 = -1
)

// Mop is one micro-operation of a send, poll or txn.
//
//	send invoked:   ["send", "3", 1042]            Offset == OffsetPending
//	send completed: ["send", "3", [88, 1042]]      Offset == 88
//	send, acks=0:   ["send", "3", [null, 1042]]    Offset == OffsetUnknown
//	poll invoked:   ["poll"]                       Polls == nil
//	poll completed: ["poll", {"3": [[87, 1041]]}]  Polls != nil
type Mop struct {
	F MopF
	// Key is the key (topic partition) a send writes to.
	Key string
	// Value is the value a send writes, when it is an integer; values are
	// unique across a test.
	Value int64
	// Text is the value when it is not an integer (see [Record.Text]), ""
	// for an integer.
	Text string
	// Offset is where a send's value landed, or OffsetPending or
	// OffsetUnknown.
	Offset int64
	// Polls is what a completed poll read, per key, in the order read.
	Polls map[string][]Record
}

// Record is one message a poll read: the value at an offset of a key.
//
// Values are opaque: the checkers compare them only for equality. Garantia's
// workloads write integers, held in Value; Jepsen's own tests also use
// keywords, strings and nil, held in Text as their JSON text (a string
// "\"a\"", or null; an EDN keyword :a arrives as the string "a"). Two values
// are equal when both Value and Text are.
type Record struct {
	// Offset is where the value was read, or OffsetUnknown.
	Offset int64
	Value  int64
	// Text is the value when it is not an integer: its JSON text, a string
	// (in canonical escaping), null, true, false or a number that is not an
	// int64. "" for an integer.
	Text string
}

// IsClient reports whether the op was recorded by a workload client rather
// than the nemesis.
func (o *Op) IsClient() bool { return o.Process != NemesisProcess }

// Val is one message value, as the checkers report it: an integer, or the
// JSON text of any other value (see [Record]).
type Val struct {
	Int  int64
	Text string // "" for an integer
}

// MopVal is the value a send micro-op writes.
func MopVal(m *Mop) Val { return Val{Int: m.Value, Text: m.Text} }

// RecordVal is the value a record holds.
func RecordVal(r *Record) Val { return Val{Int: r.Value, Text: r.Text} }

// String is the value as a history writes it: 1042, "a", null.
func (v Val) String() string {
	if v.Text != "" {
		return v.Text
	}
	return strconv.FormatInt(v.Int, 10)
}

// MarshalJSON writes the value as the history has it.
func (v Val) MarshalJSON() ([]byte, error) {
	if v.Text != "" {
		return []byte(v.Text), nil
	}
	return strconv.AppendInt(nil, v.Int, 10), nil
}

// UnmarshalJSON reads a value as a history line's send or record holds it.
func (v *Val) UnmarshalJSON(b []byte) error {
	d := decoder{b: b, noColumns: true}
	d.ws()
	n, text, err := d.message()
	if err == nil {
		if d.ws(); d.i != len(d.b) {
			err = fmt.Errorf("unexpected data after the value: %s", d.snippetAt(d.i))
		}
	}
	if err != nil {
		return fmt.Errorf("histories: value: %w", err)
	}
	*v = Val{Int: n, Text: text}
	return nil
}

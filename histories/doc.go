// Package histories holds the operation model of a Garantia test, the
// formats it is stored in, and the store of test runs.
//
// A history is the ordered list of operation events ([Op]) that workload
// clients and the nemesis recorded during a test: every invocation, and every
// completion (ok, fail or info) of it. Checkers read nothing but the history,
// so this package is the contract between the harness and the analyses, and
// between Garantia and tools outside this repository.
//
// # JSON Lines
//
// The on-disk format is JSON Lines (history.jsonl), one event per line.
// [AppendOp] encodes an op and a hand-written scanner decodes it, both
// without reflection, because a history can hold millions of ops (a fuzz
// test compares the scanner with the same schema read through
// encoding/json). The form of a value is decided by its content: a list of
// micro-operations is [Value.Mops], an assign's or subscribe's list of keys
// is [Value.Keys] (integer keys, as Jepsen writes them, become decimal
// text), a commit's or committed's object of offsets is [Value.Offsets],
// and anything else (a nemesis description) is kept as compact JSON in
// [Value.Raw]. Message values are opaque: integers (all Garantia records),
// or Jepsen's keywords, strings and nil, kept as their JSON text
// ([Record]); record offsets may be null. An op may carry Jepsen's
// rebalance log ([Op.RebalanceLog]) and the consumer group it acts in
// ([Op.Group]).
//
// # Consumer groups
//
// A consumer that joins a group (Jepsen's subscribe) and the group's
// committed offsets add these to the format; all of it is optional, and a
// history without it reads as before:
//
//	{"f":"subscribe","group":"garantia-queue","value":["0","1","2","3"]}
//	    the process's consumer joins the group, subscribed to the topic
//	    whose partitions are these keys (the group decides which it reads)
//	{"f":"commit","group":"garantia-queue","value":{"0":88,"3":12}}
//	    commit the group's offsets (FCommit): for each key, the offset of
//	    the next record to read; ok when the coordinator acknowledged them,
//	    fail when it definitely wrote none, info when it may have
//	{"type":"invoke","f":"committed","group":"garantia-queue","value":["0","3"]}
//	{"type":"ok","f":"committed","group":"garantia-queue","value":{"0":88,"3":null}}
//	    fetch the group's committed offsets back (FCommitted); null: none
//
// "group" is an op field of its own, a string, written after "f" and left
// out when empty; a commit's completion carries its invocation's offsets
// (or null), a committed's an offset or null for each key it asked for.
// A subscribed consumer's rebalances are recorded on the completion of its
// next op, as Jepsen's "rebalance-log" (this is its one shape, written and
// read):
//
//	"rebalance-log":[{"type":"revoked","keys":["3"]},{"type":"assigned","keys":["1","3"]}]
//
// each entry what happened ("assigned", "revoked" or "lost": Kafka's
// rebalance listener callbacks, [RebalanceAssigned] ...) to which keys, in
// the order the consumer saw it. Readers keep an entry's "type" and
// "keys" and skip any other field, so Jepsen's logs read as written.
//
// A [Writer] appends as events happen and flushes at least once every
// [FlushInterval], so a harness that dies mid-run still leaves a history that
// can be checked; a [Recorder] on top of it numbers and timestamps the ops of
// many concurrent clients. A [Reader] streams a history back; [ReadFile] and
// [ReadAll] read a whole one on all CPUs. Both name the file and line of
// anything malformed and require the lines in the order the events
// happened: indexes increasing strictly (not densely, so a filtered
// history still reads) and times never decreasing. Text must be valid
// UTF-8 (two keys differing only in bytes that are not text must not merge
// into one). Only a torn last line is skipped, with a warning: one without
// a newline that is not whole JSON, as a writer that died mid-write (or a
// power loss after it) leaves; a whole last line is held to the schema
// like any other.
//
// # Jepsen's EDN
//
// Histories convert to and from Jepsen's EDN (history.edn) so that a Jepsen
// user can check an existing Kafka history with Garantia and take Garantia's
// to Jepsen's tools and Elle: [ReadEDNFile] imports, [WriteEDN] exports
// (`garantia export`). Our own histories survive JSONL → EDN → JSONL
// unchanged (keyword values come back as strings). In EDN a group is
// :group "g", offsets a map {0 88, 3 nil}, and a rebalance log Jepsen's
// own [{:type :revoked, :keys [3]}].
//
// # Loading and pairing
//
// [Load] reads a file of either format (by its extension) and checks it
// whole: besides every line, that invocations and completions pair up
// ([Pair]: a client process runs one operation at a time; each completion
// follows its process's invocation, with the same f and micro-ops; a
// completed drain was invoked) and that the file holds at least one op.
// The first break of a rule is an error naming the file, the line and the
// rule; a commit's completion must carry its invocation's offsets, a
// committed's the keys asked for. [LoadHistory] does the same into a
// [History], the compact form the
// checkers analyse (its memory follows the history's size), and [FromOps]
// makes one of ops in memory. A fragment of a history (LoadOptions.Fragment)
// may begin with completions whose invocations were cut off.
//
// The final drain is recorded as process [NemesisProcess] ops with f
// [FDrain]; [History.Drain] says whether it completed, which is what makes
// an acknowledged message no poll read a loss rather than lag.
//
// # The store
//
// Each test run gets a folder store/<test>/<UTC time>/ ([NewRun]) holding
// [TestFile], [HistoryFile] and [ResultsFile]; store/latest and
// store/<test>/latest link to the newest run. [ResolveHistory] turns
// whatever a user points `garantia check` at (a file, a run folder, the store)
// into a history file, and [ListRuns] lists the runs, newest first.
package histories

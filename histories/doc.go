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
// The on-disk format is JSON Lines (history.jsonl), one event per line, as the
// design brief describes. [AppendOp] encodes an op and a hand-written scanner
// decodes it, both without reflection, because a history can hold millions of
// ops. The form of a value is decided by its content: a list of
// micro-operations is [Value.Mops], an assign's or subscribe's list of keys is
// [Value.Keys] (integer keys, as Jepsen writes them, become decimal text), and
// anything else (a nemesis description) is kept as compact JSON in
// [Value.Raw].
//
// A [Writer] appends as events happen and flushes at least once every
// [FlushInterval], so a harness that dies mid-run still leaves a history that
// can be checked; a [Recorder] on top of it numbers and timestamps the ops of
// many concurrent clients. A [Reader] streams a history back; [ReadFile] and
// [ReadAll] read a whole one on all CPUs. Both name the file and line of
// anything malformed, require indexes to increase strictly (not densely, so a
// filtered history still reads), and skip with a warning a last line cut off
// mid-write.
//
// # Jepsen's EDN
//
// Histories convert to and from Jepsen's EDN (history.edn) so that a Jepsen
// user can check an existing Kafka history with Garantia and take Garantia's
// to Jepsen's tools and Elle: [ReadEDNFile] imports, [WriteEDN] exports. Our
// own histories survive JSONL → EDN → JSONL unchanged. [Load] reads either
// format by the file's extension.
//
// # Pairing
//
// [Pair] links each client invocation to its completion and reports any
// process that breaks the one-operation-at-a-time rule.
//
// # The store
//
// Each test run gets a folder store/<test>/<UTC time>/ ([NewRun]) holding
// [TestFile], [HistoryFile] and [ResultsFile]; store/latest and
// store/<test>/latest link to the newest run. [ResolveHistory] turns
// whatever a user points `garantia check` at (a file, a run folder, the store)
// into a history file, and [ListRuns] lists the runs, newest first.
package histories

// Package histories holds the operation model of a Garantia test and the
// formats it is stored in.
//
// A history is the ordered list of operation events ([Op]) that workload
// clients and the nemesis recorded during a test: every invocation, and every
// completion (ok, fail or info) of it. Checkers read nothing but the history,
// so this package is the contract between the harness and the analyses, and
// between Garantia and tools outside this repository.
//
// The on-disk format is JSON Lines (history.jsonl), one event per line, as the
// design brief describes; it mirrors Jepsen's Kafka workload so that histories
// convert to and from Jepsen's EDN. The writer appends as events happen and
// flushes at least once a second, so a harness that dies mid-run still leaves
// a history that can be checked.
package histories

// Package report turns a run into what a person looks at, and what CI
// reads:
//
//   - [Summary]: the terminal summary that `garantia check`, `garantia
//     test` and `garantia show` print.
//   - [Run.WriteFile]: report.html, one self-contained page per run (its
//     plots are inline SVG, drawn with gonum.org/v1/plot; no network or
//     other file is needed to open it). It shows the verdict and the
//     configuration; each anomaly with its examples, linked to the
//     operations that show it and to the faults in force; for every key
//     with lost, duplicated or inconsistent writes a picture of its log
//     over time (Jepsen's orders/ view: which value each poll and each ack
//     saw at each offset) and tables of the offsets around each problem;
//     latency (raw and quantiles) and throughput over time with every fault
//     shaded (Jepsen's perf plots); porcupine's visualization of each key
//     that is not linearizable.
//   - [WriteJUnit]: JUnit XML, one test case per checker, for CI.
//   - [StoreHandler]: the web pages of `garantia serve` over a run store.
//
// A report is built from the run folder alone: [Open] reads history.jsonl
// (or history.edn), results.json and test.json, and runs the checkers again
// when results.json is missing or belongs to another history. The runner,
// which has the history and results in memory, uses [New].
//
// # Size
//
// A history can hold millions of operations, so the page embeds only the
// operations it links to (with their invocations, the faults' events and a
// few neighbours), at most [Options.MaxOps], and links history.jsonl for
// the rest; scatter plots are thinned to a point budget by drawing once
// the points that would overlap (see thin). A 1,000,000-operation history
// gives a page of 1 to 2 MB, built in under a second once read.
package report

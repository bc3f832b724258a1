// Package runner runs one Garantia test from start to verdict: the body of
// `garantia test`.
//
// A run, in order:
//
//  1. creates the run folder store/<test>/<timestamp>/ (histories.NewRun)
//     and writes test.json: the full configuration, the seed, versions;
//  2. starts the broker nodes (package db) and creates the topic;
//  3. runs the workload (package workloads/queue) for the time limit, with
//     the fault loop (if any) and a progress line on stderr every second;
//  4. heals every fault and drains every partition from the start;
//  5. tears the nodes down: always, on success, failure and Ctrl-C;
//  6. closes the history, reads it back from disk (what is checked is
//     exactly what is stored), checks it, writes results.json and prints
//     the summary.
//
// The seed fixes each worker's schedule and the fault loop's choices, so
// `--seed` repeats a run's schedule (not its timing, which the brokers
// decide).
//
// Faults: until the nemesis package exists the runner carries a small
// fault loop of its own with the faults the db backend offers directly:
// kill (SIGKILL a random node, restart it one interval later) and pause
// (SIGSTOP, then SIGCONT). Network partitions come with the nemesis issue.
package runner

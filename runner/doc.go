// Package runner runs one Garantia test from start to verdict: the body of
// `garantia test`.
//
// A run, in order:
//
//  1. creates the run folder store/<test>/<timestamp>/ (histories.NewRun)
//     and writes test.json: the full configuration, the seed, versions
//     and the nemesis schedule the seed drew;
//  2. when the faults include power (or with --powerfs), mounts the
//     power-loss filesystem (db/powerfs) at every node's data folder,
//     after checking that this machine can (a run that cannot cut power
//     stops before it creates anything); then starts the broker nodes
//     (package db: the local backend, with a proxy on every link between
//     two nodes, or docker; with consumers that subscribe, with the group
//     settings they need, queue.GroupBrokerArgs) and creates the topic;
//  3. runs the workload (package workloads/queue) for the time limit,
//     with the nemesis (package nemesis) acting on its schedule and a
//     progress line on stderr every second: elapsed time, ops/s, ok, info
//     and fail counts and the faults in force;
//  4. heals every fault and starts every node (the nemesis records each
//     step), then drains every partition from the start;
//  5. tears the nodes and proxies down, then unmounts the power-loss
//     filesystems and puts each node's files back in its data folder:
//     always, on success, failure, Ctrl-C and a panic (a panic in one of
//     the run's goroutines becomes the run's failure, with its stack, so
//     that teardown still runs; only a killed harness leaves stale mounts,
//     which the next power run and garantia clean remove);
//  6. closes the history, reads it back from disk (what is checked is
//     exactly what is stored), checks it, writes results.json and prints
//     the summary.
//
// The seed fixes each worker's schedule and the nemesis schedule, so
// `--seed` repeats a run's schedule (not its timing, which the brokers
// decide).
//
// RunMatrix runs one configuration at several acks levels (and, with an
// fsync axis, fsync policies) under one seed, and so one fault schedule,
// and tabulates what each lost and what it cost (garantia matrix).
package runner

// Package e2e tests the real `garantia broker` binary from the outside, as
// the harness and users run it: built once in TestMain, started as a
// process on a loopback port, driven with franz-go's kgo and with kcat
// (librdkafka), killed with SIGKILL and restarted on the same data
// directory. Its benchmarks measure produce and fetch throughput on one
// node against the machine's plain loopback TCP limit.
//
// It has no non-test code; this file only documents the package.
package e2e

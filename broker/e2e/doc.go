// Package e2e tests the broker from the outside. The single-node tests run
// the real `garantia broker` binary (built once in TestMain) as a process
// on a loopback port, drive it with franz-go's kgo and with kcat
// (librdkafka), kill it with SIGKILL and restart it on the same data
// directory. The cluster tests run three in-process nodes (node.Start)
// sharing one in-memory metadata controller, which the test plays (fencing
// a leader to "kill" it, unfencing it to bring it back, blinding one node
// to the metadata), with a TCP proxy on every follower→leader link so that
// a test can cut replication: acks=all writes survive leader kills; the
// seed's lesson (an acks=1 write acknowledged by an isolated leader is
// lost, an acks=all one is refused instead); ISR shrink and expansion; and
// each --bug switch losing acknowledged writes that the correct broker
// keeps. Its benchmarks measure produce and fetch throughput on one node
// against the machine's plain loopback TCP limit, and produce throughput,
// latency and failover time on a 3-node cluster.
//
// It has no non-test code; this file only documents the package.
package e2e

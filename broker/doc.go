// Package broker is Garantia's system under test: a Kafka-compatible broker
// that speaks a subset of the real Kafka wire protocol and keeps each topic
// partition in an append-only, CRC-checked segment log.
//
// The harness never imports it; it talks to broker nodes over the network
// only, exactly as it would to a real Kafka cluster. Subpackages, from the
// bytes on the wire down to the disk:
//
//   - wire: request framing and decoding, response encoding (kmsg), and the
//     RecordBatch header
//   - server: connections (ordered, pipelined responses) and the Kafka API
//     handlers; the topic registry
//   - partition: one led partition's state: log, leader epoch, ISR, high
//     watermark, idempotent producer sequences
//   - storage: the on-disk partition logs (segments, index, recovery, fsync)
//   - node: wires storage, server and listener into one running node; the
//     `garantia broker` subcommand is a flag layer over node.Run
//   - e2e: tests and benchmarks of the real binary (kgo, kcat, SIGKILL)
//
// Replication and the Raft controller come next.
package broker

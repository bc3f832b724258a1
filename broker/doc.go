// Package broker is Garantia's system under test: a Kafka-compatible broker
// that speaks a subset of the real Kafka wire protocol and keeps each topic
// partition in an append-only, CRC-checked segment log.
//
// The harness never imports it; it talks to broker nodes over the network
// only, exactly as it would to a real Kafka cluster. Subpackages:
//
//   - storage: the on-disk partition logs (segments, index, recovery, fsync)
//   - the server (Kafka request handling) and, later, replication and the
//     Raft controller.
package broker

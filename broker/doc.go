// Package broker is Garantia's system under test: a Kafka-compatible broker
// that speaks a subset of the real Kafka wire protocol and keeps each topic
// partition in an append-only, CRC-checked segment log.
//
// The harness never imports it; it talks to broker nodes over the network
// only, exactly as it would to a real Kafka cluster. Partitions are
// replicated leader → followers as in Kafka's ISR design, with leader
// epochs, driven by the cluster metadata of a controller. Subpackages, from
// the bytes on the wire down to the disk:
//
//   - wire: request framing and decoding, response encoding (kmsg), and the
//     RecordBatch header
//   - server: connections (ordered, pipelined responses) and the Kafka API
//     handlers, answering from the cluster metadata and the local replicas
//   - group: the group coordinator (classic rebalance protocol, committed
//     offsets in the replicated __consumer_offsets topic)
//   - metadata: the cluster metadata model (brokers, leaders, epochs, ISRs),
//     its pure transitions and the Controller interface
//   - controller: the Raft controller that owns the metadata
//   - replication: the replica manager: roles from the metadata, follower
//     fetchers, ISR changes through the controller, high watermark
//     checkpoints, bug switches
//   - partition: one replica's state: log, role and leader epoch, follower
//     progress, ISR, high watermark, idempotent producer sequences
//   - storage: the on-disk partition logs (segments, index, recovery, fsync)
//   - node: wires storage, replication, server and listener into one
//     running node; the `garantia broker` subcommand is a flag layer over
//     node.Run
//   - e2e: tests and benchmarks of the real binary (kgo, kcat, SIGKILL), of
//     3-node clusters of broker processes (group consumers, coordinator
//     kills, admin calls) and of in-process 3-node clusters (leader kills,
//     cut links, bug switches)
package broker

// Package interop tests `garantia broker` with Kafka clients nobody here
// wrote: IBM/sarama, segmentio/kafka-go and franz-go's kgo and kadm (Go
// modules this module alone depends on, so the product's go.mod stays
// free of them), and kcat and python3-confluent-kafka (librdkafka, from
// Debian) when installed. See README.md in this folder.
package interop

package queue

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/histories"
)

// How a failed operation is recorded decides what the checker may conclude,
// so the rule is strict: an op completes as fail only when the error proves
// the broker did not and will not apply it; everything else is info
// (indeterminate), which retires the process (Jepsen's rule).
//
// A send is fail when
//
//   - no byte of a produce request for it reached any broker (the client
//     could not connect, had no metadata, the record timed out in the
//     client's buffer): whatever the error, nothing can have been appended;
//   - or exactly one produce request carried it and the broker answered it
//     with an error from refusedBeforeAppend below.
//
// The client sends each record in at most one produce request
// (kgo.RecordRetries(0)), so "exactly one" is the normal case; a second
// request would only come from kgo's internal retry paths, and then an
// earlier request may have been appended, so the op is info.
//
// Errors that are info although they look like refusals:
//
//	NOT_LEADER_OR_FOLLOWER        a leader that loses leadership while an acks=all write
//	                              waits for its followers answers this after appending;
//	                              the record may survive on the new leader
//	REQUEST_TIMED_OUT             appended, replication not confirmed in time
//	NOT_ENOUGH_REPLICAS_AFTER_APPEND  appended, then the ISR shrank
//	KAFKA_STORAGE_ERROR           the disk failed somewhere in the append
//	LEADER_NOT_AVAILABLE, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, NETWORK_EXCEPTION,
//	UNKNOWN_SERVER_ERROR          the broker's state is unknown to us
//	timeouts, resets, EOF, context cancellation after a write: the reply was lost
//
// Polls and assigns have no effect on the log, so a failed one is harmless
// either way; they use the same table so that a consumer whose state is in
// doubt (a lost fetch reply) is replaced with a fresh process and client.
var refusedBeforeAppend = []*kerr.Error{
	kerr.UnknownTopicOrPartition,     // the broker has no such partition: nothing to append to
	kerr.NotEnoughReplicas,           // checked before the append (ISR below min.insync.replicas)
	kerr.InvalidTopicException,       // bad topic name
	kerr.CorruptMessage,              // CRC or framing check failed on arrival
	kerr.InvalidRecord,               // record validation failed on arrival
	kerr.InvalidRequiredAcks,         // acks value refused
	kerr.InvalidTimestamp,            // timestamp refused
	kerr.MessageTooLarge,             // size check before the append
	kerr.RecordListTooLarge,          // size check before the append
	kerr.InvalidRequest,              // the request could not be decoded
	kerr.UnsupportedVersion,          // the request version is not served
	kerr.UnsupportedForMessageFormat, // the batch format is not served
	kerr.UnsupportedCompressionType,  // the codec is not served
	kerr.TopicAuthorizationFailed,    // authorization is checked first
	kerr.ClusterAuthorizationFailed,  // authorization is checked first
	kerr.PolicyViolation,             // policy is checked first
}

// RefusedBeforeAppend reports whether err carries a Kafka error code that
// a broker returns only for a request it did not apply.
func RefusedBeforeAppend(err error) bool {
	for _, k := range refusedBeforeAppend {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// Classify is the completion type of an operation that returned err after
// requestsWritten requests carrying it reached a broker (bytes written to
// a connection, whether or not a reply came back).
func Classify(err error, requestsWritten int) histories.Type {
	switch {
	case err == nil:
		return histories.OK
	case requestsWritten == 0:
		return histories.Fail
	case requestsWritten == 1 && RefusedBeforeAppend(err):
		return histories.Fail
	}
	return histories.Info
}

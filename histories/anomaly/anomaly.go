// Package anomaly names the anomalies a queue history can show: Jepsen's
// Kafka taxonomy (jepsen/src/jepsen/tests/kafka.clj), plus garbage-read
// and lost-offset-commit (a consumer group's committed offsets).
// It is the one list of them: the queue checker reports them by these
// names, `garantia synth --fault` plants them, and `garantia check --help`
// describes them from Table.
package anomaly

// The anomalies, by the names results.json gives them.
const (
	LostWrite           = "lost-write"
	Unseen              = "unseen"
	Duplicate           = "duplicate"
	InconsistentOffsets = "inconsistent-offsets"
	PollSkip            = "poll-skip"
	NonmonotonicPoll    = "nonmonotonic-poll"
	NonmonotonicSend    = "nonmonotonic-send"
	IntPollSkip         = "int-poll-skip"
	IntNonmonotonicPoll = "int-nonmonotonic-poll"
	IntSendSkip         = "int-send-skip"
	IntNonmonotonicSend = "int-nonmonotonic-send"
	G1a                 = "G1a"
	GarbageRead         = "garbage-read"
	LostOffsetCommit    = "lost-offset-commit"
)

// Info is one anomaly: its name and a line saying what it means.
type Info struct {
	Name        string
	Description string
}

// Table lists every anomaly, in the order people read them: durability
// first, then the log's shape, then order.
var Table = []Info{
	{LostWrite, "an acknowledged (or proven committed) message was never read, though a poll read its partition past it"},
	{Unseen, "an acknowledged message was never read and nothing after it was; a durability failure once the final drain completed, inconclusive without it"},
	{LostOffsetCommit, "a consumer group's acknowledged offset commit (or one a fetch had seen) was contradicted by a fetch of the group's committed offsets that began after it: an older offset, or none"},
	{Duplicate, "one message appears at two or more offsets of its partition"},
	{InconsistentOffsets, "two or more different messages were reported at one offset of a partition"},
	{G1a, "a poll read a message whose send failed (an aborted read)"},
	{GarbageRead, "a poll read a message that no send in the history wrote to that partition"},
	{PollSkip, "a consumer's next poll of a partition skipped over messages that exist (allowed for subscribed consumers, which may be rebalanced)"},
	{NonmonotonicPoll, "a consumer's next poll of a partition went back to or before where its previous poll ended (allowed for subscribed consumers)"},
	{NonmonotonicSend, "a producer's send to a partition landed at or before its previous send there"},
	{IntPollSkip, "within one poll, consecutive messages of a partition skipped over messages that exist"},
	{IntNonmonotonicPoll, "within one poll, a partition's messages went backwards or repeated"},
	{IntSendSkip, "within one op, consecutive sends to a partition were not adjacent (reported, allowed: other producers interleave)"},
	{IntNonmonotonicSend, "within one op, a later send to a partition landed at or before an earlier one"},
}

// Description returns the line describing the anomaly name, or "" when
// there is no such anomaly.
func Description(name string) string {
	for _, a := range Table {
		if a.Name == name {
			return a.Description
		}
	}
	return ""
}

// Known reports whether name is an anomaly of the Table.
func Known(name string) bool { return Description(name) != "" }

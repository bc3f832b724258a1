package replication

import (
	"fmt"
	"strings"
)

// Bugs are the bug switches (`garantia broker --bug NAME`), each off by
// default. Each puts back a known class of durability bug, so that a test
// can show the checker catching the acknowledged writes it loses. AllBugs
// names and describes them.
type Bugs struct {
	// HWTruncation (hw-truncation) is KIP-101's bug: a follower truncates
	// its log to its own high watermark (the checkpointed one after a
	// restart) when it starts following, instead of asking the leader
	// where its epoch ended. A follower's high watermark lags the
	// leader's, so it drops acknowledged records; if it is then elected,
	// they are gone.
	HWTruncation bool
	// EarlyAck (early-ack) answers acks=all produces as soon as the
	// leader's own append returns, before the ISR has the records; a
	// leader that dies right after loses acknowledged writes.
	EarlyAck bool
	// StaleLeader (stale-leader) lets a leader apply an ISR shrink that
	// the controller did not commit (it was unreachable, or answered that
	// the leader's epoch is over): a deposed leader that has not yet seen
	// the new metadata shrinks its ISR to itself and keeps acknowledging
	// acks=all writes from its own log, which the new leader never had.
	StaleLeader bool
	// FsyncAfterAck (fsync-after-ack) makes --fsync always acknowledge an
	// append (a leader's, so acks=1; a follower's, so the high watermark
	// and acks=all) as soon as its bytes are written, and fsync them later,
	// in the background every --fsync-interval: a power cut of the
	// replicas in between loses acknowledged writes that fsync always
	// promised to keep.
	FsyncAfterAck bool
	// OffsetsEarlyAck (offsets-early-ack) makes the group coordinator
	// acknowledge an offset commit, and serve it to OffsetFetch, as soon
	// as its own log has the record (Kafka's offsets.commit.required.acks
	// = 1), before the offsets partition's ISR has it: when the
	// coordinator fails over, the new one loads the offsets from a log
	// that lacks the last commits, and acknowledged commits are lost.
	OffsetsEarlyAck bool
}

// BugInfo names and describes one bug switch.
type BugInfo struct {
	Name, Description string
	// field is the switch in Bugs.
	field func(*Bugs) *bool
}

// AllBugs is the one table of bug switches: --help, ParseBugs and Names
// all read it.
var AllBugs = []BugInfo{
	{"hw-truncation", "KIP-101: a follower truncates to its own (checkpointed) high watermark instead of using leader epochs",
		func(b *Bugs) *bool { return &b.HWTruncation }},
	{"early-ack", "acks=all is answered right after the leader's own append, before the ISR has the records",
		func(b *Bugs) *bool { return &b.EarlyAck }},
	{"stale-leader", "a leader applies ISR shrinks the controller did not commit, so a deposed leader keeps acknowledging acks=all from its own log",
		func(b *Bugs) *bool { return &b.StaleLeader }},
	{"fsync-after-ack", "--fsync always acknowledges appends before their fsync, which comes later, every --fsync-interval, so a power cut loses acknowledged writes",
		func(b *Bugs) *bool { return &b.FsyncAfterAck }},
	{"offsets-early-ack", "the group coordinator acknowledges offset commits (and serves them) once its own log has them, before the offsets partition's ISR does, so a coordinator failover loses acknowledged commits",
		func(b *Bugs) *bool { return &b.OffsetsEarlyAck }},
}

// BugNames lists the names of every bug switch.
func BugNames() []string {
	out := make([]string, len(AllBugs))
	for i, b := range AllBugs {
		out[i] = b.Name
	}
	return out
}

// Enable turns on the bug switch called name.
func (b *Bugs) Enable(name string) error {
	for _, info := range AllBugs {
		if info.Name == name {
			*info.field(b) = true
			return nil
		}
	}
	return fmt.Errorf("unknown bug %q; known bugs: %s", name, strings.Join(BugNames(), ", "))
}

// ParseBugs enables every named switch; an unknown name is an error that
// lists the known ones.
func ParseBugs(names []string) (Bugs, error) {
	var b Bugs
	for _, n := range names {
		if err := b.Enable(n); err != nil {
			return Bugs{}, err
		}
	}
	return b, nil
}

// Names lists the enabled switches, in AllBugs order.
func (b Bugs) Names() []string {
	var out []string
	for _, info := range AllBugs {
		if *info.field(&b) {
			out = append(out, info.Name)
		}
	}
	return out
}

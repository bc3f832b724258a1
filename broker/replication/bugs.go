package replication

import (
	"fmt"
	"strings"
)

// Bugs are the bug switches (`garantia broker --bug NAME`), each off by
// default. Each puts back a known class of replication bug, so that a test
// can show the checker catching the acknowledged writes it loses.
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
}

// BugInfo names and describes one bug switch.
type BugInfo struct {
	Name, Description string
}

// AllBugs lists every bug switch, for --help and error messages.
var AllBugs = []BugInfo{
	{"hw-truncation", "KIP-101: a follower truncates to its own (checkpointed) high watermark instead of using leader epochs"},
	{"early-ack", "acks=all is answered right after the leader's own append, before the ISR has the records"},
	{"stale-leader", "a leader applies ISR shrinks the controller did not commit, so a deposed leader keeps acknowledging acks=all from its own log"},
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
	switch name {
	case "hw-truncation":
		b.HWTruncation = true
	case "early-ack":
		b.EarlyAck = true
	case "stale-leader":
		b.StaleLeader = true
	default:
		return fmt.Errorf("unknown bug %q; known bugs: %s", name, strings.Join(BugNames(), ", "))
	}
	return nil
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

// Names lists the enabled switches.
func (b Bugs) Names() []string {
	var out []string
	if b.HWTruncation {
		out = append(out, "hw-truncation")
	}
	if b.EarlyAck {
		out = append(out, "early-ack")
	}
	if b.StaleLeader {
		out = append(out, "stale-leader")
	}
	return out
}

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/broker/replication"
)

// Each bug switch must make a scenario lose a write that was acknowledged
// as committed (acks=all), a scenario the correct broker survives: that is
// what lets the checker be shown to catch the bug. Every test runs the
// same script with the switch off and on.

// lost reports whether value, acknowledged with acks=all at offset, is
// missing from what the partition's current leader serves.
func (c *cluster) lost(topic string, offset int64, value string) bool {
	st := c.state(topic, 0)
	return c.valuesAt(st.Leader, topic, 0)[offset] != value
}

// TestBugEarlyAck: a leader cut off from its followers answers acks=all at
// its own append under --bug early-ack; it dies, the new leader never had
// the write. Without the bug the write times out unacknowledged.
func TestBugEarlyAck(t *testing.T) {
	for _, bug := range []bool{false, true} {
		t.Run(fmt.Sprintf("bug=%v", bug), func(t *testing.T) {
			c := newCluster(t, clusterOpts{bugs: replication.Bugs{EarlyAck: bug}})
			const topic = "early-ack"
			old, acked := lessonSetup(t, c, topic, 2)
			sp := c.produceTo(old, topic, 0, -1, time.Second, "victim")
			if bug != (sp.ErrorCode == 0) {
				t.Fatalf("acks=all produce to a leader without followers: error %s (bug %v)", kerr.ErrorForCode(sp.ErrorCode), bug)
			}
			lessonFailover(t, c, topic, old, acked)
			c.assertHolds(c.state(topic, 0).Leader, topic, 0, acked, "writes acknowledged before and after the failover")
			if bug && !c.lost(topic, sp.BaseOffset, "victim") {
				t.Fatalf("bug early-ack: the early-acknowledged write survived; the scenario no longer shows the bug")
			}
		})
	}
}

// TestBugHWTruncation is KIP-101's data loss: a follower fetches an
// acks=all write but its high watermark (learned only at its next fetch)
// does not cover it yet when the follower restarts. Under --bug
// hw-truncation it truncates to that high watermark; then the leader dies
// and the follower is elected without the write. With leader epochs it
// keeps the write and serves it as the new leader.
func TestBugHWTruncation(t *testing.T) {
	for _, bug := range []bool{false, true} {
		t.Run(fmt.Sprintf("bug=%v", bug), func(t *testing.T) {
			// A long fetch wait keeps the follower from learning the new high
			// watermark between the acknowledgement and the cut below.
			c := newCluster(t, clusterOpts{fetchWait: time.Second, bugs: replication.Bugs{HWTruncation: bug}})
			const topic = "hw-truncation"
			c.createTopic(topic, 1, 3, 2)
			st := c.state(topic, 0)
			old := st.Leader
			acked := map[int64]string{}
			for i := range 3 {
				v := fmt.Sprintf("committed-%d", i)
				acked[c.produceOK(old, topic, 0, v)] = v
			}
			// Let every follower learn the high watermark of those, so
			// that only the next write is at stake.
			c.waitFor("followers to learn the high watermark", 10*time.Second, func() bool {
				for _, r := range st.Replicas {
					if p := c.replica(r, topic, 0); p == nil || p.HighWatermark() != 3 {
						return false
					}
				}
				return true
			})
			// The follower the controller elects next: the first in-sync
			// replica after the leader, in replica order.
			var next int32
			for _, r := range st.Replicas {
				if r != old {
					next = r
					break
				}
			}
			offset := c.produceOK(old, topic, 0, "victim")
			// Cut the follower off before its parked fetch returns with the
			// high watermark that covers the write.
			c.cutLink(next, old, true)
			if hw := c.replica(next, topic, 0).HighWatermark(); hw > offset {
				t.Fatalf("follower %d already knows high watermark %d covering offset %d; the scenario needs it behind", next, hw, offset)
			}
			c.kill(next)
			c.restart(next)
			c.kill(old)
			c.fence(old)
			if leader := c.waitLeader(topic, 0, old); leader != next {
				t.Fatalf("new leader %d, want %d (first in-sync replica in replica order)", leader, next)
			}
			c.cutLink(next, old, false)
			for i := range 3 {
				v := fmt.Sprintf("after-failover-%d", i)
				acked[c.produceOK(next, topic, 0, v)] = v
			}
			if lost := c.lost(topic, offset, "victim"); lost != bug {
				t.Fatalf("acknowledged write at offset %d lost: %v; with bug hw-truncation %v", offset, lost, bug)
			}
			c.restart(old)
			c.unfence(old)
			c.waitInSync(topic, 0)
			if !bug {
				acked[offset] = "victim"
				for _, r := range st.Replicas {
					c.assertHolds(r, topic, 0, acked, fmt.Sprintf("node %d", r))
				}
			}
		})
	}
}

// TestBugStaleLeader: a leader is cut off from its followers and from the
// controller, which deposes it; the leader has not been told. Under --bug
// stale-leader it applies its own ISR shrink that the controller did not
// commit (or that it answered "your epoch is over") and acknowledges an
// acks=all write the new leader never gets. Correctly, the shrink is never
// counted: the write times out (controller unreachable) or is refused with
// NOT_LEADER_OR_FOLLOWER (the controller said the epoch is over).
func TestBugStaleLeader(t *testing.T) {
	tests := []struct {
		name      string
		alterDown bool // the controller is unreachable, else it answers "fenced"
		bug       bool
		want      *kerr.Error
	}{
		{"controller unreachable", true, false, kerr.RequestTimedOut},
		{"told fenced by AlterISR", false, false, kerr.NotLeaderForPartition},
		{"bug, controller unreachable", true, true, nil},
		{"bug, told fenced by AlterISR", false, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{
				lagMax:    300 * time.Millisecond,
				fetchWait: 100 * time.Millisecond,
				bugs:      replication.Bugs{StaleLeader: tt.bug},
			})
			const topic = "stale-leader"
			// min ISR 1, so that a leader alone in its ISR may commit.
			old, acked := lessonSetup(t, c, topic, 1)
			c.nodes[old].view.blind(tt.alterDown)
			c.fence(old) // the controller deposes it (it missed heartbeats)
			leader := c.waitLeader(topic, 0, old)
			sp := c.produceTo(old, topic, 0, -1, 2*time.Second, "victim")
			want := int16(0)
			if tt.want != nil {
				want = tt.want.Code
			}
			if sp.ErrorCode != want {
				t.Fatalf("acks=all produce to the deposed leader: error %s, want %v", kerr.ErrorForCode(sp.ErrorCode), tt.want)
			}
			for i := range 3 {
				v := fmt.Sprintf("new-leader-%d", i)
				acked[c.produceOK(leader, topic, 0, v)] = v
			}
			c.nodes[old].view.unblind()
			c.isolate(old, false)
			c.unfence(old)
			c.waitInSync(topic, 0)
			c.assertHolds(leader, topic, 0, acked, "writes acknowledged by real leaders")
			if o := c.offsetOf(leader, topic, 0, "victim"); tt.bug && o >= 0 {
				t.Fatalf("bug stale-leader: the deposed leader's write is at offset %d of the new leader; the scenario no longer shows the loss", o)
			}
			if got := c.valuesAt(old, topic, 0)[sp.BaseOffset]; tt.bug && got == "victim" {
				t.Fatalf("the deposed leader kept the write it acknowledged after rejoining; it must have been truncated")
			}
		})
	}
}

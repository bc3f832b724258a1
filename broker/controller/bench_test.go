package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/garantia/garantia/broker/metadata"
)

// BenchmarkControllerFailover measures a controller failover: from the
// Raft leader's Close to a change (CreateTopic, called at once on a
// survivor and retried across the election) applied on that survivor.
// Reported as failover-ms; ns/op is meaningless (cluster setup dominates).
func BenchmarkControllerFailover(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		c := newCluster(b, 3, nil)
		leader := c.waitLeader(settle)
		c.waitRegistered(settle)
		survivor := c.node(c.other(leader))
		start := time.Now()
		c.stop(leader)
		if err := survivor.CreateTopic(ctxFor(b, settle), "after", 1, 2, metadata.TopicConfig{}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		c.closeAll()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "failover-ms")
}

// BenchmarkFenceDeadBroker measures failure detection: from a broker's
// Close (it leads one partition; the controller survives) to every live
// node showing it fenced and its partition led by another ISR member at the
// next leader epoch. Expect about the session timeout plus a tenth of it.
func BenchmarkFenceDeadBroker(b *testing.B) {
	for _, session := range []time.Duration{time.Second, DefaultSessionTimeout} {
		b.Run(fmt.Sprintf("session=%s", session), func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				c := newCluster(b, 3, func(cfg *Config) { cfg.SessionTimeout = session })
				leader := c.waitLeader(settle)
				c.waitRegistered(settle)
				n := c.node(leader)
				if err := n.CreateTopic(ctxFor(b, settle), "q", 3, 3, metadata.TopicConfig{}); err != nil {
					b.Fatal(err)
				}
				victim := c.other(leader)
				led := partitionsLedBy(n.Snapshot(), "q", victim)
				start := time.Now()
				c.stop(victim)
				waitFailedOver(c, victim, led)
				total += time.Since(start)
				c.closeAll()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "fence-ms")
		})
	}
}

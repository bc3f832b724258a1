package db

import (
	"fmt"
	"strconv"
	"time"
)

// Cluster holds the settings of a backend's cluster mode, passed to every
// `garantia broker` as flags; a zero field is not passed, leaving the
// broker's default. Both backends use this one type so that they start
// identically configured clusters.
type Cluster struct {
	SessionTimeout           time.Duration // --session-timeout
	ReplicaLagTimeMax        time.Duration // --replica-lag-time-max
	MinInsyncReplicas        int           // --min-insync-replicas
	DefaultReplicationFactor int           // --default-replication-factor
	UncleanLeaderElection    bool          // --unclean-leader-election
}

// Args returns the broker flags for c's settings (not the per-node
// --controller-listen and --peer flags, which only a backend knows).
func (c *Cluster) Args() []string {
	var a []string
	if c.SessionTimeout > 0 {
		a = append(a, "--session-timeout", c.SessionTimeout.String())
	}
	if c.ReplicaLagTimeMax > 0 {
		a = append(a, "--replica-lag-time-max", c.ReplicaLagTimeMax.String())
	}
	if c.MinInsyncReplicas > 0 {
		a = append(a, "--min-insync-replicas", strconv.Itoa(c.MinInsyncReplicas))
	}
	if c.DefaultReplicationFactor > 0 {
		a = append(a, "--default-replication-factor", strconv.Itoa(c.DefaultReplicationFactor))
	}
	if c.UncleanLeaderElection {
		a = append(a, "--unclean-leader-election")
	}
	return a
}

// PeerArgs is the flag that tells a broker how it reaches peer id: the
// addresses of the peer's Kafka and controller ports as this node dials
// them (a proxy of the link, when the backend has them).
func PeerArgs(id int32, kafka, controller string) []string {
	return []string{"--peer", fmt.Sprintf("%d=%s,%s", id, kafka, controller)}
}

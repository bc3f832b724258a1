// Package controller is the Raft-backed cluster controller of the broker,
// KRaft-style: the cluster metadata (package broker/metadata) lives in a
// Raft log (hashicorp/raft, raft-boltdb/v2 stores) replicated over every
// broker node, and the Raft leader is the controller.
//
// Every broker node runs one [Controller]. It is a Raft voter, keeps the
// metadata as its own copy of the log has applied it (Snapshot, Changed),
// and is the client through which its broker registers, heartbeats and asks
// for changes (CreateTopic, AlterISR). Changes are commands in the log; the
// finite state machine applies each through the pure transitions of package
// metadata, so every node reaches the same state.
//
// # One port, two protocols
//
// A node's controller port (Config.Listen) carries both Raft's traffic and
// the controller RPCs. The first byte of every connection tells them apart:
// Raft's connections start with its RPC type (0..4), ours with rpcMagic.
// Each node dials each peer at the address Config.Peers gives for it, which
// may be a proxy specific to that directed link (the test harness puts one
// on every link to partition the network); so the addresses in the Raft
// configuration are placeholders ("broker-ID") and server IDs are decimal
// broker ids.
//
// # RPC protocol
//
// After the magic byte, a connection carries request/response pairs, one at
// a time, each a frame: a 4-byte big-endian length, then a JSON object
// (request, response). A node other than the leader answers NOT_CONTROLLER
// with the leader's id when it knows it; the caller re-resolves and retries
// until its context ends. Metadata errors travel as codes and come back as
// errors that errors.Is matches against the sentinels of package metadata.
// A change returns only once this node's own state machine has applied the
// log entry that made it, so a caller never acts on metadata its local view
// does not yet show.
//
// # Liveness
//
// Liveness is kept by the leader in memory, not in the log: the time of
// every broker's last heartbeat. A broker silent for longer than
// Config.SessionTimeout is fenced (a FenceBroker command: it leaves every
// ISR and every partition it led gets a new leader from the ISR, or from any
// live replica where the topic allows unclean leader election). A fenced
// broker that heartbeats again is unfenced once its own applied metadata has
// reached the entry that fenced it. A node that becomes leader gives every
// broker a fresh session, so a controller failover fences no one by itself.
//
// Every start of a Controller is a new incarnation of its broker (a random
// id sent with every heartbeat). A registered broker that comes back with a
// new incarnation is fenced first and unfenced once caught up, as KRaft
// does: a restarted broker may have lost its unflushed log tail, so it must
// not silently keep leading the partitions it led before.
//
// # Timing
//
// With the defaults (ElectionTimeout 500ms, SessionTimeout 3s), a crashed
// controller is replaced in about 1 s (followers wait 1–2× the election
// timeout before campaigning), and a dead broker is fenced and its
// partitions get new leaders about SessionTimeout + SessionTimeout/10
// after its last heartbeat; when the controller died with it, add the
// failover, since the new controller starts every session afresh.
//
// # Using it in a broker
//
// Start the controller once the broker's client listener is bound (its
// address is registered). Until Registered is closed the local metadata
// may be stale (restored from disk after a restart); the broker should not
// lead anything before then.
package controller

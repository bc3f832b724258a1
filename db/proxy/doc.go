// Package proxy is the network between the nodes of a local cluster: one
// TCP proxy per directed link (node A dialing node B), through which the
// nemesis cuts, slows and stalls the link's traffic.
//
// A [Proxy] listens on loopback and forwards each connection it accepts
// to one upstream address. Each direction of the traffic, [Up] (what the
// dialing node sends) and [Down] (what comes back), can be cut or shaped
// on its own, so that a one-way partition is one call.
//
// What a cut means. A partition in Jepsen is iptables dropping packets;
// TCP then retransmits, so established connections neither fail nor lose
// bytes: they go silent, the sender's buffers fill, and whatever was sent
// arrives, late, once the network heals, unless a timeout of the
// application (or, after many minutes, of the kernel) closes the
// connection first. The proxy does the same at the level of the byte
// stream: a cut direction holds every byte it reads (up to its buffers,
// after which the sender's writes block, as on a full TCP window) and
// delivers them, in order, when the cut ends. A connection that one side
// closes during a cut stays open on the other side until the cut ends,
// since the FIN, too, is held. A connection that arrives while either
// direction is cut is not forwarded: its handshake could not complete, so
// the proxy does not dial upstream until the link heals, and drops the
// connection if its client gives up first. (The client's own connect
// succeeds, because the proxy's kernel completes it; what the client sees
// is a connection on which nothing ever answers, which is what its
// request timeouts are for.)
//
// Why not toxiproxy (github.com/Shopify/toxiproxy/v2, the usual choice
// for this): disabling one of its proxies closes every connection and
// refuses new ones, a fault that is loud where a partition is silent; its
// "timeout" toxic discards bytes from the middle of a stream, so healing
// it must close every connection it touched (it does) and can never
// deliver a stale request late, which is how a real network shows a
// stale leader its old traffic; when a toxic is removed, bytes its stage
// cannot hand on within 5s are dropped with a log line (ToxicLink.
// RemoveToxic), so healing a partition towards a paused node could
// corrupt a Kafka stream mid-frame and the checker would blame the
// broker; it has no packet loss at all; its random draws come from the
// global source, so they cannot follow the test's seed; and it would add
// the Prometheus client, protobuf, zerolog, gorilla/mux and urfave/cli to
// go.mod for some 400 lines of behaviour.
//
// Packet faults ([db.Packet]): Delay and Jitter postpone the delivery of
// every chunk of bytes the proxy reads, keeping their order (a chunk
// never overtakes an earlier one). Loss cannot drop bytes from a TCP
// stream, since TCP would retransmit them: a lost packet is seen by the
// applications as a stall of the stream until the retransmission. So with
// probability Loss a chunk waits one retransmission timeout
// (Options.RetransmitTimeout, 200ms by default: Linux's minimum RTO)
// before delivery, doubling for each further loss in a row as TCP backs
// off, and everything behind it waits too. That is the honest meaning of
// "loss" here: stalls, never holes.
//
// Random draws (jitter, loss) come from a PCG stream seeded by
// Options.Seed and the connection's sequence number, so a test's seed
// fixes them, though not the timing they meet.
package proxy

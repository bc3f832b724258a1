// Package docker runs the broker nodes of a test as Docker containers: the
// backend of `garantia test --db docker`. Every node gets a network stack
// of its own, so a partition is a real packet drop in the kernel rather
// than a proxy refusing to forward.
//
// What a run creates, all labelled with the run's id (see the Label*
// constants) so that Teardown, and `garantia clean` after a crash, find
// every piece:
//
//   - an image, `garantia-node:<hash>`, built by the backend itself from
//     the running garantia binary: a static (CGO_ENABLED=0) build copied
//     into a FROM scratch image. Nothing is pulled; the engine needs no
//     base image. A dynamically linked binary is rebuilt statically from
//     the source module when it is at hand (cached by content hash). The
//     image is shared by every run of the same binary and kept.
//   - a user-defined bridge network with a /24 subnet of its own, chosen
//     not to overlap the engine's networks or this host's addresses, and
//     internal (no route to the world: nodes talk to each other and to the
//     harness on the host, nothing else).
//   - one container per node at a fixed address (n1 at .11, n2 at .12,
//     ...), serving Kafka on port 9092 and, in cluster mode, the controller
//     on 9093. The node's data folder is bind-mounted from the run's store
//     folder (store/<test>/<ts>/nK/data) and its output is copied, as it
//     happens, to nK/broker.log there.
//
// Power faults need nothing of this backend: the harness mounts the
// power-loss filesystem at each node's data folder on the host before
// Setup, the container's bind mount reaches it, and since the engine makes
// the bind mounts anew at every start, a node started after a power cut
// (which remounts the filesystem) sees the new mount, never the old one.
// The engine must run in the harness's mount namespace (it does on a
// Linux host; not in Docker Desktop's VM).
//
// The harness reaches the nodes directly at their bridge addresses; no
// port is published. That needs the engine on this host (Linux), not in a
// VM as Docker Desktop runs it.
//
// Faults: Kill is the engine's SIGKILL, Pause and Resume its cgroup
// freezer, Restart a graceful stop and start; Start after Kill keeps the
// container's address and data, and like Restart waits for the broker to
// answer only up to Options.StartWait (see package db on readiness). Each
// node's output is copied live into its broker.log and completed once its
// container stops, so the log is whole whatever the engine's timing.
// Partitions are iptables rules entered into
// each container's network namespace from the host (nsenter -t PID -n
// iptables-restore ...), since the scratch image has no iptables: a drop
// from A to B is `-A INPUT -s A -j DROP` in B, as Jepsen does it; packet
// loss adds `-m statistic --mode random --probability P` (per link, and in
// every kernel, where netem is not). Delay and jitter are netem queueing
// on the sender's eth0 (tc, per receiver), refused with
// ErrUnsupportedPacketFault on a kernel without sch_netem. A node's rules
// and delays are put back when it restarts in a new namespace. These
// faults need root and the nsenter and iptables commands;
// CheckNetworkFaults says which is missing and how to install it.
//
// Every engine call goes through the small [Engine] interface; [NewEngine]
// is the real one, over the Docker SDK with API version negotiation so
// that older engines work.
package docker

// Package nemesis injects the faults of a test: network partitions, kills,
// pauses, packet faults and power loss, on a schedule drawn from the
// test's seed.
//
// The pieces, in the order a run uses them:
//
//   - [ParseSpecs] reads --nemesis: a comma list of fault kinds, each with
//     optional targets after a colon, joined by '+':
//
//     partition,kill                   every target of each kind
//     partition:leader,kill:leader     only the leaders
//     pause:one+minority,packet:all    a choice of targets
//     none                             no faults
//
//     [Resolve] checks the specs against the cluster's size and fills in
//     the default targets (every target of the kind that the cluster is
//     big enough for).
//
//   - [NewSchedule] draws the schedule from the seed: a list of steps,
//     each a start time, a fault kind, a target, a duration and a pick (the
//     seed of the choices made when the step runs, such as which node is
//     "one"). Identical seeds, specs, interval and time limit give
//     identical schedules; the schedule goes into test.json.
//
//   - [Nemesis] runs a schedule against a db.DB: it resolves each step's
//     target at the moment it acts (the leader is asked from the cluster's
//     metadata then), applies the fault, heals it when its duration is
//     over, and records every start and every stop into the history as
//     process -1 info operations, an invocation and a completion each,
//     as Jepsen does. [Nemesis.Heal] ends whatever is in force and starts
//     every node, before the final drain.
//
// Each fault kind is a type behind the fault interface (kinds.go): its
// name, targets, the behaviours the schedule draws for it, the resource it
// acts on, what it needs of the backend, and how it starts and ends.
// Adding a kind is adding a type to the faults list.
//
// Faults and their targets (Jepsen's names where Jepsen has them):
//
//	partition   one, majority, majorities-ring, bridge, leader
//	            f: start-partition / stop-partition
//	kill        one, minority, majority, all, leader     (SIGKILL, restart)
//	            f: kill / start
//	pause       one, minority, leader                    (SIGSTOP, SIGCONT)
//	            f: pause / resume
//	packet      one, minority, majority, all, leader     (latency or loss on
//	            every link to and from the targets)
//	            f: start-packet / stop-packet
//	power       one, minority, majority, all, leader     (SIGKILL, power
//	            cut of the data folder, restart)
//	            f: power-off / power-on
//
// Targets: one is a single node; minority the largest minority; majority
// the smallest majority; all every node; leader the node that currently
// leads one partition of the test's topic. For partitions, one isolates
// a node, majority splits the nodes into a minority and a majority
// (Jepsen's bisect of a shuffled list, smaller half first), leader
// isolates the leader, and majorities-ring and bridge are Jepsen's grudges
// of those names (see [MajoritiesRingGrudge] and [BridgeGrudge]).
//
// Power: power-off kills every target (SIGKILL, waiting for each to
// exit), then cuts the power of each one's data folder (Config.Power, the
// power-loss filesystems of package db/powerfs that the harness mounts
// under the data folders): what was not fsynced is gone, as after a
// power failure, where a kill alone loses nothing the kernel's page cache
// held. The targets go down together, as on one power feed. power-on,
// after the step's duration, starts them on what survived. The
// completion of power-off says, by node, what its cut undid (files
// reverted, bytes lost, folder entries undone, torn writes).
//
// Schedule shape: faults are spaced by gaps drawn uniformly from
// [interval/2, 3*interval/2] and last a duration drawn from the same
// range. Kill, pause and power act on processes, partition and packet on
// the network; two faults on the same resource never overlap, while a network
// fault and a process fault may (a partition during which the leader is
// killed): Jepsen's combined nemesis mixes its packages the same way.
// Only steps that start before the time limit are drawn; whatever is in
// force at the limit is ended by Heal.
//
// Packet behaviours: latency adds 50ms ± 10ms to every byte (Jepsen's
// default delay), loss loses 20% of packets (Jepsen's default loss), which
// on TCP means stalls, never missing bytes (see db.Packet and db/proxy).
package nemesis

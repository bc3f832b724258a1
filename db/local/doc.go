// Package local runs the broker nodes of a test as processes on loopback:
// the default backend of garantia test, needing no Docker and no root.
//
// Each node is one `garantia broker` process (the harness runs its own
// executable, or Options.Binary) listening on a free 127.0.0.1 port, with
// its data folder and log file inside the run's store folder:
//
//	store/<test>/<ts>/n1/data
//	store/<test>/<ts>/n1/broker.log
//
// Faults are signals: Kill is SIGKILL, Pause SIGSTOP, Resume SIGCONT, and
// Start runs the node again on the same port and data folder.
//
// Nothing outlives the harness. Each process is its own process group (so
// a terminal's Ctrl-C reaches the harness only, which then tears down in
// order), Teardown kills every group, and each child carries
// Pdeathsig=SIGKILL so that the kernel kills it if the harness dies
// without tearing down (kill -9, a panic). Pdeathsig fires when the
// *thread* that forked the child exits, not the process, so all children
// are forked from one goroutine locked to its OS thread for the life of
// the backend (Go's runtime otherwise may retire threads).
package local

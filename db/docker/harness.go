package docker

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// HarnessLabel is this process's LabelHarness value: what marks the
// things it creates as belonging to a live harness.
func HarnessLabel() string { return harnessID() }

// harnessID is this process's LabelHarness value:
// "<hostname>/<pid>/<start time>". The start time (in clock ticks since
// boot, from /proc) tells a live harness from a later process that got
// the same pid.
func harnessID() string {
	host, _ := os.Hostname()
	pid := os.Getpid()
	return fmt.Sprintf("%s/%d/%d", host, pid, processStart(pid))
}

// processStart returns the start time of process pid in clock ticks after
// boot (field 22 of /proc/pid/stat), or 0 when it cannot be read (no such
// process, or no /proc).
func processStart(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may hold spaces and ')', so count
	// fields after the last ')': state is field 3, starttime field 22.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// harnessState is what a LabelHarness value says about its harness.
type harnessState int

const (
	harnessDead      harnessState = iota // on this host, and gone
	harnessAlive                         // on this host, still running
	harnessElsewhere                     // another host's, or unreadable: cannot tell
)

// harnessStatus judges a LabelHarness value from this host.
func harnessStatus(label string) (harnessState, string) {
	parts := strings.Split(label, "/")
	if len(parts) != 3 {
		return harnessElsewhere, "its owner is unknown (no " + LabelHarness + " label)"
	}
	host, _ := os.Hostname()
	pid, err1 := strconv.Atoi(parts[1])
	start, err2 := strconv.ParseUint(parts[2], 10, 64)
	if parts[0] != host || err1 != nil || err2 != nil {
		return harnessElsewhere, fmt.Sprintf("its harness ran on host %q, not this one (%q)", parts[0], host)
	}
	if pid == os.Getpid() {
		return harnessAlive, "it belongs to this process"
	}
	if now := processStart(pid); now != 0 && now == start {
		return harnessAlive, fmt.Sprintf("its harness (pid %d) is still running", pid)
	}
	return harnessDead, ""
}

package docker

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNetNS runs fn on an OS thread that has joined the network namespace
// of process pid, so that sockets fn opens live in that namespace (a
// socket stays in the namespace it was made in, whatever thread uses it
// later). The thread is never returned to Go's scheduler: the goroutine
// ends still locked, and the runtime then retires the thread rather than
// reuse a thread in a foreign namespace.
func inNetNS(pid int, fn func() error) error {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return fmt.Errorf("open the network namespace of process %d: %w", pid, err)
	}
	defer ns.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: see above.
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns into the network namespace of process %d: %w", pid, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

//go:build !linux

package docker

import (
	"fmt"
	"runtime"
)

// inNetNS needs Linux network namespaces.
func inNetNS(pid int, fn func() error) error {
	return fmt.Errorf("%w: entering a container's network namespace needs Linux (this is %s)", ErrFaultTools, runtime.GOOS)
}

package powerfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Mounted is one powerfs mount found in /proc/self/mountinfo.
type Mounted struct {
	// Dir is the mount point.
	Dir string
	// PID and Start identify the process serving it (Start in clock ticks
	// since boot, from /proc/PID/stat); Label is the label it was given.
	PID   int
	Start int64
	Label string
	// Stale: the serving process is gone (or is another process with a
	// recycled id), so the mount only answers "transport endpoint is not
	// connected".
	Stale bool
}

func (m Mounted) String() string {
	state := "served by live process"
	if m.Stale {
		state = "stale: its process is gone"
	}
	return fmt.Sprintf("powerfs mount %s (label %q, pid %d, %s)", m.Dir, m.Label, m.PID, state)
}

// Mounts lists the powerfs mounts this process's mount namespace sees,
// from /proc/self/mountinfo.
func Mounts() ([]Mounted, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("powerfs: listing mounts: %w", err)
	}
	return parseMountinfo(data), nil
}

// parseMountinfo picks the powerfs mounts out of a mountinfo file (see
// proc(5): fields up to the mount point, optional fields, "-", type,
// source, super options; spaces and such escaped as \040).
func parseMountinfo(data []byte) []Mounted {
	var out []Mounted
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) || f[sep+1] != "fuse."+fsName {
			continue
		}
		m := Mounted{Dir: unescapeMountinfo(f[4]), PID: -1, Start: -1}
		src := unescapeMountinfo(f[sep+2])
		parts := strings.SplitN(strings.TrimPrefix(src, fsName+":"), ":", 3)
		for i, p := range parts {
			switch {
			case strings.HasPrefix(p, "pid="):
				m.PID, _ = strconv.Atoi(strings.TrimPrefix(p, "pid="))
			case strings.HasPrefix(p, "start="):
				m.Start, _ = strconv.ParseInt(strings.TrimPrefix(p, "start="), 10, 64)
			case i == 2:
				m.Label = p
			}
		}
		m.Stale = m.PID <= 0 || procStart(m.PID) != m.Start
		out = append(out, m)
	}
	return out
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// RemoveStale unmounts (lazily: MNT_DETACH) every powerfs mount whose
// serving process is gone, what a harness killed with SIGKILL leaves, and
// returns those it removed. Mounts of live processes are left alone,
// whoever they belong to. The backing folders stay as they were.
func RemoveStale() ([]Mounted, error) {
	all, err := Mounts()
	if err != nil {
		return nil, err
	}
	var removed []Mounted
	var errs []error
	for _, m := range all {
		if !m.Stale {
			continue
		}
		if err := detach(m.Dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, m)
	}
	return removed, errors.Join(errs...)
}

// errNoBinary: the helper program is not installed.
var errNoBinary = errors.New("not installed")

func execCommand(bin string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, errNoBinary
	}
	return exec.Command(path, args...).CombinedOutput()
}

package powerfs

import (
	"os"
	"strconv"
	"testing"
)

// TestParseMountinfo: powerfs mounts are picked out of mountinfo by type,
// with escaped mount points, their labels and their serving process;
// other FUSE mounts and malformed lines are left alone.
func TestParseMountinfo(t *testing.T) {
	self := os.Getpid()
	start := procStart(self)
	data := "" +
		"22 1 0:21 / /proc rw,nosuid - proc proc rw\n" +
		"46 27 0:40 / /tmp/a\\040b/mnt rw,nosuid,nodev shared:5 - fuse.garantia-powerfs garantia-powerfs:pid=" + strconv.Itoa(self) + ":start=" + strconv.FormatInt(start, 10) + ":run/n1 rw,user_id=0\n" +
		"47 27 0:41 / /tmp/dead rw - fuse.garantia-powerfs garantia-powerfs:pid=2147483646:start=5:run/n2 rw\n" +
		"48 27 0:42 / /tmp/sshfs rw - fuse.sshfs host:/ rw\n" +
		"garbage line\n"
	got := parseMountinfo([]byte(data))
	if len(got) != 2 {
		t.Fatalf("parsed %d powerfs mounts, want 2: %+v", len(got), got)
	}
	if got[0].Dir != "/tmp/a b/mnt" || got[0].Label != "run/n1" || got[0].PID != self || got[0].Stale {
		t.Fatalf("live mount parsed as %+v", got[0])
	}
	if got[1].Dir != "/tmp/dead" || got[1].Label != "run/n2" || !got[1].Stale {
		t.Fatalf("dead mount parsed as %+v", got[1])
	}
}

package storage

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashHelperEnv carries the log directory to the child process of
// TestSIGKILLLosesNothingAcknowledged; crashEpochEnv its leader epoch.
const (
	crashHelperEnv = "GARANTIA_STORAGE_CRASH_DIR"
	crashEpochEnv  = "GARANTIA_STORAGE_CRASH_EPOCH"
	crashWriters   = 4
)

// crashBatch is the batch the child appends as writer w's i-th: the parent
// rebuilds it from the tag to compare bytes.
func crashBatch(tag string, i int) []byte { return batch(tag, 1+i%5, 100) }

// crashOpts are the child's options: FsyncAlways, and segments small
// enough that the run rolls several times.
func crashOpts(logger *slog.Logger) Options {
	return Options{Fsync: FsyncAlways, SegmentBytes: 64 << 10, IndexIntervalBytes: 1 << 10, Logger: logger}
}

// TestHelperProcess is the child of TestSIGKILLLosesNothingAcknowledged: it
// appends from several goroutines with FsyncAlways and prints "ack <base>
// <tag>" for every append that returned, until it is killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		t.Skip("the child process of TestSIGKILLLosesNothingAcknowledged")
	}
	epoch, _ := strconv.Atoi(os.Getenv(crashEpochEnv))
	l, err := OpenLog(dir, crashOpts(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	for w := range crashWriters {
		go func() {
			for i := 0; ; i++ {
				tag := fmt.Sprintf("e%d-w%d-%d", epoch, w, i)
				base, err := l.AppendAsLeader(crashBatch(tag, i), int32(epoch))
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d %s %d\n", base, tag, i) // unbuffered: one write per ack
				mu.Unlock()
			}
		}()
	}
	select {} // until SIGKILL
}

// TestSIGKILLLosesNothingAcknowledged runs a child that appends with
// FsyncAlways, SIGKILLs it mid-stream, reopens the log and checks that every
// append the child acknowledged is there with its exact bytes; three rounds
// on the same directory, each a new leader epoch.
//
// A SIGKILL loses no page-cache data, so this proves recovery and the
// acknowledgement path under concurrency, not the fsync itself; power loss
// would need a fault-injecting file system (dm-flakey, LazyFS).
func TestSIGKILLLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	r := seededRand(t)
	dir := t.TempDir()
	type acked struct {
		base int64
		tag  string
		i    int
	}
	var all []acked
	for round := range 3 {
		killAfter := 50 + r.IntN(250)
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir, fmt.Sprintf("%s=%d", crashEpochEnv, round))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		killed := false
		timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() }) // a hung child must not hang the test
		sc := bufio.NewScanner(stdout)
		n := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 4 || f[0] != "ack" {
				continue // the test framework's own output
			}
			base, err1 := strconv.ParseInt(f[1], 10, 64)
			i, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil {
				t.Fatalf("child printed %q", sc.Text())
			}
			all = append(all, acked{base, f[2], i})
			if n++; n == killAfter && !killed {
				killed = true
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
		}
		err = cmd.Wait()
		timer.Stop()
		if !killed {
			t.Fatalf("round %d: child exited before %d acks: %v\n%s", round, killAfter, err, stderr.String())
		}

		logger, out := testLogger(t)
		l, err := OpenLog(dir, crashOpts(logger))
		if err != nil {
			t.Fatalf("round %d: reopening after SIGKILL: %v", round, err)
		}
		got := map[int64]storedBatch{}
		for _, b := range readAll(t, l, 1<<20) {
			got[b.base] = b
		}
		for _, a := range all {
			b, ok := got[a.base]
			if want := stamped(crashBatch(a.tag, a.i), a.base, b.epoch); !ok || !bytes.Equal(b.data, want) {
				t.Fatalf("round %d: acknowledged batch %s at offset %d is missing or changed after SIGKILL (present %v)", round, a.tag, a.base, ok)
			}
			if e, _ := strconv.Atoi(strings.TrimPrefix(strings.Split(a.tag, "-")[0], "e")); int32(e) != b.epoch {
				t.Fatalf("round %d: batch %s stored with epoch %d", round, a.tag, b.epoch)
			}
		}
		rep := l.Recovery()
		t.Logf("round %d: killed after %d acks (%d acknowledged in all); log ends at %d; recovery: clean=%v scanned %d segments, %d bytes, truncated=%v %s",
			round, killAfter, len(all), l.EndOffset(), rep.Clean, rep.SegmentsScanned, rep.BytesScanned, rep.Truncated, strings.TrimSpace(out.String()))
		if rep.Clean {
			t.Fatalf("round %d: a SIGKILLed log recovered as clean", round)
		}
		if e, _ := l.EndOffsetForEpoch(int32(round)); e != int32(round) {
			t.Fatalf("round %d: EndOffsetForEpoch(%d) found epoch %d", round, round, e)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

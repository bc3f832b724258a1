package storage

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/garantia/garantia/db/powerfs"
	"github.com/garantia/garantia/db/powerfs/powerfstest"
)

// The power-cut tests run the log on a db/powerfs mount, which forgets at
// a cut everything not fsynced (file data since the file's last fsync,
// folder entries since the folder's last fsync): what a machine losing
// power loses. db/powerfs is a leaf package the tests borrow; the broker
// itself does not depend on it. Without FUSE the tests skip (in CI with
// /dev/fuse they fail instead: powerfstest).

// powerCutResult sums a power-cut run.
type powerCutResult struct {
	cuts, acked, lost, truncations int
	firstLoss                      string
}

// runPowerCuts opens a log in a store on the mount, appends from four
// goroutines for a random few milliseconds, abandons the log as a killed
// process would (no sync, no marker), cuts the power, reopens it and
// checks that every acknowledged batch is there with its exact bytes,
// cuts times over. Batches appended after the last check that are not
// acknowledged may come back or not. With stopAtLoss it returns at the
// first lost batch.
func runPowerCuts(t *testing.T, f *powerfs.FS, opts Options, cuts int, stopAtLoss bool) powerCutResult {
	t.Helper()
	r := seededRand(t)
	logger, _ := testLogger(t)
	opts.Logger = logger
	type acked struct {
		base  int64
		tag   string
		i     int
		epoch int32
	}
	var all []acked
	var res powerCutResult
	dataDir := filepath.Join(f.Dir(), "data")
	for cut := range cuts {
		store, err := Open(dataDir, opts)
		if err != nil {
			t.Fatalf("cut %d: opening the store after a power cut: %v", cut, err)
		}
		lp, err := store.Log("power", 0, true)
		if err != nil {
			t.Fatal(err)
		}
		// Every acknowledged batch is there, with its bytes.
		got := map[int64]storedBatch{}
		for _, b := range readAll(t, lp, 1<<20) {
			got[b.base] = b
		}
		kept := all[:0]
		for _, a := range all {
			b, ok := got[a.base]
			if !ok || !bytes.Equal(b.data, stamped(crashBatch(a.tag, a.i), a.base, a.epoch)) {
				res.lost++
				if res.firstLoss == "" {
					res.firstLoss = fmt.Sprintf("acknowledged batch %s at offset %d (epoch %d) is missing or changed after power cut %d (present %v); the log ends at %d",
						a.tag, a.base, a.epoch, cut, ok, lp.EndOffset())
				}
				continue
			}
			kept = append(kept, a)
		}
		all = kept
		if rep := lp.Recovery(); rep.Truncated {
			res.truncations++
		}
		if res.lost > 0 && stopAtLoss {
			lp.crash()
			store.crash()
			return res
		}
		// Append for a while: an epoch per round, so the epoch checkpoint
		// changes too, and small segments, so that logs roll.
		epoch := int32(cut)
		stop := make(chan struct{})
		var mu sync.Mutex
		var wg sync.WaitGroup
		var appendErr error
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					tag := fmt.Sprintf("c%d-w%d-%d", cut, w, i)
					base, err := lp.AppendAsLeader(crashBatch(tag, i), epoch)
					mu.Lock()
					if err == nil {
						all = append(all, acked{base, tag, i, epoch})
						res.acked++
					} else if !errors.Is(err, ErrClosed) && appendErr == nil {
						appendErr = err
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(2+r.IntN(15)) * time.Millisecond)
		// The process dies: appends in flight fail, nothing more is synced.
		lp.crash()
		close(stop)
		wg.Wait()
		store.crash()
		if appendErr != nil {
			t.Fatalf("cut %d: append failed: %v", cut, appendErr)
		}
		if _, err := f.PowerCut(); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		res.cuts++
	}
	return res
}

// crash abandons the store as a killed process would. For tests.
func (s *DiskStore) crash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, l := range s.logs {
		l.crash()
	}
	unlockDir(s.lock)
}

// TestPowerCutsKeepAcknowledgedWithFsyncAlways: hundreds of power cuts
// during concurrent appends with FsyncAlways, through the strict
// filesystem (and some through the ext4-ordered one); after each,
// recovery keeps every acknowledged batch.
func TestPowerCutsKeepAcknowledgedWithFsyncAlways(t *testing.T) {
	for _, tt := range []struct {
		mode powerfs.Mode
		cuts int
	}{{powerfs.Strict, 200}, {powerfs.Ordered, 50}} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			cuts := tt.cuts
			if testing.Short() {
				cuts /= 5
			}
			f := powerfstest.Mount(t, powerfs.Options{Mode: tt.mode})
			res := runPowerCuts(t, f, Options{Fsync: FsyncAlways, SegmentBytes: 16 << 10, IndexIntervalBytes: 1 << 10}, cuts, false)
			if res.lost > 0 {
				t.Fatalf("%d acknowledged batches lost over %d power cuts with fsync always; first: %s", res.lost, res.cuts, res.firstLoss)
			}
			t.Logf("%d power cuts, %d appends acknowledged, none lost; %d recoveries truncated a torn tail", res.cuts, res.acked, res.truncations)
		})
	}
}

// TestPowerCutsLoseAcknowledgedWithFsyncNever shows the cuts have teeth:
// with FsyncNever, acknowledged appends are lost.
func TestPowerCutsLoseAcknowledgedWithFsyncNever(t *testing.T) {
	f := powerfstest.Mount(t, powerfs.Options{})
	res := runPowerCuts(t, f, Options{Fsync: FsyncNever, SegmentBytes: 16 << 10, IndexIntervalBytes: 1 << 10}, 30, true)
	if res.lost == 0 {
		t.Fatalf("%d power cuts with fsync never lost none of %d acknowledged appends: the power cut has no teeth", res.cuts, res.acked)
	}
	t.Logf("fsync never: lost %d acknowledged appends by power cut %d; first: %s", res.lost, res.cuts, res.firstLoss)
}

// TestPowerCutsCatchAckBeforeSync: the fsync-after-ack bug switch (appends
// acknowledged before their fsync) loses acknowledged appends to power
// cuts that fsync always survives.
func TestPowerCutsCatchAckBeforeSync(t *testing.T) {
	f := powerfstest.Mount(t, powerfs.Options{})
	res := runPowerCuts(t, f, Options{Fsync: FsyncAlways, AckBeforeSync: true, SegmentBytes: 16 << 10, IndexIntervalBytes: 1 << 10}, 100, true)
	if res.lost == 0 {
		t.Fatalf("%d power cuts with the fsync-after-ack bug lost none of %d acknowledged appends", res.cuts, res.acked)
	}
	t.Logf("fsync-after-ack: lost %d acknowledged appends by power cut %d; first: %s", res.lost, res.cuts, res.firstLoss)
}

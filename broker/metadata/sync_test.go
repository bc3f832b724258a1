package metadata

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type countingSync struct {
	*Memory
	calls atomic.Int32
	delay time.Duration
}

func (c *countingSync) Sync(context.Context) error {
	c.calls.Add(1)
	time.Sleep(c.delay)
	return nil
}

// TestSyncGateCoalesces: concurrent callers share syncs (at most the one
// in flight and one after it), and a caller is never covered by a sync
// that started before it called.
func TestSyncGateCoalesces(t *testing.T) {
	c := &countingSync{Memory: NewMemory(), delay: 20 * time.Millisecond}
	g := NewSyncGate(c)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.Sync(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := c.calls.Load(); n < 1 || n > 3 {
		t.Fatalf("50 concurrent callers made %d syncs, want 1 to 3", n)
	}
	before := c.calls.Load()
	if err := g.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.calls.Load() != before+1 {
		t.Fatal("a caller after every earlier sync finished did not get a sync of its own")
	}
	if NewSyncGate(struct{ Controller }{NewMemory()}) != nil {
		t.Fatal("a controller without Propagation got a gate")
	}
	var none *SyncGate
	if err := none.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

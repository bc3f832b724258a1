package metadata

import (
	"context"
	"sync"
	"time"
)

// SyncGate shares Propagation.Sync among concurrent callers, so that a
// burst of requests that each need this node's metadata to be current
// costs one read index at the controller, not one each. A caller is
// covered by any sync that started after it called; it waits for one in
// flight that started earlier and then starts its own.
type SyncGate struct {
	p Propagation

	mu       sync.Mutex
	inflight chan struct{} // closed when the sync in flight ends
	started  time.Time     // when the sync in flight (or the last one) started
	lastErr  error         // the last finished sync's result
	lastAt   time.Time     // when the last finished sync started
}

// NewSyncGate returns a gate over c's Sync, or nil when c's brokers never
// lag (it does not implement Propagation); a nil gate's Sync returns nil.
func NewSyncGate(c Controller) *SyncGate {
	p, ok := c.(Propagation)
	if !ok {
		return nil
	}
	return &SyncGate{p: p}
}

// Sync returns once this node has applied everything the controller had
// applied when Sync was called, or ctx's error.
func (g *SyncGate) Sync(ctx context.Context) error {
	if g == nil {
		return nil
	}
	called := time.Now()
	for {
		g.mu.Lock()
		if !g.lastAt.IsZero() && g.lastAt.After(called) && g.inflight == nil {
			err := g.lastErr
			g.mu.Unlock()
			return err
		}
		if ch := g.inflight; ch != nil {
			started := g.started
			g.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
			if started.After(called) {
				g.mu.Lock()
				err := g.lastErr
				g.mu.Unlock()
				return err
			}
			continue
		}
		ch := make(chan struct{})
		g.inflight, g.started = ch, time.Now()
		g.mu.Unlock()
		err := g.p.Sync(ctx)
		g.mu.Lock()
		g.lastErr, g.lastAt, g.inflight = err, g.started, nil
		close(ch)
		g.mu.Unlock()
		return err
	}
}

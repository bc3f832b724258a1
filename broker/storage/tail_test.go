package storage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestTailCacheReadsMatchTheFiles drives two logs through the same seeded
// appends and truncations, one answering reads from a small tail cache and
// one from its files only, and requires every read to return the same
// bytes: the cache is an optimisation, never a second source of truth.
func TestTailCacheReadsMatchTheFiles(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			cached := openLog(t, t.TempDir(), Options{TailCacheBytes: 1500, SegmentBytes: 4000, IndexIntervalBytes: 300})
			files := openLog(t, t.TempDir(), Options{TailCacheBytes: -1, SegmentBytes: 4000, IndexIntervalBytes: 300})
			epoch := int32(0)
			for step := range 400 {
				switch r := rng.IntN(20); {
				case r == 0 && cached.EndOffset() > 0:
					to := rng.Int64N(cached.EndOffset() + 1)
					// Truncate to a batch boundary: where the batch holding
					// `to` starts, as a follower's truncation does.
					if b, err := files.Read(to, 0, files.EndOffset()); err == nil && len(b) > 0 {
						h, _ := parseHeader(b)
						to = h.baseOffset
					}
					for _, l := range []*Log{cached, files} {
						if err := l.TruncateTo(to); err != nil {
							t.Fatalf("step %d: TruncateTo(%d): %v", step, to, err)
						}
					}
				case r == 1:
					epoch++
				default:
					// Mostly small batches, now and then one larger than
					// the whole cache.
					size := 20 + rng.IntN(150)
					if rng.IntN(30) == 0 {
						size = 2000
					}
					b := batch(fmt.Sprint("s", step), 1+rng.IntN(3), size)
					for _, l := range []*Log{cached, files} {
						if _, err := l.AppendAsLeader(b, epoch); err != nil {
							t.Fatalf("step %d: append: %v", step, err)
						}
					}
				}
				end := files.EndOffset()
				if cached.EndOffset() != end {
					t.Fatalf("step %d: end offsets differ: cached %d, files %d", step, cached.EndOffset(), end)
				}
				for range 3 {
					off := rng.Int64N(end + 1)
					limit := off + rng.Int64N(end-off+1)
					maxBytes := rng.IntN(1200)
					got, err1 := cached.Read(off, maxBytes, limit)
					want, err2 := files.Read(off, maxBytes, limit)
					if err1 != nil || err2 != nil {
						t.Fatalf("step %d: Read(%d, %d, %d): cached %v, files %v", step, off, maxBytes, limit, err1, err2)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("step %d: Read(%d, %d, %d): cached gave %d bytes, files %d", step, off, maxBytes, limit, len(got), len(want))
					}
				}
			}
			if cached.tail.bytes > cached.tail.budget {
				t.Fatalf("tail cache holds %d bytes, over its %d budget", cached.tail.bytes, cached.tail.budget)
			}
		})
	}
}

package storage

import "sort"

// DefaultTailCacheBytes is Options.TailCacheBytes' default: some 1,700
// single-record batches, far more than a follower or a caught-up consumer
// lags by, yet small enough that a broker holding a thousand partition
// replicas spends at most 128 MiB on it.
const DefaultTailCacheBytes = 128 << 10

// tailCache holds copies of the newest batches of a log, up to a byte
// budget, so that the reads a running cluster makes all the time (a
// follower or a caught-up consumer asking for what was just appended) cost
// neither a pread nor an index walk. It always ends at the log end: every
// append adds to it and every truncation cuts it, so a read at or above
// its first offset can be answered from it alone. Its bytes were checked
// (framing, CRC-32C) when they were appended, before they reached the
// file. Callers hold the log's mu: exclusively to change it, shared to
// read it.
type tailCache struct {
	budget  int
	batches []tailBatch // by offset, contiguous
	bytes   int         // total bytes of batches
}

// tailBatch is one batch of a tailCache.
type tailBatch struct {
	base, next int64 // its offsets are [base, next)
	b          []byte
}

// add appends the batches of buf (described by hs, already stamped with
// their offsets), which follow the cache's last batch. It copies buf, which
// the caller may reuse.
func (t *tailCache) add(buf []byte, hs []batchHeader) {
	if t.budget <= 0 {
		return
	}
	if len(buf) > t.budget {
		// Keep only what fits: the newest batches.
		skip := 0
		for len(buf)-skip > t.budget && len(hs) > 0 {
			skip += hs[0].size()
			hs = hs[1:]
		}
		t.reset()
		buf = buf[skip:]
	}
	own := append([]byte(nil), buf...)
	pos := 0
	for _, h := range hs {
		n := h.size()
		t.batches = append(t.batches, tailBatch{base: h.baseOffset, next: h.next(), b: own[pos : pos+n : pos+n]})
		t.bytes += n
		pos += n
	}
	drop := 0
	for t.bytes > t.budget && drop < len(t.batches) {
		t.bytes -= len(t.batches[drop].b)
		drop++
	}
	if drop > 0 {
		// Shift rather than reslice, so the array does not grow forever.
		n := copy(t.batches, t.batches[drop:])
		clear(t.batches[n:])
		t.batches = t.batches[:n]
	}
}

// truncateFrom drops the batches at offset and after (offset is a batch
// boundary of the log, or below the cache).
func (t *tailCache) truncateFrom(offset int64) {
	i := sort.Search(len(t.batches), func(i int) bool { return t.batches[i].next > offset })
	if i < len(t.batches) && t.batches[i].base < offset {
		// Not a boundary of ours: the cache cannot say where the log
		// ends now, so it starts over.
		t.reset()
		return
	}
	for _, b := range t.batches[i:] {
		t.bytes -= len(b.b)
	}
	clear(t.batches[i:])
	t.batches = t.batches[:i]
}

func (t *tailCache) reset() {
	clear(t.batches)
	t.batches = t.batches[:0]
	t.bytes = 0
}

// read answers Log.Read from the cache: whole batches from the one holding
// offset, each starting below limit, at most maxBytes in all except that
// the first is always whole. ok is false when offset lies below the cache.
func (t *tailCache) read(offset int64, maxBytes int, limit int64) (out []byte, ok bool) {
	if len(t.batches) == 0 || offset < t.batches[0].base {
		return nil, false
	}
	i := sort.Search(len(t.batches), func(i int) bool { return t.batches[i].next > offset })
	size := 0
	j := i
	for ; j < len(t.batches) && t.batches[j].base < limit; j++ {
		n := len(t.batches[j].b)
		if j > i && size+n > maxBytes {
			break
		}
		size += n
	}
	if j == i {
		return nil, true
	}
	out = make([]byte, 0, size)
	for _, b := range t.batches[i:j] {
		out = append(out, b.b...)
	}
	return out, true
}

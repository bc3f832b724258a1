package queue

// chunkBits sets the size of the chunks of chunks and sparse: 65,536
// entries.
const (
	chunkBits = 16
	chunkMask = 1<<chunkBits - 1
)

// chunks is a growable array stored in fixed-size chunks: growing it never
// copies what it holds, so its peak memory is its size, where an
// append-grown slice needs its old and its new array at once. A key's
// values can be as many as the history's records.
type chunks[T any] struct {
	c [][]T
	n int
}

// add appends v and returns its index. A chunk grows by append up to its
// full size, so that the many keys that hold a few values cost a few
// entries each, not a chunk.
func (s *chunks[T]) add(v T) int32 {
	if s.n>>chunkBits == len(s.c) {
		s.c = append(s.c, nil)
	}
	last := &s.c[len(s.c)-1]
	*last = append(*last, v)
	s.n++
	return int32(s.n - 1)
}

func (s *chunks[T]) at(i int32) *T { return &s.c[i>>chunkBits][i&chunkMask] }

func (s *chunks[T]) len() int { return s.n }

// sparse is a table indexed by small non-negative integers whose chunks
// are made only where something is stored: values numbered 0, 1, 2, ...
// fill it densely, a few large ones cost a chunk each.
type sparse struct {
	c [][]uint64
}

func (t *sparse) get(i int64) uint64 {
	if c := i >> chunkBits; c < int64(len(t.c)) && t.c[c] != nil {
		return t.c[c][i&chunkMask]
	}
	return 0
}

func (t *sparse) set(i int64, v uint64) {
	c := i >> chunkBits
	if c >= int64(len(t.c)) {
		t.c = append(t.c, make([][]uint64, c+1-int64(len(t.c)))...)
	}
	if t.c[c] == nil {
		t.c[c] = make([]uint64, 1<<chunkBits)
	}
	t.c[c][i&chunkMask] = v
}

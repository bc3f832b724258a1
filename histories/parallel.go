package histories

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/garantia/garantia/internal/crash"
)

// parallelBlockBytes is how much of a history one worker decodes at a time:
// big enough that handing blocks around costs nothing, small enough that
// all CPUs get work early and memory stays bounded.
const parallelBlockBytes = 2 << 20

// reserveSampleBytes is how much of a large history is read before its
// sink is told how big the whole will be.
const reserveSampleBytes = 16 << 20

// pblock is a run of whole lines for a worker to decode.
type pblock struct {
	seq       int
	buf       []byte // the buffer data lives in, recycled after decoding
	data      []byte
	firstLine int   // the number of data's first line
	err       error // instead of data: why reading stopped at firstLine
}

// presult is what a worker made of a block.
type presult struct {
	seq   int
	bytes int // the block's length
	ops   []Op
	ar    *arena // the memory of ops, when the sink lets it be reused

	lines   []int32 // lines[i] is the line of ops[i]
	warning string  // a truncated last line was skipped
	err     error   // the first bad line; the block's later lines are ignored
}

// readParallelInto decodes a history with workers goroutines: one reads
// blocks of whole lines, the workers decode them, and the caller's
// goroutine puts the results back in order, checks the order of the ops
// and hands them to s. It accepts and refuses exactly what a sequential
// Reader does, with the same errors.
func readParallelInto(r io.Reader, name string, s opSink, workers, blockBytes int) ([]string, error) {
	blocks := make(chan *pblock, workers)
	results := make(chan *presult, workers)
	freeBufs := make(chan []byte, 2*workers+2)
	freeRes := make(chan *presult, 2*workers+2)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		produceBlocks(r, name, blockBytes, blocks, freeBufs, done)
	}()
	var workersWG sync.WaitGroup
	for range workers {
		workersWG.Add(1)
		go func() {
			defer workersWG.Done()
			decodeBlocks(name, blocks, results, freeBufs, freeRes, done, !s.keeps())
		}()
	}
	go func() {
		workersWG.Wait()
		close(results)
	}()
	// Stop and wait for every goroutine before returning: the caller may
	// close r as soon as we return.
	defer func() {
		close(done)
		for range results { // unblock workers until they have all gone
		}
		wg.Wait()
	}()

	var warnings []string
	var ord order
	waiting := make(map[int]*presult)
	next := 0
	// Once a sample of the history is in, a sink that can is told how big
	// the whole will be.
	total, seen, nextReserve := int64(0), int64(0), int64(reserveSampleBytes)
	if sz, ok := r.(sized); ok {
		total = sz.size
	}
	rs, canReserve := s.(reserver)
	for res := range results {
		waiting[res.seq] = res
		for {
			res, ok := waiting[next]
			if !ok {
				break
			}
			delete(waiting, next)
			next++
			for i := range res.ops {
				if err := ord.check(&res.ops[i]); err != nil {
					return warnings, &ParseError{File: name, Line: int(res.lines[i]), Err: err}
				}
			}
			if len(res.ops) > 0 {
				if err := s.add(res.ops, res.lines); err != nil {
					return warnings, err
				}
			}
			seen += int64(res.bytes)
			if canReserve && total > 4*reserveSampleBytes && seen >= nextReserve {
				rs.reserve(float64(total) / float64(seen))
				// The start of a history is not like the rest (assigns,
				// short polls): estimate again as more comes in.
				nextReserve = 4 * seen
			}
			if res.warning != "" {
				warnings = append(warnings, res.warning)
			}
			if res.err != nil {
				return warnings, res.err
			}
			select {
			case freeRes <- res:
			default:
			}
		}
	}
	return warnings, nil
}

// produceBlocks reads r into blocks of whole lines. A line longer than a
// block grows the block, up to MaxLineBytes.
func produceBlocks(r io.Reader, name string, blockBytes int, blocks chan<- *pblock, freeBufs chan []byte, done <-chan struct{}) {
	defer close(blocks)
	send := func(b *pblock) bool {
		select {
		case blocks <- b:
			return true
		case <-done:
			return false
		}
	}
	line, seq := 1, 0
	var pending []byte // the start of a line that did not fit in the last block
	var carry []byte   // storage for pending when it is not a whole buffer
	for eof := false; !eof; {
		// A line longer than half a block gets a block twice its length so
		// far: a long line costs O(length) reading, not O(length²).
		size := max(blockBytes, 2*len(pending), 1)
		var buf []byte
		select {
		case buf = <-freeBufs:
		default:
		}
		if cap(buf) < size {
			buf = make([]byte, 0, size)
		}
		buf = append(buf[:0], pending...)
		var readErr error
		for len(buf) < cap(buf) {
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				readErr = err
				break
			}
		}
		cut := bytes.LastIndexByte(buf, '\n') + 1
		if eof {
			cut = len(buf)
		}
		if readErr != nil {
			// Decode the whole lines read before the error, then report it
			// at the line it broke, as a sequential Reader does.
			if cut > 0 && !send(&pblock{seq: seq, buf: buf, data: buf[:cut], firstLine: line}) {
				return
			}
			line += bytes.Count(buf[:cut], []byte{'\n'})
			send(&pblock{seq: seq + 1, firstLine: line, err: fmt.Errorf("%s:%d: reading the history: %w", name, line, readErr)})
			return
		}
		if cut == 0 {
			if len(buf) > MaxLineBytes {
				send(&pblock{seq: seq, firstLine: line, err: &ParseError{File: name, Line: line, Err: ErrLineTooLong}})
				return
			}
			pending = buf // keep reading the long line into a bigger buffer
			continue
		}
		carry = append(carry[:0], buf[cut:]...)
		pending = carry
		if !send(&pblock{seq: seq, buf: buf, data: buf[:cut], firstLine: line}) {
			return
		}
		line += bytes.Count(buf[:cut], []byte{'\n'})
		seq++
	}
}

// decodeBlocks is a worker: it decodes blocks into ops with a decoder of
// its own.
func decodeBlocks(name string, blocks <-chan *pblock, results chan<- *presult, freeBufs chan []byte, freeRes chan *presult, done <-chan struct{}, reuse bool) {
	d := newDecoder()
	for b := range blocks {
		var res *presult
		select {
		case res = <-freeRes:
			res.ops, res.lines = res.ops[:0], res.lines[:0]
			res.warning = ""
		default:
			res = &presult{ops: make([]Op, 0, len(b.data)/opBytesGuess+16)}
			if reuse {
				res.ar = &arena{reuse: true}
			}
		}
		if reuse {
			// The sink is done with the block this result held.
			res.ar.reset()
			d.ar = res.ar
		}
		res.seq, res.err, res.bytes = b.seq, b.err, len(b.data)
		if b.err == nil {
			decodeBlockSafely(d, name, b, res)
			select {
			case freeBufs <- b.buf:
			default:
			}
		}
		select {
		case results <- res:
		case <-done:
		}
	}
}

// decodeBlockSafely is decodeBlock with a panic (a bug, say on input the
// fuzzers never found) turned into the block's error: a panic in this
// goroutine could not be recovered by anyone else, and would end the
// process as though the history were unknown.
func decodeBlockSafely(d *decoder, name string, b *pblock, res *presult) {
	defer func() {
		if r := recover(); r != nil {
			res.err = crash.Errorf(r, fmt.Sprintf("reading %s from line %d", name, b.firstLine))
			*d = *newDecoder() // its state is unknown
		}
	}()
	decodeBlock(d, name, b, res)
}

func decodeBlock(d *decoder, name string, b *pblock, res *presult) {
	data := b.data
	for line := b.firstLine; len(data) > 0; line++ {
		var l []byte
		complete := false
		if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
			l, data, complete = data[:nl+1], data[nl+1:], true
		} else {
			l, data = data, nil
		}
		if len(trimEOL(l)) > MaxLineBytes {
			res.err = &ParseError{File: name, Line: line, Err: ErrLineTooLong}
			return
		}
		res.ops = append(res.ops, Op{})
		op := &res.ops[len(res.ops)-1]
		kind, err := decodeLine(d, l, complete, op)
		if kind != lineOp {
			res.ops = res.ops[:len(res.ops)-1]
		}
		switch kind {
		case lineBlank:
			continue
		case lineTruncated:
			res.warning = truncatedWarning(name, line, err)
			return
		case lineBad:
			res.err = &ParseError{File: name, Line: line, Err: err}
			return
		}
		res.lines = append(res.lines, int32(line))
	}
}

package histories

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// parallelBlockBytes is how much of a history one worker decodes at a time:
// big enough that handing blocks around costs nothing, small enough that
// all CPUs get work early and memory stays bounded.
const parallelBlockBytes = 2 << 20

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
	seq         int
	ops         []Op
	firstOpLine int    // the line of ops[0]
	warning     string // a truncated last line was skipped
	err         error  // the first bad line; the block's later lines are ignored
}

// readParallel decodes a history with workers goroutines: one reads blocks
// of whole lines, the workers decode them, and the caller's goroutine puts
// the results back in order, checking indexes across blocks. It accepts and
// refuses exactly what a sequential Reader does, with the same errors.
func readParallel(r io.Reader, name string, hint, workers, blockBytes int) ([]Op, []string, error) {
	blocks := make(chan *pblock, workers)
	results := make(chan *presult, workers)
	freeBufs := make(chan []byte, 2*workers+2)
	freeOps := make(chan []Op, 2*workers+2)
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
			decodeBlocks(name, blocks, results, freeBufs, freeOps, done)
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

	out := make([]Op, 0, hint)
	var warnings []string
	waiting := make(map[int]*presult)
	next, prevIndex := 0, int64(-1)
	for res := range results {
		waiting[res.seq] = res
		for {
			res, ok := waiting[next]
			if !ok {
				break
			}
			delete(waiting, next)
			next++
			if len(res.ops) > 0 && res.ops[0].Index <= prevIndex {
				return nil, warnings, &ParseError{File: name, Line: res.firstOpLine, Err: indexOrderError(prevIndex, res.ops[0].Index)}
			}
			out = append(out, res.ops...)
			if len(res.ops) > 0 {
				prevIndex = res.ops[len(res.ops)-1].Index
			}
			select {
			case freeOps <- res.ops[:0]:
			default:
			}
			if res.warning != "" {
				warnings = append(warnings, res.warning)
			}
			if res.err != nil {
				return nil, warnings, res.err
			}
		}
	}
	return out, warnings, nil
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
func decodeBlocks(name string, blocks <-chan *pblock, results chan<- *presult, freeBufs chan []byte, freeOps chan []Op, done <-chan struct{}) {
	d := newDecoder()
	for b := range blocks {
		res := &presult{seq: b.seq, err: b.err}
		if b.err == nil {
			select {
			case res.ops = <-freeOps:
			default:
				res.ops = make([]Op, 0, len(b.data)/opBytesGuess+16)
			}
			decodeBlock(d, name, b, res)
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
		if n := len(res.ops); n == 1 {
			res.firstOpLine = line
		} else if prev := res.ops[n-2].Index; op.Index <= prev {
			res.err = &ParseError{File: name, Line: line, Err: indexOrderError(prev, op.Index)}
			res.ops = res.ops[:n-1]
			return
		}
	}
}

package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Log is the on-disk PartitionLog of one topic partition: a directory of
// segment files named by base offset (00000000000000000000.log, with a
// sparse .index beside each), a leader-epoch checkpoint, a recovery point
// and, between a clean Close and the next open, a clean-shutdown marker.
//
// Locking: mu (RW) guards the segment list and the in-memory state; appends
// and truncations take it exclusively, reads share it while they pread. The
// fsyncs run outside mu under syncMu, so appends continue while a sync is in
// flight and concurrent FsyncAlways appenders share one fsync (group
// commit). Lock order: syncMu before mu.
type Log struct {
	dir    string
	name   string // the directory's base name, "<topic>-<partition>"
	opts   Options
	logger *slog.Logger
	lock   *os.File
	start  int64 // StartOffset; fixed, as nothing deletes old segments yet

	mu     sync.RWMutex
	segs   []*segment // by base offset; the last one is active
	epochs epochCache
	closed bool
	failed error  // sticky: set when a write or fsync failed, after which the disk state is unknown
	wbuf   []byte // reused copy buffer for leader appends
	end    atomic.Int64
	tail   tailCache // the newest batches, for reads

	syncMu    sync.Mutex
	syncedEnd int64        // every offset below is on stable storage
	rpWritten int64        // the recovery point on disk
	fsyncs    atomic.Int64 // segment fsyncs so far, to measure group commit

	notifyMu     sync.Mutex
	notifyCh     chan struct{}
	notifyClosed bool

	sealCh      chan struct{} // a segment was sealed: flush it in the background
	done        chan struct{}
	flusherDone chan struct{}
	stopOnce    sync.Once

	report RecoveryReport
}

var _ PartitionLog = (*Log)(nil)

// OpenLog opens (creating if needed) the log in directory dir and recovers
// it: see RecoveryReport and doc.go. The directory's base name names the
// partition in logs and errors.
func OpenLog(dir string, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: creating log directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:         dir,
		name:        filepath.Base(dir),
		opts:        opts,
		logger:      opts.Logger,
		lock:        lock,
		sealCh:      make(chan struct{}, 1),
		done:        make(chan struct{}),
		flusherDone: make(chan struct{}),
		tail:        tailCache{budget: opts.TailCacheBytes},
	}
	if err := l.recover(); err != nil {
		l.closeFiles()
		_ = unlockDir(lock)
		return nil, fmt.Errorf("storage: opening log %s: %w", dir, err)
	}
	go l.flusher()
	return l, nil
}

// Recovery returns what opening the log found and did.
func (l *Log) Recovery() RecoveryReport { return l.report }

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// StartOffset is the first offset in the log.
func (l *Log) StartOffset() int64 { return l.start }

// EndOffset is the offset the next record gets.
func (l *Log) EndOffset() int64 { return l.end.Load() }

// LatestEpoch is the leader epoch of the last batch, or -1.
func (l *Log) LatestEpoch() int32 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epochs.latest()
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch from the epoch cache.
func (l *Log) EndOffsetForEpoch(epoch int32) (int32, int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epochs.endOffsetFor(epoch, l.end.Load())
}

// Notify returns a channel closed at the next change of EndOffset or on
// Close.
func (l *Log) Notify() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	if l.notifyClosed {
		return closedChan
	}
	if l.notifyCh == nil {
		l.notifyCh = make(chan struct{})
	}
	return l.notifyCh
}

// notify wakes the Notify waiters; with closing, for good.
func (l *Log) notify(closing bool) {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	l.notifyClosed = l.notifyClosed || closing
	if l.notifyCh != nil {
		close(l.notifyCh)
		l.notifyCh = nil
	}
}

// closedChan is what Notify returns once the log is closed.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// usableLocked says why the log cannot be written, if it cannot. Callers
// hold mu.
func (l *Log) usableLocked() error {
	if l.closed {
		return fmt.Errorf("log %s: %w", l.name, ErrClosed)
	}
	return l.failed
}

// failLocked makes err sticky: after a failed write or fsync the disk state
// is unknown (Linux may drop the dirty pages and report success on the next
// fsync), so nothing more may be acknowledged. Callers hold mu.
func (l *Log) failLocked(err error) error {
	if l.failed == nil {
		l.failed = fmt.Errorf("storage: log %s failed, no more writes are accepted (reopen to recover): %w", l.name, err)
		l.logger.Error("partition log failed", "partition", l.name, "err", err)
	}
	return l.failed
}

// AppendAsLeader verifies the record set, assigns offsets and the leader
// epoch, writes it and, under FsyncAlways, syncs before returning.
func (l *Log) AppendAsLeader(set []byte, leaderEpoch int32) (int64, error) {
	hs, err := checkRecordSet(set, true)
	if err != nil {
		return -1, fmt.Errorf("storage: log %s: append as leader refused: %w", l.name, err)
	}
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return -1, err
	}
	if latest := l.epochs.latest(); leaderEpoch < 0 || leaderEpoch < latest {
		l.mu.Unlock()
		return -1, fmt.Errorf("storage: log %s: append as leader with epoch %d after epoch %d: %w", l.name, leaderEpoch, latest, ErrInvalidEpoch)
	}
	base := l.end.Load()
	buf := append(l.wbuf[:0], set...)
	off, pos := base, 0
	for i := range hs {
		stampBatch(buf[pos:], off, leaderEpoch)
		hs[i].baseOffset, hs[i].epoch = off, leaderEpoch
		off = hs[i].next()
		pos += hs[i].size()
	}
	err = l.writeLocked(buf, hs)
	if cap(buf) <= 1<<20 { // keep a modest buffer, let a huge one go
		l.wbuf = buf[:0]
	}
	end := l.end.Load()
	l.mu.Unlock()
	if err != nil {
		return -1, err
	}
	l.notify(false)
	if l.opts.Fsync == FsyncAlways {
		if err := l.syncTo(end); err != nil {
			return -1, err
		}
	}
	return base, nil
}

// syncTo returns once every offset below end is on stable storage. Callers
// that queue on syncMu while another fsync runs usually find their bytes
// covered by it or by the next one: one fsync per group of appends. With
// the AckBeforeSync bug it returns at once, and the flusher syncs later.
func (l *Log) syncTo(end int64) error {
	if l.opts.AckBeforeSync {
		return nil // the flusher syncs every FsyncInterval
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.syncedEnd >= end {
		return nil
	}
	return l.syncLocked(false)
}

// AppendAsFollower writes batches that already carry their offsets and
// epochs.
func (l *Log) AppendAsFollower(set []byte) error {
	if len(set) == 0 {
		return nil
	}
	hs, err := checkRecordSet(set, false)
	if err != nil {
		return fmt.Errorf("storage: log %s: append as follower refused: %w", l.name, err)
	}
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	expect, latest := l.end.Load(), l.epochs.latest()
	for i, h := range hs {
		if h.baseOffset != expect {
			l.mu.Unlock()
			return fmt.Errorf("storage: log %s: append as follower: batch %d starts at offset %d, want %d: %w", l.name, i, h.baseOffset, expect, ErrNonContiguous)
		}
		if h.epoch < 0 || h.epoch < latest {
			l.mu.Unlock()
			return fmt.Errorf("storage: log %s: append as follower: batch %d at offset %d has epoch %d after epoch %d: %w", l.name, i, h.baseOffset, h.epoch, latest, ErrInvalidEpoch)
		}
		expect, latest = h.next(), h.epoch
	}
	err = l.writeLocked(set, hs)
	end := l.end.Load()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	l.notify(false)
	if l.opts.Fsync == FsyncAlways {
		return l.syncTo(end)
	}
	return nil
}

// writeLocked writes a checked record set whose headers already hold their
// final offsets and epochs. New epochs reach the checkpoint before the
// batches reach the log, so after a crash the checkpoint never lacks an
// epoch the log has (recovery drops entries past the log end). Callers hold
// mu.
func (l *Log) writeLocked(buf []byte, hs []batchHeader) error {
	end := l.end.Load()
	changed := false
	for _, h := range hs {
		changed = l.epochs.assign(h.epoch, h.baseOffset) || changed
	}
	if changed {
		if err := writeFileAtomic(l.dir, epochCheckpoint, l.epochs.marshal()); err != nil {
			l.epochs.truncateFrom(end)
			return fmt.Errorf("storage: log %s: recording a new leader epoch before appending at offset %d: %w", l.name, end, err)
		}
	}
	seg := l.segs[len(l.segs)-1]
	if seg.size > 0 && seg.size+int64(len(buf)) > l.opts.SegmentBytes {
		var err error
		if seg, err = l.rollLocked(); err != nil {
			l.epochs.truncateFrom(end)
			return l.failLocked(err)
		}
	}
	if _, err := seg.f.WriteAt(buf, seg.size); err != nil {
		l.epochs.truncateFrom(end)
		return l.failLocked(fmt.Errorf("writing %d bytes at byte %d of %s (offset %d): %w", len(buf), seg.size, seg.path, end, err))
	}
	pos := seg.size
	for _, h := range hs {
		seg.noteBatch(pos, h, l.opts.IndexIntervalBytes)
		pos += int64(h.size())
	}
	l.end.Store(seg.next)
	l.tail.add(buf, hs)
	return nil
}

// rollLocked seals the active segment and starts a new one at the log end.
// The new file's directory entry is synced at once, so that a batch an
// FsyncAlways append synced into it cannot vanish with its directory
// entry. The sealed segment is flushed (data, index, recovery point) in the
// background. Callers hold mu.
func (l *Log) rollLocked() (*segment, error) {
	base := l.end.Load()
	s := &segment{base: base, path: segmentPath(l.dir, base), next: base}
	if err := removeIfExists(s.indexPath()); err != nil {
		return nil, fmt.Errorf("rolling to a new segment at offset %d: %w", base, err)
	}
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("rolling to a new segment at offset %d: %w", base, err)
	}
	s.f = f
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("rolling to a new segment at offset %d: %w", base, err)
	}
	l.segs = append(l.segs, s)
	select {
	case l.sealCh <- struct{}{}:
	default:
	}
	return s, nil
}

// segIndexFor returns the index of the segment holding offset, which lies
// in [start, end).
func (l *Log) segIndexFor(offset int64) int {
	return sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
}

// locate finds the batch of seg holding offset: the index gives a start,
// then a short walk over the headers. Callers hold mu (either way).
func (l *Log) locate(seg *segment, offset int64) (int64, batchHeader, error) {
	e := seg.lookup(offset)
	r := fileReader{f: seg.f, size: seg.size}
	pos, expect := e.pos, e.offset
	for pos < seg.size {
		hb, err := r.at(pos, batchHeaderBytes)
		if err != nil {
			return 0, batchHeader{}, fmt.Errorf("storage: log %s: finding offset %d: %w", l.name, offset, err)
		}
		h, err := parseHeader(hb)
		if err == nil && h.baseOffset != expect {
			err = corruptf("base offset %d, want %d", h.baseOffset, expect)
		}
		if err != nil {
			return 0, batchHeader{}, fmt.Errorf("storage: log %s: finding offset %d: batch at byte %d of %s: %w", l.name, offset, pos, seg.path, err)
		}
		if offset < h.next() {
			return pos, h, nil
		}
		pos += int64(h.size())
		expect = h.next()
	}
	return 0, batchHeader{}, fmt.Errorf("storage: log %s: offset %d not found in %s, which should hold [%d, %d): %w", l.name, offset, seg.path, seg.base, seg.next, ErrCorruptBatch)
}

// Read returns whole batches from the one holding offset; see PartitionLog.
func (l *Log) Read(offset int64, maxBytes int, limit int64) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, fmt.Errorf("log %s: %w", l.name, ErrClosed)
	}
	end := l.end.Load()
	if offset < l.start || offset > end {
		return nil, fmt.Errorf("storage: log %s: read at offset %d outside [%d, %d]: %w", l.name, offset, l.start, end, ErrOffsetOutOfRange)
	}
	limit = min(limit, end)
	if offset >= limit {
		return nil, nil
	}
	if out, ok := l.tail.read(offset, maxBytes, limit); ok {
		return out, nil
	}
	i := l.segIndexFor(offset)
	seg := l.segs[i]
	pos, first, err := l.locate(seg, offset)
	if err != nil {
		return nil, err
	}
	var out []byte
	expect := first.baseOffset
	for {
		want := min(seg.size-pos, int64(maxBytes-len(out)))
		if len(out) == 0 {
			want = max(want, int64(first.size())) // always one whole batch
		}
		if want < batchHeaderBytes {
			break
		}
		start := len(out)
		out = slices.Grow(out, int(want))[:start+int(want)]
		if n, err := seg.f.ReadAt(out[start:], pos); int64(n) < want {
			return nil, fmt.Errorf("storage: log %s: reading %d bytes at byte %d of %s: %w", l.name, want, pos, seg.path, err)
		}
		keep, more, err := l.trimRead(out[start:], seg, pos, &expect, limit)
		if err != nil {
			return nil, err
		}
		out = out[:start+keep]
		pos += int64(keep)
		if !more || pos < seg.size || i+1 >= len(l.segs) {
			break
		}
		i++
		seg, pos = l.segs[i], 0
	}
	return out, nil
}

// trimRead walks the batches read into b (from byte pos of seg), checks
// each (framing, contiguous offsets, CRC-32C: corrupt bytes must not reach
// a consumer) and returns how many bytes of whole batches starting below
// limit it holds, and whether the read may go on after them.
func (l *Log) trimRead(b []byte, seg *segment, pos int64, expect *int64, limit int64) (int, bool, error) {
	p := 0
	for p+batchHeaderBytes <= len(b) {
		h, err := parseHeader(b[p:])
		if err == nil && h.baseOffset >= limit {
			return p, false, nil
		}
		if err == nil && p+h.size() > len(b) {
			return p, false, nil // the byte budget ends inside this batch
		}
		if err == nil {
			_, err = checkBatch(b[p:])
		}
		if err == nil && h.baseOffset != *expect {
			err = corruptf("base offset %d, want %d", h.baseOffset, *expect)
		}
		if err != nil {
			return 0, false, fmt.Errorf("storage: log %s: reading at offset %d: batch at byte %d of %s failed its check: %w", l.name, *expect, pos+int64(p), seg.path, err)
		}
		*expect = h.next()
		p += h.size()
	}
	return p, p == len(b), nil
}

// TruncateTo drops every batch that holds offset or a later one, durably.
func (l *Log) TruncateTo(offset int64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	end := l.end.Load()
	if offset < l.start || offset > end {
		return fmt.Errorf("storage: log %s: truncate to offset %d outside [%d, %d]: %w", l.name, offset, l.start, end, ErrOffsetOutOfRange)
	}
	if offset == end {
		return nil
	}
	i := l.segIndexFor(offset)
	seg := l.segs[i]
	cut, h, err := l.locate(seg, offset)
	if err != nil {
		return err
	}
	newEnd := h.baseOffset
	// Lower the recovery point first: it must never claim that bytes the
	// truncation removes, and the appends after it write, were synced.
	if l.rpWritten > seg.base {
		if err := writeFileAtomic(l.dir, recoveryPointFile, []byte(strconv.FormatInt(seg.base, 10)+"\n")); err != nil {
			return l.failLocked(fmt.Errorf("lowering the recovery point to %d before truncating to %d: %w", seg.base, offset, err))
		}
		l.rpWritten = seg.base
	}
	// Cut the file and sync the cut, so the dropped batches cannot
	// reappear after a crash (a follower truncates a divergent tail here).
	if err := seg.f.Truncate(cut); err != nil {
		return l.failLocked(fmt.Errorf("truncating %s to %d bytes (offset %d): %w", seg.path, cut, newEnd, err))
	}
	if err := seg.f.Sync(); err != nil {
		return l.failLocked(fmt.Errorf("syncing the truncation of %s: %w", seg.path, err))
	}
	for _, s := range l.segs[i+1:] {
		s.f.Close()
		if err := removeIfExists(s.path); err != nil {
			return l.failLocked(fmt.Errorf("removing %s while truncating to offset %d: %w", s.path, offset, err))
		}
		if err := removeIfExists(s.indexPath()); err != nil {
			return l.failLocked(err)
		}
	}
	// The segment's index file is stale now; it is written again when the
	// segment is sealed or the log closed.
	if err := removeIfExists(seg.indexPath()); err != nil {
		return l.failLocked(err)
	}
	if err := syncDir(l.dir); err != nil {
		return l.failLocked(err)
	}
	l.segs = l.segs[:i+1]
	seg.size, seg.next = cut, newEnd
	seg.truncateIndex(cut)
	seg.syncedSize = cut
	seg.indexFlushed = false
	l.syncedEnd = min(l.syncedEnd, newEnd)
	l.end.Store(newEnd)
	l.tail.truncateFrom(newEnd)
	if l.epochs.truncateFrom(newEnd) {
		if err := writeFileAtomic(l.dir, epochCheckpoint, l.epochs.marshal()); err != nil {
			return l.failLocked(fmt.Errorf("recording the leader epochs after truncating to offset %d: %w", newEnd, err))
		}
	}
	l.notify(false)
	return nil
}

// Sync forces everything appended so far to stable storage, writes the
// index files of sealed segments and advances the recovery point.
func (l *Log) Sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return l.syncLocked(true)
}

// syncLocked fsyncs every segment with unsynced bytes; with full it also
// writes the index files of sealed segments and moves the recovery point
// to the active segment. Callers hold syncMu (which keeps files from being
// closed or truncated underneath) but not mu.
func (l *Log) syncLocked(full bool) error {
	l.mu.RLock()
	err := l.usableLocked()
	l.mu.RUnlock()
	if err != nil {
		return err
	}
	return l.flushLocked(full, false)
}

// flushLocked is syncLocked without the closed check, for Close. With
// activeIndex it also writes the active segment's index.
func (l *Log) flushLocked(full, activeIndex bool) error {
	type job struct {
		s    *segment
		size int64
	}
	l.mu.RLock()
	end := l.end.Load()
	var jobs []job
	for _, s := range l.segs {
		if s.size > s.syncedSize {
			jobs = append(jobs, job{s, s.size})
		}
	}
	segs := l.segs // appends may grow l.segs, never change these
	l.mu.RUnlock()

	for _, j := range jobs {
		l.fsyncs.Add(1)
		if err := j.s.f.Sync(); err != nil {
			l.mu.Lock()
			err = l.failLocked(fmt.Errorf("fsync of %s (%d bytes) failed, so offsets below %d may not be durable: %w", j.s.path, j.size, end, err))
			l.mu.Unlock()
			return err
		}
		j.s.syncedSize = j.size
	}
	l.syncedEnd = max(l.syncedEnd, end)
	if !full {
		return nil
	}
	for i, s := range segs {
		active := i == len(segs)-1
		if s.indexFlushed || (active && !activeIndex) {
			continue
		}
		if err := writeFileAtomic(l.dir, filepath.Base(s.indexPath()), s.marshalIndex()); err != nil {
			return fmt.Errorf("storage: log %s: %w", l.name, err)
		}
		s.indexFlushed = !active
	}
	// Every segment below the active one is now synced whole.
	if rp := segs[len(segs)-1].base; rp > l.rpWritten {
		if err := writeFileAtomic(l.dir, recoveryPointFile, []byte(strconv.FormatInt(rp, 10)+"\n")); err != nil {
			return fmt.Errorf("storage: log %s: %w", l.name, err)
		}
		l.rpWritten = rp
	}
	return nil
}

// flusher syncs in the background: every FsyncInterval under that policy
// (and under the AckBeforeSync bug, whatever the policy), and whenever a
// segment is sealed, under every policy.
func (l *Log) flusher() {
	defer close(l.flusherDone)
	var tick <-chan time.Time
	if l.opts.Fsync == FsyncInterval || l.opts.AckBeforeSync {
		t := time.NewTicker(l.opts.FsyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.done:
			return
		case <-tick:
		case <-l.sealCh:
		}
		// A failure is sticky and was logged by failLocked; appends report it.
		_ = l.Sync()
	}
}

func (l *Log) stopFlusher() {
	l.stopOnce.Do(func() { close(l.done) })
	<-l.flusherDone
}

// Close syncs everything, writes the index of the active segment and the
// clean-shutdown marker, and releases the files. Reads, appends and syncs
// afterwards return ErrClosed.
func (l *Log) Close() error {
	l.stopFlusher()
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("log %s: %w", l.name, ErrClosed)
	}
	l.closed = true
	failed := l.failed
	l.mu.Unlock()
	l.notify(true)

	var errs []error
	if failed == nil {
		if err := l.flushLocked(true, true); err != nil {
			errs = append(errs, err)
		} else {
			// Only a log whose every byte and index is synced may skip
			// recovery next time.
			marker := fmt.Sprintf("end_offset %d\n", l.end.Load())
			if err := writeFileAtomic(l.dir, cleanShutdownFile, []byte(marker)); err != nil {
				errs = append(errs, fmt.Errorf("storage: log %s: %w", l.name, err))
			}
		}
	}
	errs = append(errs, l.closeFiles())
	errs = append(errs, unlockDir(l.lock))
	return errors.Join(errs...)
}

func (l *Log) closeFiles() error {
	var errs []error
	for _, s := range l.segs {
		if s.f != nil {
			if err := s.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("storage: closing %s: %w", s.path, err))
			}
		}
	}
	return errors.Join(errs...)
}

// crash abandons the log as a killed process would: no sync, no index, no
// marker. For tests.
func (l *Log) crash() {
	l.stopFlusher()
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	l.closeFiles()
	unlockDir(l.lock)
}

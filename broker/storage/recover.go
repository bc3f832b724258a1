package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// errMarkerMismatch: the clean-shutdown marker disagreed with the files,
// so the log is recovered again as after a crash.
var errMarkerMismatch = errors.New("clean-shutdown marker does not match the log")

// recover loads the log's files and restores its invariants (whole,
// CRC-valid, contiguous batches; non-decreasing epochs; an epoch cache and
// indexes that match the batches). See doc.go for what is scanned when.
func (l *Log) recover() error {
	t0 := time.Now()
	rep := RecoveryReport{Partition: l.name, FirstDroppedOffset: -1, LastDroppedOffset: -1}
	err := l.recoverOnce(false, &rep)
	if errors.Is(err, errMarkerMismatch) {
		l.logger.Warn("clean-shutdown marker does not match the log; recovering it as after a crash", "partition", l.name, "err", err)
		l.closeFiles()
		l.segs = nil
		// Keep what the first pass truncated; count the rest afresh.
		rep = RecoveryReport{Partition: l.name, Truncated: rep.Truncated, Segment: rep.Segment, Position: rep.Position,
			Reason: rep.Reason, BytesDropped: rep.BytesDropped, FirstDroppedOffset: rep.FirstDroppedOffset, LastDroppedOffset: rep.LastDroppedOffset}
		err = l.recoverOnce(true, &rep)
	}
	if err != nil {
		return err
	}
	l.report.Duration = time.Since(t0)
	l.logger.Debug("partition log recovered", "partition", l.name, "clean", l.report.Clean,
		"segments_scanned", l.report.SegmentsScanned, "bytes_scanned", l.report.BytesScanned,
		"end_offset", l.report.EndOffset, "duration", l.report.Duration)
	return nil
}

func (l *Log) recoverOnce(forceUnclean bool, rep *RecoveryReport) error {
	bases, err := l.listSegments()
	if err != nil {
		return err
	}
	if len(bases) == 0 {
		f, err := os.OpenFile(segmentPath(l.dir, 0), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return fmt.Errorf("creating the first segment: %w", err)
		}
		f.Close()
		if err := syncDir(l.dir); err != nil {
			return err
		}
		bases = []int64{0}
	}
	sizes := make([]int64, len(bases)) // file sizes as found
	for i, base := range bases {
		s := &segment{base: base, path: segmentPath(l.dir, base), next: base}
		if s.f, err = os.OpenFile(s.path, os.O_RDWR, 0); err != nil {
			return fmt.Errorf("opening segment: %w", err)
		}
		l.segs = append(l.segs, s)
		fi, err := s.f.Stat()
		if err != nil {
			return fmt.Errorf("opening segment: %w", err)
		}
		s.size, sizes[i] = fi.Size(), fi.Size()
	}
	segs, n := l.segs, len(l.segs)

	markerEnd, clean := l.readMarker()
	clean = clean && !forceUnclean
	rp, rpOK := l.readRecoveryPoint()
	if rpOK && !slices.Contains(bases, rp) {
		// It is always written as a segment's base offset; any other value
		// is stale (segments removed by hand) and cannot be trusted.
		l.logger.Warn("recovery point names no segment; verifying every segment", "partition", l.name, "recovery_point", rp)
		rpOK = false
	}
	if rpOK {
		l.rpWritten = rp
	}
	fileCache, cacheErr := l.readEpochCheckpoint()

	// tail is the first segment to verify batch by batch: after a crash,
	// the one holding the recovery point (everything before it was synced
	// with its index); after a clean close, the last one, from its last
	// index entry.
	tail := n - 1
	if !clean {
		tail = max(0, sort.Search(n, func(i int) bool { return segs[i].base > rp })-1)
		if !rpOK {
			tail = 0
		}
	}
	indexOK := make([]bool, n)
	for i, s := range segs {
		if i >= tail && !(clean && i == n-1) {
			continue // verified from its start: its index is rebuilt anyway
		}
		nextBase := int64(-1)
		if i+1 < n {
			nextBase = segs[i+1].base
		}
		idx, err := s.loadIndex(nextBase)
		if err != nil {
			if s.size > 0 {
				l.logger.Warn("offset index unusable; rebuilding it from its segment", "partition", l.name, "segment", s.path, "err", err)
				rep.IndexesRebuilt++
			}
			continue
		}
		s.index, indexOK[i] = idx, true
	}
	tailStart, tailFrom := segs[tail].base, int64(0)
	if last := segs[n-1]; clean && indexOK[n-1] && len(last.index) > 0 {
		e := last.index[len(last.index)-1]
		tailStart, tailFrom = e.offset, e.pos
	}

	// The epoch checkpoint is trusted below the tail; the tail's batches
	// re-derive the rest. Without a readable checkpoint every header is
	// walked.
	rebuildEpochs := cacheErr != nil
	var cache epochCache
	if rebuildEpochs {
		if !errors.Is(cacheErr, os.ErrNotExist) || sizes[0] > 0 || n > 1 {
			l.logger.Warn("leader-epoch checkpoint unusable; rebuilding it from the batch headers", "partition", l.name, "err", cacheErr)
			rep.EpochCacheRebuilt = true
		}
	} else {
		cache = fileCache.clone()
		cache.truncateFrom(tailStart)
	}

	st := scanState{epoch: cache.latest()}
	var bad *badBatch
	badSeg, prevNext := -1, segs[0].base
	for i := 0; i < n; i++ {
		s := segs[i]
		inTail := i >= tail
		if i > 0 && s.base != prevNext {
			bad, badSeg, st.expect = &badBatch{0, fmt.Sprintf("segment base offset %d does not continue the previous segment, which ends at offset %d", s.base, prevNext)}, i, prevNext
			break
		}
		if !inTail && indexOK[i] && !rebuildEpochs {
			// Synced before the recovery point moved past it: trusted.
			s.next, s.syncedSize, s.indexFlushed = segs[i+1].base, s.size, true
			prevNext = s.next
			continue
		}
		rebuildIndex := inTail || !indexOK[i]
		verify := rebuildIndex // else only the epochs are needed: headers suffice
		from := int64(0)
		st.expect, st.checkEpochs = s.base, inTail || rebuildEpochs
		if rebuildIndex {
			if i == n-1 && tailFrom > 0 {
				// Replay from the last entry: re-adding it keeps the rest.
				s.index = s.index[:len(s.index)-1]
				s.sinceIndex = int64(l.opts.IndexIntervalBytes)
				from, st.expect = tailFrom, tailStart
			} else {
				s.index, s.sinceIndex = nil, 0
			}
		}
		s.size, s.next = from, st.expect
		r := &fileReader{f: s.f, size: sizes[i], chunk: recoverChunkBytes}
		b, err := scanSegment(r, from, &st, verify, func(pos int64, h batchHeader) {
			if rebuildIndex {
				s.noteBatch(pos, h, l.opts.IndexIntervalBytes)
			} else {
				s.size, s.next = pos+int64(h.size()), h.next()
			}
			if st.checkEpochs {
				cache.assign(h.epoch, h.baseOffset)
			}
		})
		if err != nil {
			return fmt.Errorf("recovering %s: %w", s.path, err)
		}
		rep.SegmentsScanned++
		rep.BytesScanned += sizes[i] - from
		s.indexFlushed = !rebuildIndex
		if !inTail {
			s.syncedSize = s.size
		}
		if b != nil {
			bad, badSeg = b, i
			break
		}
		prevNext = s.next
	}
	if bad != nil {
		if err := l.cutTail(rep, badSeg, bad, st.expect, sizes); err != nil {
			return err
		}
	}
	segs = l.segs
	last := segs[len(segs)-1]
	last.truncateIndex(last.size) // recomputes the bytes since the last entry
	last.indexFlushed = false
	end := last.next
	if clean && markerEnd != end {
		return fmt.Errorf("%w: marker says end offset %d, the segments end at %d", errMarkerMismatch, markerEnd, end)
	}
	cache.truncateFrom(end)
	if rebuildEpochs || !cache.equal(fileCache) {
		if err := writeFileAtomic(l.dir, epochCheckpoint, cache.marshal()); err != nil {
			return err
		}
	}
	l.epochs = cache
	l.start = segs[0].base
	l.end.Store(end)

	// Sync what was scanned (it may exist only in the page cache), write
	// rebuilt indexes, move the recovery point to the active segment; then
	// drop the marker, so a crash from here on is seen as one.
	l.syncMu.Lock()
	err = l.flushLocked(true, false)
	l.syncMu.Unlock()
	if err != nil {
		return err
	}
	if err := removeIfExists(filepath.Join(l.dir, cleanShutdownFile)); err != nil {
		return fmt.Errorf("removing the clean-shutdown marker: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	rep.Clean = clean
	rep.StartOffset, rep.EndOffset = l.start, end
	l.report = *rep
	return nil
}

// cutTail truncates the log at a bad batch: the rest of its segment and
// every later segment go. first is the offset the bad batch should have
// started at.
func (l *Log) cutTail(rep *RecoveryReport, i int, bad *badBatch, first int64, sizes []int64) error {
	segs := l.segs
	s := segs[i]
	dropped := sizes[i] - bad.pos
	for _, sz := range sizes[i+1:] {
		dropped += sz
	}
	for j := i; j < len(segs); j++ {
		segs[j].size = sizes[j] // for the walk below
	}
	last := lastReadableOffset(segs[i:], bad.pos, first)

	keep := i + 1
	if bad.pos == 0 && i > 0 {
		keep = i // the whole segment goes; the previous one is active again
	} else {
		if err := s.f.Truncate(bad.pos); err != nil {
			return fmt.Errorf("truncating the corrupt tail of %s at byte %d: %w", s.path, bad.pos, err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("syncing the truncation of %s: %w", s.path, err)
		}
		s.size, s.next = bad.pos, first
		s.truncateIndex(bad.pos)
		s.syncedSize = min(s.syncedSize, bad.pos)
	}
	for _, t := range segs[keep:] {
		t.f.Close()
		t.f = nil
		if err := removeIfExists(t.path); err != nil {
			return fmt.Errorf("removing %s after a corrupt tail: %w", t.path, err)
		}
	}
	for _, t := range segs[i:] {
		if err := removeIfExists(t.indexPath()); err != nil {
			return fmt.Errorf("removing a stale index after a corrupt tail: %w", err)
		}
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	l.segs = segs[:keep]
	if active := l.segs[keep-1].base; l.rpWritten > active {
		if err := writeFileAtomic(l.dir, recoveryPointFile, []byte(strconv.FormatInt(active, 10)+"\n")); err != nil {
			return err
		}
		l.rpWritten = active
	}
	// A second pass (after a marker mismatch) can only cut earlier than
	// the first: the report keeps the earliest cut and the sum of bytes.
	if rep.Truncated {
		last = max(last, rep.LastDroppedOffset)
	}
	rep.Truncated = true
	rep.Segment, rep.Position, rep.Reason = s.path, bad.pos, bad.reason
	rep.BytesDropped += dropped
	rep.FirstDroppedOffset, rep.LastDroppedOffset = first, last
	l.logger.Warn("truncated torn/corrupt tail",
		"partition", l.name, "segment", s.path, "position", bad.pos, "reason", bad.reason,
		"bytes_dropped", dropped, "first_offset_dropped", first, "last_offset_dropped", last,
		"segments_removed", len(segs)-keep)
	return nil
}

// listSegments returns the base offsets of the directory's segment files,
// sorted, after removing leftovers: temporary files of interrupted atomic
// writes and index files without a segment.
func (l *Log) listSegments() ([]int64, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("listing the log directory: %w", err)
	}
	var bases []int64
	have := map[string]bool{}
	var indexes []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, tmpSuffix):
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
				return nil, fmt.Errorf("removing leftover %s: %w", name, err)
			}
		case strings.HasSuffix(name, logSuffix):
			stem := strings.TrimSuffix(name, logSuffix)
			base, err := strconv.ParseInt(stem, 10, 64)
			if len(stem) != 20 || err != nil || base < 0 {
				return nil, fmt.Errorf("unexpected file %s in the log directory: segment files are named by their 20-digit base offset", filepath.Join(l.dir, name))
			}
			bases = append(bases, base)
			have[stem] = true
		case strings.HasSuffix(name, indexSuffix):
			indexes = append(indexes, name)
		}
	}
	for _, name := range indexes {
		if !have[strings.TrimSuffix(name, indexSuffix)] {
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
				return nil, fmt.Errorf("removing orphan index %s: %w", name, err)
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// readMarker returns the end offset in the clean-shutdown marker, if there
// is a valid one.
func (l *Log) readMarker() (int64, bool) {
	path := filepath.Join(l.dir, cleanShutdownFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			l.logger.Warn("clean-shutdown marker unreadable; recovering as after a crash", "partition", l.name, "err", err)
		}
		return 0, false
	}
	var end int64
	if _, err := fmt.Sscanf(string(data), "end_offset %d\n", &end); err != nil || end < 0 {
		l.logger.Warn("clean-shutdown marker malformed; recovering as after a crash", "partition", l.name, "file", path, "content", string(data))
		return 0, false
	}
	return end, true
}

// readRecoveryPoint returns the recovery point, if there is a valid one.
func (l *Log) readRecoveryPoint() (int64, bool) {
	path := filepath.Join(l.dir, recoveryPointFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			l.logger.Warn("recovery point unreadable; verifying every segment", "partition", l.name, "err", err)
		}
		return 0, false
	}
	rp, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || rp < 0 {
		l.logger.Warn("recovery point malformed; verifying every segment", "partition", l.name, "file", path, "content", string(data))
		return 0, false
	}
	return rp, true
}

func (l *Log) readEpochCheckpoint() (epochCache, error) {
	path := filepath.Join(l.dir, epochCheckpoint)
	data, err := os.ReadFile(path)
	if err != nil {
		return epochCache{}, err
	}
	return parseEpochCheckpoint(path, data)
}

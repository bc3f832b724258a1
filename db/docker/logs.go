package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// The copy of each node's output into its broker.log, live while its
// container runs and completed once it stops.

// followerWait bounds how long a node's log copier may take to finish
// after its container stopped.
const followerWait = 5 * time.Second

// follow copies n's container output to its broker.log while the
// container runs, so that the log can be read live. The engine streams
// the container's output from its first run on; the bytes of earlier runs,
// already in broker.log, are skipped by count. Counting bytes rather than
// asking the engine for the output since the run's StartedAt keeps the
// first lines of a run whose process wrote them before the engine stamped
// StartedAt, and needs no clock.
func (d *DB) follow(n *node) {
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	written := new(atomic.Int64)
	n.followed, n.followBytes, n.followCancel = done, written, cancel
	id := n.container
	w := &skipWriter{skip: n.logCopied, w: countingWriter{w: n.logF, n: written}}
	go func() {
		defer close(done)
		// Not cancelled with the run: the copy ends when the container
		// stops, or when finishLog gives up waiting for that.
		if err := d.eng.Logs(ctx, id, time.Time{}, true, w); err != nil && ctx.Err() == nil {
			fmt.Fprintf(n.logF, "=== garantia harness: copying %s's output failed: %v\n", n.Name, err)
		}
	}()
}

// skipWriter drops the first skip bytes written through it.
type skipWriter struct {
	skip int64
	w    io.Writer
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := len(p)
	if s.skip > 0 {
		k := min(s.skip, int64(len(p)))
		s.skip -= k
		p = p[k:]
	}
	if len(p) > 0 {
		if _, err := s.w.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n.Add(int64(k))
	return k, err
}

// finishLog completes broker.log with the output of n's run that just
// ended; n.op is held and the container has stopped. A follow of the
// engine's log stream can end before it delivered the last lines of a
// stopped container (the engine's follow and the container's exit race),
// so after the copier ends (or is stopped) the container's whole output
// is read once more, without following, and whatever the copier missed
// is appended: the log is complete and in order whatever the timing.
func (d *DB) finishLog(n *node) {
	if n.followed == nil {
		return
	}
	select {
	case <-n.followed:
	case <-time.After(followerWait):
		n.followCancel()
		<-n.followed
	}
	n.followCancel()
	have := n.logCopied + n.followBytes.Load()
	ctx, cancel := context.WithTimeout(context.Background(), followerWait)
	defer cancel()
	var all bytes.Buffer
	if err := d.eng.Logs(ctx, n.container, time.Time{}, false, &all); err != nil {
		fmt.Fprintf(n.logF, "=== garantia harness: reading %s's output failed: %v\n", n.Name, err)
	} else if int64(all.Len()) > have {
		n.logF.Write(all.Bytes()[have:])
		have = int64(all.Len())
	}
	n.logCopied = have
	n.followed = nil
}

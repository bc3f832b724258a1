package runner

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/garantia/garantia/workloads/queue"
)

// progressLine prints, every second, where the run stands: elapsed time,
// operations per second over the last second, the completions so far and
// the faults in force. On a terminal it rewrites one line; elsewhere (a
// CI log) it prints a line per second.
type progressLine struct {
	w      io.Writer
	limit  time.Duration
	wl     *queue.Workload
	faults func() string // the faults in force
	tty    bool
	start  time.Time
	wrote  bool
	last   int64
	lastAt time.Time
}

func newProgressLine(w io.Writer, limit time.Duration, wl *queue.Workload, faults func() string) *progressLine {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	now := time.Now()
	return &progressLine{w: w, limit: limit, wl: wl, faults: faults, tty: tty, start: now, lastAt: now}
}

func (p *progressLine) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.print(now)
		}
	}
}

// line is the progress line at now.
func (p *progressLine) line(now time.Time) string {
	c := p.wl.Counts()
	completed := c.OK + c.Info + c.Fail
	rate := float64(completed-p.last) / now.Sub(p.lastAt).Seconds()
	p.last, p.lastAt = completed, now
	elapsed := now.Sub(p.start).Round(time.Second)
	if elapsed > p.limit {
		elapsed = p.limit
	}
	return fmt.Sprintf("[%6s/%s] %7.0f ops/s   ok %d  info %d  fail %d   fault: %s",
		elapsed, p.limit, rate, c.OK, c.Info, c.Fail, p.faults())
}

func (p *progressLine) print(now time.Time) {
	line := p.line(now)
	if p.tty {
		// Rewrite one line in place; \033[K clears what a longer earlier
		// line left behind.
		fmt.Fprintf(p.w, "\r%s\033[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.wrote = true
}

// finish ends the in-place line on a terminal.
func (p *progressLine) finish() {
	if p.tty && p.wrote {
		fmt.Fprintln(p.w)
	}
}

package controller

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// raftLogger adapts hashicorp/raft's hclog logging to our slog logger:
// messages at or above min go to slog at the matching level, with raft's
// key/value pairs as attributes. Once quiet is set (the controller is
// closing) it drops everything: the errors of connections closing under a
// shutting-down Raft are expected and say nothing.
type raftLogger struct {
	l     *slog.Logger
	name  string
	min   *atomic.Int32 // an hclog.Level, shared by derived loggers
	quiet *atomic.Bool
}

var _ hclog.Logger = (*raftLogger)(nil)

func newRaftLogger(l *slog.Logger, min hclog.Level) *raftLogger {
	rl := &raftLogger{l: l, name: "raft", min: new(atomic.Int32), quiet: new(atomic.Bool)}
	rl.min.Store(int32(min))
	return rl
}

func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (r *raftLogger) enabled(level hclog.Level) bool {
	if r.quiet.Load() || level == hclog.Off || (level != hclog.NoLevel && int32(level) < r.min.Load()) {
		return false
	}
	return r.l.Enabled(context.Background(), slogLevel(level))
}

// Log implements hclog.Logger.
func (r *raftLogger) Log(level hclog.Level, msg string, args ...any) {
	if r.enabled(level) {
		r.l.Log(context.Background(), slogLevel(level), r.name+": "+msg, formatArgs(args)...)
	}
}

// formatArgs renders hclog's deferred formatting (hclog.Fmt) the way hclog
// would; slog would print the format string and its arguments as a list.
func formatArgs(args []any) []any {
	var out []any // a copy, made on the first hclog.Format: raft owns args
	for i, a := range args {
		f, ok := a.(hclog.Format)
		if !ok || len(f) == 0 {
			continue
		}
		format, ok := f[0].(string)
		if !ok {
			continue
		}
		if out == nil {
			out = slices.Clone(args)
		}
		out[i] = fmt.Sprintf(format, f[1:]...)
	}
	if out == nil {
		return args
	}
	return out
}

func (r *raftLogger) Trace(msg string, args ...any) { r.Log(hclog.Trace, msg, args...) }
func (r *raftLogger) Debug(msg string, args ...any) { r.Log(hclog.Debug, msg, args...) }
func (r *raftLogger) Info(msg string, args ...any)  { r.Log(hclog.Info, msg, args...) }
func (r *raftLogger) Warn(msg string, args ...any)  { r.Log(hclog.Warn, msg, args...) }
func (r *raftLogger) Error(msg string, args ...any) { r.Log(hclog.Error, msg, args...) }
func (r *raftLogger) IsTrace() bool                 { return r.enabled(hclog.Trace) }
func (r *raftLogger) IsDebug() bool                 { return r.enabled(hclog.Debug) }
func (r *raftLogger) IsInfo() bool                  { return r.enabled(hclog.Info) }
func (r *raftLogger) IsWarn() bool                  { return r.enabled(hclog.Warn) }
func (r *raftLogger) IsError() bool                 { return r.enabled(hclog.Error) }
func (r *raftLogger) ImpliedArgs() []any            { return nil }
func (r *raftLogger) Name() string                  { return r.name }
func (r *raftLogger) SetLevel(level hclog.Level)    { r.min.Store(int32(level)) }
func (r *raftLogger) GetLevel() hclog.Level         { return hclog.Level(r.min.Load()) }

// With implements hclog.Logger.
func (r *raftLogger) With(args ...any) hclog.Logger {
	c := *r
	c.l = r.l.With(args...)
	return &c
}

// Named implements hclog.Logger.
func (r *raftLogger) Named(name string) hclog.Logger {
	c := *r
	c.name = r.name + "." + name
	return &c
}

// ResetNamed implements hclog.Logger.
func (r *raftLogger) ResetNamed(name string) hclog.Logger {
	c := *r
	c.name = name
	return &c
}

// StandardLogger implements hclog.Logger.
func (r *raftLogger) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(r.l.Handler(), slog.LevelInfo)
}

// StandardWriter implements hclog.Logger.
func (r *raftLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return slog.NewLogLogger(r.l.Handler(), slog.LevelInfo).Writer()
}

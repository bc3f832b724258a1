// Package crash turns a panic into an error that says it is a bug in
// garantia and where it happened, so that a command can report it in one
// line and exit 255 ("the harness itself failed") rather than letting the
// Go runtime print a trace and exit 2, which means "unknown" to a release
// gate.
//
// A panic in a goroutine cannot be recovered anywhere else, so every
// goroutine that runs analysis code recovers with [Errorf] and hands the
// error to its caller; the subcommands share one guard for their own
// goroutine (cmd/garantia/main.go).
package crash

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
)

// Error is a recovered panic.
type Error struct {
	// Value is what was passed to panic.
	Value any
	// In says what was running: a package or a command.
	In string
	// Where is the function, file and line that panicked.
	Where string
}

func (e *Error) Error() string {
	return fmt.Sprintf("internal error (a bug in garantia; please report it with its input): %s: panic: %v, at %s", e.In, e.Value, e.Where)
}

// Errorf returns the panic r, recovered in a deferred function of the
// goroutine that panicked, as an *Error; in says what was running.
func Errorf(r any, in string) *Error {
	return &Error{Value: r, In: in, Where: site()}
}

// Is reports whether err is, or wraps, a recovered panic.
func Is(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// site finds where the panic happened: the first frame below
// runtime.gopanic that is not the runtime's own.
func site() string {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	panicking := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			panicking = true
		case panicking && !strings.HasPrefix(f.Function, "runtime."):
			return fmt.Sprintf("%s (%s:%d)", f.Function, trimPath(f.File), f.Line)
		}
		if !more {
			return "an unknown place"
		}
	}
}

// trimPath keeps a file's path from the module's root on, which is what a
// bug report needs.
func trimPath(file string) string {
	for _, root := range []string{"/garantia/", "/pkg/mod/"} {
		if i := strings.LastIndex(file, root); i >= 0 {
			return file[i+len(root):]
		}
	}
	return file
}

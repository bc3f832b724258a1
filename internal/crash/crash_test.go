package crash

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func explode(xs []int, i int) int { return xs[i] }

func TestErrorfNamesThePanicSite(t *testing.T) {
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = Errorf(r, "test")
			}
		}()
		explode([]int{1}, 5)
	}()
	if err == nil {
		t.Fatal("no panic recovered")
	}
	msg := err.Error()
	for _, want := range []string{"internal error (a bug in garantia", "test: panic: runtime error: index out of range [5] with length 1", "crash.explode (", "crash_test.go:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("%q is more than one line", msg)
	}
	if !Is(fmt.Errorf("wrapped: %w", err)) || Is(errors.New("plain")) {
		t.Error("Is does not tell a recovered panic from another error")
	}
}

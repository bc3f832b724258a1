package verdict

import (
	"bytes"
	"fmt"
)

// Verdict is the outcome of a check. The zero value is Unknown, so a check
// that never ran can never be mistaken for a pass.
type Verdict int8

const (
	// Unknown: the check could not decide (a timeout, too little data).
	Unknown Verdict = iota
	// Valid: the check proved the property held.
	Valid
	// Invalid: the check found a violation.
	Invalid
)

// Exit codes of garantia, following Jepsen.
const (
	ExitValid        = 0
	ExitInvalid      = 1
	ExitUnknown      = 2
	ExitBadArguments = 254
	ExitInternal     = 255
)

// Compose merges verdicts: Invalid beats Unknown beats Valid. Composing
// nothing is Valid (no check found anything wrong).
func Compose(vs ...Verdict) Verdict {
	out := Valid
	for _, v := range vs {
		switch {
		case v == Invalid:
			return Invalid
		case v == Unknown:
			out = Unknown
		}
	}
	return out
}

// ExitCode is the process exit code for the verdict.
func (v Verdict) ExitCode() int {
	switch v {
	case Valid:
		return ExitValid
	case Invalid:
		return ExitInvalid
	}
	return ExitUnknown
}

// String is "true", "false" or "unknown", as in results.json.
func (v Verdict) String() string {
	switch v {
	case Valid:
		return "true"
	case Invalid:
		return "false"
	}
	return "unknown"
}

// MarshalJSON writes true, false or "unknown".
func (v Verdict) MarshalJSON() ([]byte, error) {
	switch v {
	case Valid:
		return []byte("true"), nil
	case Invalid:
		return []byte("false"), nil
	}
	return []byte(`"unknown"`), nil
}

// UnmarshalJSON reads true, false or "unknown".
func (v *Verdict) UnmarshalJSON(b []byte) error {
	switch string(bytes.TrimSpace(b)) {
	case "true":
		*v = Valid
	case "false":
		*v = Invalid
	case `"unknown"`:
		*v = Unknown
	default:
		return fmt.Errorf("verdict: want true, false or \"unknown\", got %s", b)
	}
	return nil
}

package storage

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// ParseCheckpoint parses a file in Kafka's checkpoint format, the one of
// leader-epoch-checkpoint and replication-offset-checkpoint: a version
// line, an entry count (at most maxEntries, which bounds what a damaged
// file can make us allocate), then exactly that many lines of
// whitespace-separated fields, each handed to entry. Errors name path and
// line; entry's error is prefixed with them.
func ParseCheckpoint(path string, data []byte, version, maxEntries int, entry func(text string, fields []string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	next := func() (string, error) {
		if !sc.Scan() {
			return "", fmt.Errorf("%s: ends after line %d", path, line)
		}
		line++
		return sc.Text(), nil
	}
	s, err := next()
	if err != nil {
		return err
	}
	if v, err := strconv.Atoi(s); err != nil || v != version {
		return fmt.Errorf("%s:%d: version %q, want %d", path, line, s, version)
	}
	if s, err = next(); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxEntries {
		return fmt.Errorf("%s:%d: entry count %q is not a number in [0, %d]", path, line, s, maxEntries)
	}
	for range n {
		if s, err = next(); err != nil {
			return err
		}
		if err := entry(s, strings.Fields(s)); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
	if sc.Scan() {
		return fmt.Errorf("%s:%d: unexpected text after %d entries", path, line+1, n)
	}
	return nil
}

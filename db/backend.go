package db

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// This file holds what the backends share beyond the DB interface: the
// option defaults, the run folder's layout and the broker flags that mean
// the same in every backend. One copy keeps the backends from drifting
// apart, so that a test run on either starts the same brokers.

// DefaultStopGrace is how long a backend waits after SIGTERM before it
// sends SIGKILL when it stops a node gracefully (Teardown).
const DefaultStopGrace = 2 * time.Second

// Process holds the settings of how a backend runs and waits for its
// brokers, which every backend's Options carry with one meaning.
type Process struct {
	// Binary is the garantia executable the nodes run; "" means this
	// process's own (os.Executable).
	Binary string
	// ReadyTimeout bounds Setup's and WaitReady's wait for a node; 0
	// means DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StartWait bounds Start's wait for a restarted node; 0 means
	// DefaultStartWait.
	StartWait time.Duration
	// StopGrace is the wait between SIGTERM and SIGKILL; 0 means
	// DefaultStopGrace.
	StopGrace time.Duration
}

// WithDefaults returns p with every unset field set to its default. Its
// error (os.Executable failing) begins with backend, such as "local db",
// as the backend's own errors do.
func (p Process) WithDefaults(backend string) (Process, error) {
	if p.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return p, fmt.Errorf("%s: find the garantia executable: %w", backend, err)
		}
		p.Binary = exe
	}
	if p.ReadyTimeout <= 0 {
		p.ReadyTimeout = DefaultReadyTimeout
	}
	if p.StartWait <= 0 {
		p.StartWait = DefaultStartWait
	}
	if p.StopGrace <= 0 {
		p.StopGrace = DefaultStopGrace
	}
	return p, nil
}

// CheckRunDir checks that dir, a backend's Options.Dir, names an existing
// folder. Its errors begin with backend and name the field (Dir).
func CheckRunDir(backend, dir string) error {
	if dir == "" {
		return fmt.Errorf("%s: Dir: the run folder is required", backend)
	}
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%s: Dir: %w", backend, err)
	} else if !st.IsDir() {
		return fmt.Errorf("%s: Dir: %s is not a folder", backend, dir)
	}
	return nil
}

// NodeFiles is one node of a run and where it keeps its files.
type NodeFiles struct {
	Node    Node   // its ID and Name; the backend sets the addresses
	DataDir string // the broker's --data-dir on the host
	LogPath string // its broker.log
}

// LayOut returns the nodes n1 to nN of a run of count nodes whose run
// folder is runDir: node nK keeps its data in runDir/nK/data and its log
// in runDir/nK/broker.log. Every backend uses this one layout, so that the
// run's report finds the logs of either in the same place.
func LayOut(runDir string, count int) []NodeFiles {
	out := make([]NodeFiles, 0, count)
	for i := 1; i <= count; i++ {
		id := int32(i)
		name := NameOf(id)
		dir := filepath.Join(runDir, name)
		out = append(out, NodeFiles{
			Node:    Node{ID: id, Name: name},
			DataDir: filepath.Join(dir, "data"),
			LogPath: filepath.Join(dir, "broker.log"),
		})
	}
	return out
}

// BrokerFlags holds the settings of a test that every backend passes to
// each `garantia broker` as flags; a zero field is not passed.
type BrokerFlags struct {
	Fsync            string   // --fsync
	AutoCreateTopics bool     // --auto-create-topics
	Partitions       int      // --partitions
	Bugs             []string // one --bug each
}

// Args returns the flags of f's settings, in a fixed order.
func (f BrokerFlags) Args() []string {
	var a []string
	if f.Fsync != "" {
		a = append(a, "--fsync", f.Fsync)
	}
	if f.AutoCreateTopics {
		a = append(a, "--auto-create-topics")
	}
	if f.Partitions > 0 {
		a = append(a, "--partitions", strconv.Itoa(f.Partitions))
	}
	for _, b := range f.Bugs {
		a = append(a, "--bug", b)
	}
	return a
}

// LogTail returns up to the last max bytes of the file at path from
// offset from on, trimmed of surrounding white space: what a node wrote
// since it was last started, for an error to quote. It returns "" when the
// file cannot be read or is shorter than from.
func LogTail(path string, from int64, max int) string {
	b, err := os.ReadFile(path)
	if err != nil || from > int64(len(b)) {
		return ""
	}
	b = b[from:]
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.TrimSpace(b))
}

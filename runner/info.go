package runner

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/internal/atomicfile"
)

// runInfo is test.json as the runner writes it: histories.TestInfo and
// what the runner knows besides, which readers of TestInfo ignore.
type runInfo struct {
	histories.TestInfo
	// PowerFS is the power-loss filesystem under the nodes' data folders;
	// absent when they were plain folders.
	PowerFS *powerFSJSON `json:"powerfs,omitempty"`
}

// powerFSJSON is how the filesystem was mounted: what a cut keeps
// depends on it.
type powerFSJSON struct {
	Mode string `json:"mode"`
	Torn bool   `json:"torn"`
	// Seed seeds the torn writes (each node's own stream of it).
	Seed uint64 `json:"seed"`
}

// writeInfo writes test.json.
func (t *test) writeInfo() error {
	ri := runInfo{TestInfo: t.info}
	if t.cfg.NeedsPowerFS() {
		if o, err := t.cfg.powerOptions(); err == nil {
			ri.PowerFS = &powerFSJSON{Mode: o.Mode.String(), Torn: o.Torn, Seed: o.Seed}
		}
	}
	b, err := json.MarshalIndent(ri, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", histories.TestFile, err)
	}
	return atomicfile.WriteFile(filepath.Join(t.folder.Dir, histories.TestFile), append(b, '\n'), 0o644)
}

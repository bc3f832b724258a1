package linear

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"

	"github.com/anishathalye/porcupine"
)

// fileKeyMax bounds the key's part of a file name, far below the 255 bytes
// file systems allow.
const fileKeyMax = 64

// fileName is linear-<key>.html with the key made safe for a file name.
// A key that had to be changed gets a hash of the original appended, so
// that keys "a/b" and "a_b" never share a file.
func fileName(key string) string {
	var b strings.Builder
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	safe := b.String()
	if safe == key && key != "" && len(key) <= fileKeyMax && !strings.HasPrefix(key, ".") {
		return "linear-" + key + ".html"
	}
	if len(safe) > fileKeyMax {
		safe = safe[:fileKeyMax]
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return fmt.Sprintf("linear-%s-%08x.html", safe, h.Sum32())
}

// visualize writes porcupine's HTML for one key's failing segment and
// returns its path.
func visualize(m *keyModel, seg segment, info porcupine.LinearizationInfo, dir string) (path string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path = filepath.Join(dir, fileName(m.key))
	// The replay inside VisualizePath must not see the stop flag: a step
	// failing there would make porcupine panic.
	if err := porcupine.VisualizePath(m.model(seg.init, nil), info, path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

package node

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/broker/storage"
)

func TestProducerIDsNeverRepeatAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	seen := map[int64]bool{}
	for restart := range 3 {
		a, err := openProducerIDs(dir)
		if err != nil {
			t.Fatal(err)
		}
		// Fewer ids than a block each time: the unused rest of the block
		// must still never be handed out again.
		for range 10 + restart*producerIDBlock {
			id, err := a.NextProducerID()
			if err != nil {
				t.Fatal(err)
			}
			if seen[id] {
				t.Fatalf("restart %d: producer id %d handed out twice", restart, id)
			}
			seen[id] = true
		}
	}
	a, _ := openProducerIDs(dir)
	a.atLeast(1 << 40)
	if id, _ := a.NextProducerID(); id != 1<<40 {
		t.Fatalf("after atLeast(2^40) got %d", id)
	}
	if b, _ := openProducerIDs(dir); b.next <= 1<<40 {
		t.Fatalf("reservation above 2^40 not persisted: next %d", b.next)
	}
}

func TestProducerIDsBadFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, producerIDsFile), []byte("twelve\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := openProducerIDs(dir)
	if err == nil || !strings.Contains(err.Error(), producerIDsFile) || !strings.Contains(err.Error(), "twelve") {
		t.Fatalf("err = %v; want one naming the file and its content", err)
	}
}

func TestConfigValidation(t *testing.T) {
	good := Config{ID: 1, Listen: "127.0.0.1:0", DataDir: "x", Partitions: 1}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"good", func(*Config) {}, ""},
		{"negative id", func(c *Config) { c.ID = -1 }, "node id -1"},
		{"no listen", func(c *Config) { c.Listen = "" }, "listen address is empty"},
		{"bad listen", func(c *Config) { c.Listen = "localhost" }, "listen address \"localhost\""},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "data directory"},
		{"store instead of data dir", func(c *Config) { c.DataDir, c.Store = "", storage.NewMemStore() }, ""},
		{"zero partitions", func(c *Config) { c.Partitions = 0 }, "partitions 0"},
		{"advertise without port", func(c *Config) { c.Advertise = "host" }, "advertise address"},
		{"advertise port 0", func(c *Config) { c.Advertise = "host:0" }, "advertise address"},
		{"advertise fine", func(c *Config) { c.Advertise = "broker-1.example:9092" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mutate(&c)
			err := c.validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestStartFailuresLeaveNothingRunning(t *testing.T) {
	// A port already taken: Start fails, and the storage it opened is
	// closed again (so the same data directory opens at once).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	_, err = Start(context.Background(), Config{ID: 1, Listen: ln.Addr().String(), DataDir: dir, Partitions: 1})
	if err == nil || !strings.Contains(err.Error(), "listening on") {
		t.Fatalf("err = %v, want a listen failure", err)
	}
	if _, err := Start(context.Background(), Config{ID: -1, Listen: "127.0.0.1:0", DataDir: dir, Partitions: 1}); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad config: err = %v, want ErrConfig", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := Start(ctx, Config{ID: 1, Listen: "127.0.0.1:0", DataDir: dir, Partitions: 1})
	if err != nil {
		t.Fatalf("data directory still locked after a failed start: %v", err)
	}
	cancel()
	select {
	case <-n.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("node did not stop")
	}
	if err := n.Err(); err != nil {
		t.Fatal(err)
	}
}

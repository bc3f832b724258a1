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
	"github.com/garantia/garantia/broker/wire"
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
		{"id too large", func(c *Config) { c.ID = MaxNodeID + 1 }, "node id 65536"},
		{"lag below the fetch wait", func(c *Config) { c.ReplicaLagTimeMax = 200 * time.Millisecond }, "must exceed the replica fetch max wait 500ms"},
		{"lag above a short fetch wait", func(c *Config) {
			c.ReplicaLagTimeMax, c.ReplicaFetchMaxWait = 200*time.Millisecond, 50*time.Millisecond
		}, ""},
		{"negative min ISR", func(c *Config) { c.MinInsyncReplicas = -1 }, "min insync replicas -1"},
		{"negative replication factor", func(c *Config) { c.DefaultReplicationFactor = -2 }, "replication factor -2"},
		{"negative request timeout", func(c *Config) { c.RequestTimeout = -time.Second }, "negative duration"},
		{"bad peer address", func(c *Config) { c.PeerKafkaAddrs = map[int32]string{2: "nowhere"} }, "peer 2"},
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

// TestSingleNodeContinuesLogEpochs: a data directory whose logs were
// written at leader epoch 3 (by a cluster) opens as a cluster of one that
// leads at epoch 3, so appends keep epochs non-decreasing along the log.
func TestSingleNodeContinuesLogEpochs(t *testing.T) {
	dir := t.TempDir()
	st, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log, err := st.Partition("old", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	b := wire.EncodeBatch(wire.BatchHeader{ProducerID: -1, BaseSequence: -1}, []wire.Record{{Value: []byte("x")}})
	if _, err := log.AppendAsLeader(b, 3); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := Start(ctx, Config{ID: 1, Listen: "127.0.0.1:0", DataDir: dir, Partitions: 1})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := n.Wait(); err != nil {
			t.Error(err)
		}
	}()
	p := n.Replica("old", 0)
	if p == nil {
		t.Fatal("no replica of old-0 after the restart")
	}
	if !p.IsLeader() || p.LeaderEpoch() != 3 || p.HighWatermark() != 1 {
		t.Fatalf("replica of old-0 after the restart: %+v", p.State())
	}
	if _, err := p.AppendAsLeader(b, -1); err != nil {
		t.Fatalf("append at the continued epoch: %v", err)
	}
}

package runner

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/nemesis"
	"github.com/garantia/garantia/workloads/queue"
)

// stubDB stands in for a backend whose faults always succeed: enough for
// the nemesis to have a fault in force.
type stubDB struct{}

func (stubDB) Setup(context.Context) error              { return nil }
func (stubDB) Nodes() []db.Node                         { return []db.Node{{ID: 1, Name: "n1", Addr: "127.0.0.1:1"}} }
func (stubDB) Kill(context.Context, db.Node) error      { return nil }
func (stubDB) Start(context.Context, db.Node) error     { return nil }
func (stubDB) Pause(context.Context, db.Node) error     { return nil }
func (stubDB) Resume(context.Context, db.Node) error    { return nil }
func (stubDB) WaitReady(context.Context, db.Node) error { return nil }
func (stubDB) Teardown(context.Context) error           { return nil }
func (stubDB) LogFiles() map[string]string              { return nil }

// TestProgressLineShowsFault: the progress line names the fault in force,
// and "none" without one.
func TestProgressLineShowsFault(t *testing.T) {
	w, err := histories.Create(filepath.Join(t.TempDir(), histories.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rec := histories.NewRecorder(w, time.Now())
	wl, err := queue.New(queue.Config{Brokers: []string{"127.0.0.1:1"}, Partitions: 1, ReplicationFactor: 1, Acks: "all", Concurrency: 1}, rec)
	if err != nil {
		t.Fatal(err)
	}
	nem, err := nemesis.New(nemesis.Config{DB: stubDB{}, Recorder: rec,
		Schedule: []nemesis.Step{{At: 0, Kind: nemesis.Kill, Target: nemesis.One, Duration: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p := newProgressLine(&out, 30*time.Second, wl, nem.Current)
	if line := p.line(time.Now().Add(time.Second)); !strings.HasSuffix(line, "fault: none") || !strings.Contains(line, "ops/s") {
		t.Errorf("line before any fault: %q", line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := nem.Run(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if line := p.line(time.Now().Add(2 * time.Second)); !strings.HasSuffix(line, "fault: kill one n1") {
		t.Errorf("line with n1 killed: %q", line)
	}
	if line := newProgressLine(&out, time.Second, wl, noFaults{}.Current).line(time.Now()); !strings.HasSuffix(line, "fault: none") {
		t.Errorf("line without a nemesis: %q", line)
	}
}

package nemesis

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/local"
	"github.com/garantia/garantia/db/local/buildtest"
	"github.com/garantia/garantia/internal/leakcheck"
)

func TestMain(m *testing.M) { buildtest.Main(m) }

func localCluster(t *testing.T, nodes int) *local.DB {
	t.Helper()
	d, err := local.New(local.Options{Config: db.Config{Binary: buildtest.Binary(t), Nodes: nodes, Dir: t.TempDir()}, Links: nodes > 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Teardown(context.Background()); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	if err := d.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

func createTopic(t *testing.T, addr, topic string, partitions int32) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 5000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = partitions
	rt.ReplicationFactor = 1
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := db.RoundTrip(ctx, addr, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode); err != nil {
		t.Fatal(err)
	}
}

// TestMetadataLeaders asks a real broker who leads each partition.
func TestMetadataLeaders(t *testing.T) {
	leakcheck.Check(t)
	d := localCluster(t, 1)
	createTopic(t, d.Nodes()[0].Addr, "leaders", 3)
	src := MetadataLeaders{Nodes: d.Nodes, Topic: "leaders"}
	ctx := context.Background()
	for pick := uint64(0); pick < 6; pick++ {
		part, leader, err := src.Leader(ctx, pick)
		if err != nil {
			t.Fatalf("pick %d: %v", pick, err)
		}
		if part != int32(pick%3) || leader != 1 {
			t.Errorf("pick %d: partition %d led by %d, want partition %d led by 1", pick, part, leader, pick%3)
		}
	}
	if _, _, err := (MetadataLeaders{Nodes: d.Nodes, Topic: "no-such-topic"}).Leader(ctx, 0); err == nil {
		t.Error("a leader for a topic that does not exist")
	}
	// A dead node has no opinion.
	if err := d.Kill(ctx, d.Nodes()[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := src.Leader(ctx, 0); err == nil {
		t.Error("a leader from a cluster with every node dead")
	}
}

// TestPartitionThroughProxies runs a partition and a kill from a schedule
// against three broker processes whose links are proxied, and checks the
// links through the proxies: the isolated node's links are silent while
// the partition holds, and everything answers after Heal.
func TestPartitionThroughProxies(t *testing.T) {
	leakcheck.Check(t)
	d := localCluster(t, 3)
	rec, path := newRecorder(t)
	ms := time.Millisecond
	sched := []Step{
		{At: 0, Kind: Partition, Target: One, Duration: time.Hour, Pick: 11},
		{At: 10 * ms, Kind: Kill, Target: One, Duration: 100 * ms, Pick: 12},
	}
	nem := runFor(t, Config{DB: d, Schedule: sched, Recorder: rec}, 600*time.Millisecond)

	// Which node was isolated? The first completion says.
	probe := func(from, to string, within time.Duration) error {
		addr, _, err := d.LinkAddrs(from, to)
		if err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		return db.Probe(pctx, addr)
	}
	isolated := ""
	for _, n := range d.Nodes() {
		others := 0
		for _, o := range d.Nodes() {
			if o.Name != n.Name && probe(o.Name, n.Name, 300*time.Millisecond) != nil {
				others++
			}
		}
		if others == 2 {
			isolated = n.Name
		}
	}
	if isolated == "" {
		t.Fatal("no node is cut off from both others during a partition:one")
	}
	if err := nem.Heal(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, a := range d.Nodes() {
		for _, b := range d.Nodes() {
			if a.Name != b.Name {
				if err := probe(a.Name, b.Name, 2*time.Second); err != nil {
					t.Errorf("%s->%s after Heal: %v", a.Name, b.Name, err)
				}
			}
		}
	}
	ops := readNemesis(t, rec, path)
	var fs []string
	for _, op := range ops {
		if op.Error != "" {
			t.Errorf("%s: %s", op.F, op.Error)
		}
		fs = append(fs, op.F)
	}
	want := []string{"start-partition", "start-partition", "kill", "kill", "start", "start", "stop-partition", "stop-partition", "start", "start"}
	if len(fs) != len(want) {
		t.Fatalf("events %v, want %v", fs, want)
	}
	for i := range want {
		if fs[i] != want[i] {
			t.Fatalf("events %v, want %v", fs, want)
		}
	}
}

package docker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/powerfs"
	"github.com/garantia/garantia/db/powerfs/powerfstest"
	"github.com/garantia/garantia/histories"
)

// TestDockerPowerCut runs a broker container on a power-loss mount (the
// host's mount at the node's data folder, bind-mounted into the
// container) and cuts its power twice. A cut remounts the filesystem, so
// the container must see the new mount when it starts again: after the
// first cut it reads the log as the cut left it (with --fsync never,
// empty), and what it writes then goes through the new mount (the second
// cut finds it and undoes it).
func TestDockerPowerCut(t *testing.T) {
	if err := powerfs.Probe(); err != nil {
		powerfstest.SkipOrFail(t, err)
	}
	dir := t.TempDir()
	// Mounted before the cluster's cleanups are registered, so that it is
	// unmounted after the containers are gone.
	disks, err := powerfs.MountDisks(db.LayOut(dir, 1), powerfs.Options{Label: "test/" + t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := disks.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	d, _ := newDockerCluster(t, 1, func(o *Options) {
		o.Dir = dir
		o.Fsync = "never"
		o.AutoCreateTopics = true
		o.Partitions = 1
	})
	ctx := context.Background()
	if err := d.Setup(ctx); err != nil {
		t.Fatalf("setup: %v", err)
	}
	n1 := d.Nodes()[0]

	produceN(t, n1.Addr, 200)
	if got := countRecords(t, n1.Addr); got != 200 {
		t.Fatalf("read %d records before the cut, want 200", got)
	}
	cut := func() db.PowerLoss {
		t.Helper()
		if err := d.Kill(ctx, n1); err != nil {
			t.Fatal(err)
		}
		loss, err := disks.CutPower(ctx, n1)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(ctx, n1); err != nil {
			t.Fatal(err)
		}
		if err := d.WaitReady(ctx, n1); err != nil {
			t.Fatal(err)
		}
		return loss
	}
	if loss := cut(); loss.BytesLost == 0 {
		t.Fatalf("the first cut lost nothing (%+v): the container did not write through the mount", loss)
	}
	if got := countRecords(t, n1.Addr); got != 0 {
		t.Fatalf("the container reads %d records after a power cut with --fsync never, want 0: it does not see the mount as the cut left it", got)
	}
	produceN(t, n1.Addr, 50)
	if loss := cut(); loss.BytesLost == 0 || loss.FilesReverted == 0 {
		t.Fatalf("the second cut lost nothing (%+v): the restarted container did not write through the new mount", loss)
	}
	if got := countRecords(t, n1.Addr); got != 0 {
		t.Fatalf("read %d records after the second cut, want 0", got)
	}
}

const powerTopic = "power"

func produceN(t *testing.T, addr string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(powerTopic), kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
}

// countRecords reads the topic's partition from the start to its end.
func countRecords(t *testing.T, addr string) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{powerTopic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	end := listEnd(ctx, t, addr)
	n := 0
	for int64(n) < end {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", n, end, err)
		}
		fs.EachRecord(func(*kgo.Record) { n++ })
	}
	return n
}

// listEnd asks the broker for the end offset of the topic's partition,
// retrying while it has no answer yet (a restarted broker loads its logs
// first).
func listEnd(ctx context.Context, t *testing.T, addr string) int64 {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version = 4
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = powerTopic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = 0
		rp.Timestamp = -1 // the end
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := db.RoundTrip(ctx, addr, req)
		if err == nil {
			r := resp.(*kmsg.ListOffsetsResponse)
			if len(r.Topics) == 1 && len(r.Topics[0].Partitions) == 1 {
				p := r.Topics[0].Partitions[0]
				if err = kerr.ErrorForCode(p.ErrorCode); err == nil {
					return p.Offset
				}
			}
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no end offset of %s/0 from %s: %v", powerTopic, addr, last)
	return 0
}

// TestGarantiaTestDockerPower runs `garantia test --db docker` with power
// faults of one node and --fsync always: the run mounts the power-loss
// filesystem on the host under each node's data folder, the containers
// run on it across cuts, nothing acknowledged is lost, and nothing is
// left mounted or running.
func TestGarantiaTestDockerPower(t *testing.T) {
	if err := powerfs.Probe(); err != nil {
		powerfstest.SkipOrFail(t, err)
	}
	eng := realEngine(t)
	bin := garantiaBinary(t)
	store := t.TempDir()
	cmd := exec.Command(bin, "test", "--db", "docker", "--time-limit", "4s", "--rate", "200",
		"--nemesis", "power:one+leader", "--nemesis-interval", "1s", "--fsync", "always", "--seed", "5", "--store", store)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("garantia test --db docker --nemesis power: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "verdict: valid") {
		t.Errorf("want a valid run:\n%s", out)
	}
	hist, _ := filepath.Glob(filepath.Join(store, "*", "2*", histories.HistoryFile))
	if len(hist) != 1 {
		t.Fatalf("histories %v, want one", hist)
	}
	b, err := os.ReadFile(hist[0])
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"f":"power-off"`); n < 2 {
		t.Errorf("%d power-off events in the history, want a fault's invocation and completion at least\n%s", n, out)
	}
	mounts, err := powerfs.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if strings.HasPrefix(m.Dir, store) {
			t.Errorf("left mounted: %s", m)
		}
	}
	noContainersUnder(t, eng, store)
}

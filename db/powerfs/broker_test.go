package powerfs_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/garantia/garantia/db/powerfs"
	"github.com/garantia/garantia/db/powerfs/powerfstest"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/local/buildtest"
)

// brokerProc is a `garantia broker` process whose data folder is on a
// powerfs mount: a cluster of one with its Raft controller, so that
// raft.db and the controller's snapshots live on the mount too.
type brokerProc struct {
	tb        testing.TB
	bin       string
	dataDir   string
	addr      string
	ctl       string
	extraArgs []string
	single    bool // no controller: the in-memory metadata of a cluster of one
	cmd       *exec.Cmd
	log       *bytes.Buffer
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func newBrokerProc(t *testing.T, dataDir string, args ...string) *brokerProc {
	b := &brokerProc{tb: t, bin: buildtest.Binary(t), dataDir: dataDir, addr: freeAddr(t), ctl: freeAddr(t), extraArgs: args}
	t.Cleanup(b.kill)
	return b
}

func (b *brokerProc) start() {
	b.tb.Helper()
	args := []string{"broker", "--id", "1", "--listen", b.addr, "--advertise", b.addr,
		"--data-dir", b.dataDir, "--auto-create-topics", "--partitions", "1"}
	if !b.single {
		args = append(args, "--controller-listen", b.ctl)
	}
	args = append(args, b.extraArgs...)
	b.cmd = exec.Command(b.bin, args...)
	b.log = &bytes.Buffer{}
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		b.tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err := db.Probe(pctx, b.addr)
		pcancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			b.kill()
			b.tb.Fatalf("broker on %s did not come up: %v\n%s", b.addr, err, b.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill SIGKILLs the broker and waits until it is gone (its files closed).
func (b *brokerProc) kill() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	b.cmd.Process.Kill()
	b.cmd.Wait()
	b.cmd = nil
}

// produceUntilKilled produces acks=all records "tag-i" to partition 0 of
// topic power, up to 64 in flight, and SIGKILLs the broker once at least
// killAfter were acknowledged; it returns the acknowledged values.
func produceUntilKilled(t *testing.T, b *brokerProc, tag string, killAfter int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.DefaultProduceTopic("power"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0), kgo.RecordRetries(1),
		kgo.ProduceRequestTimeout(5*time.Second), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var acked []string
	sem := make(chan struct{}, 64)
	killed := make(chan struct{})
	var once sync.Once
	deadline := time.After(60 * time.Second)
	for i := 0; ; i++ {
		select {
		case <-killed:
			cancel()
			cl.Close() // fails what is still in flight
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), acked...)
		case <-deadline:
			t.Fatalf("only %d acknowledged in 60 s\n%s", len(acked), b.log)
		case sem <- struct{}{}:
		}
		v := fmt.Sprintf("%s-%d", tag, i)
		cl.Produce(ctx, &kgo.Record{Value: []byte(v), Partition: 0}, func(r *kgo.Record, err error) {
			<-sem
			if err != nil {
				return
			}
			mu.Lock()
			acked = append(acked, v)
			n := len(acked)
			mu.Unlock()
			if n >= killAfter {
				once.Do(func() {
					b.kill()
					close(killed)
				})
			}
		})
	}
}

// readAll reads every value of partition 0 of topic power.
func readAll(t *testing.T, b *brokerProc) map[string]bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"power": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "power"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	var end int64 = -1
	for end < 0 {
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && len(resp.Topics) == 1 && len(resp.Topics[0].Partitions) == 1 && resp.Topics[0].Partitions[0].ErrorCode == 0 {
			end = resp.Topics[0].Partitions[0].Offset
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("listing the end offset after the restart: %v %+v\n%s", err, resp, b.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := map[string]bool{}
	var next int64
	for next < end {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read up to offset %d of %d after the restart: %v", next, end, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Value)] = true
			next = r.Offset + 1
		})
	}
	return got
}

// powerCutRounds runs rounds of: start the broker on the mount, produce
// until killAfter acknowledgements, SIGKILL it, cut the power, restart it
// and read everything back. It returns the acknowledged values lost,
// counted over every round so far, and stops at the first round that
// lost any when stopAtLoss.
func powerCutRounds(t *testing.T, f *powerfs.FS, rounds int, stopAtLoss bool, args ...string) (acked, lost int, first string) {
	b := newBrokerProc(t, filepath.Join(f.Dir(), "data"), args...)
	var all []string
	for round := range rounds {
		b.start()
		all = append(all, produceUntilKilled(t, b, "r"+strconv.Itoa(round), 300+round*50)...)
		rep, err := f.PowerCut()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		b.start()
		got := readAll(t, b)
		b.kill()
		lostNow := 0
		for _, v := range all {
			if !got[v] {
				lostNow++
				if first == "" {
					first = fmt.Sprintf("%s (round %d; the cut reverted %d files, %d bytes)", v, round, rep.FilesReverted, rep.BytesLost)
				}
			}
		}
		t.Logf("round %d: %d acknowledged so far, %d read back, %d lost; cut: %+v", round, len(all), len(got), lostNow, rep)
		lost = lostNow
		if lost > 0 && stopAtLoss {
			break
		}
	}
	return len(all), lost, first
}

// TestBrokerPowerCuts runs a real broker process on a strict mount,
// produces acks=all, SIGKILLs it and cuts its power: with --fsync always
// every acknowledged record comes back; with --fsync never, and with the
// fsync-after-ack bug, acknowledged records are lost (the fault has
// teeth).
func TestBrokerPowerCuts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes")
	}
	t.Run("fsync always keeps every acknowledged record", func(t *testing.T) {
		f := powerfstest.Mount(t, powerfs.Options{})
		acked, lost, first := powerCutRounds(t, f, 3, false, "--fsync", "always")
		if lost > 0 {
			t.Fatalf("--fsync always: %d of %d acknowledged records lost to power cuts; first %s", lost, acked, first)
		}
	})
	t.Run("fsync never loses acknowledged records", func(t *testing.T) {
		f := powerfstest.Mount(t, powerfs.Options{})
		acked, lost, first := powerCutRounds(t, f, 3, true, "--fsync", "never")
		if lost == 0 {
			t.Fatalf("--fsync never: no acknowledged record of %d lost to power cuts: the fault has no teeth", acked)
		}
		t.Logf("--fsync never: %d of %d acknowledged records lost; first %s", lost, acked, first)
	})
	t.Run("fsync-after-ack bug loses acknowledged records", func(t *testing.T) {
		f := powerfstest.Mount(t, powerfs.Options{})
		acked, lost, first := powerCutRounds(t, f, 8, true, "--fsync", "always", "--bug", "fsync-after-ack")
		if lost == 0 {
			t.Fatalf("--bug fsync-after-ack: no acknowledged record of %d lost to 8 power cuts", acked)
		}
		t.Logf("--bug fsync-after-ack: %d of %d acknowledged records lost; first %s", lost, acked, first)
	})
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/wire"
	"github.com/garantia/garantia/internal/kafkatest"
)

type acked struct {
	partition int32
	offset    int64
	value     []byte
}

// TestRestartAfterSIGKILLLosesNothingAcknowledged produces with kgo
// (acks=all, idempotent) to a `garantia broker --fsync always`, SIGKILLs
// the broker while produces are in flight, restarts it on the same data
// directory, and reads everything back: every acknowledged record is at
// its offset, byte for byte, and no record is there twice.
func TestRestartAfterSIGKILLLosesNothingAcknowledged(t *testing.T) {
	dataDir := t.TempDir()
	const topic, partitions = "durable", 3
	b := startBroker(t, dataDir, "--fsync", "always", "--id", "1")
	kafkatest.CreateTopic(t, kafkatest.Client(t, b.addr), topic, partitions)

	// A bounded delivery timeout fails what is in flight at the kill, so
	// that those records end (as indeterminate) instead of retrying on.
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.DefaultProduceTopic(topic), kgo.RecordDeliveryTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu      sync.Mutex
		oks     []acked
		sent    int
		wg      sync.WaitGroup
		enough  = make(chan struct{})
		closeMu sync.Once
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var inflight sync.WaitGroup
		defer inflight.Wait()
		for i := 0; ctx.Err() == nil; i++ {
			v := fmt.Appendf(nil, "record-%06d-%s", i, bytes.Repeat([]byte{'x'}, i%97))
			inflight.Add(1)
			mu.Lock()
			sent++
			mu.Unlock()
			prod.Produce(ctx, &kgo.Record{Value: v}, func(r *kgo.Record, err error) {
				defer inflight.Done()
				if err != nil {
					return // indeterminate: may or may not be in the log
				}
				mu.Lock()
				oks = append(oks, acked{r.Partition, r.Offset, r.Value})
				if len(oks) == 3000 {
					closeMu.Do(func() { close(enough) })
				}
				mu.Unlock()
			})
		}
	}()
	select {
	case <-enough:
	case <-time.After(30 * time.Second):
		t.Fatalf("fewer than 3000 produces acknowledged within 30s")
	}
	b.kill() // mid-stream: produces are in flight
	cancel()
	prod.Close() // fails every record still buffered
	wg.Wait()
	mu.Lock()
	t.Logf("%d produced, %d acknowledged before SIGKILL", sent, len(oks))
	mu.Unlock()

	b2 := startBroker(t, dataDir, "--fsync", "always", "--id", "1")
	hws := highWatermarks(t, kafkatest.Client(t, b2.addr), topic, partitions)
	got := consumeAll(t, b2.addr, topic, hws)
	at := make(map[[2]int64][]byte, len(got))
	seen := make(map[string]bool, len(got))
	for _, r := range got {
		at[[2]int64{int64(r.Partition), r.Offset}] = r.Value
		if seen[string(r.Value)] {
			t.Fatalf("record %q is in the log twice", r.Value)
		}
		seen[string(r.Value)] = true
	}
	for _, a := range oks {
		v, ok := at[[2]int64{int64(a.partition), a.offset}]
		if !ok {
			t.Fatalf("acknowledged record %q at %d/%d lost after SIGKILL and restart (high watermarks %v)", a.value, a.partition, a.offset, hws)
		}
		if !bytes.Equal(v, a.value) {
			t.Fatalf("at %d/%d: got %q, acknowledged %q", a.partition, a.offset, v, a.value)
		}
	}

	// The restarted broker keeps going: new producer ids, offsets after
	// the old end.
	prod2 := kafkatest.Client(t, b2.addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	for p := range int32(partitions) {
		r, err := prod2.ProduceSync(pctx, &kgo.Record{Partition: p, Value: []byte("after restart")}).First()
		if err != nil {
			t.Fatal(err)
		}
		if r.Offset != hws[r.Partition] {
			t.Fatalf("first record after restart on partition %d at offset %d, want %d", r.Partition, r.Offset, hws[r.Partition])
		}
	}
	if code := b2.stop(10 * time.Second); code != 0 {
		t.Fatalf("broker exited %d after SIGTERM, want 0", code)
	}
}

// TestIdempotentProducerAcrossRestart keeps one idempotent kgo client
// producing while the broker is SIGKILLed and restarted on the same
// address. kgo retries what was in flight with the same sequence numbers;
// the restarted broker, having rebuilt producer state from its log, must
// answer those retries as duplicates: every record ends up in the log
// exactly once, in the order produced. (Whether a batch is in flight at the
// kill is up to timing; TestDuplicateAfterRestartIsNotAppended forces it.)
func TestIdempotentProducerAcrossRestart(t *testing.T) {
	dataDir := t.TempDir()
	const topic = "exactly-once"
	b := startBroker(t, dataDir, "--fsync", "always")
	addr := b.addr
	kafkatest.CreateTopic(t, kafkatest.Client(t, addr), topic, 1)
	prod := kafkatest.Client(t, addr, kgo.DefaultProduceTopic(topic), kgo.RecordDeliveryTimeout(60*time.Second))

	const count = 4000
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		offsets = make([]int64, count)
		halfway = make(chan struct{})
		once    sync.Once
	)
	wg.Add(count)
	go func() {
		for i := range count {
			prod.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%06d", i)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				offsets[i] = r.Offset
				if i == count/2 {
					once.Do(func() { close(halfway) })
				}
			})
			if i%100 == 0 {
				time.Sleep(time.Millisecond) // spread the produces over the restart
			}
		}
	}()
	select {
	case <-halfway:
	case <-ctx.Done():
		t.Fatal("half of the records not acknowledged in time")
	}
	b.kill()
	startBroker(t, dataDir, "--fsync", "always", "--listen", addr)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d produces failed across the restart, first: %v", len(errs), errs[0])
	}

	got := consumeAll(t, addr, topic, highWatermarks(t, kafkatest.Client(t, addr), topic, 1))
	if len(got) != count {
		t.Fatalf("log holds %d records, produced %d exactly once each", len(got), count)
	}
	for i, r := range got {
		if want := fmt.Sprintf("%06d", i); string(r.Value) != want || r.Offset != int64(i) || offsets[i] != int64(i) {
			t.Fatalf("offset %d holds %q (acknowledged at %d), want %q: a retry was appended twice or reordered", r.Offset, r.Value, offsets[i], want)
		}
	}
}

// TestDuplicateAfterRestartIsNotAppended is the deterministic form of the
// test above: an idempotent batch acknowledged before a SIGKILL and sent
// again after the restart is answered with its original offset and not
// appended again; a gap is still refused.
func TestDuplicateAfterRestartIsNotAppended(t *testing.T) {
	dataDir := t.TempDir()
	b := startBroker(t, dataDir, "--fsync", "always")
	cl := kafkatest.Client(t, b.addr)
	kafkatest.CreateTopic(t, cl, "dedupe", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl)
	if err != nil || pid.ErrorCode != 0 {
		t.Fatalf("InitProducerID: %v, %+v", err, pid)
	}
	produce := func(cl *kgo.Client, seq int32, n int) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		recs := make([]wire.Record, n)
		for i := range recs {
			recs[i].Value = fmt.Appendf(nil, "seq-%d", int(seq)+i)
		}
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "dedupe"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = wire.EncodeBatch(wire.BatchHeader{ProducerID: pid.ProducerID, ProducerEpoch: pid.ProducerEpoch, BaseSequence: seq, FirstTimestamp: time.Now().UnixMilli()}, recs)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := cl.Broker(1).Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}
	if sp := produce(cl, 0, 3); sp.ErrorCode != 0 || sp.BaseOffset != 0 {
		t.Fatalf("first batch: %+v", sp)
	}
	b.kill()
	b2 := startBroker(t, dataDir, "--fsync", "always")
	cl2 := kafkatest.Client(t, b2.addr)
	if sp := produce(cl2, 0, 3); sp.ErrorCode != 0 || sp.BaseOffset != 0 {
		t.Fatalf("retry after restart: error %d base %d; want the original offset 0", sp.ErrorCode, sp.BaseOffset)
	}
	if sp := produce(cl2, 3, 2); sp.ErrorCode != 0 || sp.BaseOffset != 3 {
		t.Fatalf("next batch after restart: error %d base %d; want offset 3", sp.ErrorCode, sp.BaseOffset)
	}
	if sp := produce(cl2, 9, 1); sp.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap after restart: error %d; want OUT_OF_ORDER_SEQUENCE_NUMBER", sp.ErrorCode)
	}
	if hw := highWatermarks(t, cl2, "dedupe", 1)[0]; hw != 5 {
		t.Fatalf("high watermark %d, want 5 (3 + 2 records, the retry not appended)", hw)
	}
	// A fresh producer id after the restart is above the old one.
	pid2, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl2)
	if err != nil || pid2.ProducerID <= pid.ProducerID {
		t.Fatalf("producer id after restart %d, before %d (%v): ids must never repeat", pid2.ProducerID, pid.ProducerID, err)
	}
}

package server_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// seed returns a seed for the test's randomness and prints it on failure.
func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random seed %d", s)
		}
	})
	return s
}

type tpo struct {
	partition int32
	offset    int64
}

// produceAll produces recs and returns them with the partition and offset
// the broker assigned (offset -1 when acks=0 gives none).
func produceAll(t *testing.T, cl *kgo.Client, recs []*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, r := range recs {
		wg.Add(1)
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d produces failed, first: %v", len(errs), len(recs), errs[0])
	}
}

// consumeN reads topic from the start until it has n records.
func consumeN(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records before timing out", len(out), n)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch error on %s/%d: %v", topic, p, err)
		})
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("consumed %d records, produced %d", len(out), n)
	}
	return out
}

// TestKgoRoundTrip produces with kgo at every acks level, with and without
// idempotence, and reads everything back: every record produced with a
// returned offset is fetched at that offset, byte for byte.
func TestKgoRoundTrip(t *testing.T) {
	n := startNode(t)
	admin := newClient(t, n)
	tests := []struct {
		name string
		opts []kgo.Opt
		acks int
		// idempotent: batches carry a producer id from InitProducerID.
		idempotent bool
	}{
		{"acks=0", []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}, 0, false},
		{"acks=1", []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}, 1, false},
		{"acks=-1 not idempotent", []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite()}, -1, false},
		{"acks=-1 idempotent (kgo defaults)", nil, -1, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed(t), 0))
			topic := fmt.Sprintf("roundtrip-%d", i)
			createTopic(t, admin, topic, 3)
			prod := newClient(t, n, append([]kgo.Opt{kgo.DefaultProduceTopic(topic)}, tt.opts...)...)

			const count = 3000
			recs := make([]*kgo.Record, count)
			for j := range recs {
				v := make([]byte, 1+rng.IntN(300))
				for k := range v {
					v[k] = byte(rng.Uint32())
				}
				recs[j] = &kgo.Record{
					Key:     fmt.Appendf(nil, "key-%d", rng.IntN(50)),
					Value:   v,
					Headers: []kgo.RecordHeader{{Key: "seq", Value: fmt.Appendf(nil, "%d", j)}},
				}
			}
			produceAll(t, prod, recs)

			cons := newClient(t, n, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := consumeN(t, cons, count)
			at := make(map[tpo]*kgo.Record, len(got))
			for _, r := range got {
				at[tpo{r.Partition, r.Offset}] = r
			}
			if len(at) != count {
				t.Fatalf("consumed %d distinct offsets for %d records", len(at), count)
			}
			bySeq := make(map[string]*kgo.Record, len(got))
			for _, r := range got {
				bySeq[string(r.Headers[0].Value)] = r
			}
			for j, want := range recs {
				var r *kgo.Record
				if tt.acks != 0 {
					r = at[tpo{want.Partition, want.Offset}]
					if r == nil {
						t.Fatalf("record %d acknowledged at %d/%d was not fetched there", j, want.Partition, want.Offset)
					}
				} else {
					// acks=0 returns no offsets: match by the unique header.
					r = bySeq[fmt.Sprint(j)]
					if r == nil {
						t.Fatalf("record %d (acks=0) was never fetched", j)
					}
				}
				if tt.idempotent != (r.ProducerID >= 0) {
					t.Fatalf("record %d has producer id %d; idempotent producer: %v", j, r.ProducerID, tt.idempotent)
				}
				if !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) ||
					len(r.Headers) != 1 || r.Headers[0].Key != "seq" || !bytes.Equal(r.Headers[0].Value, want.Headers[0].Value) {
					t.Fatalf("record %d at %d/%d differs: got key %q value %x headers %v, want key %q value %x headers %v",
						j, r.Partition, r.Offset, r.Key, r.Value, r.Headers, want.Key, want.Value, want.Headers)
				}
			}
		})
	}
}

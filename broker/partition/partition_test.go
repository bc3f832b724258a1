package partition

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
)

// batch is an idempotent producer's batch of n records.
func batch(pid int64, epoch int16, seq int32, n int) []byte {
	recs := make([]wire.Record, n)
	for i := range recs {
		recs[i].Value = fmt.Appendf(nil, "p%d-e%d-s%d", pid, epoch, int(seq)+i)
	}
	return wire.EncodeBatch(wire.BatchHeader{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, FirstTimestamp: 1}, recs)
}

func plain(n int) []byte { return batch(-1, -1, -1, n) }

func open(t *testing.T, log storage.PartitionLog) *Partition {
	t.Helper()
	return openLeader(t, log, max(log.LatestEpoch(), 0))
}

// openLeader opens a partition led by node 1, its only replica, at epoch.
func openLeader(t *testing.T, log storage.PartitionLog, epoch int32) *Partition {
	t.Helper()
	p, err := Open(Config{Topic: "t", Index: 0, Self: 1, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	p.BecomeLeader(metadata.Partition{Topic: "t", Replicas: []int32{1}, ISR: []int32{1}, Leader: 1, LeaderEpoch: epoch}, 1, time.Now())
	return p
}

func TestIdempotentSequences(t *testing.T) {
	type step struct {
		b        []byte
		wantBase int64
		wantErr  *kerr.Error
		dup      bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"plain batches are never deduplicated", []step{
			{b: plain(2), wantBase: 0}, {b: plain(2), wantBase: 2},
		}},
		{"in order", []step{
			{b: batch(7, 0, 0, 3), wantBase: 0}, {b: batch(7, 0, 3, 2), wantBase: 3}, {b: batch(7, 0, 5, 1), wantBase: 5},
		}},
		{"retry of the last batch is a duplicate at its original offset", []step{
			{b: batch(7, 0, 0, 3), wantBase: 0}, {b: batch(7, 0, 3, 2), wantBase: 3},
			{b: batch(7, 0, 3, 2), wantBase: 3, dup: true},
			{b: batch(7, 0, 0, 3), wantBase: 0, dup: true},
			{b: batch(7, 0, 5, 1), wantBase: 5},
		}},
		{"gap", []step{
			{b: batch(7, 0, 0, 3), wantBase: 0}, {b: batch(7, 0, 4, 1), wantErr: kerr.OutOfOrderSequenceNumber},
		}},
		{"overlap that is not a whole earlier batch", []step{
			{b: batch(7, 0, 0, 3), wantBase: 0}, {b: batch(7, 0, 1, 3), wantErr: kerr.OutOfOrderSequenceNumber},
		}},
		{"new epoch must start at zero", []step{
			{b: batch(7, 0, 0, 3), wantBase: 0}, {b: batch(7, 1, 3, 1), wantErr: kerr.OutOfOrderSequenceNumber},
			{b: batch(7, 1, 0, 1), wantBase: 3},
		}},
		{"older epoch is fenced", []step{
			{b: batch(7, 1, 0, 1), wantBase: 0}, {b: batch(7, 0, 1, 1), wantErr: kerr.InvalidProducerEpoch},
		}},
		{"producers are independent", []step{
			{b: batch(7, 0, 0, 1), wantBase: 0}, {b: batch(8, 0, 0, 1), wantBase: 1}, {b: batch(7, 0, 1, 1), wantBase: 2},
		}},
		{"corrupt batch", []step{
			{b: func() []byte { b := plain(1); b[len(b)-1] ^= 0xff; return b }(), wantErr: kerr.CorruptMessage},
		}},
		{"transactional batch", []step{
			{b: wire.EncodeBatch(wire.BatchHeader{ProducerID: 1, BaseSequence: 0, Attributes: 0x10}, []wire.Record{{Value: []byte("x")}}), wantErr: kerr.InvalidRecord},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := open(t, storage.NewMemLog("t-0"))
			for i, s := range tt.steps {
				res, err := p.AppendAsLeader(s.b, 1)
				if s.wantErr != nil {
					if !errors.Is(err, s.wantErr) {
						t.Fatalf("step %d: err = %v, want %v", i, err, s.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if res.BaseOffset != s.wantBase || res.Duplicate != s.dup {
					t.Fatalf("step %d: got %+v, want base %d duplicate %v", i, res, s.wantBase, s.dup)
				}
			}
		})
	}
}

func TestProducerStateRebuiltFromLog(t *testing.T) {
	log := storage.NewMemLog("t-0")
	p := open(t, log)
	for _, b := range [][]byte{batch(3, 0, 0, 2), batch(9, 2, 0, 1), batch(3, 0, 2, 2), plain(1)} {
		if _, err := p.AppendAsLeader(b, 1); err != nil {
			t.Fatal(err)
		}
	}
	// A new Partition over the same log (a restart) knows the producers.
	q := open(t, log)
	if q.MaxProducerID() != 9 {
		t.Fatalf("MaxProducerID = %d, want 9", q.MaxProducerID())
	}
	if res, err := q.AppendAsLeader(batch(3, 0, 2, 2), 1); err != nil || !res.Duplicate || res.BaseOffset != 3 {
		t.Fatalf("retry after restart: %+v, %v; want a duplicate at 3", res, err)
	}
	if _, err := q.AppendAsLeader(batch(3, 0, 5, 1), 1); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("gap after restart: err = %v", err)
	}
	if res, err := q.AppendAsLeader(batch(9, 2, 1, 1), 1); err != nil || res.BaseOffset != 6 {
		t.Fatalf("next after restart: %+v, %v; want base 6", res, err)
	}
	if q.HighWatermark() != 7 {
		t.Fatalf("high watermark %d, want 7", q.HighWatermark())
	}
}

func TestHighWatermarkWaits(t *testing.T) {
	p := open(t, storage.NewMemLog("t-0"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.WaitCommitted(ctx, 1, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on an empty log: err = %v, want deadline exceeded", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.WaitCommitted(context.Background(), 3, 0) }()
	if _, err := p.AppendAsLeader(plain(1), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("woke at high watermark 1 waiting for 3: %v", err)
	case <-time.After(10 * time.Millisecond):
	}
	if _, err := p.AppendAsLeader(plain(2), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken when the high watermark reached 3")
	}
	// Watchers are removed after the wait.
	p.mu.Lock()
	n := len(p.watchers)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d watchers left registered", n)
	}
}

func TestLeaderEpochChecks(t *testing.T) {
	p := openLeader(t, storage.NewMemLog("t-0"), 3)
	for _, tt := range []struct {
		epoch int32
		want  error
	}{{-1, nil}, {3, nil}, {2, kerr.FencedLeaderEpoch}, {4, kerr.UnknownLeaderEpoch}} {
		if err := p.CheckLeaderEpoch(tt.epoch); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("CheckLeaderEpoch(%d) = %v, want %v", tt.epoch, err, tt.want)
		}
	}
	if _, err := p.AppendAsLeader(plain(2), 1); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ask       int32
		wantEpoch int32
		wantEnd   int64
	}{{3, 3, 2}, {4, -1, -1}, {1, -1, -1}} {
		e, end := p.EndOffsetForEpoch(tt.ask)
		if e != tt.wantEpoch || end != tt.wantEnd {
			t.Errorf("EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", tt.ask, e, end, tt.wantEpoch, tt.wantEnd)
		}
	}
}

// TestConcurrentProducers appends from many idempotent producers at once
// (each in order, with some retries): every batch lands once, each
// producer's batches keep their order, and the high watermark ends at the
// log end.
func TestConcurrentProducers(t *testing.T) {
	p := open(t, storage.NewMemLog("t-0"))
	const producers, batches = 8, 200
	errs := make(chan error, producers)
	for pid := int64(0); pid < producers; pid++ {
		go func() {
			for s := int32(0); s < batches; s++ {
				b := batch(pid, 0, s, 1)
				res, err := p.AppendAsLeader(b, 1)
				if err == nil && s%10 == 0 {
					// A retry must be a duplicate at the same offset.
					var again AppendResult
					again, err = p.AppendAsLeader(b, 1)
					if err == nil && (!again.Duplicate || again.BaseOffset != res.BaseOffset) {
						err = fmt.Errorf("producer %d seq %d: retry gave %+v, first %+v", pid, s, again, res)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range producers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	end := p.Log().EndOffset()
	if end != producers*batches || p.HighWatermark() != end {
		t.Fatalf("log end %d, high watermark %d, want both %d", end, p.HighWatermark(), producers*batches)
	}
	b, err := p.Log().Read(0, 1<<30, end)
	if err != nil {
		t.Fatal(err)
	}
	next := map[int64]int32{}
	if err := wire.Batches(b, func(h wire.BatchHeader, _ []byte) bool {
		if h.BaseSequence != next[h.ProducerID] {
			t.Fatalf("producer %d: sequence %d at offset %d, want %d", h.ProducerID, h.BaseSequence, h.BaseOffset, next[h.ProducerID])
		}
		next[h.ProducerID]++
		return true
	}); err != nil {
		t.Fatal(err)
	}
}

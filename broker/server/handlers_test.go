package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/wire"
)

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func batchOf(pid int64, seq int32, ts int64, values ...string) []byte {
	recs := make([]wire.Record, len(values))
	for i, v := range values {
		recs[i] = wire.Record{Value: []byte(v), TimestampDelta: int64(i)}
	}
	return wire.EncodeBatch(wire.BatchHeader{ProducerID: pid, BaseSequence: seq, FirstTimestamp: ts}, recs)
}

// produceRaw sends one batch to topic/partition with acks and returns the
// partition response.
func produceRaw(t *testing.T, r *rawConn, corr int32, acks int16, topic string, partition int32, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	pr := kmsg.NewPtrProduceRequest()
	pr.Version, pr.Acks, pr.TimeoutMillis = 9, acks, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = topic
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition, pp.Records = partition, records
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	r.send(pr, corr)
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	r.recv(resp, corr)
	return resp.Topics[0].Partitions[0]
}

func TestProduceErrors(t *testing.T) {
	n := startNode(t)
	createTopic(t, newClient(t, n), "p", 2)
	r := dialRaw(t, n)
	corrupt := batchOf(-1, -1, 1, "a")
	corrupt[len(corrupt)-1] ^= 0x40
	tests := []struct {
		name      string
		acks      int16
		topic     string
		partition int32
		records   []byte
		want      *kerr.Error
		wantBase  int64
	}{
		{"first batch", 1, "p", 0, batchOf(-1, -1, 1, "a", "b"), nil, 0},
		{"second batch", -1, "p", 0, batchOf(-1, -1, 1, "c"), nil, 2},
		{"other partition", 1, "p", 1, batchOf(-1, -1, 1, "d"), nil, 0},
		{"corrupt CRC", 1, "p", 0, corrupt, kerr.CorruptMessage, -1},
		{"two batches in one partition", 1, "p", 0, append(batchOf(-1, -1, 1, "e"), batchOf(-1, -1, 1, "f")...), kerr.CorruptMessage, -1},
		{"unknown topic", 1, "nope", 0, batchOf(-1, -1, 1, "g"), kerr.UnknownTopicOrPartition, -1},
		{"unknown partition", 1, "p", 2, batchOf(-1, -1, 1, "h"), kerr.UnknownTopicOrPartition, -1},
		{"invalid acks", 2, "p", 0, batchOf(-1, -1, 1, "i"), kerr.InvalidRequiredAcks, -1},
		{"after the refusals the log continues", 1, "p", 0, batchOf(-1, -1, 1, "j"), nil, 3},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := produceRaw(t, r, int32(i), tt.acks, tt.topic, tt.partition, tt.records)
			want := int16(0)
			if tt.want != nil {
				want = tt.want.Code
			}
			if sp.ErrorCode != want {
				t.Fatalf("error code %d, want %d", sp.ErrorCode, want)
			}
			if tt.want == nil && sp.BaseOffset != tt.wantBase {
				t.Fatalf("base offset %d, want %d", sp.BaseOffset, tt.wantBase)
			}
			if tt.want != nil && (sp.ErrorMessage == nil || *sp.ErrorMessage == "") {
				t.Fatalf("no error message for error %d", sp.ErrorCode)
			}
		})
	}
}

func TestAcksZeroFailureClosesConnection(t *testing.T) {
	n := startNode(t)
	createTopic(t, newClient(t, n), "z", 1)
	r := dialRaw(t, n)
	pr := kmsg.NewPtrProduceRequest()
	pr.Version, pr.Acks = 9, 0
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "z"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = batchOf(-1, -1, 1, "fine")
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	r.send(pr, 1) // no response
	apiVersions(r, 3, 2)
	pr.Topics[0].Topic = "missing"
	r.send(pr, 3)
	r.expectClosed()
}

func TestIdempotentDuplicatesAndGaps(t *testing.T) {
	n := startNode(t)
	cl := newClient(t, n)
	createTopic(t, cl, "idem", 1)
	ipr := kmsg.NewPtrInitProducerIDRequest()
	pid1, err := ipr.RequestWith(ctx10s(t), cl)
	if err != nil || pid1.ErrorCode != 0 {
		t.Fatalf("InitProducerID: %v %+v", err, pid1)
	}
	pid2, _ := ipr.RequestWith(ctx10s(t), cl)
	if pid2.ProducerID == pid1.ProducerID {
		t.Fatalf("two InitProducerID calls returned the same id %d", pid1.ProducerID)
	}
	r := dialRaw(t, n)
	id := pid1.ProducerID
	b0 := batchOf(id, 0, 1, "a", "b")
	if sp := produceRaw(t, r, 1, -1, "idem", 0, b0); sp.ErrorCode != 0 || sp.BaseOffset != 0 {
		t.Fatalf("first: %+v", sp)
	}
	if sp := produceRaw(t, r, 2, -1, "idem", 0, batchOf(id, 2, 1, "c")); sp.ErrorCode != 0 || sp.BaseOffset != 2 {
		t.Fatalf("second: %+v", sp)
	}
	if sp := produceRaw(t, r, 3, -1, "idem", 0, b0); sp.ErrorCode != 0 || sp.BaseOffset != 0 {
		t.Fatalf("retry of the first must answer its original offset 0: %+v", sp)
	}
	if sp := produceRaw(t, r, 4, -1, "idem", 0, batchOf(id, 5, 1, "gap")); sp.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: %+v", sp)
	}
	// The log holds a, b, c once each.
	lo := listOffsets(t, cl, "idem", 0, -1, -1)
	if lo.Offset != 3 {
		t.Fatalf("high watermark %d after a duplicate and a gap, want 3", lo.Offset)
	}
}

func listOffsets(t *testing.T, cl *kgo.Client, topic string, partition int32, ts int64, epoch int32) kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = partition, ts, epoch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	// Straight to the broker: kgo's sharding would refuse unknown topics
	// itself.
	kresp, err := cl.Broker(1).Request(ctx10s(t), req)
	if err != nil {
		t.Fatal(err)
	}
	return kresp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
}

func TestListOffsetsAndEpochs(t *testing.T) {
	n := startNode(t)
	cl := newClient(t, n)
	createTopic(t, cl, "lo", 1)
	r := dialRaw(t, n)
	produceRaw(t, r, 1, 1, "lo", 0, batchOf(-1, -1, 1000, "a", "b", "c")) // offsets 0-2, ts 1000-1002
	produceRaw(t, r, 2, 1, "lo", 0, batchOf(-1, -1, 2000, "d", "e"))      // offsets 3-4, ts 2000-2001

	tests := []struct {
		name       string
		ts         int64
		epoch      int32
		wantOffset int64
		wantErr    *kerr.Error
	}{
		{"earliest", -2, -1, 0, nil},
		{"latest", -1, -1, 5, nil},
		{"timestamp inside the first batch", 1001, -1, 1, nil},
		{"timestamp between batches", 1500, -1, 3, nil},
		{"timestamp inside the second batch", 2001, -1, 4, nil},
		{"timestamp after everything", 9999, -1, -1, nil},
		{"current epoch", -1, 0, 5, nil},
		{"no epoch given", -1, -1, 5, nil},
		{"future epoch", -1, 3, 0, kerr.UnknownLeaderEpoch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := listOffsets(t, cl, "lo", 0, tt.ts, tt.epoch)
			if tt.wantErr != nil {
				if sp.ErrorCode != tt.wantErr.Code {
					t.Fatalf("error code %d, want %d", sp.ErrorCode, tt.wantErr.Code)
				}
				return
			}
			if sp.ErrorCode != 0 || sp.Offset != tt.wantOffset {
				t.Fatalf("got offset %d error %d, want offset %d", sp.Offset, sp.ErrorCode, tt.wantOffset)
			}
		})
	}
	if sp := listOffsets(t, cl, "missing", 0, -1, -1); sp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: error %d", sp.ErrorCode)
	}

	// OffsetForLeaderEpoch: epoch 0 is current and ends at the log end.
	oe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	ot := kmsg.NewOffsetForLeaderEpochRequestTopic()
	ot.Topic = "lo"
	for _, e := range []int32{0, 1} {
		op := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		op.LeaderEpoch, op.CurrentLeaderEpoch = e, -1
		ot.Partitions = append(ot.Partitions, op)
	}
	op := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	op.LeaderEpoch, op.CurrentLeaderEpoch = 0, 7
	ot.Partitions = append(ot.Partitions, op)
	oe.Topics = append(oe.Topics, ot)
	oer, err := oe.RequestWith(ctx10s(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	ps := oer.Topics[0].Partitions
	if ps[0].ErrorCode != 0 || ps[0].LeaderEpoch != 0 || ps[0].EndOffset != 5 {
		t.Fatalf("epoch 0: %+v", ps[0])
	}
	if ps[1].LeaderEpoch != -1 || ps[1].EndOffset != -1 {
		t.Fatalf("epoch 1 (in the future): %+v", ps[1])
	}
	if ps[2].ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Fatalf("current epoch 7: %+v", ps[2])
	}
}

func fetchReq(topic string, partition int32, offset int64, wait, minBytes, maxBytes, partMax int32) *kmsg.FetchRequest {
	f := kmsg.NewPtrFetchRequest()
	f.Version, f.MaxWaitMillis, f.MinBytes, f.MaxBytes = 12, wait, minBytes, maxBytes
	f.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = partition, offset, partMax
	ft.Partitions = append(ft.Partitions, fp)
	f.Topics = append(f.Topics, ft)
	return f
}

func fetchRaw(t *testing.T, r *rawConn, corr int32, f *kmsg.FetchRequest) *kmsg.FetchResponse {
	t.Helper()
	r.send(f, corr)
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = f.Version
	r.recv(resp, corr)
	return resp
}

func batchBases(t *testing.T, b []byte) []int64 {
	var out []int64
	if err := wire.Batches(b, func(h wire.BatchHeader, _ []byte) bool { out = append(out, h.BaseOffset); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFetchSemantics(t *testing.T) {
	n := startNode(t)
	createTopic(t, newClient(t, n), "f", 1)
	r := dialRaw(t, n)
	big := make([]string, 50)
	for i := range big {
		big[i] = "0123456789012345678901234567890123456789"
	}
	for i := range 4 {
		produceRaw(t, r, int32(i), 1, "f", 0, batchOf(-1, -1, 1, big...)) // 4 batches of 50 records
	}

	t.Run("reads whole batches from the offset", func(t *testing.T) {
		sp := fetchRaw(t, r, 10, fetchReq("f", 0, 60, 0, 0, 1<<20, 1<<20)).Topics[0].Partitions[0]
		if sp.ErrorCode != 0 || sp.HighWatermark != 200 || sp.LastStableOffset != 200 || sp.LogStartOffset != 0 {
			t.Fatalf("partition %+v", sp)
		}
		if got := batchBases(t, sp.RecordBatches); len(got) != 3 || got[0] != 50 {
			t.Fatalf("batch bases %v, want [50 100 150]", got)
		}
	})
	t.Run("partition max bytes limits, but one batch always comes", func(t *testing.T) {
		sp := fetchRaw(t, r, 11, fetchReq("f", 0, 0, 0, 0, 1<<20, 10)).Topics[0].Partitions[0]
		if got := batchBases(t, sp.RecordBatches); len(got) != 1 {
			t.Fatalf("batch bases %v, want exactly one", got)
		}
	})
	t.Run("at the high watermark: empty", func(t *testing.T) {
		sp := fetchRaw(t, r, 12, fetchReq("f", 0, 200, 0, 0, 1<<20, 1<<20)).Topics[0].Partitions[0]
		if sp.ErrorCode != 0 || len(sp.RecordBatches) != 0 {
			t.Fatalf("partition %+v", sp)
		}
	})
	t.Run("beyond the log end is out of range", func(t *testing.T) {
		sp := fetchRaw(t, r, 13, fetchReq("f", 0, 201, 5000, 1, 1<<20, 1<<20)).Topics[0].Partitions[0]
		if sp.ErrorCode != kerr.OffsetOutOfRange.Code {
			t.Fatalf("error code %d, want OFFSET_OUT_OF_RANGE", sp.ErrorCode)
		}
	})
	t.Run("leader epoch checks", func(t *testing.T) {
		f := fetchReq("f", 0, 0, 0, 0, 1<<20, 1<<20)
		f.Topics[0].Partitions[0].CurrentLeaderEpoch = 1
		if sp := fetchRaw(t, r, 14, f).Topics[0].Partitions[0]; sp.ErrorCode != kerr.UnknownLeaderEpoch.Code {
			t.Fatalf("future epoch: error code %d", sp.ErrorCode)
		}
	})
	t.Run("unknown topic", func(t *testing.T) {
		if sp := fetchRaw(t, r, 15, fetchReq("nope", 0, 0, 5000, 1, 1<<20, 1<<20)).Topics[0].Partitions[0]; sp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("error code %d", sp.ErrorCode)
		}
	})
	t.Run("incremental session we never granted", func(t *testing.T) {
		f := fetchReq("f", 0, 0, 0, 0, 1<<20, 1<<20)
		f.SessionID, f.SessionEpoch = 42, 1
		if resp := fetchRaw(t, r, 16, f); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
			t.Fatalf("error code %d", resp.ErrorCode)
		}
	})
	t.Run("full fetches get no session", func(t *testing.T) {
		f := fetchReq("f", 0, 0, 0, 0, 1<<20, 1<<20)
		f.SessionID, f.SessionEpoch = 0, 0
		if resp := fetchRaw(t, r, 17, f); resp.ErrorCode != 0 || resp.SessionID != 0 {
			t.Fatalf("error code %d session %d", resp.ErrorCode, resp.SessionID)
		}
	})
	t.Run("long poll wakes on a produce", func(t *testing.T) {
		w, p := dialRaw(t, n), dialRaw(t, n)
		pr := kmsg.NewPtrProduceRequest()
		pr.Version, pr.Acks, pr.TimeoutMillis = 9, 1, 5000
		pt := kmsg.NewProduceRequestTopic()
		pt.Topic = "f"
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Records = batchOf(-1, -1, 1, "late")
		pt.Partitions = append(pt.Partitions, pp)
		pr.Topics = append(pr.Topics, pt)
		start := time.Now()
		wrote := make(chan error, 1)
		go func() {
			// No t here: the test may end before this goroutine does.
			time.Sleep(100 * time.Millisecond)
			_, err := p.c.Write(frame(pr, 1))
			wrote <- err
		}()
		sp := fetchRaw(t, w, 18, fetchReq("f", 0, 200, 20000, 1, 1<<20, 1<<20)).Topics[0].Partitions[0]
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		presp := kmsg.NewPtrProduceResponse()
		presp.Version = 9
		p.recv(presp, 1)
		if got := batchBases(t, sp.RecordBatches); len(got) != 1 || got[0] != 200 {
			t.Fatalf("batch bases %v, want [200]", got)
		}
		if waited := time.Since(start); waited >= 20*time.Second {
			t.Fatalf("long poll returned only at its MaxWait (%v), not when data arrived", waited)
		}
	})
}

func TestCreateTopicsAndMetadata(t *testing.T) {
	n := startNode(t)
	cl := newClient(t, n)
	req := kmsg.NewPtrCreateTopicsRequest()
	add := func(name string, parts int32, rf int16) {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, parts, rf
		req.Topics = append(req.Topics, rt)
	}
	add("good", 3, 1)
	add("defaults", -1, -1)
	add("bad/name", 1, 1)
	add("rf2", 1, 2)
	add("zero", 0, 1)
	add("dup", 1, 1)
	add("dup", 1, 1)
	resp, err := req.RequestWith(ctx10s(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	want := []*kerr.Error{nil, nil, kerr.InvalidTopicException, kerr.InvalidReplicationFactor, kerr.InvalidPartitions, kerr.InvalidRequest, kerr.InvalidRequest}
	for i, w := range want {
		code := int16(0)
		if w != nil {
			code = w.Code
		}
		if got := resp.Topics[i].ErrorCode; got != code {
			t.Errorf("topic %q: error code %d, want %d", resp.Topics[i].Topic, got, code)
		}
	}
	if resp.Topics[0].NumPartitions != 3 || resp.Topics[1].NumPartitions != 1 {
		t.Errorf("partitions: %d and %d", resp.Topics[0].NumPartitions, resp.Topics[1].NumPartitions)
	}
	again, _ := req.RequestWith(ctx10s(t), cl)
	if again.Topics[0].ErrorCode != kerr.TopicAlreadyExists.Code {
		t.Errorf("creating again: error code %d, want TOPIC_ALREADY_EXISTS", again.Topics[0].ErrorCode)
	}

	md := kmsg.NewPtrMetadataRequest()
	good := "good"
	missing := "missing"
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &good}, {Topic: &missing}}
	md.AllowAutoTopicCreation = true
	mresp, err := md.RequestWith(ctx10s(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(mresp.Brokers) != 1 || mresp.Brokers[0].NodeID != 1 || mresp.ControllerID != 1 {
		t.Fatalf("brokers %+v controller %d", mresp.Brokers, mresp.ControllerID)
	}
	mt := mresp.Topics[0]
	if mt.ErrorCode != 0 || len(mt.Partitions) != 3 || mt.TopicID == ([16]byte{}) {
		t.Fatalf("topic good: %+v", mt)
	}
	for _, p := range mt.Partitions {
		if p.Leader != 1 || len(p.Replicas) != 1 || p.Replicas[0] != 1 || len(p.ISR) != 1 || p.ISR[0] != 1 || p.LeaderEpoch != 0 {
			t.Fatalf("partition %+v", p)
		}
	}
	if mresp.Topics[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("auto-creation is off, yet topic missing has error %d", mresp.Topics[1].ErrorCode)
	}

	// With auto-creation on, the same request creates the topic.
	n2 := startNode(t, withAutoCreate(4))
	cl2 := newClient(t, n2)
	mresp, err = md.RequestWith(ctx10s(t), cl2)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range mresp.Topics {
		if mt.ErrorCode != 0 || len(mt.Partitions) != 4 {
			t.Fatalf("auto-created topic %v: error %d, %d partitions", *mt.Topic, mt.ErrorCode, len(mt.Partitions))
		}
	}
	// ... but not when the client forbids it.
	md.AllowAutoTopicCreation = false
	other := "other"
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &other}}
	mresp, _ = md.RequestWith(ctx10s(t), cl2)
	if mresp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("client forbade auto-creation, yet error %d", mresp.Topics[0].ErrorCode)
	}
	// kgo producing to an unknown topic auto-creates it.
	prod := newClient(t, n2, kgo.AllowAutoTopicCreation())
	if err := prod.ProduceSync(ctx10s(t), &kgo.Record{Topic: "made-by-produce", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

package e2e

import (
	"bufio"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
	"github.com/garantia/garantia/internal/kafkatest"
)

// rawBatchRecords is how many 100-byte records one pre-built batch holds
// (about 1 MiB on the wire, kgo's default batch size).
const rawBatchRecords = 8192

func rawFrame(req kmsg.Request, corr int32) []byte {
	b := make([]byte, 4, 64)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = kbin.AppendNullableString(b, nil)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// BenchmarkProduceRawPipeline measures the broker alone: a client with no
// per-record work sends pre-built 8192-record batches of 100-byte values
// (acks=1, up to 8 requests in flight on one connection) and counts
// acknowledged records. The gap between this and BenchmarkProduce is what
// the kgo client itself costs on this machine.
func BenchmarkProduceRawPipeline(b *testing.B) {
	for _, acks := range []int16{1, -1} {
		name := "acks=1"
		if acks == -1 {
			name = "acks=-1"
		}
		b.Run(name, func(b *testing.B) {
			n := benchNode(b, storage.FsyncNever)
			kafkatest.CreateTopic(b, kafkatest.Client(b, n.Addr().String()), "bench", 1)
			recs := make([]wire.Record, rawBatchRecords)
			for i := range recs {
				recs[i].Value = make([]byte, recordBytes)
			}
			batch := wire.EncodeBatch(wire.BatchHeader{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, FirstTimestamp: time.Now().UnixMilli()}, recs)
			req := kmsg.NewPtrProduceRequest()
			req.Version, req.Acks, req.TimeoutMillis = 9, acks, 30000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "bench"
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Records = batch
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			frame := rawFrame(req, 0)

			c, err := net.Dial("tcp", n.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			requests := (b.N + rawBatchRecords - 1) / rawBatchRecords
			inflight := make(chan struct{}, 8)
			readErr := make(chan error, 1)
			go func() {
				br := bufio.NewReaderSize(c, 1<<16)
				for range requests {
					f, err := wire.ReadFrame(br, 1<<20)
					if err != nil {
						readErr <- err
						return
					}
					resp := kmsg.NewPtrProduceResponse()
					resp.Version = 9
					if err := resp.ReadFrom(f[5:]); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
						readErr <- err
						return
					}
					<-inflight
				}
				readErr <- nil
			}()
			b.SetBytes(recordBytes)
			b.ResetTimer()
			start := time.Now()
			for range requests {
				inflight <- struct{}{}
				if _, err := c.Write(frame); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-readErr; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(requests*rawBatchRecords)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkFetchRaw measures the broker serving reads alone: sequential
// 16 MiB fetches of 100-byte records (written beforehand) on one
// connection, without decoding the records.
func BenchmarkFetchRaw(b *testing.B) {
	n := benchNode(b, storage.FsyncNever)
	kafkatest.CreateTopic(b, kafkatest.Client(b, n.Addr().String()), "bench", 1)
	recs := make([]wire.Record, rawBatchRecords)
	for i := range recs {
		recs[i].Value = make([]byte, recordBytes)
	}
	batch := wire.EncodeBatch(wire.BatchHeader{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
	c, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 1<<16)
	batches := (b.N + rawBatchRecords - 1) / rawBatchRecords
	for i := range batches {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks = 9, 1
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "bench"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		if _, err := c.Write(rawFrame(req, int32(i))); err != nil {
			b.Fatal(err)
		}
		if _, err := wire.ReadFrame(br, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
	end := int64(batches * rawBatchRecords)
	b.SetBytes(recordBytes)
	b.ResetTimer()
	start := time.Now()
	var offset int64
	for corr := int32(0); offset < end; corr++ {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.MaxBytes, req.MaxWaitMillis, req.SessionEpoch = 12, 16<<20, 500, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "bench"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset, rp.PartitionMaxBytes = offset, 16<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		if _, err := c.Write(rawFrame(req, corr)); err != nil {
			b.Fatal(err)
		}
		f, err := wire.ReadFrame(br, 64<<20)
		if err != nil {
			b.Fatal(err)
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = 12
		if err := resp.ReadFrom(f[5:]); err != nil {
			b.Fatal(err)
		}
		got := resp.Topics[0].Partitions[0].RecordBatches
		if err := wire.Batches(got, func(h wire.BatchHeader, _ []byte) bool { offset = h.LastOffset() + 1; return true }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(end)/time.Since(start).Seconds(), "records/s")
}

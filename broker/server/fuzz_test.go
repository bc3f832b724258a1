package server

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/wire"
)

func fuzzFrame(req kmsg.Request, corr int32) []byte {
	id := "fuzz"
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = kbin.AppendNullableString(b, &id)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

// FuzzHandleFrame runs whole frames through decoding and the API handlers
// of a live server (over an in-memory store): whatever the bytes, the
// broker answers, refuses or closes the connection, and never panics. The
// seeds are valid requests of every served API so that mutations reach
// the handlers with odd but parseable values (negative partitions, huge
// limits, unknown epochs, garbage record batches).
func FuzzHandleFrame(f *testing.F) {
	topic := "t"
	batch := wire.EncodeBatch(wire.BatchHeader{ProducerID: 1, BaseSequence: 0}, []wire.Record{{Value: []byte("v")}})
	var seeds []kmsg.Request
	for _, v := range []int16{3, 9} {
		r := kmsg.NewPtrProduceRequest()
		r.Version, r.Acks = v, -1
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch
		rt.Partitions = append(rt.Partitions, rp)
		r.Topics = append(r.Topics, rt)
		seeds = append(seeds, r)
	}
	for _, v := range []int16{4, 12} {
		r := kmsg.NewPtrFetchRequest()
		r.Version, r.MaxBytes, r.MinBytes = v, 1<<20, 1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		r.Topics = append(r.Topics, rt)
		seeds = append(seeds, r)
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 4
	lot := kmsg.NewListOffsetsRequestTopic()
	lot.Topic = topic
	lop := kmsg.NewListOffsetsRequestTopicPartition()
	lop.Timestamp = 0
	lot.Partitions = append(lot.Partitions, lop)
	lo.Topics = append(lo.Topics, lot)
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	md.AllowAutoTopicCreation = true
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Version = 5
	ctt := kmsg.NewCreateTopicsRequestTopic()
	ctt.Topic, ctt.NumPartitions, ctt.ReplicationFactor = "u", 2, 1
	ct.Topics = append(ct.Topics, ctt)
	oe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	oe.Version = 4
	oet := kmsg.NewOffsetForLeaderEpochRequestTopic()
	oet.Topic = topic
	oet.Partitions = append(oet.Partitions, kmsg.NewOffsetForLeaderEpochRequestTopicPartition())
	oe.Topics = append(oe.Topics, oet)
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version, av.ClientSoftwareName, av.ClientSoftwareVersion = 3, "a", "1"
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.Version = 4
	seeds = append(seeds, lo, md, ct, oe, av, ip)
	for i, s := range seeds {
		f.Add(fuzzFrame(s, int32(i)))
	}

	f.Fuzz(func(t *testing.T, frame []byte) {
		s := newSingleServer(t, Config{AutoCreateTopics: true, DefaultPartitions: 2}, topic)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		p, err := s.handleFrame(ctx, frame, "/127.0.0.1")
		if err != nil {
			return // the connection would close
		}
		resp := p.resp
		if p.wait != nil {
			resp = p.wait(ctx)
		}
		switch {
		case p.noResponse:
		case p.raw != nil:
		case resp == nil:
			t.Fatalf("no response and not an acks=0 produce")
		default:
			out := wire.AppendResponse(nil, p.corr, resp)
			if int(binary.BigEndian.Uint32(out)) != len(out)-4 {
				t.Fatalf("response frame size prefix is wrong")
			}
		}
	})
}

package wire

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzParseRequest feeds arbitrary frames to the decoder: it must return a
// request, nothing, or an error, and never panic. The seeds are real
// requests of every API the broker serves, so mutations explore their
// layouts rather than only the header.
func FuzzParseRequest(f *testing.F) {
	id := "fuzz"
	topic := "t"
	seeds := []kmsg.Request{}
	for _, v := range []int16{1, 4, 9, 12} {
		r := kmsg.NewPtrMetadataRequest()
		r.Version = v
		r.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
		seeds = append(seeds, r)
	}
	for _, v := range []int16{3, 7, 9, 12} {
		r := kmsg.NewPtrProduceRequest()
		r.Version, r.Acks = v, 1
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = EncodeBatch(BatchHeader{ProducerID: -1, BaseSequence: -1}, []Record{{Value: []byte("v")}})
		rt.Partitions = append(rt.Partitions, rp)
		r.Topics = append(r.Topics, rt)
		seeds = append(seeds, r)
	}
	for _, v := range []int16{4, 11, 12} {
		r := kmsg.NewPtrFetchRequest()
		r.Version = v
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rt.Partitions = append(rt.Partitions, kmsg.NewFetchRequestTopicPartition())
		r.Topics = append(r.Topics, rt)
		seeds = append(seeds, r)
	}
	for _, v := range []int16{0, 3} {
		r := kmsg.NewPtrApiVersionsRequest()
		r.Version, r.ClientSoftwareName, r.ClientSoftwareVersion = v, "a", "1"
		seeds = append(seeds, r)
	}
	seeds = append(seeds, kmsg.NewPtrListOffsetsRequest(), kmsg.NewPtrCreateTopicsRequest(),
		kmsg.NewPtrOffsetForLeaderEpochRequest(), kmsg.NewPtrInitProducerIDRequest())
	for i, s := range seeds {
		f.Add(requestFrame(s, int32(i), &id))
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, frame []byte) {
		h, rest, err := ParseHeader(frame)
		if err != nil {
			return
		}
		req, err := ParseBody(h, rest)
		if err != nil || req == nil {
			return
		}
		// A parsed request must re-encode without panicking, and a
		// response frame for it must carry its correlation id.
		_ = req.AppendTo(nil)
		out := AppendResponse(nil, h.CorrelationID, req.ResponseKind())
		if len(out) < 8 || !bytes.Equal(out[4:8], frame[4:8]) {
			t.Fatalf("response frame does not carry the correlation id")
		}
	})
}

package server_test

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/server"
	"github.com/garantia/garantia/broker/wire"
)

func apiVersions(r *rawConn, version int16, corr int32) *kmsg.ApiVersionsResponse {
	r.t.Helper()
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version, req.ClientSoftwareName, req.ClientSoftwareVersion = version, "raw", "1.0"
	r.send(req, corr)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	r.recv(resp, corr)
	return resp
}

func TestApiVersions(t *testing.T) {
	n := startNode(t)
	r := dialRaw(t, n)
	for _, v := range []int16{0, 1, 2, 3, 4} {
		resp := apiVersions(r, v, int32(v))
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d: error code %d", v, resp.ErrorCode)
		}
		var got []server.VersionRange
		for _, k := range resp.ApiKeys {
			got = append(got, server.VersionRange{Key: k.ApiKey, Min: k.MinVersion, Max: k.MaxVersion})
		}
		want := slices.Clone(server.SupportedAPIs)
		slices.SortFunc(want, func(a, b server.VersionRange) int { return int(a.Key) - int(b.Key) })
		if !slices.Equal(got, want) {
			t.Fatalf("v%d: advertised %v, want %v", v, got, want)
		}
	}
	// KIP-511: a too-new version gets a v0 answer with UNSUPPORTED_VERSION
	// and our ApiVersions range, whatever its body holds.
	b := frame(kmsg.NewPtrApiVersionsRequest(), 99)
	binary.BigEndian.PutUint16(b[6:], 77) // version 77
	b = append(b, 1, 2, 3)                // a body of a layout we cannot know
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	r.writeRaw(b)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	corr, body, err := r.readFrame(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.ReadFrom(body); err != nil || corr != 99 {
		t.Fatalf("fallback response corr %d: %v", corr, err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) != 1 || resp.ApiKeys[0].ApiKey != 18 || resp.ApiKeys[0].MaxVersion != 4 {
		t.Fatalf("fallback response %+v", resp)
	}
	// The connection still serves requests.
	if resp := apiVersions(r, 3, 100); resp.ErrorCode != 0 {
		t.Fatalf("after fallback: error code %d", resp.ErrorCode)
	}
	// Bad client software names are refused as Kafka refuses them.
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version, req.ClientSoftwareName, req.ClientSoftwareVersion = 3, "-bad", "1"
	r.send(req, 101)
	bad := kmsg.NewPtrApiVersionsResponse()
	bad.Version = 3
	r.recv(bad, 101)
	if bad.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("bad software name: error code %d, want INVALID_REQUEST", bad.ErrorCode)
	}
}

func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	n := startNode(t, withMaxFrame(1<<20))
	bystander := dialRaw(t, n)
	apiVersions(bystander, 3, 1)

	tests := []struct {
		name  string
		bytes []byte
	}{
		{"oversized frame", binary.BigEndian.AppendUint32(nil, 1<<20+1)},
		{"negative size", []byte{0x80, 0, 0, 0}},
		{"header shorter than its fields", []byte{0, 0, 0, 3, 0, 3, 0}},
		{"metadata body claims more topics than it has", func() []byte {
			b := []byte{0, 0, 0, 0, 0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff, 0x00, 0x10, 0, 0}
			binary.BigEndian.PutUint32(b, uint32(len(b)-4))
			return b
		}()},
		{"produce with a truncated topic name", func() []byte {
			b := []byte{0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 10, 0, 0, 0, 1, 0, 50, 'a'}
			binary.BigEndian.PutUint32(b, uint32(len(b)-4))
			return b
		}()},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, n)
			apiVersions(r, 3, 1) // a good request first: it is still answered
			r.writeRaw(tt.bytes)
			r.expectClosed()
			// Everyone else is still served.
			apiVersions(bystander, 3, int32(10+i))
			fresh := dialRaw(t, n)
			apiVersions(fresh, 3, 1)
		})
	}
}

func TestResponsesInRequestOrder(t *testing.T) {
	n := startNode(t)
	createTopic(t, newClient(t, n), "order", 2)
	r := dialRaw(t, n)
	// Partition 1 holds one record, so a fetch from its offset 1 is in
	// range and waits for a second one that never comes; the produce below
	// goes to partition 0 and does not wake it.
	produceRaw(t, dialRaw(t, n), 1, 1, "order", 1, wire.EncodeBatch(wire.BatchHeader{ProducerID: -1, BaseSequence: -1}, []wire.Record{{Value: []byte("p1")}}))

	// A long-polling fetch, then a metadata request, then an acks=-1
	// produce, then a fetch that can be answered at once: responses come
	// back in that order even though only the first waits.
	fetch := func(partition int32, offset int64, wait int32) *kmsg.FetchRequest {
		f := kmsg.NewPtrFetchRequest()
		f.Version, f.MaxWaitMillis, f.MinBytes, f.MaxBytes = 11, wait, 1, 1<<20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "order"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = partition, offset, 1<<20
		ft.Partitions = append(ft.Partitions, fp)
		f.Topics = append(f.Topics, ft)
		return f
	}
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 9
	pr := kmsg.NewPtrProduceRequest()
	pr.Version, pr.Acks, pr.TimeoutMillis = 9, -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "order"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = wire.EncodeBatch(wire.BatchHeader{ProducerID: -1, BaseSequence: -1}, []wire.Record{{Value: []byte("v")}})
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)

	start := time.Now()
	var pipeline []byte
	pipeline = append(pipeline, frame(fetch(1, 1, 300), 1)...) // waits for a second record
	pipeline = append(pipeline, frame(md, 2)...)
	pipeline = append(pipeline, frame(pr, 3)...)
	pipeline = append(pipeline, frame(fetch(0, 0, 0), 4)...)
	r.writeRaw(pipeline)

	f1 := kmsg.NewPtrFetchResponse()
	f1.Version = 11
	r.recv(f1, 1)
	if c := f1.Topics[0].Partitions[0].ErrorCode; c != 0 {
		t.Fatalf("long-polling fetch: error code %d", c)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("fetch with MinBytes 1 above the high watermark answered after %v, before its MaxWait of 300ms", waited)
	}
	mr := kmsg.NewPtrMetadataResponse()
	mr.Version = 9
	r.recv(mr, 2)
	prr := kmsg.NewPtrProduceResponse()
	prr.Version = 9
	r.recv(prr, 3)
	if c := prr.Topics[0].Partitions[0].ErrorCode; c != 0 {
		t.Fatalf("produce error code %d", c)
	}
	f4 := kmsg.NewPtrFetchResponse()
	f4.Version = 11
	r.recv(f4, 4)
	if len(f4.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("fetch after the produce returned no records")
	}
}

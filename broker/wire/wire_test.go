package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func frameOf(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    []byte
		wantErr error
	}{
		{"empty body", frameOf(nil), 10, []byte{}, nil},
		{"body", frameOf([]byte("abc")), 10, []byte("abc"), nil},
		{"at the limit", frameOf([]byte("abcd")), 4, []byte("abcd"), nil},
		{"over the limit", frameOf([]byte("abcde")), 4, nil, ErrFrameTooLarge},
		{"negative size", []byte{0xff, 0xff, 0xff, 0xfe}, 4, nil, ErrFrameTooLarge},
		{"huge size is refused before reading", []byte{0x7f, 0xff, 0xff, 0xff}, 100 << 20, nil, ErrFrameTooLarge},
		{"eof before size", nil, 4, nil, io.EOF},
		{"torn size", []byte{0, 0}, 4, nil, io.ErrUnexpectedEOF},
		{"torn body", []byte{0, 0, 0, 3, 'a'}, 4, nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadFrame(bytes.NewReader(tt.in), tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadFrame error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(got, tt.want) {
				t.Fatalf("ReadFrame = %q, want %q", got, tt.want)
			}
		})
	}
}

// requestFrame encodes req the way a client does: header v1 (+ tags when
// flexible) and body, without the size prefix.
func requestFrame(req kmsg.Request, corr int32, clientID *string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = kbin.AppendNullableString(b, clientID)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

func TestParseRequestRoundTrip(t *testing.T) {
	id := "client-1"
	topic := "t"
	tests := []struct {
		name string
		req  kmsg.Request
	}{
		{"metadata v1", func() kmsg.Request {
			r := kmsg.NewPtrMetadataRequest()
			r.Version = 1
			r.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
			return r
		}()},
		{"metadata v12 flexible", func() kmsg.Request {
			r := kmsg.NewPtrMetadataRequest()
			r.Version = 12
			r.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
			return r
		}()},
		{"produce v9", func() kmsg.Request {
			r := kmsg.NewPtrProduceRequest()
			r.Version, r.Acks = 9, -1
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Records = []byte("not a batch but bytes")
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		}()},
		{"api versions v3", func() kmsg.Request {
			r := kmsg.NewPtrApiVersionsRequest()
			r.Version, r.ClientSoftwareName, r.ClientSoftwareVersion = 3, "kgo", "1.0"
			return r
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := requestFrame(tt.req, 77, &id)
			h, rest, err := ParseHeader(frame)
			if err != nil {
				t.Fatal(err)
			}
			if h.Key != tt.req.Key() || h.Version != tt.req.GetVersion() || h.CorrelationID != 77 || h.ClientID == nil || *h.ClientID != id {
				t.Fatalf("header = %+v", h)
			}
			got, err := ParseBody(h, rest)
			if err != nil || got == nil {
				t.Fatalf("ParseBody = %v, %v", got, err)
			}
			if !bytes.Equal(got.AppendTo(nil), tt.req.AppendTo(nil)) {
				t.Fatalf("body did not round trip")
			}
		})
	}
}

func TestParseUnknownAndMalformed(t *testing.T) {
	// An unknown key parses its header and yields no request.
	b := []byte{0x7f, 0x00, 0, 1, 0, 0, 0, 5, 0xff, 0xff}
	h, rest, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if req, err := ParseBody(h, rest); req != nil || err != nil {
		t.Fatalf("unknown key: ParseBody = %v, %v; want nil, nil", req, err)
	}
	// A version beyond kmsg's knowledge likewise.
	b = []byte{0, 3, 0x7f, 0, 0, 0, 0, 5, 0xff, 0xff}
	h, rest, _ = ParseHeader(b)
	if req, err := ParseBody(h, rest); req != nil || err != nil {
		t.Fatalf("unknown version: ParseBody = %v, %v; want nil, nil", req, err)
	}
	// A short header is malformed.
	if _, _, err := ParseHeader([]byte{0, 3, 0}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short header: err = %v, want ErrMalformed", err)
	}
	// A client id longer than the frame is malformed.
	if _, _, err := ParseHeader([]byte{0, 3, 0, 1, 0, 0, 0, 1, 0, 9, 'a'}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("long client id: err = %v, want ErrMalformed", err)
	}
	// A metadata v1 body claiming more topics than bytes is malformed.
	b = []byte{0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff}
	h, rest, _ = ParseHeader(b)
	if _, err := ParseBody(h, rest); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated body: err = %v, want ErrMalformed", err)
	}
}

func TestAppendResponseHeaders(t *testing.T) {
	// A flexible response carries the header tag byte, except ApiVersions
	// (KIP-511: response header v0 always).
	md := kmsg.NewPtrMetadataResponse()
	md.Version = 12
	av := kmsg.NewPtrApiVersionsResponse()
	av.Version = 3
	old := kmsg.NewPtrMetadataResponse()
	old.Version = 1
	for _, tt := range []struct {
		name    string
		resp    kmsg.Response
		tagByte bool
	}{{"metadata v12", md, true}, {"api versions v3", av, false}, {"metadata v1", old, false}} {
		t.Run(tt.name, func(t *testing.T) {
			out := AppendResponse([]byte("prefix"), 42, tt.resp)
			out = out[len("prefix"):]
			if got := int(binary.BigEndian.Uint32(out)); got != len(out)-4 {
				t.Fatalf("size prefix %d, frame has %d", got, len(out)-4)
			}
			if corr := int32(binary.BigEndian.Uint32(out[4:])); corr != 42 {
				t.Fatalf("correlation id %d", corr)
			}
			body := out[8:]
			if tt.tagByte {
				if body[0] != 0 {
					t.Fatalf("missing empty header tag section")
				}
				body = body[1:]
			}
			if !bytes.Equal(body, tt.resp.AppendTo(nil)) {
				t.Fatalf("body differs from AppendTo")
			}
		})
	}
}

func TestEncodeBatchMatchesKmsg(t *testing.T) {
	b := EncodeBatch(BatchHeader{FirstTimestamp: 1000, ProducerID: 7, ProducerEpoch: 2, BaseSequence: 5},
		[]Record{{Key: []byte("k"), Value: []byte("v1")}, {Value: []byte("v2"), TimestampDelta: 3}})
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if rb.Magic != 2 || rb.NumRecords != 2 || rb.LastOffsetDelta != 1 || rb.MaxTimestamp != 1003 || rb.ProducerID != 7 || rb.ProducerEpoch != 2 || rb.FirstSequence != 5 {
		t.Fatalf("kmsg read %+v", rb)
	}
	if want := int32(crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli))); rb.CRC != want {
		t.Fatalf("crc %x want %x", rb.CRC, want)
	}
	recs := rb.Records
	var vals []string
	for range rb.NumRecords {
		var r kmsg.Record
		if err := r.ReadFrom(recs); err != nil {
			t.Fatal(err)
		}
		vals = append(vals, string(r.Value))
		recs = recs[r.Length+int32(len(binary.AppendVarint(nil, int64(r.Length)))):]
	}
	if len(vals) != 2 || vals[0] != "v1" || vals[1] != "v2" {
		t.Fatalf("values %q", vals)
	}
	h, err := VerifyProducedBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.LastSequence() != 6 {
		t.Fatalf("last sequence %d", h.LastSequence())
	}
}

func TestVerifyProducedBatch(t *testing.T) {
	good := EncodeBatch(BatchHeader{ProducerID: -1, BaseSequence: -1}, []Record{{Value: []byte("x")}})
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"good", good, true},
		{"flipped value bit", mutate(func(b []byte) []byte { b[len(b)-2] ^= 1; return b }), false},
		{"flipped crc", mutate(func(b []byte) []byte { b[17] ^= 1; return b }), false},
		{"magic 1", mutate(func(b []byte) []byte { b[16] = 1; return b }), false},
		{"two batches", append(append([]byte(nil), good...), good...), false},
		{"truncated", good[:len(good)-1], false},
		{"short", good[:20], false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyProducedBatch(tt.b)
			if tt.ok != (err == nil) {
				t.Fatalf("VerifyProducedBatch err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadBatch) {
				t.Fatalf("error %v does not wrap ErrBadBatch", err)
			}
		})
	}
}

func TestBatchesWalk(t *testing.T) {
	a := EncodeBatch(BatchHeader{BaseOffset: 0}, []Record{{Value: []byte("a")}, {Value: []byte("b")}})
	b := EncodeBatch(BatchHeader{BaseOffset: 2}, []Record{{Value: []byte("c")}})
	all := append(append([]byte(nil), a...), b...)
	var bases []int64
	if err := Batches(append(all, b[:10]...), func(h BatchHeader, _ []byte) bool {
		bases = append(bases, h.BaseOffset)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(bases) != 2 || bases[0] != 0 || bases[1] != 2 {
		t.Fatalf("bases %v (the trailing partial batch must be ignored)", bases)
	}
	bad := append([]byte(nil), all...)
	binary.BigEndian.PutUint32(bad[8:], 3) // shorter than a header
	if err := Batches(bad, func(BatchHeader, []byte) bool { return true }); !errors.Is(err, ErrBadBatch) {
		t.Fatalf("bad length: err = %v", err)
	}
}

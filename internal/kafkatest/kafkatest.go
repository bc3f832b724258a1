// Package kafkatest holds the helpers of tests that talk to a broker over
// the Kafka protocol: a kgo client closed with the test, topic creation
// through the protocol, and hand-made request frames for what a real
// client would never send.
//
// It is for tests only; the broker's tests and the harness's share it,
// and it depends on neither.
package kafkatest

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestTimeout bounds the requests the helpers send themselves.
const requestTimeout = 10 * time.Second

// Client is a kgo client seeded with addr, closed when t ends.
func Client(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates a topic of partitions partitions and replication
// factor 1 through the protocol, failing t unless the broker answers
// without error.
func CreateTopic(t testing.TB, cl *kgo.Client, name string, partitions int32) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Topics[0].ErrorCode; c != 0 {
		t.Fatalf("creating topic %q: error code %d", name, c)
	}
}

// Frame encodes req as one request frame: the size, a v1 header (v2 for
// flexible requests: an empty tag section follows) with correlation id
// corr and client id clientID, and the body in req's version.
func Frame(req kmsg.Request, corr int32, clientID string) []byte {
	b := make([]byte, 4, 256)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = kbin.AppendNullableString(b, &clientID)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// ResponseBody is what follows the correlation id in a response frame of
// resp's kind and version, with the header's tag section skipped where
// there is one (flexible responses but ApiVersions, whose header stays v0
// so that old clients can read it).
func ResponseBody(resp kmsg.Response, afterCorrelation []byte) []byte {
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		rd := kbin.Reader{Src: afterCorrelation}
		kmsg.SkipTags(&rd)
		return rd.Src
	}
	return afterCorrelation
}

package server_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestEveryKeyServedOrRefused sends every request key kmsg knows, at
// every version it knows and one past it, to a node: each is either
// listed by ApiVersions and answered with its correlation id, or refused
// the way Kafka refuses it, by closing the connection without an answer.
// An unserved request must never get an empty success: kafka-go took an
// unserved DeleteTopics' empty answer for a deleted topic.
func TestEveryKeyServedOrRefused(t *testing.T) {
	n := startNode(t)
	listed := map[int16][2]int16{}
	for _, k := range apiVersions(dialRaw(t, n), 3, 1).ApiKeys {
		listed[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	served, refused := 0, 0
	for key := int16(0); key <= 100; key++ {
		req := kmsg.RequestForKey(key)
		if req == nil || kmsg.Key(key) == kmsg.ApiVersions {
			continue // ApiVersions: TestApiVersions
		}
		for v := int16(0); v <= req.MaxVersion()+1; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(min(v, req.MaxVersion()))
			switch r := req.(type) {
			case *kmsg.FetchRequest:
				r.MaxWaitMillis = 0 // do not long-poll
			case *kmsg.ProduceRequest:
				r.Acks = 1 // acks=0 is never answered
			}
			b := frame(req, 7)
			binary.BigEndian.PutUint16(b[6:], uint16(v)) // the version, even one kmsg cannot encode
			r := dialRaw(t, n)
			r.writeRaw(b)
			rng, isListed := listed[key]
			if isListed && v >= rng[0] && v <= rng[1] {
				corr, _, err := r.readFrame(10 * time.Second)
				if err != nil || corr != 7 {
					t.Errorf("%s v%d is listed but not answered: corr %d, %v", kmsg.NameForKey(key), v, corr, err)
				}
				served++
				continue
			}
			r.expectClosed()
			refused++
		}
	}
	// A key that exists nowhere is refused too.
	b := binary.BigEndian.AppendUint32(nil, 10)
	b = binary.BigEndian.AppendUint16(b, 9999)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, 4)
	b = binary.BigEndian.AppendUint16(b, 0xffff)
	r := dialRaw(t, n)
	r.writeRaw(b)
	r.expectClosed()
	if served == 0 || refused == 0 {
		t.Fatalf("%d key versions served, %d refused: the test saw only one kind", served, refused)
	}
	t.Logf("%d key versions served, %d refused", served, refused)
}

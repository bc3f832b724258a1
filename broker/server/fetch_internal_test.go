package server

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestEmptyRecordSetIsPresent guards librdkafka compatibility: an empty
// partition's record set must encode as length 0, never as null (-1),
// which librdkafka rejects as "invalid MessageSetSize -1" and then stalls.
func TestEmptyRecordSetIsPresent(t *testing.T) {
	s := newSingleServer(t, Config{}, "e")
	for _, v := range []int16{4, 11, 12} {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.MaxBytes = v, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "e"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, _, _ := s.fetchOnce(req, s.fetchTargets(req, false), false)
		sp := resp.Topics[0].Partitions[0]
		if sp.RecordBatches == nil {
			t.Fatalf("v%d: empty partition's record set is nil (encodes as null)", v)
		}
		// And the encoding ends with a present, empty record set.
		b := resp.AppendTo(nil)
		var tail []byte
		if v >= 12 {
			tail = []byte{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0} // preferred replica -1, compact length 0 (+1), partition, topic and response tags
		} else {
			tail = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0} // -1 (v11: preferred replica; v4: null aborted transactions), then length 0
		}
		if !bytes.HasSuffix(b, tail) {
			t.Fatalf("v%d: response ends %x, want a present empty record set %x", v, b[len(b)-8:], tail)
		}
	}
}

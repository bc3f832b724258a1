package queue

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkSendRecording measures what recording costs: the workload's
// send (its invocation and completion written to a history file, the
// classification, the hook) against a bare kgo ProduceSync of the same
// record with the same client options, acks=all, to one local broker.
// "serial" is one client sending one record at a time; "parallel" is ten
// clients, the default concurrency, as fast as the broker answers.
//
//	go test ./workloads/queue -run '^$' -bench SendRecording -benchtime 3s
func BenchmarkSendRecording(b *testing.B) {
	_, n := node(b)
	for _, conc := range []struct {
		name    string
		workers int
	}{{"serial", 1}, {"parallel", 10}} {
		for _, mode := range []string{"bare", "recorded"} {
			b.Run(conc.name+"/"+mode, func(b *testing.B) {
				rec, _ := recorder(b)
				w := newWorkload(b, n, "all", rec)
				ctx := context.Background()
				var next atomic.Int64
				sendOne := func(wk *worker, cl *kgo.Client, i int64) {
					p := int32(i % int64(w.cfg.Partitions))
					if mode == "recorded" {
						if err := wk.send(ctx, p); err != nil {
							b.Error(err)
						}
						return
					}
					v := w.values.Add(1)
					if err := cl.ProduceSync(ctx, &kgo.Record{Topic: w.cfg.Topic, Partition: p, Value: []byte(strconv.FormatInt(v, 10))}).FirstErr(); err != nil {
						b.Error(err)
					}
				}
				b.ResetTimer()
				done := make(chan struct{})
				for g := 0; g < conc.workers; g++ {
					go func() {
						defer func() { done <- struct{}{} }()
						wk := w.newWorker(g)
						defer wk.close()
						cl, err := kgo.NewClient(w.producerOpts(int64(g), &hook{})...)
						if err != nil {
							b.Error(err)
							return
						}
						defer cl.Close()
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							sendOne(wk, cl, i)
						}
					}()
				}
				for g := 0; g < conc.workers; g++ {
					<-done
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
			})
		}
	}
}

package report

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/histories/synth"
)

// BenchmarkReport builds the HTML report of a planted lost write from a
// history already read and checked (what `garantia report` does after
// reading results.json), and reports the page's size. Goals: a
// 1,000,000-op history in a few seconds, in a few MB.
//
//	go test -run - -bench Report -benchtime 3x ./report
func BenchmarkReport(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("ops=%d", n), func(b *testing.B) {
			ops := plantedHistory(b, synth.LostWrite, plantSeed, n)
			res, err := checker.Check(context.Background(), ops, checker.Options{})
			if err != nil {
				b.Fatal(err)
			}
			run, err := New(b.TempDir(), "history.jsonl", ops, res)
			if err != nil {
				b.Fatal(err)
			}
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if err := run.WriteHTML(&buf, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len()), "html-bytes")
		})
	}
}

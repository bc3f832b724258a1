package storage

import (
	"fmt"
	"testing"
)

// BenchmarkAppend measures leader appends of 100-byte records in batches of
// 1 and of 100 records, with fsync never and always, from one goroutine.
func BenchmarkAppend(b *testing.B) {
	for _, policy := range []FsyncPolicy{FsyncNever, FsyncAlways} {
		for _, records := range []int{1, 100} {
			b.Run(fmt.Sprintf("fsync=%s/records=%d", policy, records), func(b *testing.B) {
				l := openLog(b, b.TempDir(), Options{Fsync: policy})
				set := batch("bench", records, 100)
				b.SetBytes(int64(len(set)))
				b.ResetTimer()
				for b.Loop() {
					if _, err := l.AppendAsLeader(set, 0); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*records)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkAppendParallel measures FsyncAlways appends from many
// goroutines: group commit lets them share fsyncs (fsyncs/append < 1).
func BenchmarkAppendParallel(b *testing.B) {
	for _, records := range []int{1, 100} {
		b.Run(fmt.Sprintf("fsync=always/records=%d", records), func(b *testing.B) {
			l := openLog(b, b.TempDir(), Options{Fsync: FsyncAlways})
			set := batch("bench", records, 100)
			b.SetBytes(int64(len(set)))
			b.SetParallelism(8) // 8 appenders per CPU
			start := l.fsyncs.Load()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.AppendAsLeader(set, 0); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*records)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(l.fsyncs.Load()-start)/float64(b.N), "fsyncs/append")
		})
	}
}

// BenchmarkRead measures sequential consumer reads of 1 MiB fetches over a
// 64 MiB log of 100-record batches (CRC-checked on the way out).
func BenchmarkRead(b *testing.B) {
	for _, maxBytes := range []int{1 << 20, 64 << 10} {
		b.Run(fmt.Sprintf("maxBytes=%d", maxBytes), func(b *testing.B) {
			l := openLog(b, b.TempDir(), Options{SegmentBytes: 16 << 20})
			set := batch("bench", 100, 100)
			for l.EndOffset() < int64((64<<20)/len(set))*100 {
				if _, err := l.AppendAsLeader(set, 0); err != nil {
					b.Fatal(err)
				}
			}
			end := l.EndOffset()
			b.ResetTimer()
			var n int64
			off := int64(0)
			for b.Loop() {
				if off >= end {
					off = 0
				}
				out, err := l.Read(off, maxBytes, end)
				if err != nil {
					b.Fatal(err)
				}
				n += int64(len(out))
				h, _ := parseHeader(out[len(out)-len(set):])
				off = h.next()
			}
			b.SetBytes(n / int64(b.N))
			b.ReportMetric(float64(n)/float64(len(set))*100/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkOpen measures opening a 224 MiB log (64 MiB segments, so the
// active one holds 32 MiB) after a clean close, and after a crash, where
// the active segment is verified batch by batch.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	l := openLog(b, dir, Options{})
	set := batch("bench", 100, 100)
	for l.EndOffset() < int64((224<<20)/len(set))*100 {
		if _, err := l.AppendAsLeader(set, 0); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	for _, clean := range []bool{true, false} {
		b.Run(fmt.Sprintf("clean=%v", clean), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				if clean {
					l.Close()
				} else {
					l.crash()
				}
				b.StartTimer()
				var err error
				if l, err = OpenLog(dir, Options{Logger: l.logger}); err != nil {
					b.Fatal(err)
				}
			}
			rep := l.Recovery()
			b.ReportMetric(float64(rep.BytesScanned), "bytes-scanned")
		})
	}
	l.Close()
}

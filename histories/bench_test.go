package histories

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// benchOps is the size of the benchmark history: the design's target is a
// 1,000,000-op history checked promptly.
const benchOps = 1_000_000

var benchJSONL []byte

func benchHistory(b *testing.B) []byte {
	b.Helper()
	if benchJSONL == nil {
		var buf bytes.Buffer
		if err := WriteAll(&buf, genHistory(1, benchOps)); err != nil {
			b.Fatal(err)
		}
		benchJSONL = buf.Bytes()
	}
	return benchJSONL
}

// BenchmarkDecode reads a 1M-op history from memory, as `garantia check`
// does from a file.
func BenchmarkDecode(b *testing.B) {
	data := benchHistory(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ops, _, err := ReadAll(bytes.NewReader(data), "bench.jsonl")
		if err != nil {
			b.Fatal(err)
		}
		if len(ops) != benchOps {
			b.Fatalf("read %d ops, want %d", len(ops), benchOps)
		}
	}
}

// BenchmarkReadFile is BenchmarkDecode through the file system, with the op
// slice sized from the file.
func BenchmarkReadFile(b *testing.B) {
	benchFile(b, func(path string) (int, error) {
		ops, _, err := ReadFile(path)
		return len(ops), err
	})
}

// benchFile times read on the benchmark history written to a file; read
// returns the number of ops it read.
func benchFile(b *testing.B, read func(path string) (int, error)) {
	data := benchHistory(b)
	path := filepath.Join(b.TempDir(), HistoryFile)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if n, err := read(path); err != nil || n != benchOps {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkEncode writes a 1M-op history to memory.
func BenchmarkEncode(b *testing.B) {
	data := benchHistory(b)
	ops, _, err := ReadAll(bytes.NewReader(data), "bench.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := WriteAll(io.Discard, ops); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeSequential is BenchmarkDecode on one goroutine: the
// streaming Reader.
func BenchmarkDecodeSequential(b *testing.B) {
	data := benchHistory(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ops, _, err := readSequential(NewReader(bytes.NewReader(data), "bench.jsonl"), len(data)/opBytesGuess)
		if err != nil || len(ops) != benchOps {
			b.Fatal(len(ops), err)
		}
	}
}

// BenchmarkDecodeEDN imports the 1M-op history from Jepsen's EDN.
func BenchmarkDecodeEDN(b *testing.B) {
	ops, _, err := ReadAll(bytes.NewReader(benchHistory(b)), "bench.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	var edn bytes.Buffer
	if err := WriteEDN(&edn, ops); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(edn.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got, _, err := ReadEDN(bytes.NewReader(edn.Bytes()), "bench.edn")
		if err != nil || len(got) != benchOps {
			b.Fatal(len(got), err)
		}
	}
}

// BenchmarkEncodeEDN exports the 1M-op history to Jepsen's EDN.
func BenchmarkEncodeEDN(b *testing.B) {
	ops, _, err := ReadAll(bytes.NewReader(benchHistory(b)), "bench.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := WriteEDN(io.Discard, ops); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadHistory is BenchmarkReadFile into the compact History that
// garantia check analyses: the same decoding, plus pairing and storing.
func BenchmarkLoadHistory(b *testing.B) {
	benchFile(b, func(path string) (int, error) {
		h, err := LoadHistory(path, LoadOptions{})
		if err != nil {
			return 0, err
		}
		return len(h.Events), nil
	})
}

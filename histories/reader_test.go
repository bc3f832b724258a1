package histories

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/garantia/garantia/internal/crash"
)

func TestReadFileFixtures(t *testing.T) {
	tests := []struct {
		file         string
		wantOps      int
		wantWarnings []string
		wantErr      string
	}{
		{file: "basic.jsonl", wantOps: 15},
		{file: "truncated.jsonl", wantOps: 15, wantWarnings: []string{
			`testdata/truncated.jsonl:16: skipped the last line: it has no newline at its end and is not whole JSON, as when the writer died mid-write: field "type": column 50: string is not terminated before the end of the line`}},
		{file: "bad_type.jsonl", wantErr: `testdata/bad_type.jsonl:12: field "type": want invoke, ok, fail or info, got "okk"`},
		{file: "missing.jsonl", wantErr: `histories: open testdata/missing.jsonl: no such file or directory`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ops, warnings, err := ReadFile(filepath.Join("testdata", tt.file))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) != tt.wantOps {
				t.Errorf("read %d ops, want %d", len(ops), tt.wantOps)
			}
			if !reflect.DeepEqual(warnings, tt.wantWarnings) {
				t.Errorf("warnings = %q, want %q", warnings, tt.wantWarnings)
			}
		})
	}
}

func TestParseErrorIsStructured(t *testing.T) {
	_, _, err := ReadFile("testdata/bad_type.jsonl")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 12 || pe.File != "testdata/bad_type.jsonl" {
		t.Fatalf("error %v is not a *ParseError for line 12", err)
	}
}

func TestReaderStreams(t *testing.T) {
	f, err := os.Open("testdata/truncated.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r := NewReader(iotest.OneByteReader(f), "h.jsonl")
	var n int
	for {
		op, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if op.Index != int64(n) {
			t.Fatalf("op %d has index %d", n, op.Index)
		}
		n++
	}
	if n != 15 || len(r.Warnings()) != 1 || r.Line() != 16 {
		t.Fatalf("read %d ops, %d warnings, line %d; want 15, 1, 16", n, len(r.Warnings()), r.Line())
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next after the end = %v, want io.EOF", err)
	}
}

const (
	l0 = `{"index":0,"time":1,"process":0,"type":"invoke","f":"poll","value":[["poll"]]}`
	l1 = `{"index":1,"time":2,"process":0,"type":"ok","f":"poll","value":[["poll",{}]]}`
	l5 = `{"index":5,"time":3,"process":0,"type":"invoke","f":"poll","value":[["poll"]]}`
)

// readerCases are histories with what reading them must give. They run
// through the sequential Reader and through the parallel reader with tiny
// blocks, which must agree.
var readerCases = []struct {
	name         string
	in           string
	wantIndexes  []int64
	wantWarnings []string
	wantErr      string
}{
	{name: "empty", in: ""},
	{name: "only blank lines", in: "\n  \n\r\n"},
	{name: "no final newline but complete", in: l0 + "\n" + l1, wantIndexes: []int64{0, 1}},
	{name: "CRLF and blank lines", in: l0 + "\r\n\r\n" + l1 + "\r\n", wantIndexes: []int64{0, 1}},
	{name: "sparse indexes are fine", in: l0 + "\n" + l5 + "\n", wantIndexes: []int64{0, 5}},
	{name: "repeated index", in: l0 + "\n" + l0 + "\n", wantErr: `h.jsonl:2: field "index": want more than the previous op's index 0, got 0: indexes must increase strictly`},
	{name: "decreasing index", in: l5 + "\n" + l1 + "\n", wantErr: `h.jsonl:2: field "index": want more than the previous op's index 5, got 1`},
	{name: "truncated last line", in: l0 + "\n" + l1[:30], wantIndexes: []int64{0},
		wantWarnings: []string{`h.jsonl:2: skipped the last line: it has no newline at its end and is not whole JSON, as when the writer died mid-write: field "process": column 31: want an integer, got end of line`}},
	{name: "zero bytes after a power loss", in: l0 + "\n" + "\x00\x00\x00", wantIndexes: []int64{0},
		wantWarnings: []string{`h.jsonl:2: skipped the last line: it has no newline at its end and is not whole JSON, as when the writer died mid-write: column 1: want a JSON object starting with '{', got "\x00\x00\x00"`}},
	{name: "whole last line without newline is held to the schema", in: l0 + "\n" + `{"index":1,"time":2,"process":0,"type":"done","f":"poll"}`,
		wantErr: `h.jsonl:2: field "type": want invoke, ok, fail or info, got "done"`},
	{name: "whole JSON that is not an op, without newline", in: "[1,2,3]", wantErr: `h.jsonl:1: column 1: want a JSON object starting with '{', got "[1,2,3]"`},
	{name: "time goes backwards", in: l0 + "\n" + `{"index":1,"time":0,"process":0,"type":"ok","f":"poll"}` + "\n",
		wantErr: `h.jsonl:2: field "time": 0 is before the previous op's time 1: events must be recorded in the order they happened`},
	{name: "equal times are fine", in: l0 + "\n" + `{"index":1,"time":1,"process":0,"type":"ok","f":"poll"}` + "\n", wantIndexes: []int64{0, 1}},
	{name: "bad line that has its newline is an error", in: l0 + "\n" + l1[:30] + "\n", wantErr: `h.jsonl:2: field "process": column 31: want an integer, got end of line`},
	{name: "bad line before a good one", in: "nonsense\n" + l0 + "\n", wantErr: `h.jsonl:1: column 1: want a JSON object starting with '{', got "nonsense"`},
	{name: "error after blank lines names the right line", in: "\n\n" + l0 + "\n\n{}\n", wantErr: `h.jsonl:5: field "index" is missing`},
}

func TestReaderCases(t *testing.T) {
	for _, tt := range readerCases {
		check := func(t *testing.T, ops []Op, warnings []string, err error) {
			t.Helper()
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var idx []int64
			for _, op := range ops {
				idx = append(idx, op.Index)
			}
			if !reflect.DeepEqual(idx, tt.wantIndexes) {
				t.Errorf("indexes = %v, want %v", idx, tt.wantIndexes)
			}
			if !reflect.DeepEqual(warnings, tt.wantWarnings) {
				t.Errorf("warnings = %q, want %q", warnings, tt.wantWarnings)
			}
		}
		t.Run(tt.name+"/sequential", func(t *testing.T) {
			ops, warnings, err := readSequential(NewReader(strings.NewReader(tt.in), "h.jsonl"), 0)
			check(t, ops, warnings, err)
		})
		for _, block := range []int{1, 7, 64, 1 << 20} {
			t.Run(fmt.Sprintf("%s/parallel-%d", tt.name, block), func(t *testing.T) {
				ops, warnings, err := readParallel(strings.NewReader(tt.in), "h.jsonl", 0, 3, block)
				check(t, ops, warnings, err)
			})
		}
	}
}

// TestParallelMatchesSequential feeds both readers a generated history
// with one line spoiled at a random place, and the untouched history.
func TestParallelMatchesSequential(t *testing.T) {
	const seed = 7
	var buf bytes.Buffer
	if err := WriteAll(&buf, genHistory(seed, 3000)); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	lines := strings.SplitAfter(good, "\n")
	spoiled := append([]string(nil), lines...)
	spoiled[1234] = strings.Replace(spoiled[1234], `"time"`, `"tim"`, 1)
	reordered := append([]string(nil), lines...)
	reordered[2000], reordered[2001] = reordered[2001], reordered[2000]
	for name, in := range map[string]string{
		"good":      good,
		"spoiled":   strings.Join(spoiled, ""),
		"reordered": strings.Join(reordered, ""),
		"truncated": good[:len(good)-20],
	} {
		t.Run(name, func(t *testing.T) {
			sOps, sWarn, sErr := readSequential(NewReader(strings.NewReader(in), "h.jsonl"), 0)
			for _, block := range []int{100, 4096, 1 << 16} {
				pOps, pWarn, pErr := readParallel(iotest.HalfReader(strings.NewReader(in)), "h.jsonl", 10, 2, block)
				if fmt.Sprint(sErr) != fmt.Sprint(pErr) {
					t.Fatalf("seed %d block %d: sequential error %v, parallel %v", seed, block, sErr, pErr)
				}
				if !reflect.DeepEqual(sWarn, pWarn) {
					t.Fatalf("seed %d block %d: sequential warnings %q, parallel %q", seed, block, sWarn, pWarn)
				}
				if !reflect.DeepEqual(sOps, pOps) {
					t.Fatalf("seed %d block %d: the readers read different ops", seed, block)
				}
			}
		})
	}
}

func TestLongLines(t *testing.T) {
	// A poll of many records makes one long line; it must read whole.
	polls := map[string][]Record{}
	for k := range 4 {
		for o := range 50_000 {
			polls[fmt.Sprint(k)] = append(polls[fmt.Sprint(k)], Record{Offset: int64(o), Value: int64(k*1_000_000 + o)})
		}
	}
	big := Op{Index: 1, Time: 2, Process: 3, Type: OK, F: FPoll, Value: Value{Mops: []Mop{{F: MopPoll, Polls: polls}}}}
	var buf bytes.Buffer
	if err := WriteAll(&buf, []Op{{Type: Invoke, F: FPoll, Process: 3}, big}); err != nil {
		t.Fatal(err)
	}
	if buf.Len() < 2*readBufferBytes {
		t.Fatalf("test line is only %d bytes: make it longer than the reader's buffer", buf.Len())
	}
	ops, _, err := ReadAll(bytes.NewReader(buf.Bytes()), "big.jsonl")
	if err != nil || len(ops) != 2 || len(ops[1].Value.Mops[0].Polls["3"]) != 50_000 {
		t.Fatalf("read %d ops, %v", len(ops), err)
	}
	seq, _, err := readSequential(NewReader(bytes.NewReader(buf.Bytes()), "big.jsonl"), 0)
	if err != nil || !reflect.DeepEqual(seq, ops) {
		t.Fatalf("sequential read differs: %v", err)
	}
}

func TestLineTooLong(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 64 MiB")
	}
	// A line one byte over the limit, after a good line, fails with a clear
	// error naming line 2, without reading the rest.
	long := l0 + "\n" + strings.Repeat(" ", MaxLineBytes+1) + "\n" + l1 + "\n"
	want := `h.jsonl:2: line is longer than the 64 MiB limit`
	_, _, err := readSequential(NewReader(strings.NewReader(long), "h.jsonl"), 0)
	if err == nil || err.Error() != want || !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("sequential: error = %v, want %s", err, want)
	}
	_, _, err = readParallel(strings.NewReader(long), "h.jsonl", 0, 2, parallelBlockBytes)
	if err == nil || err.Error() != want {
		t.Fatalf("parallel: error = %v, want %s", err, want)
	}
}

func TestReadErrorsAreReported(t *testing.T) {
	boom := errors.New("disk on fire")
	in := io.MultiReader(strings.NewReader(l0+"\n"), iotest.ErrReader(boom))
	_, _, err := ReadAll(in, "h.jsonl")
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "h.jsonl:2: reading the history") {
		t.Fatalf("error = %v, want the read error at line 2", err)
	}
	in = io.MultiReader(strings.NewReader(l0+"\n"), iotest.ErrReader(boom))
	_, _, err = readSequential(NewReader(in, "h.jsonl"), 0)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "h.jsonl:2: reading the history") {
		t.Fatalf("sequential: error = %v, want the read error at line 2", err)
	}
}

func TestLoadPicksTheFormat(t *testing.T) {
	for _, f := range []string{"testdata/basic.jsonl", "testdata/jepsen_kafka.edn"} {
		ops, _, err := Load(f)
		if err != nil || len(ops) == 0 {
			t.Fatalf("Load(%s): %d ops, %v", f, len(ops), err)
		}
	}
}

// A panic while decoding a block (a bug) comes back as the block's error,
// naming where it happened, rather than killing the process from a
// goroutine nobody can recover.
func TestDecodeBlockPanicIsAnError(t *testing.T) {
	d := newDecoder()
	d.ar = &arena{reuse: true, maps: []map[string][]Record{nil}} // a broken arena: writing the poll's map panics
	line := `{"index":0,"time":1,"process":0,"type":"ok","f":"poll","value":[["poll",{"k":[[0,1]]}]]}` + "\n"
	res := &presult{}
	decodeBlockSafely(d, "h.jsonl", &pblock{data: []byte(line), firstLine: 7}, res)
	if !crash.Is(res.err) || !strings.Contains(res.err.Error(), "reading h.jsonl from line 7") {
		t.Fatalf("error %v, want a recovered panic naming the block", res.err)
	}
}

package linear

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/histtest"
)

func TestCheck(t *testing.T) {
	const k = "k"
	cases := []struct {
		name   string
		build  func(b *histtest.Builder)
		want   verdict.Verdict
		reason string // a substring of the key's reason, for invalid keys
	}{
		{
			name: "concurrent sends and a poll of both",
			build: func(b *histtest.Builder) {
				b.SendInv(0, k, 10)
				b.SendInv(1, k, 11)
				b.SendDone(1, histories.OK, k, 0, 11)
				b.SendDone(0, histories.OK, k, 1, 10)
				b.PollOK(2, k, histtest.Recs(0, 11, 1, 10)...)
			},
			want: verdict.Valid,
		},
		{
			name: "poll concurrent with the send it reads",
			build: func(b *histtest.Builder) {
				b.SendInv(0, k, 10)
				b.PollInv(1)
				b.PollDone(1, histories.OK, map[string][]histories.Record{k: histtest.Recs(0, 10)})
				b.SendDone(0, histories.OK, k, 0, 10)
			},
			want: verdict.Valid,
		},
		{
			name: "two acked sends at one offset",
			build: func(b *histtest.Builder) {
				b.SendInv(0, k, 10)
				b.SendInv(1, k, 11)
				b.SendDone(0, histories.OK, k, 0, 10)
				b.SendDone(1, histories.OK, k, 0, 11)
			},
			want:   verdict.Invalid,
			reason: "offset 0 holds 10",
		},
		{
			name: "poll reads a value at another offset than its ack",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 0, 10)
				b.SendOK(0, k, 1, 11)
				b.PollOK(1, k, histtest.Recs(1, 10)...)
			},
			want:   verdict.Invalid,
			reason: "offset 1 holds 11",
		},
		{
			name: "poll reads a value never sent",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 0, 10)
				b.PollOK(1, k, histtest.Recs(0, 10, 1, 99)...)
			},
			want:   verdict.Invalid,
			reason: "no send to this key wrote",
		},
		{
			name: "poll reads a failed send",
			build: func(b *histtest.Builder) {
				b.SendInv(0, k, 10)
				b.SendDone(0, histories.Fail, k, histories.OffsetPending, 10)
				b.PollOK(1, k, histtest.Recs(0, 10)...)
			},
			want:   verdict.Invalid,
			reason: "no send to this key wrote",
		},
		{
			name: "poll returns before the send it reads was invoked",
			build: func(b *histtest.Builder) {
				b.PollOK(1, k, histtest.Recs(0, 10)...)
				b.SendOK(0, k, 0, 10)
			},
			want:   verdict.Invalid,
			reason: "cannot take effect",
		},
		{
			name: "a log that starts at offset 1: gaps are no holes",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 1, 10)
				b.PollOK(1, k, histtest.Recs(1, 10)...)
			},
			want: verdict.Valid,
		},
		{
			name: "acked sends in the wrong real-time order",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 1, 10)
				b.SendOK(0, k, 0, 11)
			},
			want: verdict.Invalid,
		},
		{
			name: "info send later read",
			build: func(b *histtest.Builder) {
				b.SendInv(0, k, 10)
				b.SendDone(0, histories.Info, k, histories.OffsetPending, 10)
				b.SendOK(1, k, 1, 11)
				b.PollOK(2, k, histtest.Recs(0, 10, 1, 11)...)
			},
			want: verdict.Valid,
		},
		{
			name: "info send read after later acked sends",
			build: func(b *histtest.Builder) {
				b.SendInv(0, k, 10)
				b.SendDone(0, histories.Info, k, histories.OffsetPending, 10)
				b.SendOK(1, k, 0, 11)
				b.SendOK(1, k, 1, 12)
				b.PollOK(2, k, histtest.Recs(0, 11, 1, 12, 2, 10)...)
			},
			want: verdict.Valid,
		},
		{
			name: "info send never read",
			build: func(b *histtest.Builder) {
				b.SendInv(0, k, 10)
				b.SendDone(0, histories.Info, k, histories.OffsetPending, 10)
				b.SendOK(1, k, 0, 11)
				b.PollOK(2, k, histtest.Recs(0, 11)...)
			},
			want: verdict.Valid,
		},
		{
			name: "info send never read fills the offset before an ack",
			build: func(b *histtest.Builder) {
				b.SendInv(0, k, 10)
				b.SendDone(0, histories.Info, k, histories.OffsetPending, 10)
				b.SendOK(1, k, 1, 11)
				b.PollOK(2, k, histtest.Recs(1, 11)...)
			},
			want: verdict.Valid,
		},
		{
			name: "an offset nobody claims needs no send to fill it",
			build: func(b *histtest.Builder) {
				b.SendOK(1, k, 1, 11)
				b.SendInv(0, k, 10)
				b.SendDone(0, histories.Info, k, histories.OffsetPending, 10)
			},
			want: verdict.Valid,
		},
		{
			name: "a read across gaps in the offsets",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 5, 10)
				b.SendOK(0, k, 7, 11)
				b.SendOK(0, k, 1000, 12)
				b.PollOK(1, k, histtest.Recs(5, 10, 7, 11, 1000, 12)...)
				b.PollOK(1, k, histtest.Recs(7, 11)...)
			},
			want: verdict.Valid,
		},
		{
			name: "offsets 0 and 2^63-1: nothing is sized by their span",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 0, 10)
				b.SendOK(0, k, math.MaxInt64, 11)
				b.PollOK(1, k, histtest.Recs(0, 10, math.MaxInt64, 11)...)
			},
			want: verdict.Valid,
		},
		{
			name: "acked offsets out of real-time order, with gaps",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 10, 10)
				b.SendOK(0, k, 5, 11)
			},
			want:   verdict.Invalid,
			reason: "cannot take effect",
		},
		{
			name: "a read across a gap skips a claimed offset",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 5, 10)
				b.SendOK(0, k, 6, 11)
				b.SendOK(0, k, 8, 12)
				b.PollOK(1, k, histtest.Recs(5, 10, 8, 12)...)
			},
			want:   verdict.Invalid,
			reason: "not consecutive",
		},
		{
			name: "a read of records without offsets is left out",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 0, 10)
				b.PollOK(1, k, histories.Record{Offset: histories.OffsetUnknown, Value: 99})
			},
			want: verdict.Valid,
		},
		{
			name: "many never-completed sends and a read before its write",
			build: func(b *histtest.Builder) {
				for p := range int64(5000) {
					b.SendInv(100+p, k, 1000+p)
				}
				b.PollOK(1, k, histtest.Recs(0, 10)...)
				b.SendOK(0, k, 0, 10)
			},
			want:   verdict.Invalid,
			reason: "cannot take effect",
		},
		{
			name: "never completed send read",
			build: func(b *histtest.Builder) {
				b.SendInv(0, k, 10)
				b.PollOK(1, k, histtest.Recs(0, 10)...)
			},
			want: verdict.Valid,
		},
		{
			name: "acks=0 send lands after its ok",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, histories.OffsetUnknown, 10)
				b.SendOK(1, k, 0, 11)
				b.PollOK(2, k, histtest.Recs(0, 11, 1, 10)...)
			},
			want: verdict.Valid,
		},
		{
			name: "stale and shorter reads of a consistent prefix",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 0, 10)
				b.SendOK(0, k, 1, 11)
				b.SendOK(0, k, 2, 12)
				b.PollOK(1, k, histtest.Recs(0, 10)...)
				b.PollOK(2, k, histtest.Recs(1, 11)...)
				b.PollOK(1, k, histtest.Recs(0, 10, 1, 11, 2, 12)...)
				b.PollOK(2, k, histtest.Recs(0, 10, 1, 11)...)
			},
			want: verdict.Valid,
		},
		{
			name: "read skips a value that a later read shows at that offset",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, histories.OffsetUnknown, 10)
				b.SendOK(0, k, histories.OffsetUnknown, 11)
				b.SendOK(0, k, histories.OffsetUnknown, 12)
				b.PollOK(1, k, histtest.Recs(0, 10, 1, 12)...)
				b.PollOK(2, k, histtest.Recs(1, 11, 2, 12)...)
			},
			want:   verdict.Invalid,
			reason: "offset 1 holds 11",
		},
		{
			name: "poll with a gap in its offsets",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 0, 10)
				b.SendOK(0, k, 1, 11)
				b.SendOK(0, k, 2, 12)
				b.PollOK(1, k, histtest.Recs(0, 10, 2, 12)...)
			},
			want:   verdict.Invalid,
			reason: "not consecutive",
		},
		{
			name: "truncated log: an acked offset later read with another value",
			build: func(b *histtest.Builder) {
				b.SendOK(0, k, 0, 10)
				b.SendOK(0, k, 1, 11)
				b.SendInv(3, k, 12)
				b.SendDone(3, histories.Info, k, histories.OffsetPending, 12)
				b.PollOK(1, k, histtest.Recs(0, 10, 1, 12)...)
			},
			want:   verdict.Invalid,
			reason: "offset 1 holds 11",
		},
		{
			name: "fail and info polls and other functions are ignored",
			build: func(b *histtest.Builder) {
				b.PollInv(1)
				b.Complete(1, histories.Fail, histories.FPoll, histories.Mop{F: histories.MopPoll})
				b.PollInv(2)
				b.Complete(2, histories.Info, histories.FPoll, histories.Mop{F: histories.MopPoll})
				b.Add(3, histories.Invoke, histories.FAssign, histories.Value{})
				b.Add(3, histories.OK, histories.FAssign, histories.Value{})
				b.Add(histories.NemesisProcess, histories.Info, "start-partition", histories.Value{})
				b.SendOK(0, k, 0, 10)
			},
			want: verdict.Valid,
		},
		{
			name:  "empty history",
			build: func(b *histtest.Builder) {},
			want:  verdict.Valid,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b histtest.Builder
			c.build(&b)
			res, err := checkOps(t, b.Ops, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != c.want {
				t.Fatalf("verdict %v, want %v; result %s", res.Valid, c.want, dump(res))
			}
			if c.want == verdict.Valid {
				if len(res.Keys) != 0 {
					t.Fatalf("valid check lists keys: %s", dump(res))
				}
				return
			}
			kr := res.Keys[k]
			if kr == nil {
				t.Fatalf("key %q missing from %s", k, dump(res))
			}
			if !strings.Contains(kr.Reason, c.reason) {
				t.Errorf("reason %q does not mention %q", kr.Reason, c.reason)
			}
		})
	}
}

// checkOps checks ops, made into a History as garantia check makes one.
func checkOps(t testing.TB, ops []histories.Op, opts Options) (*Result, error) {
	t.Helper()
	h, err := histories.FromOps(ops, histories.LoadOptions{})
	if err != nil {
		t.Fatalf("malformed test history: %v", err)
	}
	return Check(context.Background(), h, opts)
}

// A txn touches several keys: each key's part is checked on its own, and
// the verdicts compose.
func TestTxnAndComposition(t *testing.T) {
	var b histtest.Builder
	b.Invoke(0, histories.FTxn, histtest.SendMop("a", histories.OffsetPending, 1), histtest.SendMop("b", histories.OffsetPending, 2), histtest.PollMop(nil))
	b.Complete(0, histories.OK, histories.FTxn, histtest.SendMop("a", 0, 1), histtest.SendMop("b", 0, 2),
		histtest.PollMop(map[string][]histories.Record{"c": histtest.Recs(0, 3)}))
	b.SendOK(1, "c", 0, 3) // read by the txn before it was sent: invalid for c only
	b.PollOK(2, "a", histtest.Recs(0, 1)...)
	b.PollOK(2, "b", histtest.Recs(0, 2)...)
	res, err := checkOps(t, b.Ops, Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid != verdict.Invalid || res.KeysChecked != 3 || res.KeysValid != 2 || res.KeysInvalid != 1 {
		t.Fatalf("want c invalid and a, b valid; got %s", dump(res))
	}
	if _, ok := res.Keys["c"]; !ok || len(res.Keys) != 1 {
		t.Fatalf("want only key c listed, got %s", dump(res))
	}
	if res.Ops != 6 {
		t.Errorf("ops %d, want 6 (a: send, poll; b: send, poll; c: read, send)", res.Ops)
	}
}

// A value sent twice to a key breaks the model's premise: the key is
// unknown, never a false alarm (the queue checker judges the duplicate).
func TestValueSentTwiceIsUnknown(t *testing.T) {
	var b histtest.Builder
	b.SendOK(0, "k", 0, 1)
	b.SendOK(0, "k", 1, 1)
	b.PollOK(1, "k", histtest.Recs(0, 1, 1, 1)...)
	res, err := checkOps(t, b.Ops, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid != verdict.Unknown || !strings.Contains(res.Keys["k"].Reason, "sent to this key twice") {
		t.Fatalf("want k unknown because 1 was sent twice, got %s", dump(res))
	}
}

// hardHistory is not linearizable and needs a search over every (log
// length, polls done) pair: n sends and n polls all concurrent, then a
// poll that reads an offset whose send is invoked only after it returns.
// Porcupine must rule out every state (log length L, polls done K <= L),
// about n*n/2 of them at O(n) each, before it can say so.
func hardHistory(n int) []histories.Op {
	var b histtest.Builder
	for i := range n {
		b.SendInv(int64(i), "k", int64(i))
		b.PollInv(int64(n + i))
	}
	for i := range n {
		b.SendDone(int64(i), histories.OK, "k", int64(i), int64(i))
		r := int64(i) // the i-th poll to return read offset i
		b.PollDone(int64(n+i), histories.OK, map[string][]histories.Record{"k": histtest.Recs(r, r)})
	}
	b.PollOK(int64(2*n), "k", histtest.Recs(int64(n), int64(n))...)
	b.SendOK(0, "k", int64(n), int64(n))
	return b.Ops
}

func TestTimeoutIsUnknown(t *testing.T) {
	ops := hardHistory(3000)
	start := time.Now()
	res, err := checkOps(t, ops, Options{Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("took %v", time.Since(start))
	if res.Valid != verdict.Unknown || res.KeysUnknown != 1 {
		t.Fatalf("want unknown after a timeout, got %s", dump(res))
	}
	// The budget may run out inside a segment's search or between two
	// segments (on a slow machine the first segment alone can use it up);
	// either way the reason must blame the time budget.
	if kr := res.Keys["k"]; kr == nil || !strings.Contains(kr.Reason, "time budget") {
		t.Fatalf("want the key's reason to say the time budget ran out, got %s", dump(res))
	}
}

// A cancelled context stops the search: keys are unknown and Check says
// why in its error.
func TestCancelIsUnknown(t *testing.T) {
	h, err := histories.FromOps(hardHistory(3000), histories.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	t.Cleanup(cancel)
	res, err := Check(ctx, h, Options{Timeout: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("want an interrupted error, got %v", err)
	}
	if res == nil || res.Valid != verdict.Unknown {
		t.Fatalf("want an unknown result, got %s", dump(res))
	}
}

// The hard history is still decided when given the time: porcupine proves
// it invalid.
func TestHardHistoryDecided(t *testing.T) {
	res, err := checkOps(t, hardHistory(60), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid != verdict.Invalid {
		t.Fatalf("want invalid, got %s", dump(res))
	}
}

func TestVisualization(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "viz") // created by Check
	var b histtest.Builder
	b.SendOK(0, "a/b", 0, 10)
	b.SendOK(1, "a/b", 0, 11) // collision: invalid
	b.SendOK(0, "ok", 0, 20)
	b.PollOK(1, "ok", histtest.Recs(0, 20)...)
	res, err := checkOps(t, b.Ops, Options{VisualizeDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	kr := res.Keys["a/b"]
	if res.Valid != verdict.Invalid || kr == nil {
		t.Fatalf("want key a/b invalid, got %s", dump(res))
	}
	if filepath.Dir(kr.Visualization) != dir || !strings.HasPrefix(filepath.Base(kr.Visualization), "linear-a_b-") {
		t.Fatalf("visualization path %q, want %s/linear-a_b-<hash>.html", kr.Visualization, dir)
	}
	data, err := os.ReadFile(kr.Visualization)
	if err != nil {
		t.Fatal(err)
	}
	// The descriptions sit in the page as JSON, where > is \u003e.
	for _, want := range []string{"send 10 -> 0", "send 11 -> 0", "1 record(s): 0:10"} {
		if !strings.Contains(strings.ReplaceAll(string(data), `\u003e`, ">"), want) {
			t.Errorf("visualization lacks %q", want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || res.Visualizations != 1 || res.VisualizationsOmitted != 0 {
		t.Errorf("want one file (only the failing key), got %d (result says %d drawn, %d omitted)", len(entries), res.Visualizations, res.VisualizationsOmitted)
	}

	// A folder that cannot be made: the verdict stands, a warning says
	// why the picture is missing.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = checkOps(t, b.Ops, Options{VisualizeDir: filepath.Join(blocker, "viz")})
	if err != nil || res.Valid != verdict.Invalid || res.Keys["a/b"].Visualization != "" || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "could not be written") {
		t.Fatalf("want an invalid result with a warning, got %v, %s", err, dump(res))
	}

	// Without a folder, nothing is written.
	res, err = checkOps(t, b.Ops, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Keys["a/b"].Visualization; p != "" {
		t.Errorf("visualization %q written without VisualizeDir", p)
	}
}

// Visualizations are written for at most MaxVisualizations keys, the first
// by name, and the result counts the others.
func TestVisualizationCap(t *testing.T) {
	var b histtest.Builder
	for k := range 30 {
		key := fmt.Sprintf("k%02d", k)
		b.SendOK(0, key, 0, int64(2*k))
		b.SendOK(1, key, 0, int64(2*k+1))
	}
	for _, c := range []struct{ max, want int }{{0, DefaultMaxVisualizations}, {3, 3}, {-1, 0}, {100, 30}} {
		dir := t.TempDir()
		res, err := checkOps(t, b.Ops, Options{VisualizeDir: dir, MaxVisualizations: c.max})
		if err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(dir)
		if res.KeysInvalid != 30 || len(entries) != c.want || res.Visualizations != c.want || res.VisualizationsOmitted != 30-c.want {
			t.Fatalf("max %d: %d invalid keys, %d files, result says %d drawn and %d omitted; want 30, %d, %d, %d",
				c.max, res.KeysInvalid, len(entries), res.Visualizations, res.VisualizationsOmitted, c.want, c.want, 30-c.want)
		}
		if c.want > 0 && res.Keys["k00"].Visualization == "" {
			t.Errorf("max %d: the first key by name got no visualization", c.max)
		}
	}
}

func TestFileName(t *testing.T) {
	cases := map[string]string{
		"3":         "linear-3.html",
		"topic-1.0": "linear-topic-1.0.html",
	}
	for key, want := range cases {
		if got := fileName(key); got != want {
			t.Errorf("fileName(%q) = %q, want %q", key, got, want)
		}
	}
	seen := make(map[string]string)
	for _, key := range []string{"a/b", "a_b", "a b", "", ".", "..", "ü", strings.Repeat("x", 300)} {
		name := fileName(key)
		if prev, dup := seen[name]; dup {
			t.Errorf("keys %q and %q share file %q", prev, key, name)
		}
		seen[name] = key
		if filepath.Base(name) != name || len(name) > 100 || strings.HasPrefix(name, ".") {
			t.Errorf("fileName(%q) = %q is not a safe file name", key, name)
		}
	}
}

func TestResultJSON(t *testing.T) {
	var b histtest.Builder
	b.SendOK(0, "k", 0, 10)
	b.SendOK(1, "k", 0, 11)
	res, err := checkOps(t, b.Ops, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal([]byte(dump(res)), &back); err != nil {
		t.Fatal(err)
	}
	if back["valid"] != false || back["keys-invalid"] != float64(1) {
		t.Errorf("unexpected JSON %s", dump(res))
	}
}

func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

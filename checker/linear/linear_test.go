package linear

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

func TestCheck(t *testing.T) {
	const k = "k"
	cases := []struct {
		name   string
		h      *hist
		want   verdict.Verdict
		reason string // a substring of the key's reason, for invalid keys
	}{
		{
			name: "concurrent sends and a poll of both",
			h: new(hist).
				sendInv(0, k, 10).sendInv(1, k, 11).
				sendOK(1, k, 11, 0).sendOK(0, k, 10, 1).
				poll(2, k, recs(0, 11, 1, 10)...),
			want: verdict.Valid,
		},
		{
			name: "poll concurrent with the send it reads",
			h: new(hist).
				sendInv(0, k, 10).pollInv(1).
				pollOK(1, map[string][]histories.Record{k: recs(0, 10)}).
				sendOK(0, k, 10, 0),
			want: verdict.Valid,
		},
		{
			name: "two acked sends at one offset",
			h: new(hist).
				sendInv(0, k, 10).sendInv(1, k, 11).
				sendOK(0, k, 10, 0).sendOK(1, k, 11, 0),
			want:   verdict.Invalid,
			reason: "offset 0 holds 10",
		},
		{
			name: "poll reads a value at another offset than its ack",
			h: new(hist).
				send(0, k, 10, 0).send(0, k, 11, 1).
				poll(1, k, recs(1, 10)...),
			want:   verdict.Invalid,
			reason: "read at offset 1",
		},
		{
			name:   "poll reads a value never sent",
			h:      new(hist).send(0, k, 10, 0).poll(1, k, recs(0, 10, 1, 99)...),
			want:   verdict.Invalid,
			reason: "no send to this key wrote",
		},
		{
			name: "poll reads a failed send",
			h: new(hist).sendInv(0, k, 10).sendFail(0, k, 10).
				poll(1, k, recs(0, 10)...),
			want:   verdict.Invalid,
			reason: "no send to this key wrote",
		},
		{
			name: "poll returns before the send it reads was invoked",
			h: new(hist).
				poll(1, k, recs(0, 10)...).
				send(0, k, 10, 0),
			want:   verdict.Invalid,
			reason: "cannot take effect",
		},
		{
			name: "acked offset after one that no send can fill",
			h:    new(hist).send(0, k, 10, 1),
			want: verdict.Invalid,
		},
		{
			name: "acked sends in the wrong real-time order",
			h:    new(hist).send(0, k, 10, 1).send(0, k, 11, 0),
			want: verdict.Invalid,
		},
		{
			name: "info send later read",
			h: new(hist).
				sendInv(0, k, 10).sendInfo(0, k, 10).
				send(1, k, 11, 1).
				poll(2, k, recs(0, 10, 1, 11)...),
			want: verdict.Valid,
		},
		{
			name: "info send read after later acked sends",
			h: new(hist).
				sendInv(0, k, 10).sendInfo(0, k, 10).
				send(1, k, 11, 0).send(1, k, 12, 1).
				poll(2, k, recs(0, 11, 1, 12, 2, 10)...),
			want: verdict.Valid,
		},
		{
			name: "info send never read",
			h: new(hist).
				sendInv(0, k, 10).sendInfo(0, k, 10).
				send(1, k, 11, 0).
				poll(2, k, recs(0, 11)...),
			want: verdict.Valid,
		},
		{
			name: "info send never read fills the offset before an ack",
			h: new(hist).
				sendInv(0, k, 10).sendInfo(0, k, 10).
				send(1, k, 11, 1).
				poll(2, k, recs(1, 11)...),
			want: verdict.Valid,
		},
		{
			name: "info send cannot fill an offset before it was invoked",
			h: new(hist).
				send(1, k, 11, 1).
				sendInv(0, k, 10).sendInfo(0, k, 10),
			want: verdict.Invalid,
		},
		{
			name: "never completed send read",
			h: new(hist).
				sendInv(0, k, 10).
				poll(1, k, recs(0, 10)...),
			want: verdict.Valid,
		},
		{
			name: "acks=0 send lands after its ok",
			h: new(hist).
				send(0, k, 10, histories.OffsetUnknown).
				send(1, k, 11, 0).
				poll(2, k, recs(0, 11, 1, 10)...),
			want: verdict.Valid,
		},
		{
			name: "stale and shorter reads of a consistent prefix",
			h: new(hist).
				send(0, k, 10, 0).send(0, k, 11, 1).send(0, k, 12, 2).
				poll(1, k, recs(0, 10)...).
				poll(2, k, recs(1, 11)...).
				poll(1, k, recs(0, 10, 1, 11, 2, 12)...).
				poll(2, k, recs(0, 10, 1, 11)...),
			want: verdict.Valid,
		},
		{
			name: "read skips a value that a later read shows at that offset",
			h: new(hist).
				send(0, k, 10, histories.OffsetUnknown).
				send(0, k, 11, histories.OffsetUnknown).
				send(0, k, 12, histories.OffsetUnknown).
				poll(1, k, recs(0, 10, 1, 12)...).
				poll(2, k, recs(1, 11, 2, 12)...),
			want:   verdict.Invalid,
			reason: "offset 1 holds 12",
		},
		{
			name: "poll with a gap in its offsets",
			h: new(hist).
				send(0, k, 10, 0).send(0, k, 11, 1).send(0, k, 12, 2).
				poll(1, k, recs(0, 10, 2, 12)...),
			want:   verdict.Invalid,
			reason: "not contiguous",
		},
		{
			name: "truncated log: an acked offset later read with another value",
			h: new(hist).
				send(0, k, 10, 0).send(0, k, 11, 1).
				sendInv(3, k, 12).sendInfo(3, k, 12).
				poll(1, k, recs(0, 10, 1, 12)...),
			want:   verdict.Invalid,
			reason: "offset 1 holds 11",
		},
		{
			name: "fail and info polls and other functions are ignored",
			h: new(hist).
				pollInv(1).add(1, histories.Fail, histories.FPoll, histories.Mop{F: histories.MopPoll}).
				pollInv(2).add(2, histories.Info, histories.FPoll, histories.Mop{F: histories.MopPoll}).
				add(3, histories.Invoke, histories.FAssign).add(3, histories.OK, histories.FAssign).
				add(histories.NemesisProcess, histories.Info, "start-partition").
				send(0, k, 10, 0),
			want: verdict.Valid,
		},
		{
			name: "empty history",
			h:    new(hist),
			want: verdict.Valid,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Check(context.Background(), c.h.ops, Options{})
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

// A txn touches several keys: each key's part is checked on its own, and
// the verdicts compose.
func TestTxnAndComposition(t *testing.T) {
	h := new(hist)
	h.add(0, histories.Invoke, histories.FTxn, sendMop("a", 1, histories.OffsetPending), sendMop("b", 2, histories.OffsetPending), histories.Mop{F: histories.MopPoll})
	h.add(0, histories.OK, histories.FTxn, sendMop("a", 1, 0), sendMop("b", 2, 0),
		histories.Mop{F: histories.MopPoll, Polls: map[string][]histories.Record{"c": recs(0, 3)}})
	h.send(1, "c", 3, 0) // read by the txn before it was sent: invalid for c only
	h.poll(2, "a", recs(0, 1)...)
	h.poll(2, "b", recs(0, 2)...)
	res, err := Check(context.Background(), h.ops, Options{Workers: 2})
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

func TestBadInput(t *testing.T) {
	cases := []struct {
		name, want string
		h          *hist
	}{
		{"completion without invocation", "never invoked", new(hist).sendOK(0, "k", 1, 0)},
		{"two open invocations", "one operation at a time", new(hist).sendInv(0, "k", 1).sendInv(0, "k", 2)},
		{"completion of another function", "invoked \"send\"", new(hist).sendInv(0, "k", 1).pollOK(0, nil)},
		{"value sent twice", "twice", new(hist).send(0, "k", 1, 0).send(0, "k", 1, 1)},
		{"negative read offset", "offset -3", new(hist).poll(0, "k", recs(-3, 1)...)},
		{"bad send offset", "offset -7", new(hist).send(0, "k", 1, -7)},
		{"unknown type", "unknown type", new(hist).add(0, "maybe", histories.FSend)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Check(context.Background(), c.h.ops, Options{})
			if err == nil || res != nil {
				t.Fatalf("want an error and no result, got %v, %s", err, dump(res))
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "index") {
				t.Errorf("error %q should name the op index and mention %q", err, c.want)
			}
		})
	}
}

// hardHistory is not linearizable and needs a search over every (log
// length, polls done) pair: n sends and n polls all concurrent, then a
// poll that reads an offset whose send is invoked only after it returns.
// Porcupine must rule out every state (log length L, polls done K <= L),
// about n*n/2 of them at O(n) each, before it can say so.
func hardHistory(n int) []histories.Op {
	h := new(hist)
	for i := range n {
		h.sendInv(int64(i), "k", int64(i))
		h.pollInv(int64(n + i))
	}
	for i := range n {
		h.sendOK(int64(i), "k", int64(i), int64(i))
		r := int64(i) // the i-th poll to return read offset i
		h.pollOK(int64(n+i), map[string][]histories.Record{"k": recs(r, r)})
	}
	h.poll(int64(2*n), "k", recs(int64(n), int64(n))...)
	h.send(0, "k", int64(n), int64(n))
	return h.ops
}

func TestTimeoutIsUnknown(t *testing.T) {
	ops := hardHistory(3000)
	start := time.Now()
	res, err := Check(context.Background(), ops, Options{Timeout: 20 * time.Millisecond})
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
	ops := hardHistory(3000)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	t.Cleanup(cancel)
	res, err := Check(ctx, ops, Options{Timeout: time.Hour})
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
	res, err := Check(context.Background(), hardHistory(60), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid != verdict.Invalid {
		t.Fatalf("want invalid, got %s", dump(res))
	}
}

func TestVisualization(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "viz") // created by Check
	h := new(hist).
		send(0, "a/b", 10, 0).send(1, "a/b", 11, 0). // collision: invalid
		send(0, "ok", 20, 0).poll(1, "ok", recs(0, 20)...)
	res, err := Check(context.Background(), h.ops, Options{VisualizeDir: dir})
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
	b, err := os.ReadFile(kr.Visualization)
	if err != nil {
		t.Fatal(err)
	}
	// The descriptions sit in the page as JSON, where > is \u003e.
	for _, want := range []string{"send 10 -> 0", "send 11 -> 0", "len 1: 0:10"} {
		if !strings.Contains(strings.ReplaceAll(string(b), `\u003e`, ">"), want) {
			t.Errorf("visualization lacks %q", want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("want one file (only the failing key), got %d", len(entries))
	}

	// A directory that cannot be made: the verdict stands, the error says
	// why the picture is missing.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = Check(context.Background(), h.ops, Options{VisualizeDir: filepath.Join(blocker, "viz")})
	if err == nil || res == nil || res.Valid != verdict.Invalid || res.Keys["a/b"].Visualization != "" {
		t.Fatalf("want an invalid result and an error, got %v, %s", err, dump(res))
	}

	// Without a directory, nothing is written.
	res, err = Check(context.Background(), h.ops, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Keys["a/b"].Visualization; p != "" {
		t.Errorf("visualization %q written without VisualizeDir", p)
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
	h := new(hist).send(0, "k", 10, 0).send(1, "k", 11, 0)
	res, err := Check(context.Background(), h.ops, Options{})
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

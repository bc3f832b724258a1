package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/garantia/garantia/histories"
)

// TestClassify is the error table: which completions may claim the op
// definitely did not happen.
func TestClassify(t *testing.T) {
	wrapped := func(err error) error { return fmt.Errorf("produce to garantia-queue/3: %w", err) }
	cases := []struct {
		name    string
		err     error
		written int
		want    histories.Type
	}{
		{"success", nil, 1, histories.OK},
		{"success with no request (acks=0 written)", nil, 0, histories.OK},

		// Nothing reached a broker: whatever the error, nothing happened.
		{"connection refused before any write", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, 0, histories.Fail},
		{"record timeout in the buffer", kgo.ErrRecordTimeout, 0, histories.Fail},
		{"no metadata: unknown topic", kerr.UnknownTopicOrPartition, 0, histories.Fail},
		{"client closed before the write", kgo.ErrClientClosed, 0, histories.Fail},
		{"context canceled before the write", context.Canceled, 0, histories.Fail},
		{"not leader, never written", kerr.NotLeaderForPartition, 0, histories.Fail},

		// One request, refused before the append.
		{"unknown topic or partition", kerr.UnknownTopicOrPartition, 1, histories.Fail},
		{"not enough replicas", kerr.NotEnoughReplicas, 1, histories.Fail},
		{"not enough replicas, wrapped", wrapped(kerr.NotEnoughReplicas), 1, histories.Fail},
		{"invalid topic", kerr.InvalidTopicException, 1, histories.Fail},
		{"corrupt message", kerr.CorruptMessage, 1, histories.Fail},
		{"invalid record", kerr.InvalidRecord, 1, histories.Fail},
		{"invalid required acks", kerr.InvalidRequiredAcks, 1, histories.Fail},
		{"message too large", kerr.MessageTooLarge, 1, histories.Fail},
		{"unsupported version", kerr.UnsupportedVersion, 1, histories.Fail},

		// The broker may have appended.
		{"not leader after a write", kerr.NotLeaderForPartition, 1, histories.Info},
		{"request timed out", kerr.RequestTimedOut, 1, histories.Info},
		{"not enough replicas after append", kerr.NotEnoughReplicasAfterAppend, 1, histories.Info},
		{"storage error", kerr.KafkaStorageError, 1, histories.Info},
		{"leader not available", kerr.LeaderNotAvailable, 1, histories.Info},
		{"fenced leader epoch", kerr.FencedLeaderEpoch, 1, histories.Info},
		{"unknown server error", kerr.UnknownServerError, 1, histories.Info},
		{"network exception", kerr.NetworkException, 1, histories.Info},
		{"retries exhausted after a write", kgo.ErrRecordRetries, 1, histories.Info},
		{"record timeout after a write", kgo.ErrRecordTimeout, 1, histories.Info},
		{"deadline after a write", context.DeadlineExceeded, 1, histories.Info},
		{"connection reset after a write", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, 1, histories.Info},
		{"EOF after a write", io.ErrUnexpectedEOF, 1, histories.Info},
		{"unknown error", errors.New("something odd"), 1, histories.Info},

		// Two requests: the first may have been appended, whatever the
		// second one's answer.
		{"refused on the retry", kerr.NotEnoughReplicas, 2, histories.Info},
		{"unknown topic on the retry", kerr.UnknownTopicOrPartition, 2, histories.Info},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Classify(c.err, c.written); got != c.want {
				t.Errorf("Classify(%v, %d written) = %s, want %s", c.err, c.written, got, c.want)
			}
		})
	}
}

func TestParseAcks(t *testing.T) {
	for _, s := range []string{"0", "1", "all", "-1"} {
		if _, err := ParseAcks(s); err != nil {
			t.Errorf("ParseAcks(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "2", "ALL", "leader"} {
		if _, err := ParseAcks(s); err == nil {
			t.Errorf("ParseAcks(%q) succeeded", s)
		}
	}
}

// TestScheduleIsSeeded: a worker's schedule is a function of the seed and
// its thread alone, and the mix has the intended proportions.
func TestScheduleIsSeeded(t *testing.T) {
	hw := histories.NewWriter(io.Discard)
	t.Cleanup(func() { _ = hw.Close() })
	rec := histories.NewRecorder(hw, time.Now())
	scheduleVia := func(via string, seed int64, thread int) []scheduledOp {
		w, err := New(Config{Brokers: []string{"127.0.0.1:1"}, Partitions: 5, ReplicationFactor: 1, Acks: "all", Concurrency: 4, Seed: seed, ConsumeVia: via}, rec)
		if err != nil {
			t.Fatal(err)
		}
		wk := w.newWorker(thread)
		out := make([]scheduledOp, 2000)
		for i := range out {
			out[i] = wk.draw()
			switch out[i].kind {
			case opAssign:
				wk.assigned, wk.mode = out[i].keys, assignedConsumer // what a successful assign leaves
			case opSubscribe:
				wk.mode = groupConsumer
			}
		}
		return out
	}
	schedule := func(seed int64, thread int) []scheduledOp { return scheduleVia(ConsumeAssign, seed, thread) }
	a, b := schedule(42, 1), schedule(42, 1)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("seed 42, thread 1 gave two different schedules")
	}
	if reflect.DeepEqual(a, schedule(43, 1)) || reflect.DeepEqual(a, schedule(42, 2)) {
		t.Fatal("another seed or thread gave the same schedule")
	}
	count := map[opKind]int{}
	for _, d := range a {
		count[d.kind]++
		switch d.kind {
		case opSend:
			if d.key < 0 || d.key >= 5 {
				t.Fatalf("send to key %d of 5", d.key)
			}
		case opAssign:
			if len(d.keys) == 0 {
				t.Fatal("empty assign")
			}
		}
	}
	// 31/64 sends, 2/64 assigns (plus the first), the rest polls.
	if count[opSend] < 850 || count[opSend] > 1100 || count[opAssign] < 30 || count[opAssign] > 110 {
		t.Errorf("mix of 2000 draws: %d sends, %d polls, %d assigns", count[opSend], count[opPoll], count[opAssign])
	}
	if a[0].kind == opPoll {
		t.Error("a fresh process polled before assigning")
	}
	if count[opSubscribe]+count[opCommitted] != 0 {
		t.Errorf("assigning consumers subscribed %d times and fetched committed offsets %d times", count[opSubscribe], count[opCommitted])
	}

	// Subscribing consumers: the same sends and assign-or-subscribe draws,
	// 2/64 of the polls fetch committed offsets instead; mixed ones pick
	// assign or subscribe half and half.
	for _, via := range []string{ConsumeSubscribe, ConsumeMixed} {
		s := scheduleVia(via, 42, 1)
		if !reflect.DeepEqual(s, scheduleVia(via, 42, 1)) {
			t.Fatalf("%s: seed 42, thread 1 gave two different schedules", via)
		}
		n := map[opKind]int{}
		for _, d := range s {
			n[d.kind]++
		}
		switch {
		case s[0].kind != opSubscribe && s[0].kind != opAssign:
			t.Errorf("%s: a fresh process's first op is %v", via, s[0].kind)
		case n[opCommitted] < 25 || n[opCommitted] > 110:
			t.Errorf("%s: %d committed fetches in 2000 draws, want about 62", via, n[opCommitted])
		case via == ConsumeSubscribe && (n[opAssign] != 0 || n[opSubscribe] < 30 || n[opSubscribe] > 110):
			t.Errorf("%s: %d assigns, %d subscribes", via, n[opAssign], n[opSubscribe])
		case via == ConsumeMixed && (n[opAssign] < 10 || n[opSubscribe] < 10):
			t.Errorf("%s: %d assigns, %d subscribes, want both", via, n[opAssign], n[opSubscribe])
		}
	}
}

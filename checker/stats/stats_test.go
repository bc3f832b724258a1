package stats

import (
	"testing"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

func op(p int64, t histories.Type, f, node string, time int64) histories.Op {
	return histories.Op{Process: p, Type: t, F: f, Node: node, Time: time}
}

// check counts ops, indexed in order.
func check(t *testing.T, ops []histories.Op) *Result {
	t.Helper()
	for i := range ops {
		ops[i].Index = int64(i)
	}
	h, err := histories.FromOps(ops, histories.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return Check(h)
}

func TestCounts(t *testing.T) {
	ops := []histories.Op{
		op(0, histories.Invoke, "send", "n1", 1),
		op(1, histories.Invoke, "poll", "n2", 2),
		op(0, histories.OK, "send", "n1", 3),
		op(-1, histories.Info, "kill", "", 4),
		op(1, histories.Info, "poll", "n2", 5),
		op(2, histories.Invoke, "send", "", 6),
		op(2, histories.Fail, "send", "", 9),
	}
	r := check(t, ops)
	if r.Valid != verdict.Valid {
		t.Errorf("valid = %v, want true", r.Valid)
	}
	if r.Ops != 7 || r.Nemesis != 1 || r.Processes != 3 || r.DurationNs != 9 {
		t.Errorf("ops=%d nemesis=%d processes=%d duration=%d", r.Ops, r.Nemesis, r.Processes, r.DurationNs)
	}
	if got := *r.ByF["send"]; got != (Counts{Invoke: 2, OK: 1, Fail: 1}) {
		t.Errorf("send counts %+v", got)
	}
	if got := *r.ByNode["n2"]; got != (Counts{Invoke: 1, Info: 1}) {
		t.Errorf("n2 counts %+v", got)
	}
	if _, ok := r.ByNode[""]; ok {
		t.Error("ops without a node must not be grouped under an empty node")
	}
}

func TestNothingOKIsUnknown(t *testing.T) {
	r := check(t, []histories.Op{
		op(0, histories.Invoke, "send", "", 1),
		op(0, histories.Info, "send", "", 2),
	})
	if r.Valid != verdict.Unknown {
		t.Errorf("a history where nothing succeeded must be unknown, got %v", r.Valid)
	}
}

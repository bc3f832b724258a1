package linear

import "github.com/garantia/garantia/histories"

// hist builds histories in memory, event by event, in the order they
// happened. Index and Time follow the position.
type hist struct{ ops []histories.Op }

func (h *hist) add(p int64, t histories.Type, f string, mops ...histories.Mop) *hist {
	n := int64(len(h.ops))
	h.ops = append(h.ops, histories.Op{Index: n, Time: n * 1000, Process: p, Type: t, F: f, Value: histories.Value{Mops: mops}})
	return h
}

// Invocations and completions of single-mop sends and polls.
func (h *hist) sendInv(p int64, k string, v int64) *hist {
	return h.add(p, histories.Invoke, histories.FSend, sendMop(k, v, histories.OffsetPending))
}
func (h *hist) sendOK(p int64, k string, v, off int64) *hist {
	return h.add(p, histories.OK, histories.FSend, sendMop(k, v, off))
}
func (h *hist) sendInfo(p int64, k string, v int64) *hist {
	return h.add(p, histories.Info, histories.FSend, sendMop(k, v, histories.OffsetPending))
}
func (h *hist) sendFail(p int64, k string, v int64) *hist {
	return h.add(p, histories.Fail, histories.FSend, sendMop(k, v, histories.OffsetPending))
}
func (h *hist) pollInv(p int64) *hist {
	return h.add(p, histories.Invoke, histories.FPoll, histories.Mop{F: histories.MopPoll})
}
func (h *hist) pollOK(p int64, reads map[string][]histories.Record) *hist {
	return h.add(p, histories.OK, histories.FPoll, histories.Mop{F: histories.MopPoll, Polls: reads})
}

// send is a whole sequential ok send; poll a whole sequential ok poll.
func (h *hist) send(p int64, k string, v, off int64) *hist {
	return h.sendInv(p, k, v).sendOK(p, k, v, off)
}
func (h *hist) poll(p int64, k string, recs ...histories.Record) *hist {
	return h.pollInv(p).pollOK(p, map[string][]histories.Record{k: recs})
}

func sendMop(k string, v, off int64) histories.Mop {
	return histories.Mop{F: histories.MopSend, Key: k, Value: v, Offset: off}
}

// recs turns offset, value pairs into records: recs(0, 10, 1, 11).
func recs(ov ...int64) []histories.Record {
	out := make([]histories.Record, 0, len(ov)/2)
	for i := 0; i+1 < len(ov); i += 2 {
		out = append(out, histories.Record{Offset: ov[i], Value: ov[i+1]})
	}
	return out
}

package stats

import (
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
)

// Counts are the completions of one group of operations.
type Counts struct {
	Invoke int `json:"invoke"`
	OK     int `json:"ok"`
	Fail   int `json:"fail"`
	Info   int `json:"info"`
}

func (c *Counts) add(k histories.Kind) {
	switch k {
	case histories.KindInvoke:
		c.Invoke++
	case histories.KindOK:
		c.OK++
	case histories.KindFail:
		c.Fail++
	case histories.KindInfo:
		c.Info++
	}
}

// Result is the stats section of results.json.
type Result struct {
	// Valid is Unknown when no client operation completed ok, else Valid.
	Valid verdict.Verdict `json:"valid"`
	// Ops counts every event of the history.
	Ops int `json:"ops"`
	// Client sums the client operations' completions.
	Client Counts `json:"client"`
	// Nemesis counts the nemesis events (process -1).
	Nemesis int `json:"nemesis"`
	// ByF groups client operations by function (send, poll, assign, ...).
	ByF map[string]*Counts `json:"by-f"`
	// ByNode groups client operations by the node the client talked to;
	// operations without a node are left out.
	ByNode map[string]*Counts `json:"by-node"`
	// Processes is how many distinct client process ids appear: more than
	// the concurrency means indeterminate ops retired processes.
	Processes int `json:"processes"`
	// DurationNs is the time of the last event.
	DurationNs int64 `json:"duration-ns"`
}

// Check counts the history's ops.
func Check(h *histories.History) *Result {
	r := &Result{
		Ops:    len(h.Events),
		ByF:    map[string]*Counts{},
		ByNode: map[string]*Counts{},
	}
	seen := map[int64]struct{}{}
	byF := make(map[histories.Sym]*Counts)
	byNode := make(map[histories.Sym]*Counts)
	for i := range h.Events {
		e := &h.Events[i]
		r.DurationNs = max(r.DurationNs, e.Time)
		if !e.IsClient() {
			r.Nemesis++
			continue
		}
		seen[e.Process] = struct{}{}
		r.Client.add(e.Kind)
		group(byF, e.F).add(e.Kind)
		if e.Node != 0 {
			group(byNode, e.Node).add(e.Kind)
		}
	}
	for f, c := range byF {
		r.ByF[h.Text(f)] = c
	}
	for n, c := range byNode {
		r.ByNode[h.Text(n)] = c
	}
	r.Processes = len(seen)
	r.Valid = verdict.Valid
	if r.Client.OK == 0 {
		r.Valid = verdict.Unknown
	}
	return r
}

func group(m map[histories.Sym]*Counts, s histories.Sym) *Counts {
	c, ok := m[s]
	if !ok {
		c = &Counts{}
		m[s] = c
	}
	return c
}

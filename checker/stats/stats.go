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

func (c *Counts) add(t histories.Type) {
	switch t {
	case histories.Invoke:
		c.Invoke++
	case histories.OK:
		c.OK++
	case histories.Fail:
		c.Fail++
	case histories.Info:
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

// Check counts ops.
func Check(ops []histories.Op) *Result {
	r := &Result{
		Ops:    len(ops),
		ByF:    map[string]*Counts{},
		ByNode: map[string]*Counts{},
	}
	seen := map[int64]struct{}{}
	for i := range ops {
		op := &ops[i]
		if op.Time > r.DurationNs {
			r.DurationNs = op.Time
		}
		if !op.IsClient() {
			r.Nemesis++
			continue
		}
		seen[op.Process] = struct{}{}
		r.Client.add(op.Type)
		group(r.ByF, op.F).add(op.Type)
		if op.Node != "" {
			group(r.ByNode, op.Node).add(op.Type)
		}
	}
	r.Processes = len(seen)
	r.Valid = verdict.Valid
	if r.Client.OK == 0 {
		r.Valid = verdict.Unknown
	}
	return r
}

func group(m map[string]*Counts, name string) *Counts {
	c, ok := m[name]
	if !ok {
		c = &Counts{}
		m[name] = c
	}
	return c
}

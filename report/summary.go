package report

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/queue"
	"github.com/garantia/garantia/checker/verdict"
)

// Summary writes a short human summary of results to w: the verdict, the
// counts that matter for durability, and each anomaly with its first
// examples.
func Summary(w io.Writer, r *checker.Results, examples int) {
	st := r.Stats
	fmt.Fprintf(w, "ops: %d events, %d client ok, %d info, %d fail, %d nemesis events, %d processes\n",
		st.Ops, st.Client.OK, st.Client.Info, st.Client.Fail, st.Nemesis, st.Processes)
	c := r.Queue.Counts
	fmt.Fprintf(w, "sends: %d sent, %d acknowledged, %d failed, %d indeterminate; %d values read; %d lost, %d unseen, %d duplicated\n",
		c.Sent, c.Acknowledged, c.Failed, c.Indeterminate, c.Read, c.Lost, c.Unseen, c.Duplicated)
	for _, warning := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}

	names := make([]string, 0, len(r.Queue.Anomalies))
	for name := range r.Queue.Anomalies {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		a := r.Queue.Anomalies[name]
		fmt.Fprintf(w, "  %-22s %d\n", name, a.Count)
		for i, ex := range a.Examples {
			if i >= examples {
				fmt.Fprintf(w, "      ... %d more in results.json\n", len(a.Examples)-examples)
				break
			}
			fmt.Fprintf(w, "      %s\n", exampleLine(ex))
		}
	}
	fmt.Fprintf(w, "queue: %s", label(r.Queue.Valid))
	if r.Linear != nil {
		fmt.Fprintf(w, "   linearizable: %s", label(r.Linear.Valid))
		for _, key := range sortedBad(r) {
			fmt.Fprintf(w, " [key %s: %s]", key, r.Linear.Keys[key].Valid)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "verdict: %s\n", label(r.Valid))
}

func label(v verdict.Verdict) string {
	switch v {
	case verdict.Valid:
		return "valid"
	case verdict.Invalid:
		return "INVALID"
	}
	return "unknown"
}

func sortedBad(r *checker.Results) []string {
	var keys []string
	for k, kr := range r.Linear.Keys {
		if kr.Valid != verdict.Valid {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func exampleLine(ex queue.Example) string {
	var b strings.Builder
	b.WriteString(ex.Explanation)
	if len(ex.Ops) > 0 {
		b.WriteString(" (ops")
		for _, op := range ex.Ops {
			fmt.Fprintf(&b, " #%d", op.Index)
		}
		b.WriteString(")")
	}
	return b.String()
}

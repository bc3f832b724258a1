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
	unseen := fmt.Sprint(c.Unseen)
	if c.UnseenInconclusive > 0 {
		unseen = fmt.Sprintf("%d (%d inconclusive)", c.Unseen, c.UnseenInconclusive)
	}
	fmt.Fprintf(w, "sends: %d sent, %d acknowledged, %d failed, %d indeterminate; %d values read; %d lost, %s unseen, %d duplicated\n",
		c.Sent, c.Acknowledged, c.Failed, c.Indeterminate, c.Read, c.Lost, unseen, c.Duplicated)
	if cc := c.Commits; cc != nil {
		fmt.Fprintf(w, "committed offsets: %d acknowledged, %d failed, %d indeterminate; %d fetched back; %d lost\n",
			cc.Acknowledged, cc.Failed, cc.Indeterminate, cc.Fetched, cc.Lost)
	}
	if c.UnseenInconclusive > 0 {
		fmt.Fprintf(w, "final drain: %s: %s\n", r.Queue.Drain.State, r.Queue.Drain.Explanation)
	}
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
		fmt.Fprintf(w, "  %-22s %d%s\n", name, a.Count, qualifier(a))
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
		bad := sortedBad(r)
		for i, key := range bad {
			if i == badKeysShown {
				fmt.Fprintf(w, " [and %d more keys]", len(bad)-badKeysShown)
				break
			}
			fmt.Fprintf(w, " [key %s: %s]", key, r.Linear.Keys[key].Valid)
		}
		if n := r.Linear.VisualizationsOmitted; n > 0 {
			fmt.Fprintf(w, " (visualizations of %d keys, %d more left out)", r.Linear.Visualizations, n)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "verdict: %s\n", label(r.Valid))
}

// badKeysShown bounds the keys named on the verdict line: a history with
// thousands of bad keys must still summarise in a line.
const badKeysShown = 5

// qualifier says how many of an anomaly's cases are allowed or
// inconclusive, which is why they may not make the verdict invalid.
func qualifier(a *queue.Anomaly) string {
	switch {
	case a.Allowed == a.Count:
		return " (allowed)"
	case a.Inconclusive == a.Count:
		return " (inconclusive)"
	}
	var parts []string
	if a.Allowed > 0 {
		parts = append(parts, fmt.Sprintf("%d allowed", a.Allowed))
	}
	if a.Inconclusive > 0 {
		parts = append(parts, fmt.Sprintf("%d inconclusive", a.Inconclusive))
	}
	if parts == nil {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
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

package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/garantia/garantia/internal/atomicfile"
	"github.com/garantia/garantia/report"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/nemesis"
)

// The files of a matrix folder, store/matrix/<time>/.
const (
	MatrixDir      = "matrix"
	MatrixJSONFile = "matrix.json"
	MatrixMDFile   = "matrix.md"
)

// AcksLevels are the acks settings garantia matrix compares by default.
var AcksLevels = []string{"0", "1", "all"}

// FsyncLevels are the fsync policies a matrix's fsync axis may name.
var FsyncLevels = []string{"never", "interval", "always"}

// PowerMatrixNemesis is the fault program of a matrix with an fsync axis
// when --nemesis is not given: the isolated leader loses what acks=1
// acknowledged from its log alone, and power cuts of every node at once
// lose what no replica fsynced, which acks=all cannot save and only
// --fsync always does. Partitions and power cuts act on different
// resources, so the schedule overlaps them freely; with the default
// interval a 30 s run draws both (a schedule without one of them is
// rare, and the matrix warns about it).
var PowerMatrixNemesis = []string{"partition:leader", "power:all"}

// MatrixAxes are the settings a matrix compares: one run per acks level
// and fsync policy, acks outermost.
type MatrixAxes struct {
	// Acks are the acks settings, in order.
	Acks []string
	// Fsync are the brokers' fsync policies, in order; empty runs every
	// acks level once, with the configuration's own --fsync.
	Fsync []string
}

// MatrixRow is one line of the matrix: an acks level and, with an fsync
// axis, an fsync policy.
type MatrixRow struct {
	Acks string `json:"acks"`
	// Fsync is the row's fsync policy; "" without an fsync axis.
	Fsync string `json:"fsync,omitempty"`
	// Run is the run's folder in the store.
	Run string `json:"run,omitempty"`
	// Sent ... Duplicates are the queue checker's counts.
	Sent         int `json:"sent"`
	Acknowledged int `json:"acknowledged"`
	Lost         int `json:"lost"`
	Unseen       int `json:"unseen"`
	Duplicates   int `json:"duplicates"`
	// ThroughputPerS is acknowledged sends per second of the workload.
	ThroughputPerS float64 `json:"throughput-per-s"`
	// P50Ms and P99Ms are percentiles of the acknowledged sends' latency,
	// from invocation to completion in the history, in milliseconds.
	P50Ms float64 `json:"p50-ms"`
	P99Ms float64 `json:"p99-ms"`
	// Valid is the run's verdict.
	Valid verdict.Verdict `json:"valid"`
	// Anomalies counts each anomaly the queue checker found.
	Anomalies map[string]int `json:"anomalies,omitempty"`
	// Error is set when the run itself failed (the harness, not the
	// broker); the counts are then empty.
	Error string `json:"error,omitempty"`
}

// setting names the row's settings: "acks=1" or "acks=1 fsync=never".
func (r MatrixRow) setting() string {
	if r.Fsync == "" {
		return "acks=" + r.Acks
	}
	return "acks=" + r.Acks + " fsync=" + r.Fsync
}

// Matrix is the content of matrix.json.
type Matrix struct {
	Seed      int64    `json:"seed"`
	Nodes     int      `json:"nodes"`
	TimeLimit string   `json:"time-limit"`
	Faults    []string `json:"faults"`
	// FsyncLevels is the fsync axis; empty without one.
	FsyncLevels []string       `json:"fsync-levels,omitempty"`
	Schedule    []nemesis.Step `json:"nemesis-schedule"`
	Rows        []MatrixRow    `json:"rows"`
	// Dir is the matrix folder (not stored).
	Dir string `json:"-"`
}

// checkLevels checks one axis: each level known, none twice.
func checkLevels(flag string, levels, known []string) error {
	want := strings.Join(known, ", ")
	if len(levels) == 0 {
		return flagErr(flag, "want one or more of %s", want)
	}
	seen := map[string]bool{}
	for _, l := range levels {
		if !slices.Contains(known, l) {
			return flagErr(flag, "want %s, got %q", want, l)
		}
		if seen[l] {
			return flagErr(flag, "%s named twice", l)
		}
		seen[l] = true
	}
	return nil
}

// RunMatrix runs cfg once per acks level and fsync policy of axes, one
// after the other, under the same seed and so the same fault schedule,
// each a full run with its own run folder, and writes matrix.json and
// matrix.md into a new folder STORE/matrix/<time>/. With an fsync axis
// and no --nemesis, the faults are PowerMatrixNemesis. A run that fails
// becomes a row with its error; the error returned is for a bad
// configuration or an interrupted matrix.
func RunMatrix(ctx context.Context, cfg Config, axes MatrixAxes) (*Matrix, error) {
	if err := checkLevels("acks-levels", axes.Acks, AcksLevels); err != nil {
		return nil, err
	}
	fsyncs := []string{cfg.Fsync}
	if len(axes.Fsync) > 0 {
		if err := checkLevels("fsync-levels", axes.Fsync, FsyncLevels); err != nil {
			return nil, err
		}
		if cfg.Fsync != "" {
			return nil, flagErr("fsync", "the matrix sets it from --fsync-levels; give one or the other")
		}
		fsyncs = axes.Fsync
		if len(cfg.Nemesis) == 0 {
			cfg.Nemesis = PowerMatrixNemesis
		}
	}
	for _, l := range axes.Acks {
		for _, f := range fsyncs {
			c := cfg
			c.Acks, c.Fsync = l, f
			if err := c.Validate(); err != nil {
				return nil, err
			}
		}
	}
	specs, _ := cfg.Specs()
	m := &Matrix{
		Seed:        cfg.Seed,
		Nodes:       cfg.Nodes,
		TimeLimit:   cfg.TimeLimit.String(),
		Faults:      []string{},
		FsyncLevels: axes.Fsync,
		Schedule:    nemesis.NewSchedule(cfg.Seed, specs, cfg.NemesisInterval, cfg.TimeLimit),
	}
	for _, s := range specs {
		m.Faults = append(m.Faults, s.String())
	}
	if m.Schedule == nil {
		m.Schedule = []nemesis.Step{}
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	if len(axes.Fsync) > 0 {
		for _, w := range fsyncWarnings(specs, m.Schedule) {
			fmt.Fprintf(progress, "warning: %s\n", w)
		}
	}
	dir, err := newMatrixDir(cfg.Store, time.Now())
	if err != nil {
		return nil, err
	}
	m.Dir = dir

	total, i := len(axes.Acks)*len(fsyncs), 0
	for _, l := range axes.Acks {
		for _, f := range fsyncs {
			i++
			c := cfg
			c.Acks, c.Fsync = l, f
			row := MatrixRow{Acks: l}
			c.TestName = ""
			if len(axes.Fsync) > 0 {
				row.Fsync = f
				c.TestName = c.Name() + "-fsync-" + f
			}
			fmt.Fprintf(progress, "\n=== matrix %d of %d: %s (seed %d)\n", i, total, row.setting(), cfg.Seed)
			results, runDir, err := Run(ctx, c)
			row.Run = runDir
			if err != nil {
				if ctx.Err() != nil {
					return m, fmt.Errorf("matrix interrupted at %s: %w", row.setting(), err)
				}
				row.Error = err.Error()
				row.Valid = verdict.Unknown
				m.Rows = append(m.Rows, row)
				continue
			}
			fillRow(&row, results)
			m.Rows = append(m.Rows, row)
		}
	}
	if err := writeJSON(filepath.Join(dir, MatrixJSONFile), m); err != nil {
		return m, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, MatrixMDFile), []byte(m.Markdown()), 0o644); err != nil {
		return m, fmt.Errorf("write %s: %w", MatrixMDFile, err)
	}
	return m, nil
}

// fillRow fills in a completed run's counts, verdict and send statistics.
func fillRow(row *MatrixRow, results *checker.Results) {
	q := results.Queue.Counts
	row.Sent, row.Acknowledged, row.Lost, row.Unseen, row.Duplicates = q.Sent, q.Acknowledged, q.Lost, q.Unseen, q.Duplicated
	row.Valid = results.Valid
	row.Anomalies = map[string]int{}
	for name, a := range results.Queue.Anomalies {
		row.Anomalies[name] = a.Count
	}
	ops, _, err := histories.ReadFile(filepath.Join(row.Run, histories.HistoryFile))
	if err != nil {
		row.Error = fmt.Sprintf("read the history for latencies: %v", err)
		return
	}
	st := SendStats(ops)
	row.ThroughputPerS = st.ThroughputPerS
	row.P50Ms = ms(st.P50)
	row.P99Ms = ms(st.P99)
}

// fsyncWarnings says why an fsync axis may show nothing under these
// faults: without a power cut of every replica at once, nothing a broker
// left unsynced is lost (a kill keeps the page cache; a cut of some
// nodes leaves the others' copies).
func fsyncWarnings(specs []nemesis.Spec, schedule []nemesis.Step) []string {
	var out []string
	hasPower, drawn := false, false
	for _, s := range specs {
		if s.Kind == nemesis.Power {
			hasPower = true
		}
	}
	for _, st := range schedule {
		if st.Kind == nemesis.Power {
			drawn = true
		}
	}
	switch {
	case !hasPower:
		out = append(out, "--fsync-levels without power faults: a kill keeps what the page cache holds, so the fsync policy changes nothing these faults can lose (add power:all to --nemesis)")
	case !drawn:
		out = append(out, "the seed drew no power fault for this time limit: the fsync policy changes nothing in these runs (another --seed, or a longer --time-limit)")
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// newMatrixDir makes STORE/matrix/<time>/ and points STORE/matrix/latest
// at it.
func newMatrixDir(store string, now time.Time) (string, error) {
	root := filepath.Join(store, MatrixDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("create the matrix folder: %w", err)
	}
	t := now.UTC().Truncate(time.Millisecond)
	for try := 0; ; try++ {
		stamp := t.Format(histories.RunTimeLayout)
		dir := filepath.Join(root, stamp)
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			// A missing latest link is not worth failing the matrix for.
			_ = atomicfile.Symlink(stamp, filepath.Join(root, histories.LatestLink))
			return dir, nil
		}
		if !errors.Is(err, os.ErrExist) || try == 1000 {
			return "", fmt.Errorf("create the matrix folder: %w", err)
		}
		t = t.Add(time.Millisecond)
	}
}

// Stats are the send statistics of a history.
type Stats struct {
	// Acknowledged counts the sends that completed ok.
	Acknowledged int
	// ThroughputPerS is Acknowledged divided by the workload's span: from
	// time 0 to the last send's invocation (the workers invoke until the
	// time limit; a send in flight then, waiting on a dead node, may
	// complete seconds later, which is not time the workload ran).
	ThroughputPerS float64
	// P50 and P99 are percentiles of the acknowledged sends' latency,
	// invocation to completion. Failed and indeterminate sends are left
	// out: their latency is a timeout's, not the broker's.
	P50, P99 time.Duration
}

// SendStats computes Stats from a history. A process runs one operation
// at a time, so a completion belongs to its process's last invocation.
func SendStats(ops []histories.Op) Stats {
	invoked := map[int64]int64{} // process -> invocation time of its pending send
	var lat []time.Duration
	var last int64
	for i := range ops {
		op := &ops[i]
		if op.F != histories.FSend || !op.IsClient() {
			continue
		}
		if op.Type == histories.Invoke {
			invoked[op.Process] = op.Time
			if op.Time > last {
				last = op.Time
			}
			continue
		}
		t0, ok := invoked[op.Process]
		if !ok {
			continue
		}
		delete(invoked, op.Process)
		if op.Type == histories.OK {
			lat = append(lat, time.Duration(op.Time-t0))
		}
	}
	st := Stats{Acknowledged: len(lat)}
	if last > 0 {
		st.ThroughputPerS = float64(len(lat)) / time.Duration(last).Seconds()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	st.P50 = percentile(lat, 0.50)
	st.P99 = percentile(lat, 0.99)
	return st
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p*float64(len(sorted))+0.999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank]
}

var matrixHeader = []string{"acks", "sent", "acknowledged", "lost", "unseen", "duplicates", "throughput", "p50", "p99", "verdict"}

// settingColumns is how many leading columns name a row's settings:
// acks, and fsync with an fsync axis.
func (m *Matrix) settingColumns() int {
	if len(m.FsyncLevels) > 0 {
		return 2
	}
	return 1
}

func (m *Matrix) cells() [][]string {
	header := matrixHeader
	if m.settingColumns() == 2 {
		header = append([]string{"acks", "fsync"}, matrixHeader[1:]...)
	}
	rows := [][]string{header}
	for _, r := range m.Rows {
		settings := []string{r.Acks}
		if m.settingColumns() == 2 {
			settings = append(settings, r.Fsync)
		}
		if r.Error != "" {
			rows = append(rows, append(settings, "-", "-", "-", "-", "-", "-", "-", "-", "harness failed"))
			continue
		}
		rows = append(rows, append(settings,
			fmt.Sprint(r.Sent), fmt.Sprint(r.Acknowledged), fmt.Sprint(r.Lost), fmt.Sprint(r.Unseen), fmt.Sprint(r.Duplicates),
			fmt.Sprintf("%.0f/s", r.ThroughputPerS),
			fmt.Sprintf("%.1fms", r.P50Ms), fmt.Sprintf("%.1fms", r.P99Ms),
			report.VerdictWord(r.Valid),
		))
	}
	return rows
}

// WriteTable writes the matrix as an aligned text table.
func (m *Matrix) WriteTable(w io.Writer) {
	rows := m.cells()
	width := make([]int, len(rows[0]))
	left := m.settingColumns()
	for _, r := range rows {
		for i, c := range r {
			if len(c) > width[i] {
				width[i] = len(c)
			}
		}
	}
	for ri, r := range rows {
		var b strings.Builder
		for i, c := range r {
			if i > 0 {
				b.WriteString(" | ")
			}
			if i < left || i == len(r)-1 {
				fmt.Fprintf(&b, "%-*s", width[i], c)
			} else {
				fmt.Fprintf(&b, "%*s", width[i], c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if ri == 0 {
			var sep strings.Builder
			for i := range r {
				if i > 0 {
					sep.WriteString("-+-")
				}
				sep.WriteString(strings.Repeat("-", width[i]))
			}
			fmt.Fprintln(w, sep.String())
		}
	}
}

// Markdown is matrix.md: the table and what the run was.
func (m *Matrix) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# garantia matrix\n\nSeed %d, %d node(s), %s per run, faults: %s (%d scheduled, the same schedule in every run).\n\n",
		m.Seed, m.Nodes, m.TimeLimit, orNone(m.Faults), len(m.Schedule))
	rows := m.cells()
	left := m.settingColumns()
	for i, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
		if i == 0 {
			seps := make([]string, len(r))
			for j := range seps {
				seps[j] = "---:"
				if j < left || j == len(r)-1 {
					seps[j] = "---"
				}
			}
			b.WriteString("| " + strings.Join(seps, " | ") + " |\n")
		}
	}
	b.WriteString("\nThroughput is acknowledged sends per second; p50 and p99 are the latencies of acknowledged sends, invocation to completion.\n\n")
	for _, r := range m.Rows {
		switch {
		case r.Error != "":
			fmt.Fprintf(&b, "- %s: the harness failed: %s\n", r.setting(), r.Error)
		default:
			fmt.Fprintf(&b, "- %s: `%s`", r.setting(), r.Run)
			if len(r.Anomalies) > 0 {
				names := make([]string, 0, len(r.Anomalies))
				for n := range r.Anomalies {
					names = append(names, n)
				}
				sort.Strings(names)
				parts := make([]string, len(names))
				for i, n := range names {
					parts[i] = fmt.Sprintf("%s %d", n, r.Anomalies[n])
				}
				fmt.Fprintf(&b, " — %s", strings.Join(parts, ", "))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

package report

import (
	"fmt"
	"html/template"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/garantia/garantia/histories"
)

// Completion types, in the order the perf plots use.
const (
	tOK = iota
	tInfo
	tFail
	nTypes
)

var typeNames = [nTypes]string{"ok", "info", "fail"}

// Client functions the perf plots tell apart; everything else is "other".
var fNames = []string{histories.FSend, histories.FPoll, histories.FAssign, histories.FTxn, histories.FCommit, "other"}

func fIndex(f string) int {
	for i, n := range fNames[:len(fNames)-1] {
		if f == n {
			return i
		}
	}
	return len(fNames) - 1
}

func typeIndex(t histories.Type) int {
	switch t {
	case histories.OK:
		return tOK
	case histories.Info:
		return tInfo
	}
	return tFail
}

// latPoint is one completed client operation: when it was invoked and how
// long it took.
type latPoint struct {
	startNs, latNs int64
	f, t           uint8
}

// perf holds what the perf plots need, gathered in one pass.
type perf struct {
	points []latPoint
	endNs  int64
	// inv[i] is the position of the invocation that ops[i] completed, or
	// -1 (an invocation, a nemesis event, an orphan completion).
	inv []int32
}

// collectPerf pairs each client completion with its process's open
// invocation, as histories.Pair does, in one pass and without its error
// bookkeeping (a broken history still gets its plots).
func collectPerf(ops []histories.Op) *perf {
	pf := &perf{inv: make([]int32, len(ops))}
	open := make(map[int64]int32)
	for i := range ops {
		op := &ops[i]
		pf.inv[i] = -1
		pf.endNs = max(pf.endNs, op.Time)
		if !op.IsClient() {
			continue
		}
		if op.Type == histories.Invoke {
			open[op.Process] = int32(i)
			continue
		}
		j, ok := open[op.Process]
		if !ok {
			continue
		}
		delete(open, op.Process)
		pf.inv[i] = j
		pf.points = append(pf.points, latPoint{
			startNs: ops[j].Time,
			latNs:   op.Time - ops[j].Time,
			f:       uint8(fIndex(ops[j].F)),
			t:       uint8(typeIndex(op.Type)),
		})
	}
	return pf
}

// minLatencyMs is where latencies of zero or less are drawn on the log
// axis: a microsecond.
const minLatencyMs = 1e-3

func latMs(ns int64) float64 { return math.Max(float64(ns)/1e6, minLatencyMs) }

// perfPlots are the three perf pictures, after Jepsen's latency-raw,
// latency-quantiles and rate plots.
type perfPlots struct {
	LatencyRaw, LatencyQuantiles, Rate template.HTML
	// RawDrawn and RawTotal say how many latency points were drawn of how
	// many (see thin).
	RawDrawn, RawTotal int
	// WindowMs and BinMs are the quantile window and the rate bin.
	WindowMs, BinMs float64
}

// timeHeadroom widens time axes on the right so that the legend has room
// beside the data rather than over it.
const timeHeadroom = 0.22

func (pf *perf) plots(faults []fault) (*perfPlots, error) {
	out := &perfPlots{RawTotal: len(pf.points)}
	if len(pf.points) == 0 {
		return out, nil
	}
	endS := secs(pf.endNs)
	var err error
	if out.LatencyRaw, out.RawDrawn, err = pf.rawPlot(faults, endS); err != nil {
		return nil, err
	}
	window := niceNs(pf.endNs / 100)
	out.WindowMs = float64(window) / 1e6
	if out.LatencyQuantiles, err = pf.quantilePlot(faults, endS, window); err != nil {
		return nil, err
	}
	bin := niceNs(pf.endNs / 200)
	out.BinMs = float64(bin) / 1e6
	if out.Rate, err = pf.ratePlot(faults, endS, bin); err != nil {
		return nil, err
	}
	return out, nil
}

func (pf *perf) rawPlot(faults []fault, endS float64) (template.HTML, int, error) {
	series := make([]plotter.XYs, len(fNames)*nTypes)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range pf.points {
		y := latMs(p.latNs)
		lo, hi = math.Min(lo, y), math.Max(hi, y)
		k := int(p.f)*nTypes + int(p.t)
		series[k] = append(series[k], plotter.XY{X: secs(p.startNs), Y: y})
	}
	series, drawn := thin(series, 0, endS, lo, hi, math.Log10, latencyPointsMax)

	p := newPlot("Latency of each operation (by invocation time)", "time (s)", "latency (ms)")
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	addFaults(p, faults)
	for k, s := range series {
		f, t := k/nTypes, k%nTypes
		if err := scatter(p, s, fShapes[f], typeColor(t), vg.Points(1.4), fNames[f]+" "+typeNames[t]); err != nil {
			return "", 0, err
		}
	}
	p.X.Min, p.X.Max = 0, endS*(1+timeHeadroom)
	logRange(p, lo, hi)
	svg, err := svgOf(p, "plot-latency-raw", "latency of every operation over time")
	return svg, drawn, err
}

// quantiles drawn, in order.
var quantiles = []struct {
	name string
	q    float64
}{{"p50", 0.50}, {"p95", 0.95}, {"p99", 0.99}}

// fDashes tells functions apart in line plots.
var fDashes = [][]vg.Length{nil, {vg.Points(4), vg.Points(2)}, {vg.Points(1), vg.Points(2)}, {vg.Points(6), vg.Points(2), vg.Points(1), vg.Points(2)},
	{vg.Points(8), vg.Points(3)}, {vg.Points(2), vg.Points(4)}}

func (pf *perf) quantilePlot(faults []fault, endS float64, windowNs int64) (template.HTML, error) {
	nWin := int(pf.endNs/windowNs) + 1
	byF := make([][][]float64, len(fNames)) // f -> window -> latencies (ms)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range pf.points {
		lo, hi = math.Min(lo, latMs(p.latNs)), math.Max(hi, latMs(p.latNs))
		if byF[p.f] == nil {
			byF[p.f] = make([][]float64, nWin)
		}
		w := min(int(p.startNs/windowNs), nWin-1)
		byF[p.f][w] = append(byF[p.f][w], latMs(p.latNs))
	}
	p := newPlot(fmt.Sprintf("Latency quantiles (windows of %s)", fmtDurationNs(windowNs)), "time (s)", "latency (ms)")
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	addFaults(p, faults)
	for f, wins := range byF {
		if wins == nil {
			continue
		}
		lines := make([]plotter.XYs, len(quantiles))
		for w, lats := range wins {
			if len(lats) == 0 {
				continue
			}
			slices.Sort(lats)
			x := secs(int64(w)*windowNs + windowNs/2)
			for qi, q := range quantiles {
				i := min(len(lats)-1, int(math.Ceil(q.q*float64(len(lats))))-1)
				lines[qi] = append(lines[qi], plotter.XY{X: x, Y: lats[max(i, 0)]})
			}
		}
		for qi, q := range quantiles {
			if err := line(p, lines[qi], quantColor[q.name], fDashes[f], fNames[f]+" "+q.name); err != nil {
				return "", err
			}
		}
	}
	p.X.Min, p.X.Max = 0, endS*(1+timeHeadroom)
	logRange(p, lo, hi)
	return svgOf(p, "plot-latency-quantiles", "latency quantiles over time")
}

func (pf *perf) ratePlot(faults []fault, endS float64, binNs int64) (template.HTML, error) {
	nBin := int(pf.endNs/binNs) + 1
	counts := make([][]int, len(fNames)*nTypes)
	for _, p := range pf.points {
		k := int(p.f)*nTypes + int(p.t)
		if counts[k] == nil {
			counts[k] = make([]int, nBin)
		}
		b := min(int((p.startNs+p.latNs)/binNs), nBin-1)
		counts[k][b]++
	}
	p := newPlot(fmt.Sprintf("Throughput: completions per second (bins of %s)", fmtDurationNs(binNs)), "time (s)", "operations / s")
	addFaults(p, faults)
	perS := 1e9 / float64(binNs)
	for k, c := range counts {
		if c == nil {
			continue
		}
		f, t := k/nTypes, k%nTypes
		pts := make(plotter.XYs, len(c))
		for b, n := range c {
			pts[b] = plotter.XY{X: secs(int64(b)*binNs + binNs/2), Y: float64(n) * perS}
		}
		if err := line(p, pts, typeColor(t), fDashes[f], fNames[f]+" "+typeNames[t]); err != nil {
			return "", err
		}
	}
	p.X.Min, p.X.Max = 0, endS*(1+timeHeadroom)
	p.Y.Min = 0
	return svgOf(p, "plot-rate", "throughput over time")
}

// logRange sets a log y axis to [lo, hi] widened a little: gonum would
// widen a range of one value to [v-1, v+1], which a log axis cannot draw.
func logRange(p *plot.Plot, lo, hi float64) {
	p.Y.Min, p.Y.Max = lo/1.5, hi*1.5
}

// niceNs rounds a duration up to 1, 2 or 5 times a power of ten
// nanoseconds, at least a microsecond.
func niceNs(ns int64) int64 {
	if ns < 1000 {
		return 1000
	}
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= ns {
				return m * p
			}
		}
	}
}

// fmtDurationNs prints a duration the way a person reads a plot title: 50
// ms, 2 s, 500 µs.
func fmtDurationNs(ns int64) string {
	switch {
	case ns >= 1e9:
		return trimFloat(float64(ns)/1e9) + " s"
	case ns >= 1e6:
		return trimFloat(float64(ns)/1e6) + " ms"
	}
	return trimFloat(float64(ns)/1e3) + " µs"
}

func trimFloat(f float64) string { return fmt.Sprintf("%.3g", f) }

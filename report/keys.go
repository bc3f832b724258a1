package report

import (
	"fmt"
	"hash/fnv"
	"html/template"
	"image/color"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/garantia/garantia/histories"
)

// A bad key's log is drawn the way Jepsen's orders/ view shows it: which
// value each poll (and each acknowledged send) saw at each offset, over
// time. Here x is time and y the offset, one point per observation,
// coloured by whether it agrees with everything else seen there; below the
// pictures a table spells out the offsets around each problem with the
// operations that saw them.

// keyObs is one observation of a key's log: an acknowledged send's offset
// or one record a poll returned.
type keyObs struct {
	tNs    int64
	offset int64
	value  int64
	pos    int32 // the op's position in the history
	send   bool
	okPoll bool
}

// ack is where and when a send of a value was acknowledged.
type ack struct {
	offset int64 // or histories.OffsetUnknown
	tNs    int64
	pos    int32
}

// keyData is everything the history says about one key's log.
type keyData struct {
	key   string
	obs   []keyObs
	acked map[int64]ack // value -> its ok send
}

// collectKeys gathers the observations of the given keys in one pass.
func collectKeys(ops []histories.Op, keys []string) map[string]*keyData {
	out := make(map[string]*keyData, len(keys))
	for _, k := range keys {
		out[k] = &keyData{key: k, acked: map[int64]ack{}}
	}
	for i := range ops {
		op := &ops[i]
		if !op.IsClient() || op.Type == histories.Invoke || len(op.Value.Mops) == 0 {
			continue
		}
		for mi := range op.Value.Mops {
			m := &op.Value.Mops[mi]
			switch m.F {
			case histories.MopSend:
				kd := out[m.Key]
				if kd == nil || op.Type == histories.Fail {
					continue
				}
				if op.Type == histories.OK {
					kd.acked[m.Value] = ack{offset: m.Offset, tNs: op.Time, pos: int32(i)}
				}
				if m.Offset >= 0 {
					kd.obs = append(kd.obs, keyObs{tNs: op.Time, offset: m.Offset, value: m.Value, pos: int32(i), send: true})
				}
			case histories.MopPoll:
				for k, recs := range m.Polls {
					kd := out[k]
					if kd == nil {
						continue
					}
					for _, rec := range recs {
						kd.obs = append(kd.obs, keyObs{tNs: op.Time, offset: rec.Offset, value: rec.Value, pos: int32(i), okPoll: op.Type == histories.OK})
					}
				}
			}
		}
	}
	return out
}

// Observation classes, also CSS classes.
const (
	clsOK     = "ok"
	clsIncons = "inconsistent"
	clsDup    = "duplicate"
	clsLost   = "lost"
)

// keyAnalysis classifies a key's observations.
type keyAnalysis struct {
	*keyData
	offVals map[int64][]int64 // offset -> distinct values seen there
	valOffs map[int64][]int64 // value -> distinct offsets it was seen at
	readOK  map[int64]bool    // values an ok poll returned
	lost    []int64           // acknowledged values no ok poll returned, by offset
}

func analyzeKey(kd *keyData) *keyAnalysis {
	a := &keyAnalysis{keyData: kd, offVals: map[int64][]int64{}, valOffs: map[int64][]int64{}, readOK: map[int64]bool{}}
	for _, o := range kd.obs {
		if vs := a.offVals[o.offset]; !slices.Contains(vs, o.value) {
			a.offVals[o.offset] = append(vs, o.value)
		}
		if os := a.valOffs[o.value]; !slices.Contains(os, o.offset) {
			a.valOffs[o.value] = append(os, o.offset)
		}
		if o.okPoll {
			a.readOK[o.value] = true
		}
	}
	for v := range kd.acked {
		if !a.readOK[v] {
			a.lost = append(a.lost, v)
		}
	}
	sort.Slice(a.lost, func(i, j int) bool {
		ai, aj := kd.acked[a.lost[i]], kd.acked[a.lost[j]]
		if ai.offset != aj.offset {
			return ai.offset < aj.offset
		}
		return a.lost[i] < a.lost[j]
	})
	return a
}

// passedAt is when an ok poll first read past an acknowledged send's
// offset after the ack: by then the value was gone. Without such a poll
// (or an offset) it is the ack's own time.
func (a *keyAnalysis) passedAt(ak ack) int64 {
	at := int64(math.MaxInt64)
	for _, o := range a.obs {
		if o.okPoll && o.offset > ak.offset && o.tNs >= ak.tNs && o.tNs < at {
			at = o.tNs
		}
	}
	if ak.offset < 0 || at == math.MaxInt64 {
		return ak.tNs
	}
	return at
}

func (a *keyAnalysis) class(offset, value int64) string {
	if _, acked := a.acked[value]; acked && !a.readOK[value] {
		return clsLost
	}
	if len(a.offVals[offset]) > 1 {
		return clsIncons
	}
	if len(a.valOffs[value]) > 1 {
		return clsDup
	}
	return clsOK
}

// problemOffsets are the offsets where something is wrong, ascending:
// acknowledged-but-unread values, contested offsets, offsets of duplicated
// values.
func (a *keyAnalysis) problemOffsets() []int64 {
	set := map[int64]bool{}
	for _, v := range a.lost {
		if o := a.acked[v].offset; o >= 0 {
			set[o] = true
		}
	}
	for o, vs := range a.offVals {
		if len(vs) > 1 {
			set[o] = true
		}
	}
	for _, os := range a.valOffs {
		if len(os) > 1 {
			for _, o := range os {
				set[o] = true
			}
		}
	}
	out := make([]int64, 0, len(set))
	for o := range set {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

func (a *keyAnalysis) counts() (incons, dups int) {
	for _, vs := range a.offVals {
		if len(vs) > 1 {
			incons++
		}
	}
	for _, os := range a.valOffs {
		if len(os) > 1 {
			dups++
		}
	}
	return incons, dups
}

// Limits on a key's section.
const (
	lostShownMax   = 50 // lost values listed
	windowsMax     = 4  // offset tables per key
	windowRadius   = 3  // offsets each side of a problem in a table
	zoomRadius     = 10 // offsets each side of the first problem in the zoom
	cellOpsMax     = 3  // ops linked per (offset, value) cell
	cellNodesMax   = 3  // nodes named per cell
	orderTimeSlack = 0.02
)

// keyView is a key's section of the report.
type keyView struct {
	Key, ID   string
	Reasons   []string
	Lost      []lostView
	LostTotal int
	Incons    int
	Dups      int
	Obs       int
	Overview  template.HTML
	Zoom      template.HTML
	ZoomFrom  int64
	ZoomTo    int64
	Drawn     int
	Windows   []windowView
}

type lostView struct {
	Value  int64
	Offset string
	Time   string
	Op     int64
	During string
}

type windowView struct {
	From, To int64
	Rows     []offsetRow
}

type offsetRow struct {
	Offset  int64
	Problem bool
	Cells   []*cellView
}

type cellView struct {
	Value   int64
	Class   string
	AckedBy int64 // op index of the ok send, or -1
	Reads   int
	ReadsOK int
	First   string
	Last    string
	Ops     []int64
	MoreOps int
	Nodes   []string
	firstNs int64
}

// view builds a key's section and marks the ops it links to for the ops
// table.
func (a *keyAnalysis) view(b *builder, reasons []string) (*keyView, error) {
	incons, dups := a.counts()
	kv := &keyView{
		Key: a.key, ID: htmlID("key", a.key), Reasons: reasons,
		LostTotal: len(a.lost), Incons: incons, Dups: dups, Obs: len(a.obs),
	}
	for i, v := range a.lost {
		if i == lostShownMax {
			break
		}
		ak := a.acked[v]
		lv := lostView{Value: v, Offset: "unknown", Time: fmtSecs(ak.tNs), Op: b.ops[ak.pos].Index,
			During: b.faultContext(ak.tNs, a.passedAt(ak))}
		if ak.offset >= 0 {
			lv.Offset = strconv.FormatInt(ak.offset, 10)
		}
		b.ref(int(ak.pos), prioKey)
		kv.Lost = append(kv.Lost, lv)
	}
	problems := a.problemOffsets()

	var err error
	if kv.Overview, kv.Drawn, err = a.plot(b, "plot-orders", math.Inf(-1), math.Inf(1)); err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		c := problems[0]
		kv.ZoomFrom, kv.ZoomTo = max(0, c-zoomRadius), c+zoomRadius
		if kv.Zoom, _, err = a.plot(b, "plot-orders-zoom", float64(kv.ZoomFrom), float64(kv.ZoomTo)); err != nil {
			return nil, err
		}
	}
	kv.Windows = a.windows(b, problems)
	return kv, nil
}

// plot draws the key's observations with offsets in [lo, hi] (all of them
// when unbounded).
func (a *keyAnalysis) plot(b *builder, class string, lo, hi float64) (template.HTML, int, error) {
	var reads, sends, incons, dups, lost plotter.XYs
	tMin, tMax := math.Inf(1), math.Inf(-1)
	yMin, yMax := math.Inf(1), math.Inf(-1)
	for _, o := range a.obs {
		y := float64(o.offset)
		if y < lo || y > hi {
			continue
		}
		pt := plotter.XY{X: secs(o.tNs), Y: y}
		tMin, tMax = math.Min(tMin, pt.X), math.Max(tMax, pt.X)
		yMin, yMax = math.Min(yMin, y), math.Max(yMax, y)
		switch a.class(o.offset, o.value) {
		case clsLost:
			lost = append(lost, pt)
		case clsIncons:
			incons = append(incons, pt)
		case clsDup:
			dups = append(dups, pt)
		default:
			if o.send {
				sends = append(sends, pt)
			} else {
				reads = append(reads, pt)
			}
		}
	}
	if math.IsInf(tMin, 0) {
		return "", 0, nil
	}
	thinned, drawn := thin([]plotter.XYs{reads, sends}, tMin, tMax, yMin, yMax, nil, orderPointsMax)
	for _, s := range []*plotter.XYs{&incons, &dups, &lost} {
		if len(*s) > problemPointsMax {
			*s = (*s)[:problemPointsMax]
		}
		drawn += len(*s)
	}

	title := fmt.Sprintf("Key %s: offsets seen over time", a.key)
	if !math.IsInf(lo, 0) {
		title = fmt.Sprintf("Key %s: offsets %d to %d, around the first problem", a.key, int64(lo), int64(hi))
	}
	p := newPlot(title, "time (s)", "offset")
	p.Y.Tick.Marker = intTicks{}
	addFaults(p, b.faults)
	small := vg.Points(1.3)
	big := vg.Points(3)
	if !math.IsInf(lo, 0) {
		small = vg.Points(2.2)
	}
	for _, s := range []struct {
		pts    plotter.XYs
		shape  draw.GlyphDrawer
		col    color.Color
		radius vg.Length
		name   string
	}{
		{thinned[0], draw.CircleGlyph{}, colRead, small, "read"},
		{thinned[1], draw.PyramidGlyph{}, colAck, small, "acknowledged send"},
		{dups, draw.CircleGlyph{}, colDup, big, "duplicate value"},
		{incons, draw.CircleGlyph{}, colIncons, big, "inconsistent offset"},
		{lost, draw.CrossGlyph{}, colLost, big * 1.5, "acknowledged, never read"},
	} {
		if err := scatter(p, s.pts, s.shape, s.col, s.radius, s.name); err != nil {
			return "", 0, err
		}
	}
	span := tMax - tMin
	if span <= 0 {
		span = 1
	}
	p.X.Min = math.Max(0, tMin-span*orderTimeSlack)
	p.X.Max = tMax + span*(timeHeadroom+orderTimeSlack)
	if math.IsInf(lo, 0) {
		p.X.Min, p.X.Max = 0, secs(b.endNs)*(1+timeHeadroom)
	}
	p.Y.Min, p.Y.Max = yMin-0.5, yMax+0.5
	svg, err := svgOf(p, "plot "+class, title)
	return svg, drawn, err
}

// windows builds the offset tables around the first problems.
func (a *keyAnalysis) windows(b *builder, problems []int64) []windowView {
	var ws []windowView
	for _, c := range problems {
		from, to := max(0, c-windowRadius), c+windowRadius
		if n := len(ws); n > 0 && from <= ws[n-1].To+1 {
			ws[n-1].To = to
			continue
		}
		if len(ws) == windowsMax {
			break
		}
		ws = append(ws, windowView{From: from, To: to})
	}
	if len(ws) == 0 {
		return nil
	}
	problemSet := map[int64]bool{}
	for _, o := range problems {
		problemSet[o] = true
	}
	type cellKey struct{ offset, value int64 }
	cells := map[cellKey]*cellView{}
	get := func(o, v int64) *cellView {
		k := cellKey{o, v}
		c := cells[k]
		if c == nil {
			c = &cellView{Value: v, Class: a.class(o, v), AckedBy: -1, firstNs: math.MaxInt64}
			cells[k] = c
		}
		return c
	}
	in := func(o int64) bool {
		for _, w := range ws {
			if o >= w.From && o <= w.To {
				return true
			}
		}
		return false
	}
	for _, o := range a.obs {
		if !in(o.offset) {
			continue
		}
		c := get(o.offset, o.value)
		op := &b.ops[o.pos]
		if o.send {
			c.AckedBy = op.Index
			b.ref(int(o.pos), prioKey)
			continue
		}
		c.Reads++
		if o.okPoll {
			c.ReadsOK++
		}
		if o.tNs < c.firstNs {
			c.firstNs = o.tNs
			c.First = fmtSecs(o.tNs)
		}
		c.Last = fmtSecs(o.tNs)
		if len(c.Ops) < cellOpsMax {
			if !slices.Contains(c.Ops, op.Index) {
				c.Ops = append(c.Ops, op.Index)
				b.ref(int(o.pos), prioKey)
			}
		} else {
			c.MoreOps++
		}
		if op.Node != "" && len(c.Nodes) < cellNodesMax && !slices.Contains(c.Nodes, op.Node) {
			c.Nodes = append(c.Nodes, op.Node)
		}
	}
	// Acknowledged sends whose offset was never reported by anyone else
	// are cells too (a lost write has only its ack).
	for v, ak := range a.acked {
		if ak.offset >= 0 && in(ak.offset) {
			c := get(ak.offset, v)
			if c.AckedBy < 0 {
				c.AckedBy = b.ops[ak.pos].Index
				b.ref(int(ak.pos), prioKey)
			}
		}
	}
	byOffset := map[int64][]*cellView{}
	for k, c := range cells {
		byOffset[k.offset] = append(byOffset[k.offset], c)
	}
	for i := range ws {
		w := &ws[i]
		for o := w.From; o <= w.To; o++ {
			cs := byOffset[o]
			sort.Slice(cs, func(i, j int) bool { return cs[i].Value < cs[j].Value })
			w.Rows = append(w.Rows, offsetRow{Offset: o, Problem: problemSet[o], Cells: cs})
		}
	}
	return ws
}

// htmlID makes an element id from a prefix and any string: the string's
// safe characters, and a hash of it when some had to go, so that distinct
// strings never share an id.
func htmlID(prefix, s string) string {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('-')
	changed := s == ""
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
			changed = true
		}
		if b.Len() > 64 {
			changed = true
			break
		}
	}
	if changed {
		h := fnv.New32a()
		h.Write([]byte(s))
		fmt.Fprintf(&b, "-%08x", h.Sum32())
	}
	return b.String()
}

func fmtSecs(ns int64) string { return strconv.FormatFloat(float64(ns)/1e9, 'f', 3, 64) + " s" }

package report

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Plots are drawn with gonum.org/v1/plot and written as SVG by its vgsvg
// canvas, then inlined in the report so that it opens without a network or
// other files. vgsvg writes one element per glyph (about 100 bytes), so
// every scatter plot is thinned to a point budget first: points that fall
// in the same cell of a grid finer than the picture's resolution are drawn
// once (see thin), which leaves the picture as it would look with all of
// them.

// Plot sizes: wide enough for a time axis, short enough to see several at
// once.
const (
	plotWidth  = 8 * vg.Inch
	plotHeight = 3.2 * vg.Inch
)

// Point budgets per plot. Each drawn point costs about 100 bytes of HTML.
const (
	latencyPointsMax = 6000
	orderPointsMax   = 4000
	problemPointsMax = 2000 // anomalous points are never thinned, only capped
)

// Colours.
var (
	colOK      = color.RGBA{0x1f, 0x77, 0xb4, 0xff} // blue
	colInfo    = color.RGBA{0xff, 0x7f, 0x0e, 0xff} // orange
	colFail    = color.RGBA{0xd6, 0x27, 0x28, 0xff} // red
	colAck     = color.RGBA{0x2c, 0xa0, 0x2c, 0xff} // green
	colRead    = color.RGBA{0x9e, 0xc5, 0xe8, 0xff} // light blue
	colIncons  = color.RGBA{0xff, 0x7f, 0x0e, 0xff} // orange
	colDup     = color.RGBA{0x94, 0x67, 0xbd, 0xff} // purple
	colLost    = color.RGBA{0xd6, 0x27, 0x28, 0xff} // red
	quantColor = map[string]color.RGBA{
		"p50": {0x2c, 0xa0, 0x2c, 0xff},
		"p95": {0xff, 0x7f, 0x0e, 0xff},
		"p99": {0xd6, 0x27, 0x28, 0xff},
	}
	faultColors = map[string]color.NRGBA{
		"partition": {0xff, 0xa5, 0x00, 0x40},
		"kill":      {0xd6, 0x27, 0x28, 0x30},
		"pause":     {0x94, 0x67, 0xbd, 0x38},
		"power":     {0x1f, 0x1f, 0x1f, 0x30},
	}
	faultOther = color.NRGBA{0x7f, 0x7f, 0x7f, 0x30}
)

func typeColor(t int) color.Color {
	switch t {
	case tOK:
		return colOK
	case tInfo:
		return colInfo
	}
	return colFail
}

// fShapes draws each function with its own glyph.
var fShapes = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.PyramidGlyph{}, draw.BoxGlyph{}, draw.RingGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}}

func faultColor(kind string) color.Color {
	if c, ok := faultColors[kind]; ok {
		return c
	}
	return faultOther
}

// newPlot returns a plot in Liberation Sans (gonum's default is the serif
// face), with a grid, its legend at the top right (time plots leave room
// for it there: see timeHeadroom).
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	for _, st := range []*plot.Axis{&p.X, &p.Y} {
		st.Label.TextStyle.Font.Variant = "Sans"
		st.Tick.Label.Font.Variant = "Sans"
	}
	p.Title.TextStyle.Font.Variant = "Sans"
	p.Legend.TextStyle.Font.Variant = "Sans"
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Legend.Top = true
	p.Legend.XOffs = -vg.Points(4)
	p.Legend.ThumbnailWidth = vg.Points(12)
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{0xe4}
	g.Horizontal.Color = color.Gray{0xe4}
	p.Add(g)
	return p
}

// intTicks labels an axis of whole numbers (offsets) without decimals:
// gonum's default ticks print 25000.00.
type intTicks struct{}

func (intTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}

// svgOf draws p as an SVG element for inlining: the XML prelude and
// generator comment go, a class and an accessible title come in.
func svgOf(p *plot.Plot, class, title string) (template.HTML, error) {
	c := vgsvg.New(plotWidth, plotHeight)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return "", fmt.Errorf("report: drawing %s: %w", class, err)
	}
	s := b.String()
	i := strings.Index(s, "<svg")
	if i < 0 {
		return "", fmt.Errorf("report: drawing %s: vgsvg wrote no <svg> element", class)
	}
	s = s[i:]
	// Tag the element so pages, styles and tests can find it, and give it
	// an accessible name.
	s = strings.Replace(s, "<svg ", `<svg class="`+class+`" role="img" aria-label="`+template.HTMLEscapeString(title)+`" `, 1)
	return template.HTML(s), nil
}

// bands draws faults as shaded vertical bands over the whole height of
// the data area: a gonum Plotter, so that they share the plot's axes.
type bands struct {
	spans [][2]float64 // x intervals
	color color.Color
}

func (b *bands) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	for _, s := range b.spans {
		x0, x1 := trX(s[0]), trX(s[1])
		if x1-x0 < 1 {
			x1 = x0 + 1 // an instant is still a visible line
		}
		pts := []vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}}
		c.FillPolygon(b.color, c.ClipPolygonXY(pts))
	}
}

// DataRange widens only the x axis: the bands span whatever y the data
// has.
func (b *bands) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), math.Inf(-1)
	for _, s := range b.spans {
		xmin, xmax = math.Min(xmin, s[0]), math.Max(xmax, s[1])
	}
	return xmin, xmax, math.Inf(1), math.Inf(-1)
}

func (b *bands) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.color, c.ClipPolygonY([]vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y}}))
}

// addFaults draws the faults as bands, one colour and legend entry per
// kind, under whatever is added next.
func addFaults(p *plot.Plot, faults []fault) {
	byKind := map[string]*bands{}
	var kinds []string
	for _, f := range faults {
		b := byKind[f.Kind]
		if b == nil {
			b = &bands{color: faultColor(f.Kind)}
			byKind[f.Kind] = b
			kinds = append(kinds, f.Kind)
		}
		b.spans = append(b.spans, [2]float64{secs(f.StartNs), secs(f.EndNs)})
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		p.Add(byKind[k])
		p.Legend.Add("fault: "+k, byKind[k])
	}
}

func secs(ns int64) float64 { return float64(ns) / 1e9 }

// scatter adds a scatter series with one glyph shape and colour.
func scatter(p *plot.Plot, pts plotter.XYs, shape draw.GlyphDrawer, c color.Color, radius vg.Length, legend string) error {
	if len(pts) == 0 {
		return nil
	}
	s, err := plotter.NewScatter(pts)
	if err != nil {
		return err
	}
	s.GlyphStyle = draw.GlyphStyle{Color: c, Radius: radius, Shape: shape}
	p.Add(s)
	if legend != "" {
		p.Legend.Add(legend, s)
	}
	return nil
}

// line adds a line series.
func line(p *plot.Plot, pts plotter.XYs, c color.Color, dashes []vg.Length, legend string) error {
	if len(pts) == 0 {
		return nil
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1.2), Dashes: dashes}
	p.Add(l)
	if legend != "" {
		p.Legend.Add(legend, l)
	}
	return nil
}

// The starting resolution of thin: cells of about 2 x 2 points of the
// plot's data area, smaller than a glyph, so thinning changes little a
// reader can see.
const (
	thinCols = 300
	thinRows = 120
)

// thin keeps, of each series, the first point in every cell of a cols x
// rows grid over [x0,x1] x [y0,y1] (y in the plot's scale: pass log10 of
// y for log axes through fy), coarsening the grid until all series
// together have at most budget points. It returns how many points it kept.
func thin(series []plotter.XYs, x0, x1, y0, y1 float64, fy func(float64) float64, budget int) ([]plotter.XYs, int) {
	if fy == nil {
		fy = func(y float64) float64 { return y }
	}
	y0, y1 = fy(y0), fy(y1)
	total := 0
	for _, s := range series {
		total += len(s)
	}
	if total <= budget {
		return series, total
	}
	cols, rows := thinCols, thinRows
	for {
		out := make([]plotter.XYs, len(series))
		kept := 0
		for i, s := range series {
			seen := make(map[int]struct{}, min(len(s), cols*rows))
			for _, pt := range s {
				cx := cell(pt.X, x0, x1, cols)
				cy := cell(fy(pt.Y), y0, y1, rows)
				k := cx*rows + cy
				if _, dup := seen[k]; dup {
					continue
				}
				seen[k] = struct{}{}
				out[i] = append(out[i], pt)
			}
			kept += len(out[i])
		}
		if kept <= budget || cols <= 50 {
			return out, kept
		}
		cols, rows = cols*2/3, rows*2/3
	}
}

func cell(v, lo, hi float64, n int) int {
	if hi <= lo {
		return 0
	}
	c := int((v - lo) / (hi - lo) * float64(n))
	return max(0, min(n-1, c))
}

package report

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/plotter"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/histories"
	"github.com/garantia/garantia/histories/synth"
)

// plantedHistory generates a seeded synthetic history with nemesis events
// and, unless fault is "", one planted anomaly.
func plantedHistory(t testing.TB, fault synth.Fault, seed int64, ops int) []histories.Op {
	t.Helper()
	cfg := synth.DefaultConfig()
	cfg.Ops = ops
	cfg.Keys = 4
	cfg.NemesisInterval = 100 * time.Millisecond
	cfg.Seed = seed
	h, err := synth.Generate(cfg)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	if fault == "" {
		return h
	}
	h, _, err = synth.Inject(h, fault, rand.New(rand.NewPCG(uint64(seed), 0xfa17)))
	if err != nil {
		t.Fatalf("seed %d: inject %s: %v", seed, fault, err)
	}
	return h
}

// writeHistory writes ops as dir/history.jsonl.
func writeHistory(t testing.TB, dir string, ops []histories.Op) string {
	t.Helper()
	p := filepath.Join(dir, histories.HistoryFile)
	w, err := histories.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if err := w.Write(op); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkInto runs the checkers on ops and writes results.json into dir,
// visualizations into vizDir ("" for none).
func checkInto(t testing.TB, dir, vizDir string, ops []histories.Op) *checker.Results {
	t.Helper()
	r, err := checker.Check(context.Background(), ops, checker.Options{VisualizeDir: vizDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile(filepath.Join(dir, histories.ResultsFile)); err != nil {
		t.Fatal(err)
	}
	return r
}

// page is what a test needs to know of a report: it is parsed with a
// strict XML parser (the report is written as polyglot XHTML, so a
// malformed tag, an unescaped '<' or '&', or an unclosed element fails),
// and every id, class and internal link is collected.
type page struct {
	ids     map[string]*elem
	classes map[string]int // class -> elements that have it
	links   []string       // every href="#..." target
	hrefs   []string       // every other href
}

type elem struct {
	tag   string
	attrs map[string]string
	text  strings.Builder
}

func parsePage(t testing.TB, b []byte) *page {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	p := &page{ids: map[string]*elem{}, classes: map[string]int{}}
	var stack []*elem
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			line, col := d.InputPos()
			lines := strings.Split(string(b), "\n")
			ctx := ""
			if line-1 < len(lines) {
				ctx = lines[line-1]
				if len(ctx) > 300 {
					ctx = ctx[max(0, col-150):min(len(ctx), col+150)]
				}
			}
			t.Fatalf("the report does not parse at line %d col %d: %v\n%s", line, col, err, ctx)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &elem{tag: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			if id := e.attrs["id"]; id != "" {
				if _, dup := p.ids[id]; dup {
					t.Errorf("id %q is used twice", id)
				}
				p.ids[id] = e
			}
			for _, c := range strings.Fields(e.attrs["class"]) {
				p.classes[c]++
			}
			if h, ok := e.attrs["href"]; ok {
				if strings.HasPrefix(h, "#") {
					p.links = append(p.links, h[1:])
				} else {
					p.hrefs = append(p.hrefs, h)
				}
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			for _, e := range stack {
				if e.attrs["id"] != "" {
					e.text.Write(tok)
				}
			}
		}
	}
	return p
}

// checkLinks fails for every internal link without its target.
func (p *page) checkLinks(t testing.TB) {
	t.Helper()
	for _, l := range p.links {
		if _, ok := p.ids[l]; !ok {
			t.Errorf("link #%s has no target", l)
		}
	}
}

func (p *page) text(id string) string {
	if e := p.ids[id]; e != nil {
		return e.text.String()
	}
	return ""
}

// buildReport opens dir and writes its report, returning the run and the
// parsed page.
func buildReport(t testing.TB, dir string, opts Options) (*Run, *page, []byte) {
	t.Helper()
	run, err := Open(context.Background(), dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path, err := run.WriteFile(opts)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, FileName) {
		t.Fatalf("report written to %s, want %s", path, filepath.Join(dir, FileName))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return run, parsePage(t, b), b
}

type xy struct{ x, y float64 }

func toXYs(ss ...[]xy) []plotter.XYs {
	out := make([]plotter.XYs, len(ss))
	for i, s := range ss {
		for _, p := range s {
			out[i] = append(out[i], plotter.XY{X: p.x, Y: p.y})
		}
	}
	return out
}

func checkerOptions() checker.Options { return checker.Options{} }

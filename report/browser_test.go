package report

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories/synth"
)

// browserTimeout bounds one headless browser run.
const browserTimeout = 90 * time.Second

// chromium finds a headless-capable Chromium, or skips the test saying how
// to get one.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on PATH: the browser test of report.html is skipped (Debian: apt-get install chromium; .ci/run installs it)")
	return ""
}

// TestReportInBrowser opens a report in headless Chromium, with no network
// and from a file URL, and checks the DOM the browser built: the verdict,
// each plot, the anomaly and key sections, and that the script ran without
// breaking the page.
func TestReportInBrowser(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	ops := plantedHistory(t, synth.InconsistentOffsets, plantSeed, 4000)
	writeHistory(t, dir, ops)
	_, _, _ = buildReport(t, dir, Options{})

	dom := dumpDOM(t, bin, "file://"+filepath.Join(dir, FileName))
	verdict := regexp.MustCompile(`<span id="verdict"[^>]*data-verdict="false"[^>]*>INVALID</span>`)
	if !verdict.MatchString(dom) {
		t.Errorf("the browser's DOM has no invalid verdict element (seed %d); DOM starts:\n%.2000s", plantSeed, dom)
	}
	for _, want := range []string{
		`<svg class="plot-latency-raw"`, `<svg class="plot-latency-quantiles"`, `<svg class="plot-rate"`,
		`<svg class="plot plot-orders"`, `<svg class="plot plot-orders-zoom"`,
		`id="anomaly-inconsistent-offsets"`, `class="porcupine"`, `id="op-`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the browser's DOM lacks %s (seed %d)", want, plantSeed)
		}
	}
	// Glyphs are paths inside the plots: a plot the browser could not
	// parse would have none.
	if n := strings.Count(dom, "<path "); n < 1000 {
		t.Errorf("the browser's DOM has %d SVG paths; the plots did not load", n)
	}
}

// TestPorcupineOpensInBrowser: a link to a key's visualization opens it,
// and the page's script loads porcupine's page into the frame.
func TestPorcupineOpensInBrowser(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	ops := plantedHistory(t, synth.InconsistentOffsets, plantSeed, 4000)
	writeHistory(t, dir, ops)
	run, _, _ := buildReport(t, dir, Options{})
	var key string
	for k, kr := range run.Results.Linear.Keys {
		if kr.Valid == verdict.Invalid {
			key = k
		}
	}
	if key == "" {
		t.Fatalf("seed %d: no key is non-linearizable", plantSeed)
	}
	id := htmlID("linear", key) + "-viz"
	dom := dumpDOM(t, bin, "file://"+filepath.Join(dir, FileName)+"#"+id)
	tag := regexp.MustCompile(`<details class="porcupine" id="` + id + `" open="">[^<]*<summary>[\s\S]*?</summary>\s*(<iframe [^>]*>)`).FindStringSubmatch(dom)
	if tag == nil || !strings.Contains(tag[1], `data-loaded="1"`) || !regexp.MustCompile(`srcdoc="[^"]{1000,}"`).MatchString(tag[1]) {
		i := max(0, strings.Index(dom, id)-100)
		t.Errorf("the visualization of key %q did not open with porcupine's page in its frame (seed %d); around it:\n%.1500s", key, plantSeed, dom[i:])
	}
}

// dumpDOM loads url in headless Chromium, with a fresh profile and some
// virtual time for scripts, and returns the DOM it built.
func dumpDOM(t *testing.T, bin, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", url)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s --dump-dom %s: %v\n%s", bin, url, err, stderr)
	}
	return string(out)
}

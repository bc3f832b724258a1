package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/garantia/garantia/internal/atomicfile"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories/anomaly"
)

// JUnit XML, as CI systems read it (Jenkins, GitLab, GitHub test-report
// actions, Buildkite): a <testsuites> root holding one <testsuite> per
// run, one <testcase> per checker (queue, linearizable, stats). The set of
// test cases is the same for every run, so a CI's history of "queue" is
// comparable from run to run; which anomalies were found goes into the
// failure's message (a one-line summary: "lost-write ×3, unseen ×1") and
// its text (every anomaly with its description and examples). A
// testcase per anomaly type would appear only in failing runs, and CI
// systems would read it as a new test every time.
//
// A checker that could not decide (unknown) is by default an <error>: the
// JUnit meaning of error is "the test could not complete", which is what
// unknown is (a porcupine timeout, a cluster that never acknowledged a
// write), and every CI system counts errors as not passing, so an
// undecided run never looks green. Users who accept unknown can ask for
// <skipped> instead (JUnitOptions.Unknown, `--junit-unknown skipped`);
// they must then also accept exit code 2, e.g. `garantia check ... || [
// $? -eq 2 ]`.

// How an unknown verdict is written.
const (
	UnknownAsError   = "error"
	UnknownAsSkipped = "skipped"
)

// JUnitOptions configure JUnit output.
type JUnitOptions struct {
	// Unknown is UnknownAsError (the default when empty) or
	// UnknownAsSkipped.
	Unknown string
	// Summary, when set, is written as the suite's <system-out> (the
	// terminal summary, for CI systems that show it).
	Summary string
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string       `xml:"name,attr"`
	Classname string       `xml:"classname,attr"`
	Time      string       `xml:"time,attr"`
	Failure   *junitResult `xml:"failure,omitempty"`
	Error     *junitResult `xml:"error,omitempty"`
	Skipped   *junitResult `xml:"skipped,omitempty"`
}

type junitResult struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes results as JUnit XML to path, with the default
// options (unknown is an error), atomically. suiteName names the test
// suite: the test's name, or the history's path.
func WriteJUnit(path string, r *checker.Results, suiteName string) error {
	return WriteJUnitWith(path, r, suiteName, JUnitOptions{})
}

// WriteJUnitWith is WriteJUnit with options.
func WriteJUnitWith(path string, r *checker.Results, suiteName string, opts JUnitOptions) error {
	var buf bytes.Buffer
	if err := JUnit(&buf, r, suiteName, opts); err != nil {
		return err
	}
	return writeAtomic(path, buf.Bytes())
}

// JUnit writes results as JUnit XML to w.
func JUnit(w io.Writer, r *checker.Results, suiteName string, opts JUnitOptions) error {
	switch opts.Unknown {
	case "":
		opts.Unknown = UnknownAsError
	case UnknownAsError, UnknownAsSkipped:
	default:
		return fmt.Errorf("report: JUnit: unknown verdicts can be written as %q or %q, not %q", UnknownAsError, UnknownAsSkipped, opts.Unknown)
	}
	if r == nil || r.Queue == nil || r.Stats == nil {
		return fmt.Errorf("report: JUnit: the results have no queue or stats section")
	}
	suite := junitSuite{
		Name:       suiteName,
		Properties: []junitProperty{{"verdict", r.Valid.String()}},
		SystemOut:  opts.Summary,
	}
	add := func(c junitCase, ms int64) {
		c.Classname = suiteName
		c.Time = seconds(ms)
		suite.Cases = append(suite.Cases, c)
	}
	add(queueCase(r, opts), r.Timings.QueueMs)
	add(linearCase(r, opts), r.Timings.LinearMs)
	add(statsCase(r, opts), r.Timings.StatsMs)
	for _, c := range suite.Cases {
		switch {
		case c.Failure != nil:
			suite.Failures++
		case c.Error != nil:
			suite.Errors++
		case c.Skipped != nil:
			suite.Skipped++
		}
	}
	totalMs := r.Timings.QueueMs + r.Timings.LinearMs + r.Timings.StatsMs
	suite.Tests = len(suite.Cases)
	suite.Time = seconds(totalMs)
	doc := junitSuites{
		Name: "garantia", Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors,
		Skipped: suite.Skipped, Time: suite.Time, Suites: []junitSuite{suite},
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("report: JUnit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func seconds(ms int64) string { return fmt.Sprintf("%.3f", float64(ms)/1000) }

// undecided is the result element of a checker whose verdict is unknown.
func undecided(c *junitCase, opts JUnitOptions, msg, text string) {
	res := &junitResult{Message: msg, Type: "unknown", Text: text}
	if opts.Unknown == UnknownAsSkipped {
		c.Skipped = res
	} else {
		c.Error = res
	}
}

func queueCase(r *checker.Results, opts JUnitOptions) junitCase {
	q := r.Queue
	c := junitCase{Name: "queue"}
	var bad, allowed, inconclusive []string
	for _, n := range q.AnomalyTypes {
		s := fmt.Sprintf("%s ×%d", n, q.Anomalies[n].Count)
		switch {
		case slices.Contains(q.AllowedTypes, n):
			allowed = append(allowed, s)
		case slices.Contains(q.InconclusiveTypes, n):
			inconclusive = append(inconclusive, s)
		default:
			bad = append(bad, s)
		}
	}
	var text strings.Builder
	names := slices.Clone(q.AnomalyTypes)
	sort.SliceStable(names, func(i, j int) bool {
		return !slices.Contains(q.AllowedTypes, names[i]) && slices.Contains(q.AllowedTypes, names[j])
	})
	for _, n := range names {
		a := q.Anomalies[n]
		tag := qualifier(a)
		fmt.Fprintf(&text, "%s ×%d%s: %s\n", n, a.Count, tag, describe(n))
		for _, ex := range a.Examples {
			fmt.Fprintf(&text, "  - %s\n", exampleLine(ex))
		}
		if more := a.Count - len(a.Examples); more > 0 {
			fmt.Fprintf(&text, "  ... and %d more\n", more)
		}
	}
	cn := q.Counts
	fmt.Fprintf(&text, "sends: %d sent, %d acknowledged, %d failed, %d indeterminate; %d values read; %d lost, %d unseen, %d duplicated\n",
		cn.Sent, cn.Acknowledged, cn.Failed, cn.Indeterminate, cn.Read, cn.Lost, cn.Unseen, cn.Duplicated)
	switch q.Valid {
	case verdict.Invalid:
		msg := strings.Join(bad, ", ")
		if len(allowed) > 0 {
			msg += " (also allowed: " + strings.Join(allowed, ", ") + ")"
		}
		c.Failure = &junitResult{Message: msg, Type: "invalid", Text: text.String()}
	case verdict.Unknown:
		why := "unknown: nothing was acknowledged and nothing was read, which proves nothing"
		if len(inconclusive) > 0 {
			why = "unknown: " + strings.Join(inconclusive, ", ") + " inconclusive: " + q.Drain.Explanation
		}
		undecided(&c, opts, why, text.String())
	}
	return c
}

func linearCase(r *checker.Results, opts JUnitOptions) junitCase {
	c := junitCase{Name: "linearizable"}
	lr := r.Linear
	if lr == nil {
		c.Skipped = &junitResult{Message: "the linearizability check was not run"}
		return c
	}
	keys := make([]string, 0, len(lr.Keys))
	for k := range lr.Keys {
		keys = append(keys, k)
	}
	sortKeys(keys)
	var text strings.Builder
	for _, k := range keys {
		kr := lr.Keys[k]
		fmt.Fprintf(&text, "key %s: %s: %s\n", k, kr.Valid, kr.Reason)
		if kr.Visualization != "" {
			fmt.Fprintf(&text, "  visualization: %s\n", filepath.Base(kr.Visualization))
		}
	}
	switch lr.Valid {
	case verdict.Invalid:
		c.Failure = &junitResult{Type: "invalid", Text: text.String(),
			Message: fmt.Sprintf("%d of %d keys not linearizable", lr.KeysInvalid, lr.KeysChecked)}
	case verdict.Unknown:
		undecided(&c, opts, fmt.Sprintf("unknown: %d of %d keys undecided (time budget %d ms)", lr.KeysUnknown, lr.KeysChecked, lr.TimeoutMs), text.String())
	}
	return c
}

func statsCase(r *checker.Results, opts JUnitOptions) junitCase {
	c := junitCase{Name: "stats"}
	st := r.Stats
	if st.Valid != verdict.Valid {
		undecided(&c, opts, "unknown: no client operation completed ok",
			fmt.Sprintf("%d events: %d client ok, %d info, %d fail\n", st.Ops, st.Client.OK, st.Client.Info, st.Client.Fail))
	}
	return c
}

// describe is an anomaly's one-line description, or "" for names the
// queue checker does not know.
func describe(name string) string { return anomaly.Description(name) }

// writeAtomic writes b to path so that a reader never sees half a file.
func writeAtomic(path string, b []byte) error {
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// WriteJUnitError writes a JUnit file holding one test case, "check", in
// error with msg: for a run that produced no results (a harness failure, a
// malformed history), so that CI shows why instead of a missing file.
func WriteJUnitError(path, suiteName, msg string) error {
	doc := junitSuites{
		Name: "garantia", Tests: 1, Errors: 1, Time: seconds(0),
		Suites: []junitSuite{{
			Name: suiteName, Tests: 1, Errors: 1, Time: seconds(0),
			Cases: []junitCase{{Name: "check", Classname: suiteName, Time: seconds(0),
				Error: &junitResult{Message: msg, Type: "harness"}}},
		}},
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("report: JUnit: %w", err)
	}
	buf.WriteString("\n")
	return writeAtomic(path, buf.Bytes())
}

package report

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/garantia/garantia/checker"
	"github.com/garantia/garantia/checker/linear"
	"github.com/garantia/garantia/checker/verdict"
	"github.com/garantia/garantia/histories/synth"
)

// The JUnit elements and attributes CI systems read (Jenkins' junit
// plugin, GitLab's unit test reports, GitHub test-report actions), decoded
// independently of the encoder's types.
type ciSuites struct {
	XMLName  xml.Name  `xml:"testsuites"`
	Tests    int       `xml:"tests,attr"`
	Failures int       `xml:"failures,attr"`
	Errors   int       `xml:"errors,attr"`
	Skipped  int       `xml:"skipped,attr"`
	Suites   []ciSuite `xml:"testsuite"`
}

type ciSuite struct {
	Name     string   `xml:"name,attr"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Time     string   `xml:"time,attr"`
	Cases    []ciCase `xml:"testcase"`
	Out      string   `xml:"system-out"`
}

type ciCase struct {
	Name      string    `xml:"name,attr"`
	Classname string    `xml:"classname,attr"`
	Time      string    `xml:"time,attr"`
	Failure   *ciResult `xml:"failure"`
	Error     *ciResult `xml:"error"`
	Skipped   *ciResult `xml:"skipped"`
}

type ciResult struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func decodeJUnit(t *testing.T, b []byte) ciSuites {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var s ciSuites
	if err := d.Decode(&s); err != nil {
		t.Fatalf("JUnit XML does not decode: %v\n%s", err, b)
	}
	// The counts on both levels must agree with the test cases.
	if len(s.Suites) != 1 {
		t.Fatalf("want one testsuite, got %d", len(s.Suites))
	}
	su := s.Suites[0]
	var f, e, sk int
	for _, c := range su.Cases {
		n := 0
		if c.Failure != nil {
			f++
			n++
		}
		if c.Error != nil {
			e++
			n++
		}
		if c.Skipped != nil {
			sk++
			n++
		}
		if n > 1 {
			t.Errorf("test case %s has more than one outcome", c.Name)
		}
		if c.Classname == "" || c.Time == "" {
			t.Errorf("test case %s lacks classname or time", c.Name)
		}
	}
	if su.Tests != len(su.Cases) || su.Failures != f || su.Errors != e || su.Skipped != sk {
		t.Errorf("testsuite counts tests=%d failures=%d errors=%d skipped=%d, cases say %d %d %d %d",
			su.Tests, su.Failures, su.Errors, su.Skipped, len(su.Cases), f, e, sk)
	}
	if s.Tests != su.Tests || s.Failures != su.Failures || s.Errors != su.Errors || s.Skipped != su.Skipped {
		t.Errorf("testsuites counts differ from the testsuite's")
	}
	return s
}

func caseNamed(s ciSuites, name string) ciCase {
	for _, c := range s.Suites[0].Cases {
		if c.Name == name {
			return c
		}
	}
	return ciCase{Name: "<missing " + name + ">"}
}

func TestJUnit(t *testing.T) {
	check := func(fault synth.Fault, opts checker.Options) *checker.Results {
		r, err := checker.Check(context.Background(), plantedHistory(t, fault, plantSeed, 3000), opts)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	valid := check("", checker.Options{})
	lost := check(synth.LostWrite, checker.Options{})
	noLinear := check("", checker.Options{SkipLinear: true})
	unknown := check("", checker.Options{})
	unknown.Linear = &linear.Result{Valid: verdict.Unknown, KeysChecked: 4, KeysValid: 3, KeysUnknown: 1,
		Keys: map[string]*linear.KeyResult{"2": {Valid: verdict.Unknown, Reason: "unknown: the time budget ran out"}}}
	unknown.Valid = verdict.Unknown

	type outcome struct{ queue, linear, stats string } // "", failure, error, skipped
	cases := []struct {
		name    string
		r       *checker.Results
		opts    JUnitOptions
		want    outcome
		message string // in the failing case's message
		text    string // in the failing case's text
	}{
		{"valid", valid, JUnitOptions{}, outcome{}, "", ""},
		{"lost write", lost, JUnitOptions{}, outcome{queue: "failure"}, "lost-write ×1", "was never read"},
		{"linearizability not run", noLinear, JUnitOptions{}, outcome{linear: "skipped"}, "", ""},
		{"unknown is an error by default", unknown, JUnitOptions{}, outcome{linear: "error"}, "1 of 4 keys undecided", "time budget ran out"},
		{"unknown as skipped", unknown, JUnitOptions{Unknown: UnknownAsSkipped}, outcome{linear: "skipped"}, "1 of 4 keys undecided", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "junit.xml")
			if err := WriteJUnitWith(path, c.r, "suite-x", c.opts); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s := decodeJUnit(t, b)
			if s.Suites[0].Name != "suite-x" || len(s.Suites[0].Cases) != 3 {
				t.Fatalf("want suite-x with 3 test cases, got %q with %d", s.Suites[0].Name, len(s.Suites[0].Cases))
			}
			for name, want := range map[string]string{"queue": c.want.queue, "linearizable": c.want.linear, "stats": c.want.stats} {
				tc := caseNamed(s, name)
				got, res := "", (*ciResult)(nil)
				switch {
				case tc.Failure != nil:
					got, res = "failure", tc.Failure
				case tc.Error != nil:
					got, res = "error", tc.Error
				case tc.Skipped != nil:
					got, res = "skipped", tc.Skipped
				}
				if tc.Name != name || got != want {
					t.Errorf("test case %s: outcome %q, want %q", name, got, want)
					continue
				}
				if want != "" && want != "skipped" || want == "skipped" && c.message != "" {
					if !strings.Contains(res.Message, c.message) || !strings.Contains(res.Text, c.text) {
						t.Errorf("test case %s: message %q / text %q, want %q / %q", name, res.Message, res.Text, c.message, c.text)
					}
				}
			}
		})
	}
	if err := WriteJUnitWith(filepath.Join(t.TempDir(), "j.xml"), valid, "s", JUnitOptions{Unknown: "pass"}); err == nil {
		t.Error("want an error for an unknown --junit-unknown mode")
	}
}

func TestWriteJUnitError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := WriteJUnitError(path, "s", "garantia check did not produce results"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := decodeJUnit(t, b)
	if c := caseNamed(s, "check"); c.Error == nil || !strings.Contains(c.Error.Message, "did not produce") {
		t.Errorf("want one erroring test case, got %+v", s.Suites[0].Cases)
	}
}

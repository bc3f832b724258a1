package report

import (
	"testing"

	"github.com/garantia/garantia/histories"
)

// Fault targets read as people write them, not as Go's JSON encoder
// escapes them.
func TestHumanJSON(t *testing.T) {
	cases := map[string]string{
		`"majority"`: `majority`,
		`{"target":"majorities-ring","cut":["n1-\u003en2","n2-\u003en1"],"nodes":["n1"]}`: `target: majorities-ring; cut: n1→n2, n2→n1; nodes: n1`,
		`["n1",["n2","n3"],{"a":1.5,"b":null,"c":true}]`:                                  `n1, [n2, n3], {a: 1.5; b: null; c: true}`,
		`{"n1":"killed"}`:                        `n1: killed`,
		`{"leader":{"partition":0,"node":"n2"}}`: `leader: {partition: 0; node: n2}`,
		`not json`:                               `not json`,
	}
	for raw, want := range cases {
		if got := humanJSON([]byte(raw)); got != want {
			t.Errorf("humanJSON(%s) = %q, want %q", raw, got, want)
		}
	}
	ops := []histories.Op{
		{Index: 0, Time: 10, Process: histories.NemesisProcess, Type: histories.Info, F: "start-partition", Value: histories.Value{Raw: []byte(`{"cut":["n1-\u003en2"]}`)}},
		{Index: 1, Time: 20, Process: histories.NemesisProcess, Type: histories.Info, F: "stop-partition"},
	}
	faults := extractFaults(ops, 30)
	if len(faults) != 1 || faults[0].Label != "start-partition cut: n1→n2" {
		t.Errorf("faults %+v, want one labelled start-partition cut: n1→n2", faults)
	}
}

func TestUnescapeHTML(t *testing.T) {
	cases := map[string]string{
		`["send","k",1]`:              `["send","k",1]`,
		`"n1-\u003en2 \u0026 \u003c"`: `"n1->n2 & <"`,
		`"a\\u003e"`:                  `"a\\u003e"`, // an escaped backslash, then text
		`"\u00e9"`:                    `"\u00e9"`,
	}
	for raw, want := range cases {
		if got := unescapeHTML([]byte(raw)); got != want {
			t.Errorf("unescapeHTML(%s) = %s, want %s", raw, got, want)
		}
	}
}

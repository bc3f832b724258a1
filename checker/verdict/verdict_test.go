package verdict

import (
	"encoding/json"
	"testing"
)

func TestCompose(t *testing.T) {
	cases := []struct {
		in   []Verdict
		want Verdict
	}{
		{nil, Valid},
		{[]Verdict{Valid, Valid}, Valid},
		{[]Verdict{Valid, Unknown}, Unknown},
		{[]Verdict{Unknown, Invalid, Valid}, Invalid},
		{[]Verdict{Invalid, Unknown}, Invalid},
	}
	for _, c := range cases {
		if got := Compose(c.in...); got != c.want {
			t.Errorf("Compose(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, v := range []Verdict{Valid, Invalid, Unknown} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var back Verdict
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back != v {
			t.Errorf("%v round-tripped to %v via %s", v, back, b)
		}
	}
	var v Verdict
	if err := json.Unmarshal([]byte(`"maybe"`), &v); err == nil {
		t.Error("want an error for \"maybe\"")
	}
}

func TestZeroIsUnknown(t *testing.T) {
	var v Verdict
	if v != Unknown || v.ExitCode() != ExitUnknown {
		t.Fatalf("zero verdict must be unknown with exit %d", ExitUnknown)
	}
}

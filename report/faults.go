package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/garantia/garantia/histories"
)

// fault is one nemesis fault over time: from the moment it was injected to
// the moment it was healed (or the end of the history).
type fault struct {
	// Kind groups faults for colours: partition, kill, pause, power, or the
	// nemesis function itself for faults this file does not know.
	Kind string
	// Label says what it did, with its target: `kill ["n1"]`.
	Label string
	// StartNs and EndNs bound it, in history time.
	StartNs, EndNs int64
	// Healed is false when no heal was recorded: EndNs is then the end of
	// the history.
	Healed bool
	// StartPos and EndPos are the positions of the events that opened and
	// closed it (EndPos -1 when never healed).
	StartPos, EndPos int
}

// nemesisAction is one nemesis operation: its first event and, when the
// next nemesis event has the same f, its completion.
type nemesisAction struct {
	f          string
	first, end int // positions
}

// healOf maps a fault's nemesis function to the function that heals it;
// start-X is healed by stop-X (Jepsen's convention) besides these.
var healOf = map[string]string{
	"kill":      "start",
	"pause":     "resume",
	"partition": "heal",
	"isolate":   "heal",
	"crash":     "restart",
	"power-off": "power-on",
}

// faultKind names the colour group of a fault's nemesis function.
func faultKind(f string) string {
	switch {
	case strings.Contains(f, "partition") || f == "isolate":
		return "partition"
	case f == "kill" || f == "crash":
		return "kill"
	case f == "pause":
		return "pause"
	case f == "power-off":
		return "power"
	}
	return strings.TrimPrefix(f, "start-")
}

// extractFaults turns the nemesis events of a history into faults. The
// nemesis runs one action at a time, recording it as two events (Jepsen
// records an invocation and an info completion; our runner and synth two
// info events) or one; an action is its first event and, when the next
// nemesis event has the same f, that one too. An action whose f opens a
// fault (kill, pause, start-*) starts one; the action that heals it (start,
// resume, stop-*) ends the oldest open fault it heals. Actions that neither
// open nor heal anything are drawn as instants.
func extractFaults(ops []histories.Op, endNs int64) []fault {
	var actions []nemesisAction
	for i := range ops {
		op := &ops[i]
		if op.IsClient() {
			continue
		}
		if n := len(actions); n > 0 {
			last := &actions[n-1]
			if last.end == last.first && last.f == op.F && op.Type != histories.Invoke {
				last.end = i
				continue
			}
		}
		actions = append(actions, nemesisAction{f: op.F, first: i, end: i})
	}

	var faults []fault
	open := map[string][]int{} // heal f -> indexes into faults, oldest first
	for _, a := range actions {
		if idxs := open[a.f]; len(idxs) > 0 {
			ft := &faults[idxs[0]]
			ft.EndNs, ft.EndPos, ft.Healed = ops[a.end].Time, a.end, true
			open[a.f] = idxs[1:]
			continue
		}
		heal := healOf[a.f]
		if heal == "" && strings.HasPrefix(a.f, "start-") {
			heal = "stop-" + strings.TrimPrefix(a.f, "start-")
		}
		ft := fault{
			Kind:     faultKind(a.f),
			Label:    actionLabel(ops, a),
			StartNs:  ops[a.first].Time,
			EndNs:    ops[a.end].Time,
			StartPos: a.first,
			EndPos:   a.end,
			Healed:   true,
		}
		if heal != "" {
			ft.EndNs, ft.EndPos, ft.Healed = endNs, -1, false
			open[heal] = append(open[heal], len(faults))
		}
		faults = append(faults, ft)
	}
	return faults
}

// labelValueMax bounds the nemesis value shown in a fault's label.
const labelValueMax = 60

// actionLabel is the action's f and value (of its completion when it has
// one: it says what was done, `{"n1":"killed"}`).
func actionLabel(ops []histories.Op, a nemesisAction) string {
	v := ops[a.end].Value.Raw
	if len(v) == 0 {
		v = ops[a.first].Value.Raw
	}
	s := a.f
	if len(v) > 0 && string(v) != "null" {
		s += " " + truncate(humanJSON(v), labelValueMax)
	}
	if e := ops[a.end].Error; e != "" {
		s += " (error: " + truncate(e, labelValueMax) + ")"
	}
	return s
}

// humanJSON writes a nemesis value as people write it rather than as
// JSON escapes it: strings bare, with "->" as an arrow (n1→n2, not
// "n1-\u003en2"), lists as "a, b", objects as "key: value; key: value" in
// their order. A value that does not parse is shown as it is.
func humanJSON(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var b strings.Builder
	if err := writeHuman(&b, dec, whole); err != nil {
		return string(raw)
	}
	return b.String()
}

// Where writeHuman writes a value: lists are bare as the whole value or a
// field's, objects only as the whole value.
const (
	whole = iota
	field
	item
)

func writeHuman(b *strings.Builder, dec *json.Decoder, at int) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := t.(type) {
	case json.Delim:
		if t == '[' {
			if at == item {
				b.WriteByte('[')
			}
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b.WriteString(", ")
				}
				if err := writeHuman(b, dec, item); err != nil {
					return err
				}
			}
			if at == item {
				b.WriteByte(']')
			}
		} else {
			nested := at != whole
			if nested {
				b.WriteByte('{')
			}
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b.WriteString("; ")
				}
				k, err := dec.Token()
				if err != nil {
					return err
				}
				fmt.Fprintf(b, "%v: ", k)
				if err := writeHuman(b, dec, field); err != nil {
					return err
				}
			}
			if nested {
				b.WriteByte('}')
			}
		}
		_, err := dec.Token() // the closing bracket
		return err
	case string:
		b.WriteString(strings.ReplaceAll(t, "->", "→"))
	case nil:
		b.WriteString("null")
	default:
		fmt.Fprint(b, t)
	}
	return nil
}

// unescapeHTML undoes the HTML escapes of Go's JSON encoder (\u003c,
// \u003e, \u0026 for <, >, &), which a page does not need (its template
// escapes what it shows) and which make "n1->n2" read "n1-\u003en2". The
// JSON stays valid and means the same.
func unescapeHTML(raw []byte) string {
	if !bytes.Contains(raw, []byte(`\u00`)) {
		return string(raw)
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 >= len(raw) {
			out = append(out, raw[i])
			continue
		}
		if raw[i+1] == 'u' && i+6 <= len(raw) {
			switch string(raw[i+2 : i+6]) {
			case "003c", "003C":
				out, i = append(out, '<'), i+5
				continue
			case "003e", "003E":
				out, i = append(out, '>'), i+5
				continue
			case "0026":
				out, i = append(out, '&'), i+5
				continue
			}
		}
		out, i = append(out, raw[i], raw[i+1]), i+1 // another escape, kept whole
	}
	return string(out)
}

// truncate shortens s to at most n bytes (on a rune boundary), marking the
// cut with an ellipsis.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// faultsDuring returns the faults that overlap [from, to] (ns); when none
// does, the last one that ended before from, with before set.
func faultsDuring(faults []fault, from, to int64) (during []fault, before *fault) {
	for i := range faults {
		f := &faults[i]
		if f.StartNs <= to && f.EndNs >= from {
			during = append(during, *f)
		}
	}
	if len(during) > 0 {
		return during, nil
	}
	for i := range faults {
		f := &faults[i]
		if f.EndNs < from && (before == nil || f.EndNs > before.EndNs) {
			before = f
		}
	}
	return nil, before
}

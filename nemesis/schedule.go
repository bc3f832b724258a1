package nemesis

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/garantia/garantia/histories"
)

// Step is one fault of a schedule.
type Step struct {
	// At is when the fault starts, from the start of the workload.
	At time.Duration
	// Kind and Target say what the fault is.
	Kind   Kind
	Target Target
	// Behavior is the packet behaviour of a packet fault ("latency",
	// "loss"); "" for other kinds.
	Behavior string
	// Duration is how long the fault stays before its heal.
	Duration time.Duration
	// Pick seeds the choices made when the step runs: which node is
	// "one", how the nodes are shuffled before a split, which partition's
	// leader is "leader".
	Pick uint64
}

// End is when the step's fault is healed.
func (s Step) End() time.Duration { return s.At + s.Duration }

func (s Step) String() string {
	what := string(s.Kind) + " " + string(s.Target)
	if s.Behavior != "" {
		what += " " + s.Behavior
	}
	return fmt.Sprintf("%s at %s for %s", what, s.At.Round(time.Millisecond), s.Duration.Round(time.Millisecond))
}

// Stored is the step as test.json stores it: durations in milliseconds.
func (s Step) Stored() histories.FaultStep {
	return histories.FaultStep{AtMs: s.At.Milliseconds(), Kind: string(s.Kind), Target: string(s.Target),
		Behavior: s.Behavior, DurationMs: s.Duration.Milliseconds(), Pick: s.Pick}
}

// MarshalJSON writes the step as Stored.
func (s Step) MarshalJSON() ([]byte, error) { return json.Marshal(s.Stored()) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (s *Step) UnmarshalJSON(b []byte) error {
	var j histories.FaultStep
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Step{At: time.Duration(j.AtMs) * time.Millisecond, Kind: Kind(j.Kind), Target: Target(j.Target),
		Behavior: j.Behavior, Duration: time.Duration(j.DurationMs) * time.Millisecond, Pick: j.Pick}
	return nil
}

// scheduleStream is the PCG stream of schedules, apart from the
// workers' streams (0 .. concurrency-1) of the same seed.
const scheduleStream = 0x6e656d65736973 // "nemesis"

// NewSchedule draws the faults of a run from seed: specs (resolved, see
// Resolve) say which kinds and targets to draw from, interval spaces
// them, and only steps starting before limit are drawn. The result
// depends on nothing else: identical arguments give identical schedules.
//
// Each step comes a gap after the previous one and lasts a duration, both
// drawn uniformly from [interval/2, 3*interval/2]. A step's kind is drawn
// among the kinds whose resource (processes for kill and pause, the
// network for partition and packet) is free at that time, so that two
// faults on one resource never overlap; when none is free the slot is
// skipped.
func NewSchedule(seed int64, specs []Spec, interval, limit time.Duration) []Step {
	if len(specs) == 0 || interval <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed), scheduleStream))
	// Whole milliseconds, so that the schedule in test.json (in ms) is
	// exactly the one that ran.
	span := func() time.Duration {
		return (interval/2 + time.Duration(rng.Int64N(int64(interval)+1))).Truncate(time.Millisecond)
	}
	busyUntil := map[resource]time.Duration{}
	var steps []Step
	for t := span(); t < limit; t += span() {
		var free []Spec
		for _, s := range specs {
			if f, ok := faultOf(s.Kind); ok && busyUntil[f.Resource()] <= t && len(s.Targets) > 0 {
				free = append(free, s)
			}
		}
		if len(free) == 0 {
			continue
		}
		s := free[rng.IntN(len(free))]
		f, _ := faultOf(s.Kind)
		step := Step{At: t, Kind: s.Kind, Target: s.Targets[rng.IntN(len(s.Targets))]}
		if bs := f.Behaviors(); len(bs) > 0 {
			step.Behavior = bs[rng.IntN(len(bs))]
		}
		step.Duration = span()
		step.Pick = rng.Uint64()
		busyUntil[f.Resource()] = step.End()
		steps = append(steps, step)
	}
	return steps
}

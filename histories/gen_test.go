package histories

import (
	"fmt"
	"math/rand/v2"
)

// genHistory makes a plausible queue-workload history of about n events
// from seed: concurrent processes sending and polling a few keys, some
// sends acknowledged without an offset, some ops failing or ending
// indeterminate (retiring their process), and nemesis events between them.
// It exercises every value form, and commits and fetches of a group's
// offsets and rebalance logs. Same seed, same history.
func genHistory(seed uint64, n int) []Op {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const procs = 10
	const keys = 8
	type pending struct {
		open bool
		op   Op
	}
	var (
		ops     []Op
		state   [procs]pending
		procID  [procs]int64
		nextVal int64 = 1
		offsets [keys]int64
		logs    [keys][]Record
		now     int64
		nextPid int64 = procs
	)
	for i := range procID {
		procID[i] = int64(i)
	}
	emit := func(op Op) {
		op.Index = int64(len(ops))
		now += 1 + rng.Int64N(50_000)
		op.Time = now
		ops = append(ops, op)
	}
	for len(ops) < n {
		if rng.IntN(200) == 0 {
			fs := []string{"start-partition", "stop-partition", "kill", "start", "pause", "resume"}
			values := []string{`"majority"`, `{"n1":["n2","n3"],"n2":["n1"]}`, `["n1","n2"]`, `null`, `{"n3":"killed"}`, `[["isolated",{"n1":["n2"]}]]`}
			emit(Op{Process: NemesisProcess, Type: Info, F: fs[rng.IntN(len(fs))], Value: rawValue(values[rng.IntN(len(values))])})
			continue
		}
		p := rng.IntN(procs)
		st := &state[p]
		if !st.open {
			var op Op
			op.Process, op.Type = procID[p], Invoke
			switch r := rng.IntN(22); {
			case r == 20:
				op.F, op.Group = FCommit, "g"
				op.Value.Offsets = []KeyOffset{{fmt.Sprint(rng.IntN(keys)), rng.Int64N(100)}}
			case r == 21:
				op.F, op.Group = FCommitted, "g"
				op.Value.Keys = []string{"0", "1", "2"}
			case r < 10:
				op.F = FSend
				k := rng.IntN(3) + 1
				for range k {
					op.Value.Mops = append(op.Value.Mops, Mop{F: MopSend, Key: fmt.Sprint(rng.IntN(keys)), Value: nextVal, Offset: OffsetPending})
					nextVal++
				}
			case r < 19:
				op.F = FPoll
				op.Value.Mops = []Mop{{F: MopPoll}}
			default:
				op.F = FAssign
				op.Value.Keys = []string{fmt.Sprint(rng.IntN(keys)), fmt.Sprint(rng.IntN(keys))}
			}
			st.open, st.op = true, op
			emit(op)
			continue
		}
		op := st.op
		op.Node = fmt.Sprintf("n%d", 1+rng.IntN(3))
		switch r := rng.IntN(100); {
		case r < 90:
			op.Type = OK
		case r < 95:
			op.Type = Fail
			op.Error = "NOT_ENOUGH_REPLICAS: the in-sync replica set is too small"
		default:
			op.Type = Info
			op.Error = "timeout"
		}
		switch op.F {
		case FSend:
			mops := make([]Mop, len(op.Value.Mops))
			copy(mops, op.Value.Mops)
			if op.Type == OK {
				for i := range mops {
					k := mops[i].Key[0] - '0'
					if rng.IntN(20) == 0 {
						mops[i].Offset = OffsetUnknown
					} else {
						mops[i].Offset = offsets[k]
					}
					logs[k] = append(logs[k], Record{Offset: offsets[k], Value: mops[i].Value})
					offsets[k]++
				}
			}
			op.Value.Mops = mops
		case FPoll:
			if op.Type == OK {
				polls := map[string][]Record{}
				for range 1 + rng.IntN(3) {
					k := rng.IntN(keys)
					if len(logs[k]) == 0 {
						continue
					}
					from := rng.IntN(len(logs[k]))
					to := min(len(logs[k]), from+1+rng.IntN(6))
					polls[fmt.Sprint(k)] = logs[k][from:to]
				}
				op.Value.Mops = []Mop{{F: MopPoll, Polls: polls}}
				if rng.IntN(10) == 0 {
					op.RebalanceLog = []Rebalance{{Type: RebalanceRevoked, Keys: []string{"1"}}, {Type: RebalanceAssigned, Keys: []string{"1", "2"}}}
				}
			}
		case FCommitted:
			if op.Type == OK {
				op.Value = Value{Offsets: []KeyOffset{{"0", rng.Int64N(100)}, {"1", OffsetUnknown}, {"2", 7}}}
			}
		}
		emit(op)
		st.open = false
		if op.Type == Info { // Jepsen's rule: an indeterminate op retires its process
			procID[p] = nextPid
			nextPid++
		}
	}
	return ops
}

func rawValue(s string) Value {
	if s == "null" {
		return Value{}
	}
	return Value{Raw: []byte(s)}
}

package histories

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestPair(t *testing.T) {
	inv := func(p int64, f string) Op { return Op{Process: p, Type: Invoke, F: f} }
	done := func(p int64, ty Type, f string) Op { return Op{Process: p, Type: ty, F: f} }
	tests := []struct {
		name           string
		ops            []Op
		wantCompletion []int
		wantInvocation []int
		wantErrs       []error
		wantMsg        string
	}{
		{
			name:           "interleaved processes",
			ops:            []Op{inv(0, FSend), inv(1, FPoll), done(1, OK, FPoll), done(0, Info, FSend), inv(2, FSend)},
			wantCompletion: []int{3, 2, -1, -1, -1},
			wantInvocation: []int{-1, -1, 1, 0, -1},
		},
		{
			name:           "nemesis: standalone info and invoke/info pairs",
			ops:            []Op{done(-1, Info, "kill"), inv(-1, "start-partition"), inv(0, FPoll), done(-1, Info, "start-partition"), done(0, Fail, FPoll), inv(-1, "pause")},
			wantCompletion: []int{-1, 3, 4, -1, -1, -1},
			wantInvocation: []int{-1, -1, -1, 1, 2, -1},
		},
		{
			name:           "double invoke",
			ops:            []Op{inv(0, FSend), inv(0, FPoll), done(0, OK, FPoll)},
			wantCompletion: []int{-1, 2, -1},
			wantInvocation: []int{-1, -1, 1},
			wantErrs:       []error{ErrDoubleInvoke},
			wantMsg:        `op 1 (index 1, process 0, invoke poll): process 0 invokes poll while its send invoked at index 0 has not completed: a process runs one operation at a time`,
		},
		{
			name:           "completion without invocation",
			ops:            []Op{done(3, OK, FSend), inv(3, FSend), done(3, OK, FSend), done(3, Info, FSend)},
			wantCompletion: []int{-1, 2, -1, -1},
			wantInvocation: []int{-1, -1, 1, -1},
			wantErrs:       []error{ErrOrphanCompletion, ErrOrphanCompletion},
			wantMsg:        `op 0 (index 0, process 3, ok send): ok send completes nothing: process 3 has no operation open`,
		},
		{
			name:           "completion of another f",
			ops:            []Op{inv(0, FSend), done(0, OK, FPoll)},
			wantCompletion: []int{1, -1},
			wantInvocation: []int{-1, 0},
			wantErrs:       []error{ErrCompletionF},
			wantMsg:        `op 1 (index 1, process 0, ok poll): ok poll completes the send process 0 invoked at index 0: a completion must have its invocation's f`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.ops {
				tt.ops[i].Index = int64(i)
			}
			p, err := Pair(tt.ops)
			if !reflect.DeepEqual(p.Completion, tt.wantCompletion) {
				t.Errorf("Completion = %v, want %v", p.Completion, tt.wantCompletion)
			}
			if !reflect.DeepEqual(p.Invocation, tt.wantInvocation) {
				t.Errorf("Invocation = %v, want %v", p.Invocation, tt.wantInvocation)
			}
			if tt.wantErrs == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var pe *PairError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *PairError", err)
			}
			var kinds []error
			for _, pr := range pe.Problems {
				kinds = append(kinds, pr.Err)
			}
			if !reflect.DeepEqual(kinds, tt.wantErrs) {
				t.Errorf("problems %v, want %v", kinds, tt.wantErrs)
			}
			for _, k := range tt.wantErrs {
				if !errors.Is(err, k) {
					t.Errorf("errors.Is(err, %v) is false", k)
				}
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestPairErrorListsAFew(t *testing.T) {
	var ops []Op
	for i := range 20 {
		ops = append(ops, Op{Index: int64(i), Process: 1, Type: OK, F: FSend})
	}
	_, err := Pair(ops)
	if err == nil || !strings.Contains(err.Error(), "20 operation(s)") || !strings.HasSuffix(err.Error(), "; and 15 more") {
		t.Fatalf("error = %v", err)
	}
}

func TestPairGenerated(t *testing.T) {
	const seed = 5
	ops := genHistory(seed, 20000)
	p, err := Pair(ops)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	for i, j := range p.Completion {
		if j < 0 {
			continue
		}
		if j <= i || p.Invocation[j] != i || ops[j].Process != ops[i].Process || ops[j].F != ops[i].F || ops[j].Type == Invoke {
			t.Fatalf("seed %d: invocation %d paired with %d: %v / %v", seed, i, j, ops[i], ops[j])
		}
	}
}

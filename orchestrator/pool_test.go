package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// withSlots gives a fake run two slots, a and b, each a target of its
// own with the same behaviours, and a bench hook that holds each
// benchmark until a second one runs (or a second passes): trials on two
// slots overlap.
func withSlots(o *Orchestrator, bench *memBench, b map[string]behaviour) (a, c *memTarget) {
	a, c = newTarget(b), newTarget(b)
	o.Slots = []Slot{{Name: "a", Host: "local", Driver: a}, {Name: "b", Host: "local", Driver: c}}
	bench.slots = []*memTarget{a, c}
	var mu sync.Mutex
	n := 0
	second := make(chan struct{})
	bench.hook = func(string) {
		mu.Lock()
		n++
		if n == 2 {
			close(second)
		}
		mu.Unlock()
		select {
		case <-second:
		case <-time.After(time.Second):
		}
	}
	return a, c
}

// TestSlotsRunTrialsAtOnce: a grid on two slots runs two trials at a
// time, every trial once, each recording its slot; at the end the slots
// stop their servers and the champion is crowned on the target itself.
func TestSlotsRunTrialsAtOnce(t *testing.T) {
	b := map[string]behaviour{"8": {accel: 2}, "16": {accel: 3}, "32": {accel: 4}, "64": {accel: 6}}
	o, run, st, target, bench := fakeRun(t, fmt.Sprintf(runGrid, "crown"), b)
	a, c := withSlots(o, bench, b)
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if got := phasesOf(t, st, run.ID); got != "done done done done" {
		t.Fatalf("phases %q", got)
	}
	if bench.maxInFlight != 2 {
		t.Errorf("at most %d benchmarks at once, want 2", bench.maxInFlight)
	}
	trials, _ := st.Trials(run.ID)
	used := map[string]int{}
	for _, tr := range trials {
		used[tr.Slot]++
		if tr.Host != "local" {
			t.Errorf("trial %d: host %q", tr.Seq, tr.Host)
		}
	}
	if used["a"] == 0 || used["b"] == 0 || used["a"]+used["b"] != 4 {
		t.Errorf("slots used %v", used)
	}
	if len(bench.calls) != 4 {
		t.Errorf("%d benchmarks, want 4 (each trial once)", len(bench.calls))
	}
	if a.serving() != "original" || c.serving() != "original" || target.serving() != "champion max-num-seqs=64" {
		t.Errorf("end: slot a %q, slot b %q, target %q", a.serving(), c.serving(), target.serving())
	}
	if target.prepared != 1 || a.prepared != 1 || c.prepared != 1 {
		t.Errorf("prepared: target %d, slots %d %d", target.prepared, a.prepared, c.prepared)
	}
}

// TestSlotsSearch: a tpe search on two slots never proposes a candidate
// that runs on the other slot, and spends exactly its budget.
func TestSlotsSearch(t *testing.T) {
	for seed := 1; seed <= 5; seed++ {
		o, run, st, _, bench := searchSetup(t, "tpe", 3, seed, "")
		withSlots(o, bench, map[string]behaviour{"8": {accel: 2}, "16": {bootFails: failure.ReasonFreeMemory}, "32": {accel: 4}, "64": {accel: 6}})
		if err := o.Run(context.Background(), run); err != nil {
			t.Fatal(err)
		}
		got := candidatesOf(t, st, run.ID)
		var names []string
		for _, g := range got {
			names = append(names, g[:strings.LastIndex(g, " ")])
		}
		sort.Strings(names)
		for i := 1; i < len(names); i++ {
			if names[i] == names[i-1] {
				t.Errorf("seed %d: %s proposed twice: %v", seed, names[i], got)
			}
		}
		r, _ := st.GetRun(run.ID)
		if len(got) != 3 || !strings.Contains(r.Stop, "the budget of 3 trials is spent") {
			t.Errorf("seed %d: %v, stop %q", seed, got, r.Stop)
		}
	}
}

// TestNoChampionAcrossHardware: trials measured on different GPUs are not
// compared; the verdict names each class's leader and crowns none. On one
// class it crowns as usual.
func TestNoChampionAcrossHardware(t *testing.T) {
	g := &Grid{Objective: Objective{Maximize: "throughput"}}
	scored := []Scored{
		{Seq: 0, Name: "a", Done: true, Hardware: "2x NVIDIA H100 80GB HBM3", Values: map[string]float64{"throughput": 900}},
		{Seq: 1, Name: "b", Done: true, Hardware: "2x NVIDIA GeForce RTX 4090", Values: map[string]float64{"throughput": 500}},
		{Seq: 2, Name: "c", Done: true, Hardware: "2x NVIDIA GeForce RTX 4090", Values: map[string]float64{"throughput": 520}},
	}
	v := Choose(g, scored)
	if v.Champion != -1 || !strings.Contains(v.Reason, "no overall champion: the trials ran on different hardware") ||
		!strings.Contains(v.Reason, "2x NVIDIA H100 80GB HBM3: a (throughput 900, 1 trial(s)); 2x NVIDIA GeForce RTX 4090: c (throughput 520, 2 trial(s))") {
		t.Errorf("champion %d: %s", v.Champion, v.Reason)
	}
	for i := range scored {
		scored[i].Hardware = "2x NVIDIA GeForce RTX 4090"
	}
	if v := Choose(g, scored); v.Champion != 0 {
		t.Errorf("one class: champion %d (%s), want 0", v.Champion, v.Reason)
	}
}

// TestSlotHeldElsewhere: a slot another run drives is refused before
// anything starts; nothing is deployed anywhere.
func TestSlotHeldElsewhere(t *testing.T) {
	b := map[string]behaviour{"8": {accel: 2}, "16": {accel: 3}, "32": {accel: 4}, "64": {accel: 6}}
	o, run, st, target, bench := fakeRun(t, fmt.Sprintf(runGrid, "crown"), b)
	a, c := withSlots(o, bench, b)
	o.Slots[1].Key = "process:http://127.0.0.1:8102"
	if _, err := st.Lock("process:http://127.0.0.1:8102", "another-run"); err != nil {
		t.Fatal(err)
	}
	err := o.Run(context.Background(), run)
	if err == nil || !strings.Contains(err.Error(), "slot b: target process:http://127.0.0.1:8102 is driven by run another-run") {
		t.Fatalf("got %v", err)
	}
	if len(target.deploys)+len(a.deploys)+len(c.deploys) != 0 || target.prepared != 0 {
		t.Errorf("deployed %v %v %v, prepared %d", target.deploys, a.deploys, c.deploys, target.prepared)
	}
}

// TestSlotsCancel: cancelling a run while two slots benchmark stops both
// trials, leaves them to be redone (never counted done), stops the slots'
// servers and puts the original back.
func TestSlotsCancel(t *testing.T) {
	b := map[string]behaviour{"8": {accel: 2}, "16": {accel: 3}, "32": {accel: 4}, "64": {accel: 6}}
	o, run, st, target, bench := fakeRun(t, fmt.Sprintf(runGrid, "crown"), b)
	a, c := withSlots(o, bench, b)
	ctx, cancel := context.WithCancelCause(context.Background())
	hold := bench.hook
	bench.hook = func(name string) {
		hold(name) // both slots are benchmarking
		cancel(ErrCancelled)
	}
	if err := o.Run(ctx, run); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	r, _ := st.GetRun(run.ID)
	if got := phasesOf(t, st, run.ID); r.State != RunCancelled || strings.Contains(got, "done") {
		t.Errorf("state %s, phases %q", r.State, got)
	}
	if a.serving() != "original" || c.serving() != "original" || target.serving() != "original" {
		t.Errorf("after cancel: slots %q %q, target %q", a.serving(), c.serving(), target.serving())
	}
}

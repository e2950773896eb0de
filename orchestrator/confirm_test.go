package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vgrid/vgrid/benchmark"
)

const confirmGrid = `name: confirm
target:
  driver: process
  command: [vllm, serve, --model, m]
  endpoint: http://127.0.0.1:8000
space:
  axes:
    max-num-seqs: [8, 32, 64]
benchmark:
  scenarios: [kv-cache]
objective: {maximize: kv-cache.acceleration}
end: restore
`

// confirmTrials lists the stored trials as "NAME confirm=N phase".
func confirmTrials(t *testing.T, st *memStore, id string) []*Trial {
	t.Helper()
	trials, err := st.Trials(id)
	if err != nil {
		t.Fatal(err)
	}
	return trials
}

// Two candidates whose first measurements overlap (6.0 and 5.95, their
// bootstrap intervals ±2.5%) are booted again; boots that agree separate
// them after one round, and confirm stops there: the third candidate,
// beaten with confidence, is never booted again.
func TestConfirmStopsWhenSeparated(t *testing.T) {
	o, run, st, target, _ := fakeRun(t, confirmGrid+"confirm: {top: 3, boots: 3}\n", map[string]behaviour{"8": {accel: 2}, "32": {accel: 5.95}, "64": {accel: 6}})
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	trials := confirmTrials(t, st, run.ID)
	var again []string
	for _, tr := range trials[3:] {
		again = append(again, tr.Candidate.Name+" boot "+strconv.Itoa(tr.Confirm)+" "+tr.Phase.String())
	}
	if len(trials) != 5 || strings.Join(again, ", ") != "max-num-seqs=64 boot 1 done, max-num-seqs=32 boot 1 done" {
		t.Fatalf("confirm booted %v; want 64 and 32 once each", again)
	}
	if n := strings.Count(strings.Join(target.deploys, " "), "max-num-seqs=64"); n != 2 {
		t.Errorf("max-num-seqs=64 deployed %d times, want 2 (deploys %v)", n, target.deploys)
	}
	v := run.Champion
	if v.Champion != 2 || v.Tie || !strings.Contains(v.Reason, "(mean of 2 boots) beats max-num-seqs=32 (5.95), max-num-seqs=8 (2) with confidence") {
		t.Errorf("champion %d tie %v: %s", v.Champion, v.Tie, v.Reason)
	}
	for _, r := range v.Ranking {
		if r.Seq == 2 && (r.Boots != 2 || !r.Eligible) || r.Seq >= 3 && (r.Eligible || !strings.Contains(r.Why, "a fresh boot of trial")) {
			t.Errorf("ranking row %+v", r)
		}
	}
}

// A candidate that led on a lucky first boot (6.0, then 5.7 twice) loses
// to one whose boots are steadier (5.95, then 6.13 twice): confirm spends
// its two boots on each, and the verdict pools them (the mean of 3
// boots), crowning the better mean.
func TestConfirmCorrectsALuckyBoot(t *testing.T) {
	o, run, st, _, bench := fakeRun(t, confirmGrid+"confirm: {top: 2, boots: 2}\n", map[string]behaviour{"8": {accel: 2}, "32": {accel: 5.95}, "64": {accel: 6}})
	bench.jitter = map[string][]float64{"max-num-seqs=64": {1, 0.95, 0.95}, "max-num-seqs=32": {1, 1.03, 1.03}}
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	trials := confirmTrials(t, st, run.ID)
	if len(trials) != 7 {
		t.Fatalf("%d trials, want 3 and two boots of each of 2 contenders", len(trials))
	}
	v := run.Champion
	if v.Name != "max-num-seqs=32" {
		t.Errorf("champion %s: %s", v.Name, v.Reason)
	}
	for _, r := range v.Ranking {
		if r.Name == "max-num-seqs=32" && r.Eligible && r.Boots != 3 {
			t.Errorf("ranking row %+v: want 3 boots pooled", r)
		}
	}
}

// Bad confirm settings are refused when the grid is read; a confirm that
// cannot fit before the deadline is refused before anything boots.
func TestConfirmBadInput(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{"{top: 1, boots: 2}", "confirm.top 1: want at least 2"},
		{"{top: 3, boots: 0}", "confirm.boots 0"},
		{"{top: 30, boots: 2}", "confirm.top 30: at most 8"},
		{"{top: 3, boots: 2, within: 0.1%}", "confirm.within 0.1%"},
		{"{top: 3, bots: 2}", "bots"},
	} {
		_, err := LoadGrid("g.yaml", []byte(confirmGrid+"confirm: "+c.conf+"\n"), "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("confirm: %s: %v, want %q", c.conf, err, c.want)
		}
	}
	g, err := LoadGrid("g.yaml", []byte(confirmGrid+"confirm: {top: 3, boots: 2}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)
	err = CheckConfirm(g, now.Add(time.Hour), now, 15*time.Minute, 1)
	if err == nil || !strings.Contains(err.Error(), "confirm: {top: 3, boots: 2} needs about 1h30m for its 6 boots") {
		t.Errorf("a confirm of 6 boots of 15 minutes before a deadline in 1h: %v", err)
	}
	if err := CheckConfirm(g, now.Add(time.Hour), now, 15*time.Minute, 3); err != nil {
		t.Errorf("three slots boot the 6 in about 30 minutes, before the deadline in 1h: %v", err)
	}
}

// On two slots, a round of confirm boots its contenders at once, one on
// each slot.
func TestConfirmOnSlots(t *testing.T) {
	b := map[string]behaviour{"8": {accel: 2}, "32": {accel: 5.95}, "64": {accel: 6}}
	o, run, st, _, bench := fakeRun(t, confirmGrid+"confirm: {top: 2, boots: 1}\n", b)
	withSlots(o, bench, b)
	// The 4th and 5th benchmarks (confirm's) each wait for the other.
	var mu sync.Mutex
	n, together := 0, make(chan struct{})
	met := false
	bench.hook = func(string) {
		mu.Lock()
		n++
		if n == 5 {
			close(together)
		}
		k := n
		mu.Unlock()
		if k < 4 {
			return
		}
		select {
		case <-together:
			mu.Lock()
			met = true
			mu.Unlock()
		case <-time.After(2 * time.Second):
		}
	}
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	trials := confirmTrials(t, st, run.ID)
	if len(trials) != 5 {
		t.Fatalf("%d trials, want 3 and a boot of each of 2 contenders", len(trials))
	}
	x, y := trials[3], trials[4]
	if x.Confirm != 1 || y.Confirm != 1 || x.Slot == y.Slot || !met {
		t.Errorf("confirm's boots: %s on %s, %s on %s, benchmarked at once: %v; want both at once on the two slots", x.Candidate.Name, x.Slot, y.Candidate.Name, y.Slot, met)
	}
}

// A run interrupted in confirm's first round resumes there: the boot
// interrupted is redone, the round and the next one complete, and the
// run ends with the boots an uninterrupted run has (3 trials, 2 rounds
// of 2 boots).
func TestConfirmResumes(t *testing.T) {
	o, run, st, _, bench := fakeRun(t, confirmGrid+"confirm: {top: 2, boots: 2}\n", map[string]behaviour{"8": {accel: 2}, "32": {accel: 5.95}, "64": {accel: 6}})
	bench.jitter = map[string][]float64{"max-num-seqs=64": {1, 0.95, 0.95}, "max-num-seqs=32": {1, 1.03, 1.03}}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	bench.hook = func(string) {
		if calls++; calls == 4 { // confirm's first boot
			cancel()
		}
	}
	if err := o.Run(ctx, run); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	r, _ := st.GetRun(run.ID)
	trials := confirmTrials(t, st, run.ID)
	if r.State != RunInterrupted || len(trials) < 4 || trials[3].Confirm != 1 || trials[3].Phase.Final() {
		t.Fatalf("after the interruption: %s, %d trials", r.State, len(trials))
	}
	bench.hook = nil
	if err := o.Run(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	trials = confirmTrials(t, st, run.ID)
	boots := map[string][]int{}
	for _, tr := range trials[3:] {
		boots[tr.Candidate.Name] = append(boots[tr.Candidate.Name], tr.Confirm)
		if tr.Phase != PhaseDone {
			t.Errorf("trial %d: %s", tr.Seq, tr.Phase)
		}
	}
	if len(trials) != 7 || fmt.Sprint(boots["max-num-seqs=64"]) != "[1 2]" || fmt.Sprint(boots["max-num-seqs=32"]) != "[1 2]" || trials[3].Attempts != 2 {
		t.Errorf("after resume: %d trials, boots %v, trial 3 attempts %d", len(trials), boots, trials[3].Attempts)
	}
	r, _ = st.GetRun(run.ID)
	if r.Champion == nil || r.Champion.Name != "max-num-seqs=32" {
		t.Errorf("verdict after resume: %+v", r.Champion)
	}
}

// A contender booted three times against a candidate booted once: the
// interval of their difference uses the three boots' spread for both.
func TestDifferenceOneBoot(t *testing.T) {
	a := Scored{Name: "a", Values: map[string]float64{"m": 10}, Boots: []float64{9.8, 10, 10.2}}
	b := Scored{Name: "b", Values: map[string]float64{"m": 9}, Boots: []float64{9}}
	lo, hi, method, ok := difference(a, b, "m", true)
	// sd 0.2, se 0.2*sqrt(1/3+1) = 0.231, t(2) = 4.303: 1 ± 0.994, in percent of 10
	if !ok || math.Abs(lo-0.06) > 0.01 || math.Abs(hi-19.94) > 0.01 || !strings.Contains(method, "3 and 1 boots") {
		t.Errorf("difference: %.3f%% to %.3f%% (%s, %v)", lo, hi, method, ok)
	}
}

// After confirm, the leader pooled over three boots is compared with the
// candidates booted once boot against boot (the leader's spread standing
// for theirs): one with prefix caching off (1.0 against 12.3) is beaten,
// not left "not separated" as when only the bootstrap intervals of single
// boots were looked for; a close one stays open.
func TestVerdictBootsAgainstOneBoot(t *testing.T) {
	g := &Grid{Objective: Objective{Maximize: "kv-cache.acceleration"}}
	one := func(seq int, name string, x float64) Scored {
		return Scored{Seq: seq, Name: name, Candidate: Candidate{Name: name}, Done: true,
			Values: map[string]float64{"kv-cache.acceleration": x}, CI: &benchmark.CI{Value: x, Lo: 0.93 * x, Hi: 1.07 * x}}
	}
	in := []Scored{one(0, "lead", 12.5), one(1, "close", 12.2), one(2, "off", 1.0), one(3, "lead", 12.1), one(4, "lead", 12.3)}
	v := Choose(g, in)
	if v.Name != "lead" || !slices.Equal(v.Contenders, []int{0, 1}) || !slices.Equal(v.Open, []int{1}) || strings.Contains(v.Reason, "off (1") {
		t.Errorf("champion %s, contenders %v, open %v: %s", v.Name, v.Contenders, v.Open, v.Reason)
	}
	if !v.beats(in[0], in[2]) {
		t.Error("a candidate at 1.0 booted once is not beaten by one at 12.3 over three boots")
	}

	// Two boots 10% apart: Student's t on one degree of freedom leaves
	// 1.0 inside the interval of the difference, but each boot alone
	// beats it by the single-boot test, and so it is beaten; the close
	// candidate, inside both boots' intervals, stays open.
	in = []Scored{one(0, "lead", 12.8), one(1, "close", 12.0), one(2, "off", 1.0), one(3, "lead", 11.6)}
	v = Choose(g, in)
	if v.Name != "lead" || !slices.Equal(v.Contenders, []int{0, 1}) || !slices.Equal(v.Open, []int{1}) {
		t.Errorf("two boots: champion %s, contenders %v, open %v: %s", v.Name, v.Contenders, v.Open, v.Reason)
	}
	if lo, _, _, _ := difference(poolBoots(in, "kv-cache.acceleration")[0], in[2], "kv-cache.acceleration", true); lo > 0 {
		t.Errorf("the boots' interval alone separates 1.0 (lo %.1f%%): the case is not the one meant", lo)
	}

	// The leader separated from the runner-up, both booted three times,
	// but not from a candidate booted once just below the runner-up (its
	// interval wider): no "beats with confidence", the third stays open.
	in = []Scored{one(0, "lead", 12.3), one(1, "runner", 11.9), one(2, "third", 11.95),
		one(3, "lead", 12.4), one(4, "runner", 12.0), one(5, "lead", 12.5), one(6, "runner", 12.1)}
	v = Choose(g, in)
	if v.Name != "lead" || !v.Tie || !slices.Equal(v.Contenders, []int{0, 2}) || !slices.Equal(v.Open, []int{2}) || strings.Contains(v.Reason, "with confidence") {
		t.Errorf("beaten runner-up, open third: champion %s tie %v, contenders %v, open %v: %s", v.Name, v.Tie, v.Contenders, v.Open, v.Reason)
	}
}

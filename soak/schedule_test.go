package soak

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestScheduleHasEveryKindAndRepeats(t *testing.T) {
	s := Schedule(1, 9, time.Second)
	seen := map[Kind]bool{}
	for _, f := range s {
		seen[f.Kind] = true
		ok := false
		for _, p := range phases[f.Kind] {
			ok = ok || p == f.Phase
		}
		if !ok || f.Gap < 0 || f.Gap >= time.Second {
			t.Errorf("fault %+v", f)
		}
		if (f.Kind == StoreFull || f.Kind == ProfileReadOnly) && f.Hold < 3*time.Second {
			t.Errorf("a lasting fault held %s", f.Hold)
		}
	}
	if len(seen) != len(Kinds) {
		t.Errorf("the first %d faults cover %d kinds", len(Kinds), len(seen))
	}
	again := Schedule(1, 9, time.Second)
	for i := range s {
		if s[i] != again[i] {
			t.Fatalf("seed 1 gave two schedules: %+v / %+v", s[i], again[i])
		}
	}
	if other := Schedule(2, 9, time.Second); other[0] == s[0] && other[1] == s[1] && other[2] == s[2] {
		t.Error("seeds 1 and 2 gave the same start")
	}
	if long := Schedule(3, 40, time.Second); len(long) != 40 {
		t.Errorf("%d faults", len(long))
	}
}

func TestFigures(t *testing.T) {
	at := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	inj := []Injection{
		{Fault: Fault{Kind: EngineDeath}, At: at, Cleared: at, Recovered: at.Add(2 * time.Second), Outcome: "failed engine_dead"},
		{Fault: Fault{Kind: EngineDeath}, At: at, Cleared: at, Recovered: at.Add(4 * time.Second), Outcome: "failed engine_dead"},
		{Fault: Fault{Kind: EngineDeath}, At: at, Cleared: at, Recovered: at.Add(9 * time.Second), Outcome: "failed crash_loop"},
		{Fault: Fault{Kind: StoreFull}, At: at, Cleared: at.Add(5 * time.Second), Recovered: at.Add(6 * time.Second)},
		{Fault: Fault{Kind: DaemonKill}, Skipped: "the runs ended first"},
	}
	f := Summarize(inj)
	if f[0].Kind != EngineDeath || f[0].Injected != 3 || f[0].Median != 4*time.Second || f[0].Max != 9*time.Second || f[0].Outcomes["failed engine_dead"] != 2 {
		t.Errorf("engine death: %+v", f[0])
	}
	var b strings.Builder
	Night{Seed: 1, Trials: 20, Wall: 90 * time.Second, FaultFree: 60 * time.Second, Injections: inj}.Print(&b)
	for _, want := range []string{"20 trials, 0 lost, 0 counted twice", "x1.50", "engine_death       3", "store_full", "1s", "not injected 1"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("figures lack %q:\n%s", want, b.String())
		}
	}
}

// A fault that clears after the night's last trial has ended is followed
// by the run's end (the crown applied, the run saved): that is progress,
// not a stall.
func TestProgressAfterALateFault(t *testing.T) {
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	var w Watch
	last := []TrialState{{Seq: 0, Phase: "done", Final: true}, {Seq: 1, Phase: "benchmarking"}}
	w.Observe(at, "r1", "running", last)
	last[1] = TrialState{Seq: 1, Phase: "done", Final: true}
	w.Observe(at.Add(time.Second), "r1", "running", last) // ends during the fault
	cleared := at.Add(4 * time.Second)
	w.Observe(at.Add(5*time.Second), "r1", "running", last) // crowning: nothing changes yet
	if _, ok := w.ProgressAfter(cleared); ok {
		t.Fatal("a poll that saw nothing new counted as progress")
	}
	w.Observe(at.Add(6*time.Second), "r1", "done", last) // the run's end
	if got, ok := w.ProgressAfter(cleared); !ok || !got.Equal(at.Add(6*time.Second)) {
		t.Errorf("the run's end after the fault: progress %v %v", got, ok)
	}
	// A fault that clears after the end: the next run queued (by the
	// soak) is not progress; vgrid starting it is.
	later := at.Add(10 * time.Second)
	w.Observe(later.Add(time.Second), "r2", "queued", nil)
	if got, ok := w.ProgressAfter(later); ok {
		t.Errorf("a run queued counted as vgrid's progress at %v", got)
	}
	w.Observe(later.Add(2*time.Second), "r2", "running", nil)
	if got, ok := w.ProgressAfter(later); !ok || !got.Equal(later.Add(2*time.Second)) {
		t.Errorf("the next run started: progress %v %v", got, ok)
	}
}

// A stall is a night in which polls go on seeing the same: no progress,
// however long it is watched.
func TestNoProgressIsAStall(t *testing.T) {
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	var w Watch
	trials := []TrialState{{Seq: 0, Phase: "done", Final: true}, {Seq: 1, Phase: "benchmarking", Attempts: 1}}
	for i := range 100 {
		w.Observe(at.Add(time.Duration(i)*time.Second), "r1", "running", trials)
	}
	if got, ok := w.ProgressAfter(at.Add(time.Second)); ok {
		t.Errorf("a stalled night progressed at %v", got)
	}
	// A trial redone (its attempt counted) is progress; a final trial
	// that changes is a violation.
	trials[1].Attempts = 2
	if bad := w.Observe(at.Add(101*time.Second), "r1", "running", trials); len(bad) != 0 {
		t.Errorf("violations: %v", bad)
	}
	if _, ok := w.ProgressAfter(at.Add(100 * time.Second)); !ok {
		t.Error("a redone trial is progress")
	}
	trials[0] = TrialState{Seq: 0, Phase: "pending"}
	if bad := w.Observe(at.Add(102*time.Second), "r1", "running", trials); len(bad) != 1 {
		t.Errorf("a final trial back to pending: violations %v", bad)
	}
}

func TestPlanCoversEveryPairOverTheNight(t *testing.T) {
	d := 10 * time.Minute
	p := Plan(4, d, 15*time.Second)
	if len(p) != 40 {
		t.Errorf("%d faults for 10 minutes at one per 15 s", len(p))
	}
	covered := map[Fault]bool{}
	var last time.Duration
	for i, f := range p {
		if f.Cover {
			covered[Fault{Kind: f.Kind, Phase: f.Phase}] = true
		}
		if f.After < last || f.After >= d {
			t.Errorf("fault %d at %s after %s", i, f.After, last)
		}
		last = f.After
		if !slices.Contains(PhasesOf(f.Kind), f.Phase) {
			t.Errorf("%s at %s, a phase it cannot strike", f.Kind, f.Phase)
		}
	}
	for _, pair := range Pairs() {
		if !covered[pair] {
			t.Errorf("%s at %s not covered", pair.Kind, pair.Phase)
		}
	}
	if last < d/2 {
		t.Errorf("the faults end at %s of a %s night", last, d)
	}
	// A short night still covers every pair.
	if p := Plan(4, time.Minute, 15*time.Second); len(p) != len(Pairs()) {
		t.Errorf("one minute: %d faults, want the %d pairs", len(p), len(Pairs()))
	}
}

func TestCompareFlagsOnlyWhatTheFaultDoesNotExplain(t *testing.T) {
	ref := map[string]map[string]int{"m14/a": {"done": 3}, "m14/b": {"failed (kv_cache_too_small)": 2}}
	inj := []Injection{
		{Fault: Fault{Kind: EngineDeath}, Candidate: "m14/a", Final: "failed (engine_dead)"},   // the fault's own failure
		{Fault: Fault{Kind: DaemonKill}, Candidate: "m14/a", Final: "done"},                    // as without faults
		{Fault: Fault{Kind: DaemonKill}, Candidate: "m14/a", Final: "failed (crash_loop)"},     // a trace of vgrid's fault: flagged
		{Fault: Fault{Kind: DockerRestart}, Candidate: "m14/c", Final: "failed (engine_dead)"}, // never seen without faults
		{Fault: Fault{Kind: OOMKill}, Candidate: "m14/b", Final: "failed (engine_dead)"},       // not what an OOM kill makes
	}
	d := Compare(inj, ref)
	if len(d) != 2 || d[0].Kind != DaemonKill || d[1].Kind != OOMKill {
		t.Fatalf("differences: %v", d)
	}
	if !strings.Contains(d[0].String(), `without faults "done" x3; NOT EXPLAINED`) {
		t.Errorf("%s", d[0])
	}
}

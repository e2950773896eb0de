package soak

import (
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

package orchestrator

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/vgrid/vgrid/benchmark"
)

const precisionGrid = `name: precise
target: {driver: process, command: [vllm, serve, --model, m], endpoint: "http://127.0.0.1:8000"}
space:
  axes:
    max-num-seqs: [8, 16]
benchmark:
  scenarios: [kv-cache, stability]
  repetitions: %d
  precision: %s
objective: {maximize: kv-cache.acceleration}
end: restore
`

// A trial repeats its objective's scenario, alone, until the interval of
// the objective's mean is within the target: a steady candidate stops at
// two repetitions, a noisy one goes on to the cap and says the target was
// not met; each trial records what it achieved.
func TestPrecisionRepeatsUntilPrecise(t *testing.T) {
	b := map[string]behaviour{"8": {accel: 2}, "16": {accel: 3}}
	o, run, st, _, bench := fakeRun(t, fmt.Sprintf(precisionGrid, 1, "{objective: 3%, max_repetitions: 5}"), b)
	bench.jitter = map[string][]float64{"max-num-seqs=16": {1, 1.3, 0.8, 1.25, 0.75}}
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	trials, _ := st.Trials(run.ID)
	count := func(name, scen string) int {
		n := 0
		for _, r := range bench.ran {
			if r == name+": "+scen {
				n++
			}
		}
		return n
	}
	// Steady: one whole suite, one more kv-cache, identical: precise.
	if a := trials[0].Precision; a == nil || a.Reps != 2 || !a.Met || a.Pct != 0 || count("max-num-seqs=8", "kv-cache") != 2 || count("max-num-seqs=8", "stability") != 1 {
		t.Errorf("steady candidate: %+v, ran %v", a, bench.ran)
	}
	// Noisy: to the cap, kv-cache alone after the first repetition.
	if a := trials[1].Precision; a == nil || a.Reps != 5 || a.Met || a.Pct <= 3 || count("max-num-seqs=16", "kv-cache") != 5 || count("max-num-seqs=16", "stability") != 1 {
		t.Errorf("noisy candidate: %+v, ran %v", a, bench.ran)
	}
	// Looks: after repetitions 2, 3, 4 and 5, each at 0.05/4.
	if a := trials[1].Precision; a.Alpha != 0.05/4 {
		t.Errorf("alpha per look %g, want 0.05/4", a.Alpha)
	}
	reps, _ := st.Reports(run.ID, 1)
	if len(reps) != 5 || len(reps[4].Scenarios) != 1 || reps[4].Scenarios[0].Name != "kv-cache" {
		t.Errorf("the noisy trial's stored repetitions: %d", len(reps))
	}
	if s := trials[1].Precision.String(); !strings.Contains(s, "over 5 repetitions (target ±3%, not met)") {
		t.Errorf("achieved: %q", s)
	}
}

// With repetitions already precise, no repetition is added; without
// precision, none either and nothing is recorded.
func TestPrecisionAfterRepetitions(t *testing.T) {
	b := map[string]behaviour{"8": {accel: 2}, "16": {accel: 3}}
	o, run, st, _, bench := fakeRun(t, fmt.Sprintf(precisionGrid, 3, "{objective: 5, max_repetitions: 8}"), b)
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	trials, _ := st.Trials(run.ID)
	if a := trials[0].Precision; a == nil || a.Reps != 3 || !a.Met || len(bench.ran) != 12 {
		t.Errorf("precise after its repetitions: %+v, %d scenarios run", a, len(bench.ran))
	}
	src := strings.Replace(fmt.Sprintf(precisionGrid, 1, "x"), "  precision: x\n", "", 1)
	o, run, st, _, bench = fakeRun(t, src, b)
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	trials, _ = st.Trials(run.ID)
	if trials[0].Precision != nil || len(bench.ran) != 4 {
		t.Errorf("without precision: %+v, %d scenarios run", trials[0].Precision, len(bench.ran))
	}
}

// Precision and pruning together: a candidate clearly worse than the
// champion stops at a look after one of its added repetitions, without
// waiting for precision.
func TestPrecisionWithPrune(t *testing.T) {
	b := map[string]behaviour{"8": {accel: 3}, "16": {accel: 1}}
	src := fmt.Sprintf(precisionGrid, 1, "{objective: 1%, max_repetitions: 6}") + "search: {prune: true}\n"
	o, run, st, _, bench := fakeRun(t, src, b)
	bench.jitter = map[string][]float64{"max-num-seqs=8": {1, 1.2, 0.85}, "max-num-seqs=16": {1, 1.02, 0.99}}
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if got := phasesOf(t, st, run.ID); got != "done pruned:pruned" {
		t.Fatalf("phases %q", got)
	}
	trials, _ := st.Trials(run.ID)
	if f := trials[1].Failure.Detail; !strings.Contains(f, "over 5 look(s)") {
		t.Errorf("evidence %q: the looks count the added repetitions", f)
	}
}

func TestPrecisionConfigErrors(t *testing.T) {
	for _, tc := range []struct{ precision, want string }{
		{"{objective: 0.2%, max_repetitions: 8}", "benchmark.precision.objective 0.2%: want a half-width between 0.5% and 50%"},
		{"{objective: 60%, max_repetitions: 8}", "benchmark.precision.objective 60%"},
		{"{objective: 3%, max_repetitions: 1}", "benchmark.precision.max_repetitions 1: want at least 2"},
		{"{objective: 3%}", "benchmark.precision.max_repetitions 0: want at least 2"},
		{"{objective: 3%, max_repetitions: 100000}", "benchmark.precision.max_repetitions 100000: at most 50"},
		{"{objective: three, max_repetitions: 4}", `"three" is not a percentage`},
		{"{objective: 3%, max_repetitions: 4, confidence: 99}", "confidence"},
	} {
		if _, err := LoadGrid("g.yaml", []byte(fmt.Sprintf(precisionGrid, 1, tc.precision)), ""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.precision, err, tc.want)
		}
	}
	if _, err := LoadGrid("g.yaml", []byte(fmt.Sprintf(precisionGrid, 6, "{objective: 3%, max_repetitions: 4}")), ""); err == nil || !strings.Contains(err.Error(), "max_repetitions 4 is below benchmark.repetitions 6") {
		t.Errorf("cap below the repetitions: %v", err)
	}
	if _, err := LoadGrid("g.yaml", []byte(strings.Replace(fmt.Sprintf(precisionGrid, 1, "{objective: 3%, max_repetitions: 4}"), "[kv-cache, stability]", "[stability]", 1)), ""); err == nil || !strings.Contains(err.Error(), "which benchmark.scenarios does not run") {
		t.Errorf("objective not measured: %v", err)
	}
}

// A repetition of the objective's scenario alone is measured like the
// whole suite's on that scenario; one of another scenario, or of the same
// scenario differently sized, is not.
func TestSettingsOfPartialRepetitions(t *testing.T) {
	g, err := LoadGrid("g.yaml", []byte(fmt.Sprintf(precisionGrid, 1, "{objective: 3%, max_repetitions: 4}")), "")
	if err != nil {
		t.Fatal(err)
	}
	full := g.Benchmark.Settings()
	part := full
	part.Scenarios = []string{"kv-cache"}
	other := full
	other.Scenarios = []string{"load"}
	resized := part
	resized.Config.KVCache.Pairs++
	rep := func(s benchmark.Settings) *benchmark.Report { return &benchmark.Report{Settings: &s} }
	if _, mixed := SettingsOf([]*benchmark.Report{rep(full), rep(part), rep(part)}); mixed != "" {
		t.Errorf("the objective's scenario alone: %s", mixed)
	}
	for _, s := range []benchmark.Settings{other, resized} {
		if _, mixed := SettingsOf([]*benchmark.Report{rep(full), rep(s)}); mixed == "" {
			t.Errorf("%v passed for the suite's", s.Scenarios)
		}
	}
}

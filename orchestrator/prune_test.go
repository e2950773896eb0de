package orchestrator

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

const pruneGrid = `name: prune
target: {driver: process, command: [vllm, serve, --model, m], endpoint: "http://127.0.0.1:8000"}
space:
  axes:
    max-num-seqs: [8, 16, 32, 64]
benchmark:
  scenarios: [kv-cache, stability]
  repetitions: %d
constraints: [errors == 0]
objective: {maximize: kv-cache.acceleration}
end: restore
%s`

// TestPruneStopsWhatIsWorse: with prune on, once a champion exists a
// candidate whose acceleration is worse with confidence stops after its
// kv-cache scenario (stability never runs), ends pruned with the test and
// its numbers, and keeps what it measured; an equal candidate runs to the
// end; the first measured candidate, though worse than what follows, is
// never pruned; the report and the search summary say so.
func TestPruneStopsWhatIsWorse(t *testing.T) {
	b := map[string]behaviour{"8": {accel: 1}, "16": {accel: 3}, "32": {accel: 1}, "64": {accel: 3}}
	o, run, st, _, bench := fakeRun(t, fmt.Sprintf(pruneGrid, 1, "search: {prune: true}\n"), b)
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if got := phasesOf(t, st, run.ID); got != "done done pruned:pruned done" {
		t.Fatalf("phases %q, want the third pruned only", got)
	}
	ran := strings.Join(bench.ran, ", ")
	if strings.Contains(ran, "max-num-seqs=32: stability") || !strings.Contains(ran, "max-num-seqs=8: stability") || !strings.Contains(ran, "max-num-seqs=64: stability") {
		t.Errorf("scenarios run: %s", ran)
	}
	trials, _ := st.Trials(run.ID)
	f := trials[2].Failure
	for _, want := range []string{"kv-cache.acceleration 1 is worse than the champion max-num-seqs=16's 3", "one-sided bootstrap test", "alpha 0.05 over 1 look"} {
		if !strings.Contains(f.Detail, want) {
			t.Errorf("evidence %q lacks %q", f.Detail, want)
		}
	}
	reps, _ := st.Reports(run.ID, 2)
	if len(reps) != 1 || len(reps[0].Scenarios) != 1 || reps[0].Scenarios[0].Name != "kv-cache" {
		t.Errorf("a pruned trial keeps what it measured: %d reports", len(reps))
	}
	got, _ := st.GetRun(run.ID)
	if got.Champion == nil || (got.Champion.Name != "max-num-seqs=16" && got.Champion.Name != "max-num-seqs=64") {
		t.Fatalf("champion %+v", got.Champion)
	}
	for _, r := range got.Champion.Ranking {
		if r.Seq == 2 && !strings.HasPrefix(r.Why, "pruned") {
			t.Errorf("ranking says of the pruned trial: %q", r.Why)
		}
	}
	if s := got.SearchText(trials); !strings.Contains(s, "1 stopped early (prune, alpha 0.05)") {
		t.Errorf("search text %q", s)
	}
	if reps, _ := st.Reports(run.ID, 2); len(reps) == 0 {
		t.Error("the pruned trial's reports measured so far were not kept")
	}
}

// TestPruneOffByDefault: the same run without prune measures everything.
func TestPruneOffByDefault(t *testing.T) {
	b := map[string]behaviour{"8": {accel: 1}, "16": {accel: 3}, "32": {accel: 1}, "64": {accel: 3}}
	o, run, st, _, bench := fakeRun(t, fmt.Sprintf(pruneGrid, 1, ""), b)
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if got := phasesOf(t, st, run.ID); got != "done done done done" || len(bench.ran) != 8 {
		t.Errorf("phases %q, %d scenarios run", got, len(bench.ran))
	}
}

// TestPruneLooksPerRepetition: with the objective's scenario last and
// three repetitions, a worse candidate is looked at after its first and
// second repetitions (two looks, each at alpha/2), never after the last.
func TestPruneLooksPerRepetition(t *testing.T) {
	src := strings.Replace(fmt.Sprintf(pruneGrid, 3, "search: {prune: true, prune_alpha: 0.01}\n"), "[kv-cache, stability]", "[stability, kv-cache]", 1)
	b := map[string]behaviour{"8": {accel: 3}, "16": {accel: 1}, "32": {accel: 3}, "64": {accel: 3}}
	o, run, st, _, bench := fakeRun(t, src, b)
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if got := phasesOf(t, st, run.ID); got != "done pruned:pruned done done" {
		t.Fatalf("phases %q", got)
	}
	n := 0
	for _, r := range bench.ran {
		if strings.HasPrefix(r, "max-num-seqs=16:") {
			n++
		}
	}
	trials, _ := st.Trials(run.ID)
	if n != 2 || !strings.Contains(trials[1].Failure.Detail, "after repetition 1's kv-cache") || !strings.Contains(trials[1].Failure.Detail, "alpha 0.01 over 2 look(s)") {
		t.Errorf("%d scenarios run for the pruned candidate; evidence %q", n, trials[1].Failure.Detail)
	}
}

func TestPruneConfigErrors(t *testing.T) {
	for _, tc := range []struct{ grid, want string }{
		{strings.Replace(fmt.Sprintf(pruneGrid, 1, "search: {prune: true}\n"), "kv-cache.acceleration", "errors", 1), "search.prune: the objective errors is not measured by one scenario"},
		{strings.Replace(fmt.Sprintf(pruneGrid, 1, "search: {prune: true}\n"), "[kv-cache, stability]", "[stability, kv-cache]", 1), "kv-cache is the last scenario of the only repetition"},
		{strings.Replace(fmt.Sprintf(pruneGrid, 1, "search: {prune: true}\n"), "[kv-cache, stability]", "[stability]", 1), "which benchmark.scenarios does not run"},
		{fmt.Sprintf(pruneGrid, 1, "search: {prune_alpha: 0.01}\n"), "prune_alpha is set but prune is not"},
		{fmt.Sprintf(pruneGrid, 1, "search: {prune: true, prune_alpha: 0.7}\n"), "search.prune_alpha 0.7"},
	} {
		if _, err := LoadGrid("g.yaml", []byte(tc.grid), ""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

package main

import (
	"bufio"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vgrid/vgrid/internal/proc"
	"github.com/vgrid/vgrid/orchestrator"
)

// searchGrid is the README's quickstart on a free port, with its search
// section replaced.
func searchGrid(t *testing.T, replace ...string) string {
	t.Helper()
	src, err := os.ReadFile("../../examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(src), "8011", fmt.Sprint(freePortT(t)))
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("quickstart.yaml has no %q", replace[i])
		}
		s = strings.Replace(s, replace[i], replace[i+1], 1)
	}
	p := filepath.Join(t.TempDir(), "grid.yaml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSearchThroughTheCLI: a tpe search with a budget runs through vgrid
// run on the simulator, skips what the memory model rejects unbooted, and
// says in the outcome and the report how it searched and why it stopped.
func TestSearchThroughTheCLI(t *testing.T) {
	grid := searchGrid(t,
		"    enable-prefix-caching: [true, false]\n",
		"    enable-prefix-caching: [true, false]\n    max-num-seqs: [32, 64, 128]\nsearch: {strategy: tpe, max_trials: 3, seed: 5}\n")
	db, out := planThenRun(t, grid, "search: tpe, seed 5, at most 3 booted trials of 12 candidates")
	if !strings.Contains(out, "search: tpe (seed 5, budget 3): 3 of 12 candidates booted") || !strings.Contains(out, "stopped: the budget of 3 trials is spent (tpe search)") {
		t.Errorf("run's outcome does not say how it searched:\n%s", out)
	}
	st := openStore(t, db)
	run, err := st.GetRun("latest")
	if err != nil {
		t.Fatal(err)
	}
	trials, _ := st.Trials(run.ID)
	booted := 0
	for _, tr := range trials {
		if tr.Phase == orchestrator.PhaseSkipped {
			if tr.Failure == nil || tr.Failure.Reason != failure.ReasonInfeasible {
				t.Errorf("trial %d skipped: %v", tr.Seq, tr.Failure)
			}
			continue
		}
		booted++
		if v, _ := tr.Candidate.Get("gpu-memory-utilization"); v == "0.95" {
			t.Errorf("trial %d booted an infeasible candidate (0.95 beside the desktop)", tr.Seq)
		}
	}
	if booted != 3 || run.State != orchestrator.RunDone {
		t.Errorf("%d booted, run %s", booted, run.State)
	}
	st.Close()
	code, out, _ := vgrid(t, "report", run.ID, "--store", db, "--format", "md")
	if code != 0 || !strings.Contains(out, "- search: tpe (seed 5, budget 3): 3 of 12 candidates booted") {
		t.Errorf("report: code %d\n%s", code, out)
	}
}

// TestPruneThroughTheCLI: the quickstart with prune on, on the simulator:
// the candidate without prefix caching (acceleration ~1 against ~3) stops
// after its kv-cache scenario, is recorded pruned with the evidence, and
// the plan, the outcome and the report say so; the champion is the one a
// full run crowns.
func TestPruneThroughTheCLI(t *testing.T) {
	grid := searchGrid(t, "end: restore", "end: restore\nsearch: {prune: true}")
	db, out := planThenRun(t, grid, "prune: on: a trial worse than the champion by the prune test (one-sided) stops early (error rate at most 0.05)")
	if !strings.Contains(out, "1 stopped early (prune, alpha 0.05)") || !strings.Contains(out, "pruned") || !strings.Contains(out, "champion: gpu-memory-utilization=0.85 enable-prefix-caching=true") {
		t.Errorf("outcome:\n%s", out)
	}
	st := openStore(t, db)
	run, _ := st.GetRun("latest")
	trials, _ := st.Trials(run.ID)
	tr := trials[1]
	if tr.Phase != orchestrator.PhasePruned || tr.Failure == nil || !strings.Contains(tr.Failure.Detail, "kv-cache.acceleration") {
		t.Fatalf("trial 1: %s %+v", tr.Phase, tr.Failure)
	}
	reps, _ := st.Reports(run.ID, 1)
	if len(reps) != 1 || len(reps[0].Scenarios) != 1 {
		t.Errorf("the pruned trial ran %d reports, the first with %d scenarios; want kv-cache only", len(reps), len(reps[0].Scenarios))
	}
	st.Close()
	code, md, _ := vgrid(t, "report", run.ID, "--store", db)
	if code != 0 || !strings.Contains(md, "## Stopped early (pruned) and the evidence") || !strings.Contains(md, tr.Failure.Detail) {
		t.Errorf("report:\n%s", md)
	}
}

// TestSearchBadInput: clear errors at plan and run, nothing started.
func TestSearchBadInput(t *testing.T) {
	db := filepath.Join(t.TempDir(), "vgrid.db")
	for _, tc := range []struct {
		name string
		repl []string
		want string
	}{
		{"unknown strategy", []string{"end: restore", "end: restore\nsearch: {strategy: hyperband}"}, `search.strategy "hyperband": want grid, random, tpe or gp`},
		{"no budget", []string{"end: restore", "end: restore\nsearch: {strategy: random, max_trials: 0}"}, "search.max_trials 0: random needs a budget"},
		{"a prune that saves nothing", []string{"scenarios: [kv-cache, load]", "scenarios: [load, kv-cache]", "end: restore", "end: restore\nsearch: {prune: true}"}, "search.prune: kv-cache is the last scenario of the only repetition"},
		{"a deadline already passed", []string{"end: restore", "end: restore\ndeadline: \"2020-01-01 07:00\""}, `deadline "2020-01-01 07:00" (2020-01-01 07:00) has passed`},
		// 256 candidates at real vLLM speed (the simulator's time scale removed,
		// so the estimates are a real night's): refused, with tpe suggested.
		{"a grid too large", []string{`    VLLM_SIM_TIME_SCALE: "0.02"       # a 165 s boot takes 3.3 s`, "",
			"    enable-prefix-caching: [true, false]\n",
			"    enable-prefix-caching: [true, false]\n    max-num-seqs: [16, 32, 64, 128]\n    max-model-len: [8192, 16384, 32768, 65536]\n    block-size: [16, 32]\n    kv-cache-dtype: [auto, fp8]\n"},
			"search it within a budget instead (search: {max_trials: 24})"},
	} {
		grid := searchGrid(t, tc.repl...)
		for _, cmd := range []string{"plan", "run"} {
			code, out, errs := vgrid(t, cmd, grid, "--store", db)
			if code != 2 || !strings.Contains(errs, tc.want) {
				t.Fatalf("%s: vgrid %s: code %d, stderr %q, want 2 and %q\n%s", tc.name, cmd, code, errs, tc.want, out)
			}
		}
	}
	if _, err := os.Stat(db); err == nil {
		st := openStore(t, db)
		if runs, _ := st.Runs(); len(runs) != 0 {
			t.Errorf("%d runs stored, want none", len(runs))
		}
	}
}

// TestSearchSurvivesKill9: a tpe search killed with SIGKILL in its second
// trial and resumed redoes the interrupted trial once and goes on with
// the search the stored trials dictate: every trial, before and after the
// kill, is what the sampler proposes from the trials before it (replayed
// from the store), the random start is the uninterrupted run's (same
// seed), and the run ends done with a champion. (Once tpe models, its
// proposals follow measured values, which differ from run to run.)
func TestSearchSurvivesKill9(t *testing.T) {
	grid := searchGrid(t,
		"    enable-prefix-caching: [true, false]\n",
		"    enable-prefix-caching: [true, false]\n    max-num-seqs: [32, 64, 128]\nsearch: {strategy: tpe, max_trials: 4, seed: 11, startup: 3}\n")
	sequence := func(db string) ([]string, *orchestrator.Run, []*orchestrator.Trial) {
		st := openStore(t, db)
		defer st.Close()
		run, _ := st.GetRun("latest")
		trials, _ := st.Trials(run.ID)
		var names []string
		for _, tr := range trials {
			names = append(names, tr.Candidate.Name)
		}
		if seq, err := orchestrator.ReplaySearch(st, run); err != nil || seq != -1 {
			t.Errorf("%s: trial %d is not what the sampler proposes from the trials before it (%v)", db, seq, err)
		}
		return names, run, trials
	}
	ref := filepath.Join(t.TempDir(), "ref.db")
	if code, out, errs := vgrid(t, "run", grid, "--store", ref, "--quiet"); code != 0 {
		t.Fatalf("reference run: %d\n%s\n%s", code, out, errs)
	}
	want, _, wantTrials := sequence(ref)

	db := filepath.Join(t.TempDir(), "vgrid.db")
	killDuring(t, vgridBinary(t), "[2/4] benchmarking", "run", grid, "--store", db)
	if code, out, errs := vgrid(t, "run", "--resume", "latest", "--store", db, "--quiet"); code != 0 {
		t.Fatalf("resume: %d\n%s\n%s", code, out, errs)
	}
	got, run, trials := sequence(db)
	// The random start: every proposal up to the third booted trial.
	booted, start := 0, 0
	for start < len(wantTrials) && booted < 3 {
		if wantTrials[start].Phase != orchestrator.PhaseSkipped {
			booted++
		}
		start++
	}
	if len(got) < start || strings.Join(got[:start], "\n") != strings.Join(want[:start], "\n") {
		t.Errorf("resumed random start:\n%s\nwant (uninterrupted, same seed):\n%s", strings.Join(got, "\n"), strings.Join(want[:start], "\n"))
	}
	redone := 0
	for _, tr := range trials {
		if tr.Attempts > 1 {
			redone++
		}
	}
	if redone != 1 || run.State != orchestrator.RunDone || run.Champion == nil || run.Champion.Champion < 0 {
		t.Errorf("%d trials redone (want 1), state %s, champion %+v", redone, run.State, run.Champion)
	}
}

// killDuring runs the vgrid binary and kills it with SIGKILL when its
// output shows a line starting with at; it fails the test if it never
// does; then it waits for the child simulators, which die with it
// (Pdeathsig).
func killDuring(t *testing.T, bin, at string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	killed := false
	var children []int
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), at) {
			children = childPIDs(cmd.Process.Pid)
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("never saw %q", at)
	}
	// The child simulators die with their parent (a parent-death signal):
	// wait until they are gone, so the resume finds their ports free.
	waitUntil(t, 10*time.Second, fmt.Sprintf("the killed vgrid's children %v to end", children), func() bool {
		return !slices.ContainsFunc(children, proc.Alive)
	})
}

// childPIDs lists the processes whose parent is pid (Linux's /proc; none
// elsewhere).
func childPIDs(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; read after its ')'.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
				out = append(out, child)
			}
		}
	}
	return out
}

// planThenRun plans the grid (its plan must say planSays), then runs it
// quietly into a fresh store; both must succeed. It returns the store's
// path and what the run printed.
func planThenRun(t *testing.T, grid, planSays string) (db, out string) {
	t.Helper()
	db = filepath.Join(t.TempDir(), "vgrid.db")
	code, out, errs := vgrid(t, "plan", grid, "--store", db)
	if code != 0 || !strings.Contains(out, planSays) {
		t.Fatalf("plan: code %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = vgrid(t, "run", grid, "--store", db, "--quiet")
	if code != 0 {
		t.Fatalf("run: code %d\n%s\n%s", code, out, errs)
	}
	return db, out
}

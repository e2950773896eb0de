package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
)

// benchmark.precision through the commands: plan and run refuse a bad
// target; a run measures each trial's objective until precise or the
// cap, stores what it achieved, and the report shows it; the daemon runs
// the same grid and refuses the same bad input.
func TestPrecisionThroughTheCommands(t *testing.T) {
	port := freePortT(t)
	src, err := os.ReadFile(quickGrid(t, port, "0.02"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, precision string) string {
		g := strings.Replace(string(src), "  rates: []\n", "  rates: []\n  precision: "+precision+"\n", 1)
		g = strings.Replace(g, "enable-prefix-caching: [true, false]", "enable-prefix-caching: [true]", 1)
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(g), 0o644)
		return p
	}
	bad := write("bad.yaml", "{objective: 0.1%, max_repetitions: 4}")
	db := filepath.Join(dir, "vgrid.db")
	env := binEnv(t)
	for _, cmd := range []string{"plan", "run"} {
		if code, o, e := runBin(t, env, cmd, bad, "--store", db); code == 0 || !strings.Contains(o+e, "benchmark.precision.objective 0.1%: want a half-width between 0.5% and 50%") {
			t.Errorf("%s with a 0.1%% target: %d\n%s%s", cmd, code, o, e)
		}
	}
	good := write("good.yaml", "{objective: 3%, max_repetitions: 4}")
	if code, o, e := runBin(t, env, "plan", good, "--store", db); code != 0 {
		t.Fatalf("plan: %d\n%s%s", code, o, e)
	}
	if code, o, e := runBin(t, env, "run", good, "--store", db); code != 0 {
		t.Fatalf("run: %d\n%s%s", code, o, e)
	}
	st, err := store.OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	run, _ := st.GetRun("latest")
	trials, _ := st.Trials(run.ID)
	done := 0
	for _, tr := range trials {
		if tr.Phase != orchestrator.PhaseDone {
			continue // gpu-memory-utilization 0.95 does not boot here
		}
		done++
		a := tr.Precision
		if a == nil || a.Reps < 2 || a.Reps > 4 || a.Target != 3 || (a.Met != (a.Pct >= 0 && a.Pct <= 3)) || (!a.Met && a.Reps != 4) {
			t.Errorf("trial %d: %s, precision %+v", tr.Seq, tr.Phase, a)
			continue
		}
		reps, _ := st.Reports(run.ID, tr.Seq)
		if len(reps) != a.Reps || len(reps[0].Scenarios) != 2 || len(reps[a.Reps-1].Scenarios) != 1 || reps[a.Reps-1].Scenarios[0].Name != "kv-cache" {
			t.Errorf("trial %d: %d reports for %d repetitions", tr.Seq, len(reps), a.Reps)
		}
	}
	if done == 0 {
		t.Fatal("no trial was measured")
	}
	if run.Champion == nil || run.Champion.Champion < 0 {
		t.Errorf("no champion: %+v", run.Champion)
	}
	st.Close()
	code, rep, e := runBin(t, env, "report", run.ID, "--store", db)
	if code != 0 || !strings.Contains(rep, "precision (95% half-width, reps)") || !strings.Contains(rep, " reps") {
		t.Errorf("report: %d\n%s%s", code, rep, e)
	}
	code, csv, _ := runBin(t, env, "report", run.ID, "--store", db, "--format", "csv")
	if code != 0 || !strings.Contains(strings.SplitN(csv, "\n", 2)[0], "precision_pct,precision_reps,precision_met") {
		t.Errorf("CSV header: %q", strings.SplitN(csv, "\n", 2)[0])
	}

	// The daemon: the same refusal, and the same grid run to its end.
	d := startDaemon(t, t.TempDir(), freePortT(t))
	b, _ := os.ReadFile(bad)
	if code, body := d.call(t, "POST", "/v1/runs?name=bad.yaml", d.token, string(b)); code != 400 || !strings.Contains(body, "benchmark.precision.objective 0.1%") {
		t.Errorf("daemon, bad precision: %d %s", code, body)
	}
	g, _ := os.ReadFile(good)
	id := d.submit(t, string(g))
	state, served := d.waitRun(t, id, 2*time.Minute, func(state string, _ []orchestrator.Trial) bool { return state == "done" || state == "failed" })
	if state != "done" || len(served) != 2 || served[0].Precision == nil || served[0].Precision.Reps < 2 {
		t.Errorf("daemon run %s: %d trials %+v\n%s", state, len(served), served, d.log.String())
	}
}

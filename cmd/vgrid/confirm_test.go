package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vgrid/vgrid/store"
)

// confirm through the commands, on the simulator with its realistic
// noise: plan says what confirm may boot and refuses a confirm that
// cannot fit before the deadline; a run whose two contenders measure
// alike either shows them equivalent or boots them again, and the stored
// verdict and the report say which.
func TestConfirmThroughTheCommands(t *testing.T) {
	port := freePortT(t)
	src, err := os.ReadFile(quickGrid(t, port, "0.02"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	g := strings.Replace(string(src), "  env: {VLLM_SIM_TIME_SCALE", "  env: {VLLM_SIM_NOISE: realistic, VLLM_SIM_SEED: \"3\", VLLM_SIM_BOOTS_FILE: "+filepath.Join(dir, "boots")+", VLLM_SIM_TIME_SCALE", 1)
	g = strings.Replace(g, "    gpu-memory-utilization: [0.85, 0.95]\n    enable-prefix-caching: [true, false]\n", "    gpu-memory-utilization: [0.85]\n    max-num-seqs: [32, 64]\n", 1)
	write := func(name, extra string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(g+extra), 0o644)
		return p
	}
	db := filepath.Join(dir, "vgrid.db")
	env := binEnv(t)
	late := write("late.yaml", "confirm: {top: 2, boots: 8}\ndeadline: 20s\n")
	if code, o, e := runBin(t, env, "plan", late, "--store", db); code == 0 || !strings.Contains(o+e, "confirm: {top: 2, boots: 8} needs about") {
		t.Errorf("plan with 16 confirm boots before a deadline in 20 seconds: %d\n%s%s", code, o, e)
	}
	good := write("good.yaml", "confirm: {top: 2, boots: 1}\n")
	if code, o, e := runBin(t, env, "plan", good, "--store", db); code != 0 || !strings.Contains(o, "confirm: when the leader is not separated, its 2 best contenders are booted again, up to 1 more boots each (at most 2 boots") {
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
	st.Close()
	v := run.Champion
	boots := 0
	for _, tr := range trials[2:] {
		if tr.Confirm != 1 {
			t.Errorf("trial %d: confirm %d, want a first fresh boot", tr.Seq, tr.Confirm)
		}
		boots++
	}
	switch {
	case v == nil || v.Champion < 0:
		t.Fatalf("no verdict: %+v", v)
	case boots == 0 && !v.Tie:
		// separated on the first measurements: nothing to confirm
	case boots == 0 && len(v.Equivalent) != 2:
		t.Errorf("no boots, yet the contenders were neither separated nor shown equivalent: %s", v.Reason)
	case boots > 0 && boots != 2:
		t.Errorf("%d boots, want one of each of the 2 contenders", boots)
	}
	t.Logf("%d confirm boots; verdict: %s", boots, v.Reason)
	code, o, e := runBin(t, env, "report", run.ID, "--store", db)
	if code != 0 {
		t.Fatalf("report: %d %s", code, e)
	}
	if boots > 0 && !strings.Contains(o, "(confirm: fresh boot 1)") {
		t.Errorf("the report does not show confirm's boots:\n%s", o)
	}
	if v.Tie && !strings.Contains(o, "Equivalent within") && !strings.Contains(o, "Not separated") {
		t.Errorf("the report does not say how the tie was read:\n%s", o)
	}
}

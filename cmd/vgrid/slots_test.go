package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/orchestrator"
)

// TestSlotsThroughTheCLI: the quickstart on two process slots (their own
// ports, their own GPU sets) runs its trials two at a time: both slots
// serve trials, at least two trials overlap, each records its slot, the
// champion is the one a serial run crowns, and nothing answers on the
// slots' ports at the end.
func TestSlotsThroughTheCLI(t *testing.T) {
	p1, p2 := freePortT(t), freePortT(t)
	grid := searchGrid(t, "  endpoint: http://127.0.0.1:", fmt.Sprintf("  slots: [{gpus: \"0,1\", port: %d}, {gpus: \"2,3\", port: %d}]\n  endpoint: http://127.0.0.1:", p1, p2))
	db := filepath.Join(t.TempDir(), "vgrid.db")
	code, out, errs := vgrid(t, "plan", grid, "--store", db)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("slots: 2 trials at once (gpus 0,1 port %d; gpus 2,3 port %d)", p1, p2)) {
		t.Fatalf("plan: code %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = vgrid(t, "run", grid, "--store", db, "--quiet")
	if code != 0 || !strings.Contains(out, "champion: gpu-memory-utilization=0.85 enable-prefix-caching=true") {
		t.Fatalf("run: code %d\n%s\n%s", code, out, errs)
	}
	st := openStore(t, db)
	run, _ := st.GetRun("latest")
	trials, _ := st.Trials(run.ID)
	used := map[string]int{}
	for _, tr := range trials {
		used[tr.Slot]++
	}
	if len(trials) != 4 || used[fmt.Sprintf("gpus 0,1 port %d", p1)] == 0 || used[fmt.Sprintf("gpus 2,3 port %d", p2)] == 0 {
		t.Errorf("%d trials; slots used %v", len(trials), used)
	}
	// Two trials overlap: one started before another ended.
	overlap := false
	for _, a := range trials {
		for _, b := range trials {
			if a.Seq < b.Seq && b.Entered(orchestrator.PhaseRendering).Before(endOf(a)) {
				overlap = true
			}
		}
	}
	if !overlap {
		t.Errorf("no two trials overlapped")
	}
	for _, p := range []int{p1, p2} {
		if httpAnswers(fmt.Sprintf("http://127.0.0.1:%d", p)) {
			t.Errorf("something still answers on slot port %d", p)
		}
	}
}

func endOf(t *orchestrator.Trial) time.Time {
	return t.Phases[len(t.Phases)-1].At
}

// TestSlotsBadInput: slots that would collide are refused at plan and
// run, saying which and why.
func TestSlotsBadInput(t *testing.T) {
	db := filepath.Join(t.TempDir(), "vgrid.db")
	for _, tc := range []struct{ slots, want string }{
		{`[{gpus: "0,1", port: 9101}, {gpus: "1,2", port: 9102}]`, "target.slots[0] and [1] both use GPU 1: slots run at once, so their GPU sets must not overlap"},
		{`[{gpus: "0", port: 9101}, {gpus: "1", port: 9101}]`, "target.slots[0] and [1] both use port 9101"},
		{`[{gpus: "0", port: 8011}]`, "port 8011 is the target's own"},
		{`[{gpus: "zero", port: 9101}]`, `target.slots[0]: gpus "zero": want device IDs`},
		{`[{gpus: "0", port: 9101, docker_host: "ssh://gpu2"}]`, "target.slots[0]: docker_host is for the compose driver"},
		{`[{gpus: "0", prot: 9101}]`, "unknown key `prot` in a target.slots entry (keys: gpus, port, docker_host)"},
	} {
		src, err := os.ReadFile("../../examples/quickstart.yaml")
		if err != nil {
			t.Fatal(err)
		}
		grid := filepath.Join(t.TempDir(), "grid.yaml")
		os.WriteFile(grid, []byte(strings.Replace(string(src), "  endpoint: http://127.0.0.1:8011", "  slots: "+tc.slots+"\n  endpoint: http://127.0.0.1:8011", 1)), 0o644)
		for _, cmd := range []string{"plan", "run"} {
			code, _, errs := vgrid(t, cmd, grid, "--store", db)
			if code != 2 || !strings.Contains(errs, tc.want) {
				t.Errorf("%s with slots %s: code %d, stderr %q, want 2 and %q", cmd, tc.slots, code, errs, tc.want)
			}
		}
	}
}

// BenchmarkSlotsWallTime runs an 8-candidate grid on the simulator (boots
// of ~1.6 s, a kv-cache and load benchmark) once on the target alone and
// once on 2 and 4 process slots, and reports each run's trials' wall time
// against the serial one, and the champions.
//
//	go test ./cmd/vgrid -run '^$' -bench SlotsWallTime -benchtime 1x
func BenchmarkSlotsWallTime(b *testing.B) {
	src, err := os.ReadFile("../../examples/quickstart.yaml")
	if err != nil {
		b.Fatal(err)
	}
	base := strings.NewReplacer("8011", fmt.Sprint(freePortT(b)),
		`VLLM_SIM_TIME_SCALE: "0.02"`, `VLLM_SIM_TIME_SCALE: "0.01"`,
		"    gpu-memory-utilization: [0.85, 0.95]\n", "    gpu-memory-utilization: [0.70, 0.75, 0.80, 0.85]\n").Replace(string(src))
	for i := 0; i < b.N; i++ {
		var serial time.Duration
		var first string
		for _, n := range []int{1, 2, 4} {
			grid := base
			if n > 1 {
				var slots []string
				for k := 0; k < n; k++ {
					slots = append(slots, fmt.Sprintf("{gpus: \"%d\", port: %d}", k, freePortT(b)))
				}
				grid = strings.Replace(grid, "  endpoint: http://", "  slots: ["+strings.Join(slots, ", ")+"]\n  endpoint: http://", 1)
			}
			dir := b.TempDir()
			gf, db := filepath.Join(dir, "grid.yaml"), filepath.Join(dir, "vgrid.db")
			os.WriteFile(gf, []byte(grid), 0o644)
			if code, out, errs := vgrid(b, "run", gf, "--store", db, "--quiet"); code != 0 {
				b.Fatalf("%d slot(s): code %d\n%s\n%s", n, code, out, errs)
			}
			st := openStore(b, db)
			run, _ := st.GetRun("latest")
			trials, _ := st.Trials(run.ID)
			st.Close()
			wall := orchestrator.RunWall(trials)
			if n == 1 {
				serial = wall
			}
			champ := ""
			if run.Champion != nil {
				champ = run.Champion.Name + " (" + run.Champion.Reason + ")"
				if n == 1 {
					first = run.Champion.Name
				} else if run.Champion.Name != first {
					b.Errorf("%d slots crowned %s, the serial run %s", n, run.Champion.Name, first)
				}
			}
			b.Logf("%d slot(s): %d trials in %.1fs, %.2f of the serial wall time; champion %s", n, len(trials), wall.Seconds(), wall.Seconds()/serial.Seconds(), champ)
			b.ReportMetric(wall.Seconds()/serial.Seconds(), fmt.Sprintf("wall_vs_serial_%dslots", n))
		}
	}
}

// TestSlotsSurviveKill9: vgrid killed with SIGKILL while trials run on
// two slots, then resumed: each slot's interrupted trial is redone once,
// every trial ends with one report, none is lost or run twice, and the
// slots' ports are free at the end.
func TestSlotsSurviveKill9(t *testing.T) {
	p1, p2 := freePortT(t), freePortT(t)
	grid := searchGrid(t,
		"  endpoint: http://127.0.0.1:", fmt.Sprintf("  slots: [{gpus: \"0,1\", port: %d}, {gpus: \"2,3\", port: %d}]\n  endpoint: http://127.0.0.1:", p1, p2),
		"    gpu-memory-utilization: [0.85, 0.95]\n", "    gpu-memory-utilization: [0.75, 0.80, 0.85]\n")
	killAndResume(t, grid, "[3/6] benchmarking", 6)
	for _, p := range []int{p1, p2} {
		if httpAnswers(fmt.Sprintf("http://127.0.0.1:%d", p)) {
			t.Errorf("something still answers on slot port %d", p)
		}
	}
}

// killAndResume runs the grid, kills vgrid with SIGKILL when a line
// starts with at, resumes it, and checks that each trial in flight at the
// kill was redone once and that every one of the want trials ended
// measured with one report.
func killAndResume(t *testing.T, grid, at string, want int) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "vgrid.db")
	killDuring(t, vgridBinary(t), at, "run", grid, "--store", db)
	st := openStore(t, db)
	run, _ := st.GetRun("latest")
	before, _ := st.Trials(run.ID)
	st.Close()
	inFlight := 0
	for _, tr := range before {
		if !tr.Phase.Final() && tr.Phase != orchestrator.PhasePending {
			inFlight++
		}
	}
	if code, out, errs := vgrid(t, "run", "--resume", "latest", "--store", db, "--quiet"); code != 0 {
		t.Fatalf("resume: %d\n%s\n%s", code, out, errs)
	}
	st = openStore(t, db)
	defer st.Close()
	run, _ = st.GetRun("latest")
	trials, _ := st.Trials(run.ID)
	redone := 0
	for _, tr := range trials {
		reps, _ := st.Reports(run.ID, tr.Seq)
		if tr.Phase != orchestrator.PhaseDone || len(reps) != 1 {
			t.Errorf("trial %d: %s %v with %d reports, want done with 1", tr.Seq, tr.Phase, tr.Failure, len(reps))
		}
		if tr.Attempts > 1 {
			redone++
		}
	}
	if len(trials) != want || inFlight == 0 || redone != inFlight || run.State != orchestrator.RunDone {
		t.Errorf("%d trials, %d in flight at the kill, %d redone, state %s", len(trials), inFlight, redone, run.State)
	}
}

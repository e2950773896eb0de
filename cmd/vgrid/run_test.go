package main

import (
	"context"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
)

// The process driver re-executes this binary as `vgrid sim serve`: in tests
// that is the test binary, which must then act as vgrid.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "sim" && os.Args[2] == "serve" {
		os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func openStore(t testing.TB, path string) *store.Store {
	t.Helper()
	st, err := store.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestQuickstartRun(t *testing.T) {
	// The README's grid, on a free port instead of 8011.
	src, err := os.ReadFile("../../examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(freePortT(t))
	quick := filepath.Join(t.TempDir(), "quickstart.yaml")
	os.WriteFile(quick, []byte(strings.ReplaceAll(string(src), "8011", port)), 0o644)
	db := filepath.Join(t.TempDir(), "vgrid.db")
	code, out, errs := vgrid(t, "run", quick, "--store", db)
	if code != 0 {
		t.Fatalf("code %d\n%s\n%s", code, out, errs)
	}
	st := openStore(t, db)
	run, err := st.GetRun("latest")
	if err != nil {
		t.Fatal(err)
	}
	trials, _ := st.Trials(run.ID)
	var phases []string
	for _, tr := range trials {
		p := tr.Phase.String()
		if tr.Failure != nil {
			p += ":" + tr.Failure.Reason.String()
		}
		phases = append(phases, p)
	}
	if strings.Join(phases, ",") != "done,done,failed:free_memory,failed:free_memory" {
		t.Errorf("trials %v", phases)
	}
	if run.State != orchestrator.RunDone || run.Champion == nil || run.Champion.Champion != 0 || run.Champion.Tie || run.EndAction != "original" {
		t.Errorf("run %+v champion %+v", run, run.Champion)
	}
	// Every trial that ran went through every phase, in order.
	for _, want := range []orchestrator.Phase{orchestrator.PhaseRendering, orchestrator.PhaseDeploying, orchestrator.PhaseWaitingReady,
		orchestrator.PhaseVerifyingConfig, orchestrator.PhaseBenchmarking, orchestrator.PhaseDone} {
		if trials[0].Entered(want).IsZero() {
			t.Errorf("trial 0 never entered %s", want)
		}
	}
	if trials[0].Effective["enable_prefix_caching"] != "true" || trials[1].Effective["enable_prefix_caching"] != "false" {
		t.Errorf("verified configs %v %v", trials[0].Effective, trials[1].Effective)
	}
	st.Close() // one process at a time on a bbolt file
	code, md, _ := vgrid(t, "report", "latest", "--store", db)
	if code != 0 || !strings.Contains(md, "## Champion: gpu-memory-utilization=0.85 enable-prefix-caching=true") || !strings.Contains(md, "Free memory on device cuda:0") {
		t.Errorf("report:\n%s", md)
	}
	if httpAnswers("http://127.0.0.1:" + port) {
		t.Error("end: restore left the simulator running")
	}
}

func writeGrid(t *testing.T, port, env string, space string) string {
	t.Helper()
	g := `name: test
target:
  driver: process
  command: [vgrid, sim, serve, --model, m, --host, 127.0.0.1, --port, "` + port + `", --max-model-len, "8192", --enable-prompt-tokens-details]
  endpoint: http://127.0.0.1:` + port + `
  env: {` + env + `}
space:
` + space + `
benchmark:
  scenarios: [kv-cache]
  requests: 4
constraints: ["errors == 0"]
objective: {maximize: kv-cache.acceleration}
end: restore
`
	p := filepath.Join(t.TempDir(), "grid.yaml")
	os.WriteFile(p, []byte(g), 0o644)
	return p
}

func TestEngineDeathMidBenchmark(t *testing.T) {
	// Every engine dies after 5 requests: the kv-cache scenario sends 10.
	grid := writeGrid(t, fmt.Sprint(freePortT(t)), `VLLM_SIM_TIME_SCALE: "0.005", VLLM_SIM_DIE_AFTER_REQUESTS: "5"`, "  axes:\n    enable-prefix-caching: [true, false]")
	db := filepath.Join(t.TempDir(), "vgrid.db")
	code, out, errs := vgrid(t, "run", grid, "--store", db)
	// No candidate was measured: the run has no result, and says so.
	if code != 1 || !strings.Contains(errs, "measured no candidate: 2 failed (engine_dead x2)") {
		t.Fatalf("code %d, want 1 with the reason\n%s\n%s", code, out, errs)
	}
	st := openStore(t, db)
	run, _ := st.GetRun("latest")
	if run.State != orchestrator.RunFailed || run.Error != "no candidate was measured: 2 failed (engine_dead x2)" || run.EndAction != "original" {
		t.Errorf("run state %s, error %q, left %q", run.State, run.Error, run.EndAction)
	}
	trials, _ := st.Trials(run.ID)
	for _, tr := range trials {
		if tr.Phase != orchestrator.PhaseFailed || tr.Failure.Reason.String() != "engine_dead" || !strings.Contains(tr.Failure.Line, "EngineDeadError") {
			t.Errorf("trial %d: %s %+v", tr.Seq, tr.Phase, tr.Failure)
		}
	}
	if !trials[1].Entered(orchestrator.PhaseRendering).After(trials[0].Entered(orchestrator.PhaseFailed)) {
		t.Error("the second trial did not proceed after the first failed")
	}
	if run.Champion.Champion != -1 || !strings.Contains(run.Champion.Reason, "no candidate") {
		t.Errorf("verdict %+v", run.Champion)
	}
}

// A server whose decoding wedges mid-benchmark while /health answers 200
// fails "stalled" after timeouts.stall, with what was observed, instead
// of holding the night for every request's own timeout.
func TestDecodeStallMidBenchmark(t *testing.T) {
	grid := writeGrid(t, fmt.Sprint(freePortT(t)), `VLLM_SIM_TIME_SCALE: "0.005", VLLM_SIM_STALL_AFTER_REQUESTS: "5"`, "  axes:\n    enable-prefix-caching: [true]")
	g, _ := os.ReadFile(grid)
	os.WriteFile(grid, append(g, "timeouts: {stall: 2s}\n"...), 0o644)
	db := filepath.Join(t.TempDir(), "vgrid.db")
	start := time.Now()
	code, out, errs := vgrid(t, "run", grid, "--store", db)
	if code != 1 || !strings.Contains(errs, "measured no candidate: 1 failed (stalled)") {
		t.Fatalf("code %d, want 1 with the reason\n%s\n%s", code, out, errs)
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("the stall took %s to be seen", took)
	}
	st := openStore(t, db)
	run, _ := st.GetRun("latest")
	trials, _ := st.Trials(run.ID)
	if len(trials) != 1 || trials[0].Failure == nil || trials[0].Failure.Reason != failure.ReasonStalled ||
		!strings.Contains(trials[0].Failure.Detail, "GET /health answered 200") {
		t.Fatalf("trials %+v", trials)
	}
}

// TestResumeAfterKill9 kills vgrid with SIGKILL while the second trial is
// deploying, waiting for readiness and benchmarking, then resumes: every
// trial is done exactly once, samples are not counted twice, and the
// champion is the one an uninterrupted run chooses.
func TestResumeAfterKill9(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vgrid")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	space := `  candidates:
    - {name: a, flags: {enable-prefix-caching: "false", gpu-memory-utilization: "0.5"}}
    - {name: b, flags: {enable-prefix-caching: "true", gpu-memory-utilization: "0.5"}}
    - {name: c, flags: {enable-prefix-caching: "false", gpu-memory-utilization: "0.6"}}`
	grid := writeGrid(t, fmt.Sprint(freePortT(t)), `VLLM_SIM_TIME_SCALE: "0.02"`, space)
	// Reference: uninterrupted.
	refDB := filepath.Join(t.TempDir(), "ref.db")
	if out, err := exec.Command(bin, "run", grid, "--store", refDB).CombinedOutput(); err != nil {
		t.Fatalf("reference run: %v\n%s", err, out)
	}
	ref := openStore(t, refDB)
	refRun, _ := ref.GetRun("latest")
	ref.Close()

	for _, phase := range []string{"deploying", "waiting-ready", "benchmarking"} {
		t.Run(phase, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "vgrid.db")
			killDuring(t, bin, "[2/3] "+phase, "run", grid, "--store", db)
			if out, err := exec.Command(bin, "runs", "list", "--store", db).CombinedOutput(); err != nil || !strings.Contains(string(out), "running, but no process holds its target (killed?): vgrid run --resume ") {
				t.Errorf("runs list after kill -9: %v\n%s", err, out)
			}
			out, err := exec.Command(bin, "run", "--resume", "latest", "--store", db).CombinedOutput()
			if err != nil {
				t.Fatalf("resume: %v\n%s", err, out)
			}
			st := openStore(t, db)
			run, _ := st.GetRun("latest")
			trials, _ := st.Trials(run.ID)
			for _, tr := range trials {
				reps, _ := st.Reports(run.ID, tr.Seq)
				if tr.Phase != orchestrator.PhaseDone || len(reps) != 1 {
					t.Errorf("trial %d: %s with %d reports, want done with 1", tr.Seq, tr.Phase, len(reps))
				}
				wantAttempts := 1
				if tr.Seq == 1 {
					wantAttempts = 2
				}
				if tr.Attempts != wantAttempts {
					t.Errorf("trial %d: %d attempts, want %d", tr.Seq, tr.Attempts, wantAttempts)
				}
			}
			if run.State != orchestrator.RunDone || run.Champion.Champion != refRun.Champion.Champion {
				t.Errorf("state %s, champion %d, want done and %d (uninterrupted)", run.State, run.Champion.Champion, refRun.Champion.Champion)
			}
		})
	}
}

// httpAnswers reports whether an HTTP server answers at endpoint.
func httpAnswers(endpoint string) bool {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(endpoint + "/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

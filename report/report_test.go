package report

import (
	"bytes"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	goldenfile "github.com/vgrid/vgrid/internal/golden"
	"github.com/vgrid/vgrid/orchestrator"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/vllm"
)

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

const reportGrid = `name: report-demo
target:
  driver: process
  command: [vllm, serve, --model, Qwen/Qwen3-32B-AWQ, --port, "8000"]
  endpoint: http://127.0.0.1:8000
space:
  axes:
    gpu-memory-utilization: [0.85, 0.95]
    enable-prefix-caching: [true, false]
benchmark:
  scenarios: [kv-cache, load]
  requests: 4
  concurrency: [1, 2]
  rates: []
constraints: [errors == 0]
objective: {maximize: kv-cache.acceleration}
tie: prefer lower gpu-memory-utilization
end: restore
`

// measuredReport is a deterministic benchmark of one candidate: kv-cache
// pairs whose miss is missMs and hit hitMs (plus a small spread), and two
// closed-loop load levels.
func measuredReport(g *orchestrator.Grid, missMs, hitMs float64) *benchmark.Report {
	t0 := time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)
	settings := g.Benchmark.Settings()
	rep := &benchmark.Report{Endpoint: "http://127.0.0.1:8000", Model: "Qwen/Qwen3-32B-AWQ", Started: t0, Settings: &settings}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	kv := benchmark.ScenarioReport{Name: "kv-cache", Started: t0}
	for i := 0; i < 4; i++ {
		spread := float64(i%3) * 0.5
		sent := t0.Add(time.Duration(i) * time.Second)
		kv.Results = append(kv.Results,
			benchmark.Result{Tag: "miss", Sent: sent, TTFT: ms(missMs + spread), E2EL: ms(missMs + 100), Chunks: 16, OutputTokens: 16, PromptTokens: 2000},
			benchmark.Result{Tag: "hit", Sent: sent.Add(500 * time.Millisecond), TTFT: ms(hitMs + spread), E2EL: ms(hitMs + 100), Chunks: 16, OutputTokens: 16, PromptTokens: 2000, CachedTokens: 1984})
	}
	load := benchmark.ScenarioReport{Name: "load", Started: t0.Add(10 * time.Second)}
	for _, cc := range []int{1, 2} {
		for i := 0; i < 4; i++ {
			sent := t0.Add(10*time.Second + time.Duration(cc*10+i)*time.Second/time.Duration(cc))
			load.Results = append(load.Results, benchmark.Result{Tag: fmt.Sprintf("concurrency-%d", cc), Class: "closed", Sent: sent,
				TTFT: ms(40 * float64(cc)), E2EL: ms(1600 + 100*float64(cc)), Chunks: 64, OutputTokens: 64, ITL: []time.Duration{ms(25), ms(25)}})
		}
	}
	rep.Scenarios = []benchmark.ScenarioReport{kv, load}
	return rep
}

// reportFixture is a finished run: two measured candidates, one that failed
// to boot with vLLM's line, one skipped by the memory model.
func reportFixture(t *testing.T) (*orchestrator.Run, []*orchestrator.Trial, map[int][]*benchmark.Report) {
	t.Helper()
	g, err := orchestrator.LoadGrid("grid.yaml", []byte(reportGrid), "/grids")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)
	run := orchestrator.NewRun(g, "grid.yaml", t0, g.Target.Key(), "v0.0.0-test")
	run.ID, run.State, run.EndAction = "20261122-180000-abcdef", orchestrator.RunDone, "original"
	cands := g.Expand()
	var trials []*orchestrator.Trial
	reports := map[int][]*benchmark.Report{}
	for i, c := range cands {
		tr := &orchestrator.Trial{RunID: run.ID, Seq: i, Candidate: c, Attempts: 1, Rendered: append([]string{"--model", "Qwen/Qwen3-32B-AWQ"}, flagWords(c)...)}
		at := t0.Add(time.Duration(i) * time.Minute)
		tr.Phases = []orchestrator.PhaseStamp{{Phase: orchestrator.PhasePending, At: t0}, {Phase: orchestrator.PhaseRendering, At: at}, {Phase: orchestrator.PhaseDeploying, At: at.Add(time.Second)}, {Phase: orchestrator.PhaseWaitingReady, At: at.Add(2 * time.Second)}}
		switch i {
		case 0, 1:
			tr.Phase = orchestrator.PhaseDone
			tr.Boot = &failure.Boot{Ready: 165.2 + float64(i)}
			tr.Phases = append(tr.Phases, orchestrator.PhaseStamp{Phase: orchestrator.PhaseVerifyingConfig, At: at.Add(170 * time.Second)}, orchestrator.PhaseStamp{Phase: orchestrator.PhaseBenchmarking, At: at.Add(171 * time.Second)}, orchestrator.PhaseStamp{Phase: orchestrator.PhaseDone, At: at.Add(230 * time.Second)})
			miss, hit := 320.0, 45.0
			if i == 1 {
				hit = 310
			}
			reports[i] = []*benchmark.Report{measuredReport(g, miss, hit)}
		case 2:
			tr.Phase = orchestrator.PhaseFailed
			tr.Failure = &failure.Failure{Reason: failure.ReasonFreeMemory, Detail: "vLLM failed while starting the container",
				Line: "ValueError: Free memory on device cuda:0 (22.52/23.99 GiB) on startup is less than desired GPU memory utilization (0.95, 22.79 GiB)."}
			tr.Phases = append(tr.Phases, orchestrator.PhaseStamp{Phase: orchestrator.PhaseFailed, At: at.Add(3 * time.Second)})
		case 3:
			tr.Phase = orchestrator.PhaseSkipped
			tr.Failure = &failure.Failure{Reason: failure.ReasonInfeasible, Detail: "infeasible: Free memory on device cuda:0"}
			tr.Phases = []orchestrator.PhaseStamp{{Phase: orchestrator.PhasePending, At: t0}, {Phase: orchestrator.PhaseSkipped, At: at}}
		}
		trials = append(trials, tr)
	}
	scored := make([]orchestrator.Scored, 0, len(trials))
	for _, tr := range trials {
		sc := orchestrator.Scored{Seq: tr.Seq, Name: tr.Candidate.Name, Candidate: tr.Candidate, Done: tr.Phase == orchestrator.PhaseDone}
		if sc.Done {
			sc.Values, sc.Reps = orchestrator.Metrics(reports[tr.Seq])
			sc.Settings, sc.Mixed = orchestrator.SettingsOf(reports[tr.Seq])
			sc.CI = orchestrator.AccelerationCI(reports[tr.Seq])
		}
		scored = append(scored, sc)
	}
	run.Champion = orchestrator.Choose(g, scored)
	return run, trials, reports
}

// flagWords renders a candidate as vLLM words, the way drivers do.
func flagWords(c orchestrator.Candidate) []string { return vllm.Flags(nil).Apply(c.Settings).Words() }

func TestReportGolden(t *testing.T) {
	run, trials, reports := reportFixture(t)
	d := BuildReport(run, trials, reports)
	var md, csv, levels, html bytes.Buffer
	d.Markdown(&md)
	if err := d.CSV(&csv); err != nil {
		t.Fatal(err)
	}
	if err := d.LevelsCSV(&levels); err != nil {
		t.Fatal(err)
	}
	if err := d.HTML(&html); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.md", md.Bytes())
	golden(t, "report.csv", csv.Bytes())
	golden(t, "report-levels.csv", levels.Bytes())
	golden(t, "report.html", html.Bytes())
}

// The CSV is for analysis: one value per cell, a CI's bounds in their own
// columns, nothing where nothing was measured.
func TestReportCSVOneValuePerCell(t *testing.T) {
	run, trials, reports := reportFixture(t)
	var b bytes.Buffer
	BuildReport(run, trials, reports).CSV(&b)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	head := strings.Split(lines[0], ",")
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, c := range []string{"acceleration", "acceleration_ci_low", "acceleration_ci_high", "failure_reason"} {
		if _, ok := col[c]; !ok {
			t.Fatalf("no %s column in %v", c, head)
		}
	}
	for i, l := range lines[1:] {
		cells := strings.Split(l, ",")
		for j, c := range cells {
			if c == "-" || strings.ContainsAny(c, "[]x") && head[j] != "candidate" && head[j] != "verdict" && head[j] != "failure_reason" {
				t.Errorf("row %d, %s = %q: not one plain value", i, head[j], c)
			}
		}
		if i >= 2 && cells[col["acceleration"]] != "" {
			t.Errorf("row %d (not measured): acceleration %q, want empty", i, cells[col["acceleration"]])
		}
	}
	if got := strings.Split(lines[3], ",")[col["failure_reason"]]; got != "free_memory" {
		t.Errorf("failure_reason %q", got)
	}
}

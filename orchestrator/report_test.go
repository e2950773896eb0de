package orchestrator

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/vllm"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./orchestrator -run %s -update to accept):\n%s", name, t.Name(), firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n want %q\n got  %q", i+1, a, b)
		}
	}
	return ""
}

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
func measuredReport(g *Grid, missMs, hitMs float64) *benchmark.Report {
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
func reportFixture(t *testing.T) (*Run, []*Trial, map[int][]*benchmark.Report) {
	t.Helper()
	g, err := LoadGrid("grid.yaml", []byte(reportGrid), "/grids")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)
	run := NewRun(g, "grid.yaml", t0, g.Target.Key(), "v0.0.0-test")
	run.ID, run.State, run.EndAction = "20261122-180000-abcdef", RunDone, "original"
	cands := g.Expand()
	var trials []*Trial
	reports := map[int][]*benchmark.Report{}
	for i, c := range cands {
		tr := &Trial{RunID: run.ID, Seq: i, Candidate: c, Attempts: 1, Rendered: append([]string{"--model", "Qwen/Qwen3-32B-AWQ"}, flagWords(c)...)}
		at := t0.Add(time.Duration(i) * time.Minute)
		tr.Phases = []PhaseStamp{{PhasePending, t0}, {PhaseRendering, at}, {PhaseDeploying, at.Add(time.Second)}, {PhaseWaitingReady, at.Add(2 * time.Second)}}
		switch i {
		case 0, 1:
			tr.Phase = PhaseDone
			tr.Boot = &Boot{Ready: 165.2 + float64(i)}
			tr.Phases = append(tr.Phases, PhaseStamp{PhaseVerifyingConfig, at.Add(170 * time.Second)}, PhaseStamp{PhaseBenchmarking, at.Add(171 * time.Second)}, PhaseStamp{PhaseDone, at.Add(230 * time.Second)})
			miss, hit := 320.0, 45.0
			if i == 1 {
				hit = 310
			}
			reports[i] = []*benchmark.Report{measuredReport(g, miss, hit)}
		case 2:
			tr.Phase = PhaseFailed
			tr.Failure = &Failure{Reason: ReasonFreeMemory, Detail: "vLLM failed while starting the container",
				Line: "ValueError: Free memory on device cuda:0 (22.52/23.99 GiB) on startup is less than desired GPU memory utilization (0.95, 22.79 GiB)."}
			tr.Phases = append(tr.Phases, PhaseStamp{PhaseFailed, at.Add(3 * time.Second)})
		case 3:
			tr.Phase = PhaseSkipped
			tr.Failure = &Failure{Reason: ReasonInfeasible, Detail: "infeasible: Free memory on device cuda:0"}
			tr.Phases = []PhaseStamp{{PhasePending, t0}, {PhaseSkipped, at}}
		}
		trials = append(trials, tr)
	}
	scored := make([]Scored, 0, len(trials))
	for _, tr := range trials {
		sc := Scored{Seq: tr.Seq, Name: tr.Candidate.Name, Candidate: tr.Candidate, Done: tr.Phase == PhaseDone}
		if sc.Done {
			sc.Values, sc.Reps = Metrics(reports[tr.Seq])
			sc.Settings, sc.Mixed = settingsOf(reports[tr.Seq])
			sc.CI = AccelerationCI(reports[tr.Seq])
		}
		scored = append(scored, sc)
	}
	run.Champion = Choose(g, scored)
	return run, trials, reports
}

// flagWords renders a candidate as vLLM words, the way drivers do.
func flagWords(c Candidate) []string { return vllm.Flags(nil).Apply(c.Settings).Words() }

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

package report

import (
	"bytes"
	"encoding/csv"
	"github.com/vgrid/vgrid/failure"
	"github.com/vgrid/vgrid/orchestrator"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/benchmark"
)

const truthGrid = `name: truth
target:
  driver: process
  command: [vllm, serve, --model, m, --gpu-memory-utilization, "0.9", --port, "8000"]
  endpoint: http://127.0.0.1:8000
space:
  axes:
    gpu-memory-utilization: [0.85, 0.95]
    enable-chunked-prefill: [true, false]
    max-num-seqs: [16, 64]
benchmark: {scenarios: [kv-cache], requests: 4, rates: []}
objective: {maximize: kv-cache.acceleration}
end: restore
`

// Every report row shows the candidate's own flags, whatever its outcome:
// done, failed, skipped as infeasible or for the deadline, pruned and
// cancelled, in the Markdown, HTML and CSV reports alike; a column per
// axis; none for scenarios the grid did not run.
func TestReportShowsEachCandidatesOwnFlags(t *testing.T) {
	g, err := orchestrator.LoadGrid("truth.yaml", []byte(truthGrid), "")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 20, 0, 0, 0, time.UTC) // before the other tests' ids: NewRunID never goes back
	run := orchestrator.NewRun(g, "truth.yaml", t0, g.Target.Key(), "test")
	run.State = orchestrator.RunDone
	cands := g.Expand()
	if len(cands) != 8 {
		t.Fatalf("%d candidates", len(cands))
	}
	outcomes := []struct {
		phase  orchestrator.Phase
		reason failure.Reason
	}{{orchestrator.PhaseDone, 0}, {orchestrator.PhaseDone, 0}, {orchestrator.PhaseFailed, failure.ReasonFreeMemory}, {orchestrator.PhaseSkipped, failure.ReasonInfeasible},
		{orchestrator.PhaseSkipped, failure.ReasonDeadline}, {orchestrator.PhasePruned, failure.ReasonPruned}, {orchestrator.PhaseCancelled, 0}, {orchestrator.PhaseFailed, failure.ReasonOOM}}
	var trials []*orchestrator.Trial
	reports := map[int][]*benchmark.Report{}
	for i, c := range cands {
		tr := &orchestrator.Trial{RunID: run.ID, Seq: i, Candidate: c, Phase: outcomes[i].phase, Attempts: 1, Phases: []orchestrator.PhaseStamp{{Phase: orchestrator.PhasePending, At: t0}}}
		if outcomes[i].reason != 0 {
			tr.Failure = &failure.Failure{Reason: outcomes[i].reason, Detail: "evidence"}
		}
		// Only the trials that were deployed have a rendering; skipped
		// and cancelled-before-start ones never had one.
		if tr.Phase != orchestrator.PhaseSkipped && tr.Phase != orchestrator.PhaseCancelled {
			tr.Rendered = append([]string{"--model", "m", "--gpu-memory-utilization", "0.9"}, flagWords(c)...)
			tr.Phases = append(tr.Phases, orchestrator.PhaseStamp{Phase: orchestrator.PhaseRendering, At: t0.Add(time.Minute)})
		}
		if tr.Phase == orchestrator.PhaseDone || tr.Phase == orchestrator.PhasePruned {
			rep := measuredReport(g, 300, 40+float64(i))
			rep.Scenarios = rep.Scenarios[:1] // kv-cache only, as the grid says
			reports[i] = []*benchmark.Report{rep}
		}
		trials = append(trials, tr)
	}
	d := BuildReport(run, trials, reports)
	if got := strings.Join(d.Flags, ","); got != "gpu-memory-utilization,enable-chunked-prefill,max-num-seqs" {
		t.Fatalf("flag columns %s", got)
	}
	cols := d.Columns()
	for _, absent := range []string{"conv TTFT ms", "tools", "quality", "TTFT p50 ms"} {
		for _, c := range cols {
			if c == absent {
				t.Errorf("column %q for a scenario the grid did not run", absent)
			}
		}
	}
	want := func(c orchestrator.Candidate) []string {
		var out []string
		for _, name := range d.Flags {
			v, _ := c.Get(name)
			out = append(out, v)
		}
		return out
	}

	var md, html, csvOut bytes.Buffer
	d.Markdown(&md)
	if err := d.HTML(&html); err != nil {
		t.Fatal(err)
	}
	if err := d.CSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	// Markdown: each candidate's table row.
	mdRows := map[string][]string{}
	for _, line := range strings.Split(md.String(), "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) == len(cols) && cells[0] != "#" && cells[0] != "---" {
			mdRows[cells[0]] = cells[3 : 3+len(d.Flags)]
		}
	}
	// HTML: each row's cells.
	htmlRows := map[string][]string{}
	for _, m := range regexp.MustCompile(`<tr[^>]*>((?:<td>[^<]*</td>)+)</tr>`).FindAllStringSubmatch(html.String(), -1) {
		cells := regexp.MustCompile(`<td>([^<]*)</td>`).FindAllStringSubmatch(m[1], -1)
		var vals []string
		for _, c := range cells {
			vals = append(vals, c[1])
		}
		if len(vals) == len(cols) {
			htmlRows[vals[0]] = vals[3 : 3+len(d.Flags)]
		}
	}
	// CSV: the columns named after the flags.
	recs, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{}
	for i, h := range recs[0] {
		idx[h] = i
	}
	csvRows := map[string][]string{}
	for _, rec := range recs[1:] {
		csvRows[rec[0]] = []string{rec[idx["gpu_memory_utilization"]], rec[idx["enable_chunked_prefill"]], rec[idx["max_num_seqs"]]}
	}
	for _, tr := range trials {
		key := strconv.Itoa(tr.Seq)
		w := strings.Join(want(tr.Candidate), " ")
		for format, rows := range map[string]map[string][]string{"markdown": mdRows, "html": htmlRows, "csv": csvRows} {
			if got := strings.Join(rows[key], " "); got != w {
				t.Errorf("%s: trial %d (%s) shows flags %q, want the candidate's %q", format, tr.Seq, tr.Outcome(), got, w)
			}
		}
	}
	if !strings.Contains(md.String(), "## Stopped early (pruned) and the evidence") || !strings.Contains(md.String(), "| pruned |") {
		t.Errorf("the pruned trial is not reported as such:\n%s", md.String())
	}
	if strings.Contains(md.String(), "(default)") {
		t.Error("the Markdown report shows a default value in place of a candidate's")
	}
}

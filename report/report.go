// Package report writes a stored run in every form vgrid offers: the
// report (Markdown, CSV of the candidates or of the load levels, HTML with
// its SVG charts) and the export (JSON with every raw report, CSV of every
// request), all computed from the stored samples. The CLI, the daemon's
// API and the dashboard go through ParseOutput and Write.
//
// May import: orchestrator (types, metrics, verdicts), benchmark, chart,
// vllm, failure.
package report

import (
	"encoding/csv"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"github.com/vgrid/vgrid/orchestrator"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/chart"
	"github.com/vgrid/vgrid/vllm"
)

// Row is one candidate in the report. Every number comes from the stored
// samples of its trial (NaN when not measured).
type Row struct {
	// Precision is what benchmark.precision achieved (nil without it).
	Precision *orchestrator.Achieved
	Seq       int
	Name      string
	Outcome   string // done, failed (reason), skipped (reason)
	// Flags are the candidate's own values of the report's flag columns
	// (ReportData.Flags), whatever the trial's outcome: the value the
	// candidate sets, "unset" when it removes the flag, else the value
	// its rendering had ("default" when vLLM's default applied) or, never
	// rendered, "profile's".
	Flags    []string
	BootS    float64
	TTFTMiss float64
	TTFTHit  float64
	// 95% CIs of the two medians (distribution-free, over every
	// repetition's requests); NaN when too few requests give one.
	TTFTMissLo, TTFTMissHi float64
	TTFTHitLo, TTFTHitHi   float64
	Accel                  float64
	AccelLo                float64
	AccelHi                float64
	ConvTTFT               float64 // long-conversation TTFT p50
	ConvDegr               float64 // last-5 / first-5 turns
	ToolSuccess            float64
	Quality                float64
	TokS                   float64 // best load output throughput (or the run-wide figure)
	TTFTP50                float64 // load TTFT p50 at that level
	TTFTP95                float64
	E2ELP95                float64 // load E2EL p95 at the same level set (ms)
	VRAMMiB                float64
	Errors                 float64
	Verdict                string
	Failure                *failure.Failure
	Rendered               []string
	ObjectiveValue         float64
	// ObjectiveLo and ObjectiveHi bound the objective's 95% interval
	// (ObjectiveCI); NaN when the samples give none.
	ObjectiveLo, ObjectiveHi float64
	ObjectiveHow             string // how the interval was computed
}

// ReportData is a run's report.
type ReportData struct {
	Run *orchestrator.Run
	// Flags are the flags the candidates set (the grid's axes and its
	// candidates' flags, in the grid's order): one tableColumn each.
	Flags   []string
	Rows    []Row
	Levels  []LevelRow // load levels of every trial and repetition, from raw samples
	Verdict *orchestrator.Verdict
	Trials  []*orchestrator.Trial
}

// LevelRow is one load level of one repetition of a trial.
type LevelRow struct {
	Seq        int
	Name       string
	Repetition int
	benchmark.LoadLevel
}

func nan() float64 { return math.NaN() }

func get(m map[string]float64, k string) float64 {
	if v, ok := m[k]; ok {
		return v
	}
	return nan()
}

// BuildReport assembles the report from the run, its trials and their
// stored reports (by trial seq). Pure.
func BuildReport(run *orchestrator.Run, trials []*orchestrator.Trial, reports map[int][]*benchmark.Report) *ReportData {
	d, _ := BuildReportCached(run, trials, func(seq int) ([]*benchmark.Report, error) { return reports[seq], nil }, nil)
	return d
}

// RowCache remembers what an ended trial's stored reports give its row
// (metrics, intervals, load levels): they no longer change, and
// computing them (bootstrap intervals) is what a report of hundreds of
// trials spends its time on. Safe for concurrent use; the zero value is
// empty.
type RowCache struct {
	mu sync.Mutex
	m  map[string]measuredRow
}

// Count is how many trials of the run the cache holds measurements of.
func (c *RowCache) Count(runID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k := range c.m {
		if strings.HasPrefix(k, runID+"/") {
			n++
		}
	}
	return n
}

type measuredRow struct {
	row    Row // the fields measure fills
	levels []LevelRow
}

// BuildReportCached is BuildReport with each trial's reports read by load
// only when cache (nil: none) does not hold the trial's measurements.
func BuildReportCached(run *orchestrator.Run, trials []*orchestrator.Trial, load func(seq int) ([]*benchmark.Report, error), cache *RowCache) (*ReportData, error) {
	d := &ReportData{Run: run, Verdict: run.Champion, Trials: trials}
	ranks := map[int]orchestrator.Rank{}
	if run.Champion != nil {
		for _, r := range run.Champion.Ranking {
			ranks[r.Seq] = r
		}
	}
	metric := run.Grid.Objective.Maximize + run.Grid.Objective.Minimize
	for _, t := range trials {
		for _, st := range t.Candidate.Settings {
			if !slices.Contains(d.Flags, st.Name) {
				d.Flags = append(d.Flags, st.Name)
			}
		}
	}
	for _, t := range trials {
		row := Row{Seq: t.Seq, Name: t.Candidate.Name, Outcome: t.Outcome(), Failure: t.Failure, Rendered: t.Rendered, Precision: t.Precision}
		if t.Confirm > 0 {
			row.Outcome += fmt.Sprintf(" (confirm: fresh boot %d)", t.Confirm)
		}
		for _, name := range d.Flags {
			row.Flags = append(row.Flags, flagCell(t, name))
		}
		row.BootS = nan()
		if t.Boot != nil {
			row.BootS = t.Boot.Ready
		}
		key := fmt.Sprintf("%s/%d/%d/%d", run.ID, t.Seq, t.Attempts, len(t.Phases))
		var mr measuredRow
		hit := false
		if cache != nil && t.Phase.Final() {
			cache.mu.Lock()
			mr, hit = cache.m[key]
			cache.mu.Unlock()
		}
		if !hit {
			reps, err := load(t.Seq)
			if err != nil {
				return nil, err
			}
			mr = measure(run, t, reps, metric)
			if cache != nil && t.Phase.Final() {
				cache.mu.Lock()
				if cache.m == nil {
					cache.m = map[string]measuredRow{}
				}
				cache.m[key] = mr
				cache.mu.Unlock()
			}
		}
		m := mr.row
		row.TTFTMiss, row.TTFTHit, row.Accel, row.AccelLo, row.AccelHi = m.TTFTMiss, m.TTFTHit, m.Accel, m.AccelLo, m.AccelHi
		row.TTFTMissLo, row.TTFTMissHi, row.TTFTHitLo, row.TTFTHitHi = m.TTFTMissLo, m.TTFTMissHi, m.TTFTHitLo, m.TTFTHitHi
		row.ConvTTFT, row.ConvDegr, row.ToolSuccess, row.Quality = m.ConvTTFT, m.ConvDegr, m.ToolSuccess, m.Quality
		row.TokS, row.TTFTP50, row.TTFTP95, row.E2ELP95 = m.TokS, m.TTFTP50, m.TTFTP95, m.E2ELP95
		row.VRAMMiB, row.Errors, row.ObjectiveValue = m.VRAMMiB, m.Errors, m.ObjectiveValue
		row.ObjectiveLo, row.ObjectiveHi, row.ObjectiveHow = m.ObjectiveLo, m.ObjectiveHi, m.ObjectiveHow
		d.Levels = append(d.Levels, mr.levels...)
		switch r, ok := ranks[t.Seq]; {
		case run.Champion != nil && run.Champion.Champion == t.Seq:
			row.Verdict = "champion"
		case ok && r.Eligible:
			row.Verdict = "eligible"
		case ok:
			row.Verdict = "out: " + r.Why
		default:
			row.Verdict = "-"
		}
		d.Rows = append(d.Rows, row)
	}
	return d, nil
}

// measure computes what a trial's reports give its row. Pure.
func measure(run *orchestrator.Run, t *orchestrator.Trial, reps []*benchmark.Report, metric string) measuredRow {
	var out measuredRow
	row := &out.row
	for i, rep := range reps {
		slo := run.Grid.Benchmark.Resolve().Load.SLO
		if rep.Settings != nil {
			slo = rep.Settings.Config.Load.SLO
		}
		for _, s := range rep.Scenarios {
			if s.Name == "load" {
				for _, l := range benchmark.SummarizeLoad(s.Results, slo) {
					out.levels = append(out.levels, LevelRow{Seq: t.Seq, Name: t.Candidate.Name, Repetition: i, LoadLevel: l})
				}
			}
		}
	}
	m, _ := orchestrator.Metrics(reps)
	row.TTFTMiss, row.TTFTHit = get(m, "kv-cache.ttft_miss_p50_ms"), get(m, "kv-cache.ttft_hit_p50_ms")
	row.Accel, row.AccelLo, row.AccelHi = nan(), nan(), nan()
	row.TTFTMissLo, row.TTFTMissHi, row.TTFTHitLo, row.TTFTHitHi = nan(), nan(), nan(), nan()
	if kv, ci := orchestrator.KVSummary(reps); ci != nil {
		row.Accel, row.AccelLo, row.AccelHi = ci.Value, ci.Lo, ci.Hi
		row.TTFTMissLo, row.TTFTMissHi = finite(kv.TTFTMiss.MedianLo), finite(kv.TTFTMiss.MedianHi)
		row.TTFTHitLo, row.TTFTHitHi = finite(kv.TTFTHit.MedianLo), finite(kv.TTFTHit.MedianHi)
	}
	row.ConvTTFT, row.ConvDegr = get(m, "long-conversation.ttft_p50_ms"), get(m, "long-conversation.degradation")
	row.ToolSuccess, row.Quality = get(m, "tool_call_success"), get(m, "quality")
	row.TokS, row.TTFTP50, row.TTFTP95, row.E2ELP95 = nan(), nan(), nan(), nan()
	if v, ok := m["load.max_output_throughput_tok_s"]; ok {
		row.TokS = v
		row.TTFTP50, row.TTFTP95, row.E2ELP95 = get(m, "load.ttft_p50_ms"), get(m, "load.ttft_p95_ms"), get(m, "load.e2el_p95_ms")
	} else {
		// No load scenario: the best throughput any scenario measured.
		for k, v := range m {
			if strings.HasSuffix(k, ".output_throughput_tok_s") && (math.IsNaN(row.TokS) || v > row.TokS) {
				row.TokS = v
			}
		}
	}
	row.VRAMMiB, row.Errors = get(m, "peak_vram_mib"), get(m, "errors")
	row.ObjectiveValue = get(m, metric)
	row.ObjectiveLo, row.ObjectiveHi, row.ObjectiveHow = orchestrator.ObjectiveCI(reps, metric)
	return out
}

// flagCell is what a trial's candidate sets for a flag: its own value,
// "unset", or, for a flag it leaves alone, the value its rendering had
// ("default": vLLM's default applied) or "profile's" when it was never
// rendered. Never another candidate's value, never a guess.
func flagCell(t *orchestrator.Trial, name string) string {
	for _, st := range t.Candidate.Settings {
		if st.Name == name {
			if st.Unset {
				return "unset"
			}
			return st.Value
		}
	}
	if len(t.Rendered) == 0 {
		return "profile's"
	}
	if v, ok := vllm.Flags(vllm.ParseArgs(t.Rendered)).Effective(name); ok {
		return v
	}
	return "default"
}

func f(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func (r Row) accel() string {
	if math.IsNaN(r.Accel) {
		return "-"
	}
	return fmt.Sprintf("%sx [%s, %s]", f(r.Accel, 2), f(r.AccelLo, 2), f(r.AccelHi, 2))
}

// ObjectiveText is the objective's value with its 95% interval when
// known: "7.077 [6.962, 7.128]", "1850", "-" when not measured.
func (r Row) ObjectiveText() string {
	switch {
	case math.IsNaN(r.ObjectiveValue):
		return "-"
	case math.IsNaN(r.ObjectiveLo) || math.IsNaN(r.ObjectiveHi):
		return f3(r.ObjectiveValue)
	}
	return fmt.Sprintf("%s [%s, %s]", f3(r.ObjectiveValue), f3(r.ObjectiveLo), f3(r.ObjectiveHi))
}

// PrecisionText is "±2.1% (4 reps)", marked when the target was not met.
func (r Row) PrecisionText() string {
	a := r.Precision
	switch {
	case a == nil:
		return "-"
	case a.Pct < 0:
		return fmt.Sprintf("- (%d rep)", a.Reps)
	case !a.Met:
		return fmt.Sprintf("±%.2g%% (%d reps, target ±%g%% not met)", a.Pct, a.Reps, a.Target)
	}
	return fmt.Sprintf("±%.2g%% (%d reps)", a.Pct, a.Reps)
}

func f3(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// tableColumn is one tableColumn of the candidates' table: its head and cell in
// the Markdown and HTML table, and its CSV columns (one value per cell).
type tableColumn struct {
	head     string
	cell     func(Row) string
	csvHeads []string
	csvCells func(Row) []string
}

func numCol(head, csvHead string, v func(Row) float64, prec int) tableColumn {
	return tableColumn{head: head, cell: func(r Row) string { return f(v(r), prec) },
		csvHeads: []string{csvHead}, csvCells: func(r Row) []string { return []string{num(v(r))} }}
}

// scenarioRan reports whether the grid's scenarios include name (or,
// for a grid that lists none, whether a row has a figure from it).
func (d *ReportData) scenarioRan(name string, v func(Row) float64) bool {
	if len(d.Run.Grid.Benchmark.Scenarios) > 0 {
		return slices.Contains(d.Run.Grid.Benchmark.Scenarios, name)
	}
	return slices.ContainsFunc(d.Rows, func(r Row) bool { return !math.IsNaN(v(r)) })
}

// layout is the candidates' table: the trial, one tableColumn per flag the
// candidates set, the boot, one group per scenario the grid ran, the
// objective with its interval and the verdict. The report's three
// formats and the dashboard use it.
func (d *ReportData) layout() []tableColumn {
	cols := []tableColumn{
		{head: "#", cell: func(r Row) string { return strconv.Itoa(r.Seq) }, csvHeads: []string{"trial"}, csvCells: func(r Row) []string { return []string{strconv.Itoa(r.Seq)} }},
		{head: "candidate", cell: func(r Row) string { return r.Name }, csvHeads: []string{"candidate"}, csvCells: func(r Row) []string { return []string{r.Name} }},
		{head: "status", cell: func(r Row) string { return r.Outcome }, csvHeads: []string{"status", "failure_reason"}, csvCells: func(r Row) []string {
			reason := ""
			if r.Failure != nil {
				reason = r.Failure.Reason.String()
			}
			status, _, _ := strings.Cut(r.Outcome, " ")
			return []string{status, reason}
		}},
	}
	for i, name := range d.Flags {
		cols = append(cols, tableColumn{head: name, cell: func(r Row) string { return r.Flags[i] },
			csvHeads: []string{strings.ReplaceAll(name, "-", "_")}, csvCells: func(r Row) []string { return []string{r.Flags[i]} }})
	}
	cols = append(cols, numCol("boot s", "boot_s", func(r Row) float64 { return r.BootS }, 1))
	if d.scenarioRan("kv-cache", func(r Row) float64 { return r.Accel }) {
		cols = append(cols, numCol("TTFT MISS ms", "ttft_miss_p50_ms", func(r Row) float64 { return r.TTFTMiss }, 1),
			numCol("TTFT HIT ms", "ttft_hit_p50_ms", func(r Row) float64 { return r.TTFTHit }, 1),
			tableColumn{head: "Accel [95% CI]", cell: Row.accel, csvHeads: []string{"acceleration", "acceleration_ci_low", "acceleration_ci_high"},
				csvCells: func(r Row) []string { return []string{num(r.Accel), num(r.AccelLo), num(r.AccelHi)} }})
	}
	if d.scenarioRan("long-conversation", func(r Row) float64 { return r.ConvTTFT }) {
		cols = append(cols, numCol("conv TTFT ms", "conversation_ttft_p50_ms", func(r Row) float64 { return r.ConvTTFT }, 1),
			numCol("conv degr.", "conversation_degradation", func(r Row) float64 { return r.ConvDegr }, 2))
	}
	if d.scenarioRan("tool-calling", func(r Row) float64 { return r.ToolSuccess }) {
		cols = append(cols, numCol("tools", "tool_call_success", func(r Row) float64 { return r.ToolSuccess }, 2))
	}
	if d.scenarioRan("reasoning", func(r Row) float64 { return r.Quality }) {
		cols = append(cols, numCol("quality", "quality", func(r Row) float64 { return r.Quality }, 2))
	}
	cols = append(cols, numCol("tok/s", "output_throughput_tok_s", func(r Row) float64 { return r.TokS }, 1))
	if d.scenarioRan("load", func(r Row) float64 { return r.TTFTP50 }) {
		cols = append(cols, numCol("TTFT p50 ms", "load_ttft_p50_ms", func(r Row) float64 { return r.TTFTP50 }, 1),
			numCol("TTFT p95 ms", "load_ttft_p95_ms", func(r Row) float64 { return r.TTFTP95 }, 1))
	}
	metric := d.Run.Grid.Objective.Maximize + d.Run.Grid.Objective.Minimize
	cols = append(cols, numCol("VRAM MiB", "peak_vram_mib", func(r Row) float64 { return r.VRAMMiB }, 0),
		numCol("errors", "errors", func(r Row) float64 { return r.Errors }, 0),
		tableColumn{head: metric + " [95% CI]", cell: Row.ObjectiveText, csvHeads: []string{"objective", "objective_ci_low", "objective_ci_high"},
			csvCells: func(r Row) []string { return []string{num(r.ObjectiveValue), num(r.ObjectiveLo), num(r.ObjectiveHi)} }},
		tableColumn{head: "verdict", cell: func(r Row) string { return r.Verdict }, csvHeads: []string{"verdict"}, csvCells: func(r Row) []string { return []string{r.Verdict} }})
	if d.Run.Grid.Benchmark.Precision != nil {
		cols = append(cols, tableColumn{head: "precision (95% half-width, reps)", cell: Row.PrecisionText,
			csvHeads: []string{"precision_pct", "precision_reps", "precision_met"}, csvCells: func(r Row) []string {
				if r.Precision == nil {
					return []string{"", "", ""}
				}
				pct := ""
				if r.Precision.Pct >= 0 {
					pct = num(r.Precision.Pct)
				}
				return []string{pct, strconv.Itoa(r.Precision.Reps), strconv.FormatBool(r.Precision.Met)}
			}})
	}
	return cols
}

// Columns are the candidates' table's heads.
func (d *ReportData) Columns() []string {
	var out []string
	for _, c := range d.layout() {
		out = append(out, c.head)
	}
	return out
}

// Cells are a row's cells under Columns.
func (d *ReportData) Cells(r Row) []string {
	var out []string
	for _, c := range d.layout() {
		out = append(out, c.cell(r))
	}
	return out
}

// Markdown writes the report as Markdown.
func (d *ReportData) Markdown(w io.Writer) {
	r := d.Run
	fmt.Fprintf(w, "# vgrid run %s\n\n", r.ID)
	fmt.Fprintf(w, "- grid: %s (%s), target `%s`\n- state: %s, left running: %s\n- objective: %s %s; constraints: %s\n",
		mdCell(r.Grid.Name), mdCell(r.GridFile), strings.ReplaceAll(mdCell(r.Target), "`", "'"), r.State, r.EndAction, objectiveVerb(r.Grid), r.Grid.Objective.Maximize+r.Grid.Objective.Minimize,
		strings.Join(r.Grid.Constraints, ", "))
	fmt.Fprintf(w, "- benchmark: %s; %d repetition(s) per candidate\n", d.Settings(), r.Grid.Benchmark.Repetitions)
	fmt.Fprintf(w, "- search: %s\n", r.SearchText(d.Trials))
	if r.Version != "" {
		fmt.Fprintf(w, "- vgrid %s\n", r.Version)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "- error: %s\n", r.Error)
	}
	fmt.Fprintln(w)
	if v := d.Verdict; v != nil {
		fmt.Fprintf(w, "## %s\n\n", v.Title())
		fmt.Fprintf(w, "%s.\n\n", v.Reason)
		switch {
		case v.Tie && len(v.Equivalent) > 1:
			fmt.Fprintf(w, "**Equivalent within %.1f%%**: the measurements do not separate the leader from %d other candidate(s), and show them within %.1f%% of it (95%%); the tie rule chose among those only.\n\n", v.Within, len(v.Equivalent)-1, v.Within)
		case v.Tie:
			fmt.Fprintf(w, "**Not separated**: the measurements do not separate the leader from the runner-up with 95%% confidence, nor show them equivalent; the leader is crowned on its point estimate.\n\n")
		}
	}
	cols := d.Columns()
	fmt.Fprintf(w, "## Candidates\n\n| %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, row := range d.Rows {
		cells := d.Cells(row)
		for i := range cells {
			cells[i] = mdCell(cells[i])
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintf(w, "\nEvery number is computed from the samples stored for the run (medians over repetitions; TTFT in ms; tok/s is the best load level's output throughput).\n")
	d.whereMarkdown(w)
	var failed, pruned []Row
	for _, row := range d.Rows {
		switch {
		case row.Failure != nil && row.Failure.Reason == failure.ReasonPruned:
			pruned = append(pruned, row)
		case row.Failure != nil:
			failed = append(failed, row)
		}
	}
	if len(pruned) > 0 {
		fmt.Fprintf(w, "\n## Stopped early (pruned) and the evidence\n\n")
		fmt.Fprintf(w, "Two tests decide different things: the prune test (one-sided, at the grid's error rate over its looks) stopped these trials once they were worse than the champion of the moment; the champion test (two-sided, 95%%) compares the leaders at the end.\n\n")
		for _, row := range pruned {
			fmt.Fprintf(w, "- %d. %s: %s\n", row.Seq, row.Name, row.Failure.Detail)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "\n## Failed candidates and their evidence\n\n")
		for _, row := range failed {
			fl := row.Failure
			fmt.Fprintf(w, "### %d. %s: %s\n\n%s\n\n", row.Seq, row.Name, fl.Reason, fl.Detail)
			if fl.Line != "" {
				fmt.Fprintf(w, "```\n%s\n```\n\n", fl.Line)
			}
		}
	}
}

func objectiveVerb(g orchestrator.Grid) string {
	if g.Objective.Maximize != "" {
		return "maximize"
	}
	return "minimize"
}

// Settings describes what the run's trials are measured under.
func (d *ReportData) Settings() string { return d.Run.Grid.Benchmark.Settings().Describe() }

// num is a CSV number: empty when not measured.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// CSV writes one row per candidate, one value per cell; empty cells were
// not measured.
func (d *ReportData) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cols := d.layout()
	var heads []string
	for _, c := range cols {
		heads = append(heads, c.csvHeads...)
	}
	cw.Write(heads)
	for _, row := range d.Rows {
		var cells []string
		for _, c := range cols {
			cells = append(cells, c.csvCells(row)...)
		}
		cw.Write(cells)
	}
	cw.Flush()
	return cw.Error()
}

// LevelsCSV writes one row per load level of every trial and repetition.
func (d *ReportData) LevelsCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"trial", "candidate", "repetition", "mode", "concurrency", "rate_rps", "requests", "errors", "ttft_p50_ms", "ttft_p95_ms",
		"ttft_p99_ms", "tpot_p50_ms", "itl_p50_ms", "e2el_p50_ms", "output_throughput_tok_s", "request_throughput_rps", "goodput_rps", "wall_s"})
	for _, l := range d.Levels {
		conc, rate := "", ""
		if l.Mode == "closed" {
			conc = strconv.Itoa(l.Concurrency)
		} else {
			rate = num(l.Rate)
		}
		cw.Write([]string{strconv.Itoa(l.Seq), l.Name, strconv.Itoa(l.Repetition), l.Mode, conc, rate, strconv.Itoa(l.Requests), strconv.Itoa(l.Errors),
			num(l.TTFT.P50), num(l.TTFT.P95), num(l.TTFT.P99), num(l.TPOT.P50), num(l.ITL.P50), num(l.E2EL.P50), num(l.OutputThroughput),
			num(l.RequestThroughput), num(l.Goodput), num(l.WallSeconds)})
	}
	cw.Flush()
	return cw.Error()
}

// HTML writes a self-contained page with the table and three SVG charts
// (package chart): the acceleration with its 95% CI, TTFT miss/hit, and
// throughput against TTFT p50, each with axes, units and a legend.
func (d *ReportData) HTML(w io.Writer) error {
	return htmlTmpl.Execute(w, map[string]any{"D": d, "Columns": d.Columns(), "Rows": d.Rows, "Charts": d.Charts()})
}

var htmlTmpl = template.Must(template.New("report").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>vgrid run {{.D.Run.ID}}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:nth-child(2),td:nth-child(3),td:last-child{text-align:left}tr.champion{background:#e6f4ea}pre{background:#f4f4f4;padding:6px;white-space:pre-wrap}</style></head>
<body><h1>vgrid run {{.D.Run.ID}}</h1>
<p>grid {{.D.Run.Grid.Name}}, target <code>{{.D.Run.Target}}</code>, state {{.D.Run.State}}, left running: {{.D.Run.EndAction}}</p>
<p>search: {{.D.Run.SearchText .D.Trials}}</p>
{{with .D.Verdict}}<h2>{{.Title}}</h2><p>{{.Reason}}{{if .Tie}} <b>(a tie)</b>{{end}}</p>{{end}}
<h2>Candidates</h2><table><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr{{if eq .Verdict "champion"}} class="champion"{{end}}>{{range $.D.Cells .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
<h2>Charts</h2>{{range .Charts}}{{.SVG}}
{{else}}<p>No chart: no candidate was measured.</p>{{end}}
<h2>Failed candidates</h2>{{range $r := .Rows}}{{with $r.Failure}}<h3>{{$r.Seq}}. {{$r.Name}}: {{.Reason}}</h3><p>{{.Detail}}</p>{{if .Line}}<pre>{{.Line}}</pre>{{end}}{{end}}{{end}}
</body></html>`))

// measured are the rows with a number to chart, and how many are not.
func (d *ReportData) measured(has func(Row) bool) (rows []Row, champion int, left int) {
	champion = -1
	for _, r := range d.Rows {
		if !has(r) {
			left++
			continue
		}
		if r.Verdict == "champion" {
			champion = len(rows)
		}
		rows = append(rows, r)
	}
	return rows, champion, left
}

func notShown(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d candidate(s) not measured, not shown (see the table)", n)
}

func categories(rows []Row) []chart.Category {
	var out []chart.Category
	for _, r := range rows {
		out = append(out, chart.Category{Label: fmt.Sprintf("#%d", r.Seq), Title: fmt.Sprintf("#%d %s", r.Seq, r.Name)})
	}
	return out
}

// ttftChart draws TTFT p50 on a cache miss and on a hit, per candidate.
func (d *ReportData) ttftChart() string {
	rows, champ, left := d.measured(func(r Row) bool { return !math.IsNaN(r.TTFTMiss) || !math.IsNaN(r.TTFTHit) })
	miss := chart.Series{Name: "cache miss", Color: "#d9534f"}
	hit := chart.Series{Name: "cache hit", Color: "#5cb85c"}
	for _, r := range rows {
		miss.Values = append(miss.Values, chart.Value{V: r.TTFTMiss, Lo: r.TTFTMissLo, Hi: r.TTFTMissHi})
		hit.Values = append(hit.Values, chart.Value{V: r.TTFTHit, Lo: r.TTFTHitLo, Hi: r.TTFTHitHi})
	}
	return chart.Bars{Title: "TTFT p50 (whiskers: 95% CI of the median, where 6 requests or more give one)", YLabel: "TTFT p50", Unit: "ms", Categories: categories(rows), Series: []chart.Series{miss, hit}, Highlight: champ, Note: notShown(left)}.SVG()
}

// accelChart draws the kv-cache acceleration with its 95% CI per candidate.
func (d *ReportData) accelChart() string {
	rows, champ, left := d.measured(func(r Row) bool { return !math.IsNaN(r.Accel) })
	acc := chart.Series{Name: "acceleration, median miss / hit TTFT (whiskers: 95% CI)", Color: "#337ab7"}
	for _, r := range rows {
		acc.Values = append(acc.Values, chart.Value{V: r.Accel, Lo: r.AccelLo, Hi: r.AccelHi})
	}
	return chart.Bars{Title: "KV-cache acceleration", Unit: "×", Categories: categories(rows), Series: []chart.Series{acc}, Highlight: champ, Note: notShown(left)}.SVG()
}

// tputChart plots output tokens/s against TTFT p50 (the load level's, or
// the kv-cache miss's), the champion marked.
func (d *ReportData) tputChart() string {
	x := func(r Row) float64 {
		if math.IsNaN(r.TTFTP50) {
			return r.TTFTMiss
		}
		return r.TTFTP50
	}
	rows, _, left := d.measured(func(r Row) bool { return !math.IsNaN(x(r)) && !math.IsNaN(r.TokS) })
	var pts []chart.Point
	for _, r := range rows {
		pts = append(pts, chart.Point{X: x(r), Y: r.TokS, Label: fmt.Sprintf("#%d", r.Seq), Title: fmt.Sprintf("#%d %s", r.Seq, r.Name), Highlight: r.Verdict == "champion"})
	}
	return chart.Scatter{Title: "Throughput against latency", XLabel: "TTFT p50", XUnit: "ms", YLabel: "output throughput", YUnit: "tok/s",
		Points: pts, PointName: "candidate", HighlightName: "champion", Note: notShown(left)}.SVG()
}

// whereMarkdown lists where each trial ran, when the run had slots, and
// says when the trials ran different builds of the image.
func (d *ReportData) whereMarkdown(w io.Writer) {
	slots := false // trials in slots, or placed by a cluster's scheduler
	ids := map[string]bool{}
	for _, t := range d.Trials {
		slots = slots || t.Slot != "" || t.Host != "" || t.Hardware != ""
		if t.ImageID != "" {
			ids[t.ImageID] = true
		}
	}
	if !slots {
		return
	}
	fmt.Fprintf(w, "\n## Where the trials ran\n\n| # | candidate | slot | host | hardware | image ID |\n|---|---|---|---|---|---|\n")
	for _, t := range d.Trials {
		hw := t.Hardware
		if hw == "" {
			hw = "unknown"
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s |\n", t.Seq, mdCell(t.Candidate.Name), mdCell(t.Slot), mdCell(t.Host), mdCell(hw), shortID(strings.TrimPrefix(t.ImageID, "sha256:")))
	}
	if len(ids) > 1 {
		fmt.Fprintf(w, "\n**The trials ran %d different image IDs** (the same tag on different engines can be different builds): comparisons across them mix vLLM versions.\n", len(ids))
	}
}

// Chart is one of a report's charts, as SVG.
type Chart struct {
	Name string // a stable id: accel, ttft, tput, pareto-ttft, pareto-e2el
	SVG  template.HTML
}

// Charts are the report's charts, the same the HTML report and the
// dashboard show: the acceleration with its 95% CI, TTFT miss/hit,
// throughput against latency, and the Pareto charts of output throughput
// against TTFT p95 and against E2EL p95 (load scenario), each with the
// champion marked. Failed, skipped and pruned candidates are never drawn;
// each chart says how many it leaves out.
func (d *ReportData) Charts() []Chart {
	has := func(v func(Row) float64) bool {
		return slices.ContainsFunc(d.Rows, func(r Row) bool { return !math.IsNaN(v(r)) })
	}
	tokS := func(r Row) float64 { return r.TokS }
	// A chart with nothing to draw is left out: a run with no trial
	// measured yet has no empty axes to show.
	var out []Chart
	if has(func(r Row) float64 { return r.Accel }) {
		out = append(out, Chart{"accel", template.HTML(d.accelChart())})
	}
	if has(func(r Row) float64 { return r.TTFTMiss }) || has(func(r Row) float64 { return r.TTFTHit }) {
		out = append(out, Chart{"ttft", template.HTML(d.ttftChart())})
	}
	if has(tokS) && has(func(r Row) float64 { return r.TTFTP50 }) {
		out = append(out, Chart{"tput", template.HTML(d.tputChart())})
	}
	if has(tokS) && has(func(r Row) float64 { return r.TTFTP95 }) {
		out = append(out, Chart{"pareto-ttft", template.HTML(d.paretoChart("TTFT p95", func(r Row) float64 { return r.TTFTP95 }))})
	}
	if has(tokS) && has(func(r Row) float64 { return r.E2ELP95 }) {
		out = append(out, Chart{"pareto-e2el", template.HTML(d.paretoChart("E2EL p95", func(r Row) float64 { return r.E2ELP95 }))})
	}
	return out
}

// paretoChart plots the best load level's output throughput against a
// p95 latency of the load scenario, with the Pareto front and the
// champion.
func (d *ReportData) paretoChart(name string, x func(Row) float64) string {
	rows, _, left := d.measured(func(r Row) bool { return !math.IsNaN(x(r)) && !math.IsNaN(r.TokS) })
	var pts []chart.Point
	for _, r := range rows {
		pts = append(pts, chart.Point{X: x(r), Y: r.TokS, Label: fmt.Sprintf("#%d", r.Seq), Title: fmt.Sprintf("#%d %s", r.Seq, r.Name), Highlight: r.Verdict == "champion"})
	}
	return chart.Scatter{Title: "Pareto: output throughput against " + name, XLabel: name + " (load)", XUnit: "ms", YLabel: "output throughput", YUnit: "tok/s",
		Points: pts, PointName: "candidate", HighlightName: "champion", FrontName: "Pareto front: no other candidate is faster with more throughput", Note: notShown(left)}.SVG()
}

// finite is v, or NaN for an infinite bound (too few values for an
// interval).
func finite(v float64) float64 {
	if math.IsInf(v, 0) {
		return math.NaN()
	}
	return v
}

// mdCell makes a text safe in one Markdown table cell or list line: no
// line breaks or control characters, '|' escaped.
func mdCell(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case unicode.IsControl(r):
			return -1
		}
		return r
	}, s)
	return strings.ReplaceAll(s, "|", "\\|")
}

// shortID is an image ID's first 12 characters, as docker prints it.
func shortID(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

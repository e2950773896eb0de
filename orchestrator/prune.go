package orchestrator

import (
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"math"
	"slices"
	"strings"

	"golang.org/x/perf/benchmath"

	"github.com/vgrid/vgrid/benchmark"
)

// Early stop inside a trial (search.prune). Once a champion exists, a
// candidate's benchmark is looked at each time the objective's scenario
// ends; if the objective measured so far is worse than the champion's
// with confidence, the rest of the benchmark is skipped and the trial
// ends pruned, with the evidence.
//
// The test at each look is one-sided, at alpha/K where K is the number of
// looks that can save time (Bonferroni over the looks): the chance that a
// candidate at least as good as the champion is stopped is at most alpha
// (search.prune_alpha, default 0.05). The test is the one the verdict
// uses for that kind of metric: a bootstrap of the median ratio for an
// acceleration, Mann-Whitney U over per-request samples for a latency,
// over repetitions otherwise (which needs several repetitions to ever
// conclude).

// objectiveScenario is the scenario that measures a metric; "" when no
// single scenario does (errors, peak_vram_mib).
func objectiveScenario(metric string) string {
	if s, _, ok := strings.Cut(metric, "."); ok {
		return s
	}
	switch metric {
	case "acceleration":
		return "kv-cache"
	case "tool_call_success":
		return "tool-calling"
	case "quality":
		return "reasoning"
	}
	return ""
}

// pruneLooks is how many looks at the objective can save benchmark time:
// one per repetition, less the last when the objective's scenario is the
// last one run (nothing would be left to skip).
func (g *Grid) pruneLooks() (int, error) {
	metric := g.Objective.Maximize + g.Objective.Minimize
	scen := objectiveScenario(metric)
	if scen == "" {
		return 0, fmt.Errorf("search.prune: the objective %s is not measured by one scenario, so there is nothing to stop early; remove prune", metric)
	}
	names, err := benchmark.CheckNames(g.Benchmark.Scenarios)
	if err != nil {
		return 0, err
	}
	at := slices.Index(names, scen)
	if at < 0 {
		return 0, fmt.Errorf("search.prune: the objective %s is measured by the %s scenario, which benchmark.scenarios does not run", metric, scen)
	}
	// A look after each repetition's objective scenario, but the last
	// repetition's when nothing comes after it: the grid's repetitions of
	// the suite, then benchmark.precision's of the objective's scenario.
	looks := g.Benchmark.MaxRepetitions()
	if at == len(names)-1 || looks > g.Benchmark.Repetitions {
		looks--
	}
	if looks == 0 {
		return 0, fmt.Errorf("search.prune: %s is the last scenario of the only repetition: stopping after it saves nothing; list it first in benchmark.scenarios or set benchmark.repetitions >= 2", scen)
	}
	return looks, nil
}

// pruner judges one trial's benchmark against the champion's.
type pruner struct {
	metric    string
	maximize  bool
	scenario  string
	alpha     float64 // per look: prune_alpha / looks
	looks     int
	scenarios int                 // per repetition of the whole suite
	full      int                 // repetitions of the whole suite; those after run the objective's scenario alone
	reps      int                 // repetitions at most
	champ     string              // its name
	reports   []*benchmark.Report // the champion's
	value     float64             // the champion's objective
	done      []*benchmark.Report // this trial's finished repetitions
}

// newPruner returns the pruner of a trial of run r, or nil when pruning is
// off or there is no champion yet (the first measured candidate is never
// pruned).
func newPruner(s Store, r *Run) (*pruner, error) {
	g := &r.Grid
	if !g.Search.Prune {
		return nil, nil
	}
	looks, err := g.pruneLooks()
	if err != nil {
		return nil, nil // refused when the grid was loaded
	}
	trials, err := s.Trials(r.ID)
	if err != nil {
		return nil, err
	}
	scored, err := Score(s, r, trials)
	if err != nil {
		return nil, err
	}
	v := Choose(g, scored)
	if v.Champion < 0 {
		return nil, nil
	}
	var champ *Scored
	for i := range scored {
		if scored[i].Seq == v.Champion {
			champ = &scored[i]
		}
	}
	reps, err := s.Reports(r.ID, champ.Seq)
	if err != nil {
		return nil, err
	}
	names, _ := benchmark.CheckNames(g.Benchmark.Scenarios)
	return &pruner{metric: v.Metric, maximize: v.Maximize, scenario: objectiveScenario(v.Metric),
		alpha: g.Search.PruneAlpha / float64(looks), looks: looks, scenarios: len(names), full: g.Benchmark.Repetitions, reps: g.Benchmark.MaxRepetitions(),
		champ: champ.Name, reports: reps, value: champ.Values[v.Metric]}, nil
}

// look is called after each scenario of repetition rep with the report so
// far; it returns a pruned Failure when the trial is worse with
// confidence, else nil. A look that could save nothing (the trial's last
// scenario) is not taken.
func (p *pruner) look(rep int, sofar *benchmark.Report) *failure.Failure {
	if p == nil {
		return nil
	}
	n, per := len(sofar.Scenarios), p.scenarios
	if rep >= p.full {
		per = 1
	}
	if n == 0 || sofar.Scenarios[n-1].Name != p.scenario || (rep == p.reps-1 && n == per) {
		return nil
	}
	mine := append(slices.Clone(p.done), sofar)
	values, reps := Metrics(mine)
	v, ok := values[p.metric]
	if !ok || math.IsNaN(v) {
		return nil
	}
	worse := v < p.value
	if !p.maximize {
		worse = v > p.value
	}
	if !worse {
		return nil
	}
	var pv float64
	var method string
	switch {
	case strings.HasSuffix(p.metric, "acceleration"):
		cm, ch := kvSamples(mine)
		pm, ph := kvSamples(p.reports)
		pv = benchmark.RatioBelowP(cm, ch, pm, ph)
		if !p.maximize {
			pv = benchmark.RatioBelowP(pm, ph, cm, ch)
		}
		method = "one-sided bootstrap test of the median ratio"
	default:
		x, y := Samples(mine, p.metric), Samples(p.reports, p.metric)
		method = "one-sided Mann-Whitney U over per-request samples"
		if len(x) < 2 || len(y) < 2 {
			_, creps := Metrics(p.reports)
			x, y = reps[p.metric], creps[p.metric]
			method = "one-sided Mann-Whitney U over repetitions"
		}
		if len(x) < 2 || len(y) < 2 {
			return nil
		}
		// U's null distribution is symmetric: the one-sided p on the side
		// observed is half the two-sided one.
		th := &benchmath.DefaultThresholds
		pv = benchmath.AssumeNothing.Compare(benchmath.NewSample(x, th), benchmath.NewSample(y, th)).P / 2
	}
	if math.IsNaN(pv) || pv >= p.alpha {
		return nil
	}
	return &failure.Failure{Reason: failure.ReasonPruned, Detail: fmt.Sprintf(
		"after repetition %d's %s: %s %.4g is worse than the champion %s's %.4g by the prune test (one-sided %s, p=%.3g < %.3g = alpha %g over %d look(s)); the rest of its benchmark was skipped",
		rep+1, p.scenario, p.metric, v, p.champ, p.value, method, pv, p.alpha, p.alpha*float64(p.looks), p.looks)}
}

// finished records a repetition that ran to its end.
func (p *pruner) finished(r *benchmark.Report) {
	if p != nil {
		p.done = append(p.done, r)
	}
}

// kvSamples pools the kv-cache misses and hits of reports.
func kvSamples(reports []*benchmark.Report) (miss, hit []float64) {
	for _, rep := range reports {
		for _, s := range rep.Scenarios {
			if s.Name == "kv-cache" {
				m, h := benchmark.KVSamples(s.Results)
				miss, hit = append(miss, m...), append(hit, h...)
			}
		}
	}
	return miss, hit
}

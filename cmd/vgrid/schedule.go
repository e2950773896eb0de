package main

import (
	"context"
	"fmt"
	"time"

	"github.com/vgrid/vgrid/driver"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
)

// estimator estimates a candidate's trial (boot and benchmark, every
// repetition): the medians of the store's past trials of the same image,
// model and tensor-parallel size, else the boot and benchmark model.
type estimator struct {
	g        *orchestrator.Grid
	drv      orchestrator.Driver
	hist     *orchestrator.History
	env      map[string]string
	feasible func(orchestrator.Candidate) (bool, string)
}

func newEstimator(ctx context.Context, g *orchestrator.Grid, drv orchestrator.Driver, st *store.Store) (*estimator, int, error) {
	e := &estimator{g: g, drv: drv, hist: orchestrator.NewHistory(), env: driver.ServerEnv(drv), feasible: driver.Feasibility(ctx, g, drv)}
	n := 0
	if st != nil {
		var err error
		if n, err = learn(st, e.hist); err != nil {
			return nil, n, err
		}
	}
	return e, n, nil
}

// estimate returns the trial's duration and where it comes from, with the
// rendering (nil when the candidate does not render).
func (e *estimator) estimate(ctx context.Context, c orchestrator.Candidate) (time.Duration, string, *orchestrator.Rendered) {
	p, err := e.drv.Render(ctx, c)
	if err != nil {
		return 0, "", nil
	}
	r := p.Rendered()
	ok, _ := e.feasible(c)
	d, src := e.hist.Estimate(orchestrator.ClassOf(r.Image, r.Words), !ok, driver.ModelDurations(e.g, r.Words, e.env))
	return d.Total(e.g.Benchmark.Repetitions), src, &r
}

// maxGridTime (a night) is how long a grid search may be planned without a deadline
// before vgrid refuses it and suggests an adaptive search.
const maxGridTime = 12 * time.Hour

// maxGridCandidates is the largest space a grid search runs without a
// deadline whatever the estimate: the boot model knows a simulator's and a
// typical 32B model's boots, while real boots take 5 to 30 minutes.
const maxGridCandidates = 128

// checkSchedule refuses what cannot fit a night: a deadline already past,
// and a grid strategy with no deadline to cut it whose every candidate
// would take more than a night, or that has more than maxGridCandidates.
func checkSchedule(g *orchestrator.Grid, deadline, now time.Time, perTrial []time.Duration) error {
	if !deadline.IsZero() && !deadline.After(now) {
		return fmt.Errorf("deadline %q (%s) has passed; set a later one, a time of day (07:00) or a duration (8h)", g.Deadline, deadline.Format("2006-01-02 15:04"))
	}
	if g.Search.Adaptive() || !deadline.IsZero() {
		return nil
	}
	var total time.Duration
	for _, d := range perTrial {
		total += d
	}
	if total > maxGridTime || len(perTrial) > maxGridCandidates {
		med := time.Duration(0)
		if len(perTrial) > 0 {
			med = total / time.Duration(len(perTrial))
		}
		return fmt.Errorf("the grid has %d candidates and would take about %s (about %s a trial); search it within a budget instead (search: {strategy: tpe, max_trials: 24}), or set a deadline (deadline: \"07:00\") to run what fits",
			len(perTrial), total.Round(time.Minute), med.Round(time.Second))
	}
	return nil
}

// searchSummary says how the run will choose and when it will stop.
func searchSummary(g *orchestrator.Grid, deadline, now time.Time, perTrial []time.Duration, fit int) string {
	s := g.Search
	var mean time.Duration
	for _, d := range perTrial {
		mean += d
	}
	if len(perTrial) > 0 {
		mean /= time.Duration(len(perTrial))
	}
	var out string
	if s.Adaptive() {
		out = fmt.Sprintf("search: %s, seed %d, at most %d booted trials of %d candidates (about %s at %s a trial); infeasible candidates are skipped unbooted",
			s.Strategy, s.Seed, s.MaxTrials, len(perTrial), (mean * time.Duration(s.MaxTrials)).Round(time.Minute), mean.Round(time.Second))
	} else {
		out = "search: grid, every candidate in order"
	}
	if s.Prune {
		out += fmt.Sprintf("\nprune: on: a trial worse than the champion with confidence stops early (error rate at most %g)", s.PruneAlpha)
	}
	if deadline.IsZero() {
		return out
	}
	left := deadline.Sub(now)
	out += fmt.Sprintf("\ndeadline: %s (in %s): ", deadline.Format("2006-01-02 15:04"), left.Round(time.Minute))
	if s.Adaptive() {
		n := 0
		if mean > 0 {
			n = int(left / mean)
		}
		return out + fmt.Sprintf("about %d trials fit at %s a trial; the run starts none that cannot end by then", min(n, s.MaxTrials), mean.Round(time.Second))
	}
	return out + fmt.Sprintf("%d of %d candidates fit; the rest will be skipped (deadline)", fit, len(perTrial))
}

package orchestrator

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/vgrid/vgrid/benchmark"
)

// SearchText says how a run chose its trials and why it stopped: "tpe
// (seed 3): 24 of 256 candidates booted, 3 skipped as infeasible; stopped:
// the budget of 24 trials is spent".
func (r *Run) SearchText(trials []*Trial) string {
	s := r.Grid.Search
	t := CountTrials(r, trials, time.Time{})
	out := s.Strategy
	if out == "" {
		out = "grid"
	}
	if s.Adaptive() {
		out += fmt.Sprintf(" (seed %d, budget %d)", s.Seed, s.MaxTrials)
	}
	if r.State.Final() {
		out += fmt.Sprintf(": %d of %d candidates booted", t.Started, t.Candidates)
	} else {
		out += fmt.Sprintf(": %d of %d candidates booted so far (%d measured, %d failed, %d running, %d to go)", t.Started, t.Candidates, t.Measured, t.Failed, t.Running, t.Left())
	}
	if t.Infeasible > 0 {
		out += fmt.Sprintf(", %d skipped as infeasible", t.Infeasible)
	}
	if n := t.Skipped - t.Infeasible; n > 0 {
		out += fmt.Sprintf(", %d skipped for the deadline", n)
	}
	if s.Prune {
		out += fmt.Sprintf(", %d stopped early (prune, alpha %g)", t.Pruned, s.PruneAlpha)
	}
	if !r.Deadline.IsZero() {
		out += "; deadline " + r.Deadline.Format("2006-01-02 15:04")
	}
	if r.Stop != "" {
		out += "; stopped: " + r.Stop
	}
	return out
}

// ObjectiveCI is the objective's 95% interval from a trial's reports, and
// how it was computed: the bootstrap interval of an acceleration; the
// distribution-free interval of a median latency over every request; a
// median's interval over the repetitions (at least 2). NaN bounds when
// the samples give none (one repetition of a run-wide figure).
func ObjectiveCI(reps []*benchmark.Report, metric string) (lo, hi float64, how string) {
	if len(reps) == 0 {
		return nan(), nan(), ""
	}
	if strings.HasSuffix(metric, "acceleration") {
		if ci := AccelerationCI(reps); ci != nil && !math.IsNaN(ci.Lo) {
			return ci.Lo, ci.Hi, "bootstrap 95% CI"
		}
	}
	if strings.Contains(metric, "_p50_") {
		if xs := Samples(reps, metric); len(xs) >= 6 {
			s := benchmark.Summarize(xs)
			return finite(s.MedianLo), finite(s.MedianHi), fmt.Sprintf("95%% CI of the median over %d requests", len(xs))
		}
	}
	if _, byRep := Metrics(reps); len(byRep[metric]) >= 2 {
		s := benchmark.Summarize(byRep[metric])
		return finite(s.MedianLo), finite(s.MedianHi), fmt.Sprintf("95%% CI of the median over %d repetitions", len(byRep[metric]))
	}
	return nan(), nan(), "one repetition: no interval"
}

// finite is v, or NaN for an infinite bound (too few values for an
// interval).
func finite(v float64) float64 {
	if math.IsInf(v, 0) {
		return math.NaN()
	}
	return v
}

func nan() float64 { return math.NaN() }

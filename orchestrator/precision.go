package orchestrator

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/vgrid/vgrid/benchmark"
)

// Achieved is the precision a trial's benchmark reached on its objective:
// the 95% interval of the objective's mean over its repetitions.
type Achieved struct {
	Reps      int     `json:"reps"`       // repetitions the objective was measured in
	Mean      float64 `json:"mean"`       // over repetitions
	HalfWidth float64 `json:"half_width"` // of the interval, in the objective's unit
	Pct       float64 `json:"pct"`        // HalfWidth in % of |Mean|; -1 with fewer than 2 repetitions
	Target    float64 `json:"target"`     // benchmark.precision.objective, %
	Met       bool    `json:"met"`
	// Alpha is the error rate of each look (0.05 over the looks the
	// sequential rule may take): the interval reported when the rule
	// stops covers the mean with at least 95% confidence.
	Alpha float64 `json:"alpha"`
}

// String is "±2.1% over 4 repetitions (target 3%)".
func (a *Achieved) String() string {
	if a == nil {
		return ""
	}
	if a.Pct < 0 {
		return fmt.Sprintf("no interval: %d repetition(s) (target ±%g%%)", a.Reps, a.Target)
	}
	met := "met"
	if !a.Met {
		met = "not met"
	}
	return fmt.Sprintf("±%.2g%% over %d repetitions (target ±%g%%, %s)", a.Pct, a.Reps, a.Target, met)
}

// precisionLooks is how many times the sequential rule may look at the
// interval: after each repetition from the second (or the last of
// benchmark.repetitions, when that is more) to the cap.
func (b BenchConfig) precisionLooks() int {
	if b.Precision == nil {
		return 0
	}
	return b.Precision.MaxRepetitions - max(b.Repetitions, 2) + 1
}

// precision computes what reports (a trial's repetitions so far) achieve
// on metric under the grid's precision rule; nil without one.
func (g *Grid) precision(reports []*benchmark.Report, metric string) *Achieved {
	pr := g.Benchmark.Precision
	if pr == nil {
		return nil
	}
	_, reps := Metrics(reports)
	x := reps[metric]
	alpha := 0.05 / float64(max(g.Benchmark.precisionLooks(), 1))
	a := &Achieved{Reps: len(x), Target: float64(pr.Objective), Alpha: alpha, Pct: -1}
	if len(x) == 0 {
		return a
	}
	a.Mean = stat.Mean(x, nil)
	if len(x) < 2 {
		return a
	}
	// Student's t interval of the mean: repetitions are independent
	// measurements of one configuration; their spread is the noise.
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(len(x) - 1)}.Quantile(1 - alpha/2)
	a.HalfWidth = t * stat.StdDev(x, nil) / math.Sqrt(float64(len(x)))
	if a.Mean != 0 {
		a.Pct = 100 * a.HalfWidth / math.Abs(a.Mean)
	} else if a.HalfWidth == 0 {
		a.Pct = 0
	}
	a.Met = a.Pct >= 0 && a.Pct <= a.Target
	return a
}

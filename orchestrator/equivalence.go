package orchestrator

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/vgrid/vgrid/benchmark"
)

// poolBoots merges the eligible trials of one candidate (its trial and
// confirm's fresh boots of it) into one contender: its objective the mean
// of its boots' values, each boot's value kept (Boots) as the unit the
// verdict compares when both sides have two or more. Trials are in order;
// the first of a candidate names the contender.
func poolBoots(eligible []Scored, metric string) []Scored {
	var out []Scored
	at := map[string]int{}
	for _, s := range eligible {
		k := s.Name + "\x00" + spaceKey(s.Candidate)
		i, ok := at[k]
		if !ok {
			s.Boots, s.BootCIs = []float64{s.Values[metric]}, []*benchmark.CI{s.CI}
			at[k] = len(out)
			out = append(out, s)
			continue
		}
		p := &out[i]
		p.Boots = append(p.Boots, s.Values[metric])
		p.BootCIs = append(slices.Clone(p.BootCIs), s.CI)
		p.Values = maps.Clone(p.Values)
		p.Values[metric] = stat.Mean(p.Boots, nil)
		p.Reps = maps.Clone(p.Reps)
		if p.Reps == nil {
			p.Reps = map[string][]float64{}
		}
		p.Reps[metric] = append(slices.Clone(p.Reps[metric]), s.Reps[metric]...)
		p.Samples = append(slices.Clone(p.Samples), s.Samples...)
		p.CI = nil
	}
	return out
}

// difference is the 95% interval of how much worse b is than a on the
// metric, in percent of a (positive: b is worse), and how it was
// computed; ok is false when there is nothing to compute it from (a
// single measurement on a side).
//
// The unit is the boot when both have two or more (Welch's t over the
// boots' values: boot-to-boot variance counted), or when one has two or
// more and the other one (Student's t, the spread of the first standing
// for both); else the repetition
// (Welch's t over repetitions); else, for a percentile of latency, a
// bootstrap of the percentile over the per-request samples; else, for an
// acceleration, the two bootstrap intervals taken as normal.
func difference(a, b Scored, metric string, maximize bool) (lo, hi float64, method string, ok bool) {
	va := a.Values[metric]
	if va == 0 || math.IsNaN(va) {
		return 0, 0, "", false
	}
	sign := 1.0 // worse is larger
	if maximize {
		sign = -1
	}
	rel := func(d float64) float64 { return 100 * sign * d / math.Abs(va) }
	order := func(x, y float64) (float64, float64) { return min(x, y), max(x, y) }
	if len(a.Boots) >= 2 && len(b.Boots) >= 2 {
		d, h := welch(a.Boots, b.Boots)
		lo, hi = order(rel(d-h), rel(d+h))
		return lo, hi, fmt.Sprintf("Welch's t over %d and %d boots", len(a.Boots), len(b.Boots)), true
	}
	if x, y := a.Boots, b.Boots; len(x) >= 2 && len(y) == 1 || len(x) == 1 && len(y) >= 2 {
		d, h := oneBoot(x, y)
		lo, hi = order(rel(d-h), rel(d+h))
		return lo, hi, fmt.Sprintf("Student's t over %d and %d boots, the spread of the side with more", len(x), len(y)), true
	}
	if x, y := a.Reps[metric], b.Reps[metric]; len(x) >= 2 && len(y) >= 2 {
		d, h := welch(x, y)
		lo, hi = order(rel(d-h), rel(d+h))
		return lo, hi, fmt.Sprintf("Welch's t over %d and %d repetitions", len(x), len(y)), true
	}
	if q, isPct := percentileOf(metric); isPct && len(a.Samples) >= 20 && len(b.Samples) >= 20 {
		lo, hi := bootstrapDiff(a.Samples, b.Samples, q)
		lo, hi = order(rel(lo), rel(hi))
		return lo, hi, fmt.Sprintf("bootstrap of the p%g over %d and %d requests", q, len(a.Samples), len(b.Samples)), true
	}
	if a.CI != nil && b.CI != nil {
		sa, sb := (a.CI.Hi-a.CI.Lo)/3.92, (b.CI.Hi-b.CI.Lo)/3.92
		d, h := b.Values[metric]-va, 1.96*math.Hypot(sa, sb)
		lo, hi = order(rel(d-h), rel(d+h))
		return lo, hi, "the two bootstrap intervals, as normal", true
	}
	return 0, 0, "", false
}

// welch is the difference of means y - x and the half-width of its 95%
// interval by Welch's t.
func welch(x, y []float64) (float64, float64) {
	mx, vx := stat.MeanVariance(x, nil)
	my, vy := stat.MeanVariance(y, nil)
	nx, ny := float64(len(x)), float64(len(y))
	se2 := vx/nx + vy/ny
	if se2 == 0 {
		return my - mx, 0
	}
	df := se2 * se2 / (vx*vx/(nx*nx*(nx-1)) + vy*vy/(ny*ny*(ny-1)))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(0.975)
	return my - mx, t * math.Sqrt(se2)
}

// oneBoot is the difference of means y - x and its 95% half-width when
// one side has a single boot: the boot-to-boot spread of the other side
// stands for both (a boot's spread is the server's, whichever candidate
// it serves).
func oneBoot(x, y []float64) (float64, float64) {
	many := x
	if len(y) > len(x) {
		many = y
	}
	_, v := stat.MeanVariance(many, nil)
	se := math.Sqrt(v * (1/float64(len(x)) + 1/float64(len(y))))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(len(many) - 1)}.Quantile(0.975)
	return stat.Mean(y, nil) - stat.Mean(x, nil), t * se
}

// percentileOf reads the percentile of a latency metric
// (SCENARIO.ttft_p95_ms: 95).
func percentileOf(metric string) (float64, bool) {
	_, name, _ := strings.Cut(metric, ".")
	i := strings.Index(name, "_p")
	if i < 0 || !strings.HasSuffix(name, "_ms") {
		return 0, false
	}
	q, err := strconv.ParseFloat(strings.TrimSuffix(name[i+2:], "_ms"), 64)
	return q, err == nil && q > 0 && q < 100
}

// bootstrapDiff is the 95% percentile-bootstrap interval of
// pq(y) - pq(x), seeded by the samples themselves (a verdict is a
// function of its data).
func bootstrapDiff(x, y []float64, q float64) (float64, float64) {
	const rounds = 400
	seed := uint64(len(x))<<32 ^ uint64(len(y)) ^ math.Float64bits(x[0]) ^ math.Float64bits(y[len(y)-1])
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	pct := func(v []float64) float64 {
		s := make([]float64, len(v))
		for i := range s {
			s[i] = v[r.IntN(len(v))]
		}
		slices.Sort(s)
		return benchmark.Percentile(s, q)
	}
	ds := make([]float64, rounds)
	for i := range ds {
		ds[i] = pct(y) - pct(x)
	}
	slices.Sort(ds)
	return ds[rounds*25/1000], ds[rounds*975/1000-1]
}

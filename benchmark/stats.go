package benchmark

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"

	"golang.org/x/perf/benchmath"
)

// Stats summarises a sample (milliseconds, tokens/s, ...), as `vllm bench
// serve` does: percentiles by linear interpolation between order
// statistics. Below 100 samples p99 cannot be told from the maximum, so it
// is reported as the maximum and P99IsMax says so.
type Stats struct {
	N        int     `json:"n"`
	Mean     float64 `json:"mean"`
	Stdev    float64 `json:"stdev"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	P50      float64 `json:"p50"`
	P90      float64 `json:"p90"`
	P95      float64 `json:"p95"`
	P99      float64 `json:"p99"`
	P99IsMax bool    `json:"p99_is_max,omitempty"`
	// Median's distribution-free 95% confidence interval (order
	// statistics, golang.org/x/perf/benchmath); infinite bounds when the
	// sample is too small (fewer than 6 values).
	MedianLo float64 `json:"median_ci_lo"`
	MedianHi float64 `json:"median_ci_hi"`
}

// Percentile returns the p-th percentile (0..100) of sorted values by
// linear interpolation (numpy's default).
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	switch n {
	case 0:
		return math.NaN()
	case 1:
		return sorted[0]
	}
	pos := p / 100 * float64(n-1)
	lo := int(math.Floor(pos))
	if lo >= n-1 {
		return sorted[n-1]
	}
	frac := pos - float64(lo)
	return sorted[lo] + frac*(sorted[lo+1]-sorted[lo])
}

// Summarize computes Stats over values (the input is not modified).
func Summarize(values []float64) Stats {
	s := Stats{N: len(values)}
	if s.N == 0 {
		nan := math.NaN()
		return Stats{Mean: nan, Stdev: nan, Min: nan, Max: nan, P50: nan, P90: nan, P95: nan, P99: nan, MedianLo: nan, MedianHi: nan}
	}
	v := slices.Clone(values)
	slices.Sort(v)
	var sum float64
	for _, x := range v {
		sum += x
	}
	s.Mean = sum / float64(s.N)
	if s.N > 1 {
		var ss float64
		for _, x := range v {
			ss += (x - s.Mean) * (x - s.Mean)
		}
		s.Stdev = math.Sqrt(ss / float64(s.N-1))
	}
	s.Min, s.Max = v[0], v[s.N-1]
	s.P50, s.P90, s.P95 = Percentile(v, 50), Percentile(v, 90), Percentile(v, 95)
	if s.N < 100 {
		s.P99, s.P99IsMax = s.Max, true
	} else {
		s.P99 = Percentile(v, 99)
	}
	sum95 := benchmath.AssumeNothing.Summary(benchmath.NewSample(v, &benchmath.DefaultThresholds), 0.95)
	s.MedianLo, s.MedianHi = sum95.Lo, sum95.Hi
	return s
}

// CI is a point estimate with a 95% confidence interval.
type CI struct {
	Value float64 `json:"value"`
	Lo    float64 `json:"ci_lo"`
	Hi    float64 `json:"ci_hi"`
	N     int     `json:"n"`
}

// MedianRatio estimates median(num)/median(den) with a 95% percentile
// bootstrap interval (2000 resamples, each sample resampled on its own, a
// fixed seed so the same samples give the same interval).
func MedianRatio(num, den []float64) CI {
	ci := CI{Value: math.NaN(), Lo: math.NaN(), Hi: math.NaN(), N: min(len(num), len(den))}
	if len(num) == 0 || len(den) == 0 {
		return ci
	}
	ci.Value = median(num) / median(den)
	ratios := newResampler(1, 2).ratios(num, den)
	slices.Sort(ratios)
	ci.Lo, ci.Hi = Percentile(ratios, 2.5), Percentile(ratios, 97.5)
	return ci
}

// RatioBelowP is the one-sided bootstrap p-value of "a's median ratio
// aNum/aDen is not below b's bNum/bDen": the share of paired resamples
// (2000, each of the four samples resampled on its own, a fixed seed) in
// which a's ratio reaches b's, with the +1 correction that keeps it
// above zero. A small value says a is below b with confidence. NaN when
// a sample is empty.
func RatioBelowP(aNum, aDen, bNum, bDen []float64) float64 {
	if len(aNum) == 0 || len(aDen) == 0 || len(bNum) == 0 || len(bDen) == 0 {
		return math.NaN()
	}
	ra := newResampler(3, 4).ratios(aNum, aDen)
	rb := newResampler(5, 6).ratios(bNum, bDen)
	n := min(len(ra), len(rb))
	reach := 0
	for i := 0; i < n; i++ {
		if ra[i] >= rb[i] {
			reach++
		}
	}
	return float64(reach+1) / float64(n+1)
}

// resampler draws bootstrap resamples from a seeded generator.
type resampler struct{ rng *rand.Rand }

func newResampler(s1, s2 uint64) resampler { return resampler{rand.New(rand.NewPCG(s1, s2))} }

// ratios returns median(num*)/median(den*) for 2000 resamples (those with
// a zero denominator left out).
func (r resampler) ratios(num, den []float64) []float64 {
	const B = 2000
	out := make([]float64, 0, B)
	bn, bd := make([]float64, len(num)), make([]float64, len(den))
	for b := 0; b < B; b++ {
		for i := range bn {
			bn[i] = num[r.rng.IntN(len(num))]
		}
		for i := range bd {
			bd[i] = den[r.rng.IntN(len(den))]
		}
		if d := median(bd); d != 0 {
			out = append(out, median(bn)/d)
		}
	}
	return out
}

// Slope is the least-squares slope of y over x.
func Slope(x, y []float64) float64 {
	n := float64(len(x))
	if len(x) < 2 || len(x) != len(y) {
		return math.NaN()
	}
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return math.NaN()
	}
	return (n*sxy - sx*sy) / d
}

// median of unsorted values.
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return Percentile(s, 50)
}

// num is a float for JSON: NaN and ±Inf (no data, unbounded interval)
// become null instead of failing the encoder.
func num(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return f
}

// MarshalJSON writes NaN and infinite values as null.
func (s Stats) MarshalJSON() ([]byte, error) {
	m := map[string]any{"n": s.N, "mean": num(s.Mean), "stdev": num(s.Stdev), "min": num(s.Min), "max": num(s.Max),
		"p50": num(s.P50), "p90": num(s.P90), "p95": num(s.P95), "p99": num(s.P99),
		"median_ci_lo": num(s.MedianLo), "median_ci_hi": num(s.MedianHi)}
	if s.P99IsMax {
		m["p99_is_max"] = true
	}
	return json.Marshal(m)
}

// MarshalJSON writes NaN and infinite values as null.
func (c CI) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"value": num(c.Value), "ci_lo": num(c.Lo), "ci_hi": num(c.Hi), "n": c.N})
}

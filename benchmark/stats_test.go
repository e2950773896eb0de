package benchmark

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestPercentileLinearInterpolation(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tt := range []struct{ p, want float64 }{{0, 1}, {50, 5.5}, {90, 9.1}, {95, 9.55}, {100, 10}} {
		if got := Percentile(v, tt.p); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("p%v = %v, want %v (numpy linear)", tt.p, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{5, 1, 4, 2, 3})
	if s.N != 5 || s.Mean != 3 || s.Min != 1 || s.Max != 5 || s.P50 != 3 || !s.P99IsMax || s.P99 != 5 {
		t.Errorf("got %+v", s)
	}
	if math.Abs(s.Stdev-math.Sqrt(2.5)) > 1e-9 {
		t.Errorf("stdev %v, want sample stdev %v", s.Stdev, math.Sqrt(2.5))
	}
	var big []float64
	for i := 1; i <= 200; i++ {
		big = append(big, float64(i))
	}
	b := Summarize(big)
	if b.P99IsMax || math.Abs(b.P99-198.01) > 1e-9 || b.MedianLo > b.P50 || b.MedianHi < b.P50 || math.IsInf(b.MedianLo, 0) {
		t.Errorf("200 samples: %+v", b)
	}
	// Small samples: the median CI is unbounded and JSON says null, not an error.
	out, err := json.Marshal(Summarize([]float64{1, 2}))
	if err != nil || !strings.Contains(string(out), `"median_ci_lo":null`) {
		t.Errorf("json %s, %v", out, err)
	}
	if out, err := json.Marshal(Summarize(nil)); err != nil || !strings.Contains(string(out), `"n":0`) {
		t.Errorf("empty: %s %v", out, err)
	}
}

func TestMedianRatioBootstrap(t *testing.T) {
	var miss, hit []float64
	for i := 0; i < 20; i++ {
		miss = append(miss, 400+float64(i%5))
		hit = append(hit, 100+float64(i%3))
	}
	ci := MedianRatio(miss, hit)
	if math.Abs(ci.Value-402.0/101) > 1e-9 || ci.Lo > ci.Value || ci.Hi < ci.Value || ci.Lo < 3.8 || ci.Hi > 4.2 {
		t.Errorf("ratio %+v", ci)
	}
	if again := MedianRatio(miss, hit); again != ci {
		t.Errorf("not deterministic: %+v vs %+v", again, ci)
	}
}

func TestSlope(t *testing.T) {
	if s := Slope([]float64{1, 2, 3, 4}, []float64{10, 12, 14, 16}); math.Abs(s-2) > 1e-9 {
		t.Errorf("slope %v, want 2", s)
	}
}

func TestRatioBelowP(t *testing.T) {
	jitter := func(rng *rand.Rand, center float64, n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = center * (1 + 0.1*rng.NormFloat64())
		}
		return out
	}
	rng := rand.New(rand.NewPCG(7, 7))
	// a: no caching (ratio ~1); b: caching (ratio ~3).
	aMiss, aHit := jitter(rng, 300, 6), jitter(rng, 300, 6)
	bMiss, bHit := jitter(rng, 300, 6), jitter(rng, 100, 6)
	if p := RatioBelowP(aMiss, aHit, bMiss, bHit); p > 0.001 {
		t.Errorf("ratio 1 against ratio 3: p %g, want < 0.001", p)
	}
	if p := RatioBelowP(bMiss, bHit, aMiss, aHit); p < 0.99 {
		t.Errorf("ratio 3 against ratio 1: p %g, want ~1", p)
	}
	if p := RatioBelowP(nil, aHit, bMiss, bHit); !math.IsNaN(p) {
		t.Errorf("empty sample: p %g, want NaN", p)
	}
	// Calibration: when a and b come from one distribution, p < 0.05 in
	// about 5% of draws, not much more (the error rate the early stop
	// states rests on it).
	const draws = 300
	low := 0
	for i := 0; i < draws; i++ {
		if RatioBelowP(jitter(rng, 300, 6), jitter(rng, 150, 6), jitter(rng, 300, 6), jitter(rng, 150, 6)) < 0.05 {
			low++
		}
	}
	if share := float64(low) / draws; share > 0.09 {
		t.Errorf("equal ratios: p < 0.05 in %.1f%% of draws, want about 5%%", 100*share)
	} else {
		t.Logf("equal ratios: p < 0.05 in %.1f%% of %d draws", 100*share, draws)
	}
}

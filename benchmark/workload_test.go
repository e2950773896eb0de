package benchmark

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slices"
)

func TestLengthDraws(t *testing.T) {
	tests := []struct {
		l          Length
		lo, hi     int
		mean, tol  float64
		fixedValue int
	}{
		{l: Length{Dist: "fixed", Mean: 512}, lo: 512, hi: 512, mean: 512, tol: 0},
		{l: Length{Dist: "uniform", Min: 64, Max: 256}, lo: 64, hi: 256, mean: 160.5, tol: 8},
		{l: Length{Dist: "normal", Mean: 512, Std: 128, Min: 16, Max: 2048}, lo: 16, hi: 2048, mean: 512, tol: 15},
		{l: Length{Dist: "lognormal", Mean: 400, Std: 300}, lo: 1, hi: 1 << 30, mean: 400, tol: 30},
	}
	for _, tt := range tests {
		w := Workload{Kind: "synthetic", Input: tt.l, Output: Length{Mean: 1}, Seed: 3}
		items, err := w.Items(2000, Request{})
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for _, it := range items {
			if it.InputTokens < tt.lo || it.InputTokens > tt.hi {
				t.Fatalf("%s: drew %d, outside [%d, %d]", tt.l, it.InputTokens, tt.lo, tt.hi)
			}
			sum += float64(it.InputTokens)
		}
		if got := sum / float64(len(items)); math.Abs(got-tt.mean) > tt.tol {
			t.Errorf("%s: mean %.1f, want %.1f +- %.0f", tt.l, got, tt.mean, tt.tol)
		}
	}
}

func TestSyntheticItemsAreSeeded(t *testing.T) {
	w := Workload{Kind: "synthetic", Input: Length{Dist: "uniform", Min: 10, Max: 50}, Output: Length{Mean: 32}, Seed: 7}
	a, _ := w.Items(20, Request{})
	b, _ := w.Items(20, Request{})
	w.Seed = 8
	c, _ := w.Items(20, Request{})
	prompts := func(items []Item) []string {
		var out []string
		for _, it := range items {
			out = append(out, it.Messages[0].Content)
		}
		return out
	}
	if !slices.Equal(prompts(a), prompts(b)) {
		t.Error("the same seed sent other prompts")
	}
	if slices.Equal(prompts(a), prompts(c)) {
		t.Error("another seed sent the same prompts")
	}
	for _, it := range a {
		if n := len(strings.Fields(it.Messages[0].Content)); n != it.InputTokens {
			t.Errorf("prompt of %d words for %d tokens asked", n, it.InputTokens)
		}
		if it.MaxTokens != 32 || it.Extra["ignore_eos"] != true || it.Extra["min_tokens"] != 32 {
			t.Errorf("output: max %d, extra %v; want 32 with ignore_eos", it.MaxTokens, it.Extra)
		}
	}
}

func TestShareGPT(t *testing.T) {
	w := Workload{Kind: "sharegpt", Path: "testdata/sharegpt/real.json", Seed: 1}
	if err := w.prepare(); err != nil {
		t.Fatal(err)
	}
	items, err := w.Items(3, Request{})
	if err != nil {
		t.Fatal(err)
	}
	// The real entry: the first human turn is the prompt, the reply's
	// length (~237 tokens at 4 characters a token) the output length.
	if w.Prompts != 1 || len(items) != 3 || !strings.HasPrefix(items[0].Messages[0].Content, "Why does `dir` command in DOS") {
		t.Fatalf("real sample: %d prompts, items %+v", w.Prompts, items)
	}
	if n := items[0].MaxTokens; n < 200 || n > 260 {
		t.Errorf("output length %d for a 950-character reply", n)
	}
	// vgrid's edge cases: one turn, a 1-token reply and a 1200-word prompt
	// are left out, as vLLM's benchmark does.
	e := Workload{Kind: "sharegpt", Path: "testdata/sharegpt/edge.json", Seed: 1}
	if err := e.prepare(); err != nil || e.Prompts != 2 {
		t.Fatalf("edge: %v, %d prompts kept, want 2 (the real entry and the French one)", err, e.Prompts)
	}
	missing := Workload{Kind: "sharegpt", Path: filepath.Join(t.TempDir(), "ShareGPT_V3_unfiltered_cleaned_split.json")}
	if err := missing.prepare(); err == nil || !strings.Contains(err.Error(), "never downloads") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"not": "a list"}`), 0o644)
	if err := (&Workload{Kind: "sharegpt", Path: bad}).prepare(); err == nil || !strings.Contains(err.Error(), "not a ShareGPT-format file") {
		t.Errorf("not ShareGPT: %v", err)
	}
}

func TestSummarizeSweep(t *testing.T) {
	slo := SLO{TTFTMs: 100}
	var rs []Result
	add := func(tag, class string, ttfts ...int) {
		for _, ms := range ttfts {
			rs = append(rs, Result{Tag: tag, Class: class, Chunks: 2, OutputTokens: 2, TTFT: time.Duration(ms) * time.Millisecond,
				E2EL: time.Duration(ms+10) * time.Millisecond, Sent: time.Unix(0, 0).Add(time.Duration(len(rs)) * 100 * time.Millisecond)})
		}
	}
	add("concurrency-16", "closed", 50, 60, 70, 80)
	add("rate-20", "poisson", 90, 150, 160, 170) // 25% meet
	add("rate-10", "poisson", 50, 60, 70, 120)   // 75%
	add("rate-5", "poisson", 50, 60, 70, 80)     // 100%
	add("rate-7.5", "poisson", 50, 60, 70, 99)   // 100%
	sw := SummarizeSweep(rs, slo, 0.95)
	if sw.Capacity.Concurrency != 16 || len(sw.Rates) != 4 || sw.MaxRate != 7.5 {
		t.Errorf("sweep: capacity c=%d, %d rates, max %g; want c=16, 4 rates, 7.5", sw.Capacity.Concurrency, len(sw.Rates), sw.MaxRate)
	}
	if sw := SummarizeSweep(rs, slo, 0.7); sw.MaxRate != 10 {
		t.Errorf("at 70%% attainment: max %g, want 10", sw.MaxRate)
	}
	if sw := SummarizeSweep(rs, SLO{TTFTMs: 10}, 0.95); sw.MaxRate != 0 {
		t.Errorf("an SLO no request meets: max %g, want 0", sw.MaxRate)
	}
}

// The sweep against the simulator: a higher rate that meets the SLOs is
// never reported below a lower one, and the rates tried are recorded.
func TestSweepOnTheSimulator(t *testing.T) {
	ep := startSim(t, []string{"--model", "m", "--max-num-seqs", "4"}, map[string]string{"VLLM_SIM_TIME_SCALE": "0.05"})
	cfg := Defaults()
	cfg.Load.Workload = Workload{Kind: "synthetic", Input: Length{Mean: 64}, Output: Length{Mean: 24}, Seed: 1}
	cfg.Load.SLO = SLO{TTFTMs: 60}
	cfg.Sweep = SweepConfig{Concurrency: 8, Requests: 16, Steps: 3, Attainment: 0.9, MinRate: 1}
	r := &Runner{Client: NewClient(ep, "m", "K", func(string) string { return "" }), Config: cfg}
	rep, err := r.Run(context.Background(), []string{"sweep"})
	if err != nil {
		t.Fatal(err)
	}
	sw := rep.Scenarios[0].Sweep
	if sw == nil || len(sw.Rates) < 1 || sw.Capacity.RequestThroughput <= 0 {
		t.Fatalf("sweep report %+v", sw)
	}
	for _, l := range sw.Rates {
		if l.Attainment >= 0.9 && l.Rate > sw.MaxRate {
			t.Errorf("rate %g met the SLOs (%.2f) but the maximum is %g", l.Rate, l.Attainment, sw.MaxRate)
		}
		if l.Requests != 16 {
			t.Errorf("rate %g: %d requests, want 16", l.Rate, l.Requests)
		}
	}
	for _, res := range rep.Scenarios[0].Results {
		if res.OutputTokens != 24 || res.FinishReason != "length" {
			t.Fatalf("ignore_eos: %d tokens, finish %q; want 24, length", res.OutputTokens, res.FinishReason)
		}
	}
	if rep.Settings == nil || rep.Settings.Config.Sweep.Attainment != 0.9 || !strings.Contains(rep.Settings.Describe(), "synthetic prompts of 64 input") {
		t.Errorf("settings: %+v", rep.Settings)
	}
}

func TestSettingsDiff(t *testing.T) {
	a := Settings{Scenarios: []string{"kv-cache", "load"}, Config: Defaults()}
	b := a
	b.Config.Load.Rates = []float64{}
	if d := a.Diff(b); d != "load.rates: [2,4] vs []" {
		t.Errorf("diff %q", d)
	}
	c := a
	c.Config.Reasoning.Repetitions = 9 // a scenario that does not run
	if d := a.Diff(c); d != "" {
		t.Errorf("a setting of a scenario not run counts: %q", d)
	}
	if !a.Equal(a) {
		t.Error("settings unequal to themselves")
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/profiles"
)

func (a *app) benchCommand() *cobra.Command {
	var (
		endpoint, model, keyEnv, jsonOut, gpu, concurrency, rates, language string
		workload, inputTokens, outputTokens, dataset, slo                   string
		scenarios                                                           []string
		requests                                                            int
		seed                                                                uint64
		timeout, scrape                                                     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "bench --endpoint URL [--model M] [--api-key-env VAR] [--scenario NAME]... [--concurrency 1,2,4] [--json FILE]",
		Short: "Benchmark an OpenAI-compatible server with streamed requests (TTFT, TPOT, ITL, E2EL, quality, tools, load)",
		Long: `Runs the benchmark scenarios against any OpenAI-compatible server (vLLM, vllm-sim):
  kv-cache           prefix cache miss vs hit TTFT, acceleration with a 95% CI
  long-conversation  15 turns x 3 conversations, TTFT against prompt length
  reasoning          3 tasks checked on the final content; truncation scores 0
  tool-calling       single, multi-step (vgrid runs the tools) and nested calls, schema-validated
  stability          a fixed short/long mix in equal windows, per-class degradation
  load               closed-loop concurrency levels and Poisson rates, goodput, saturation
  sweep              the highest Poisson rate at which 95% of requests meet the SLOs
Every request is streamed; metrics follow vllm bench serve. The API key is read
from --api-key-env (default VLLM_API_KEY) and never printed.

load and sweep send the built-in prompt, or --workload synthetic prompts of
--input-tokens / --output-tokens (512, uniform:64:256, normal:512:128,
lognormal:400:300) with --seed, or --workload sharegpt with --dataset FILE
(a ShareGPT-format JSON file you have; nothing is downloaded).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if endpoint == "" {
				return usagef("--endpoint is required, e.g. --endpoint http://127.0.0.1:8000")
			}
			names, err := benchmark.CheckNames(scenarios)
			if err != nil {
				return usageError{err}
			}
			cfg := benchmark.Defaults()
			if concurrency != "" {
				if cfg.Load.Concurrency, err = intList(concurrency); err != nil {
					return usagef("--concurrency: %v", err)
				}
			}
			if rates != "" {
				if cfg.Load.Rates, err = floatList(rates); err != nil {
					return usagef("--rates: %v", err)
				}
			}
			if requests > 0 {
				cfg.KVCache.Pairs, cfg.Load.RequestsPerLevel, cfg.Load.RequestsPerRate, cfg.Sweep.Requests = requests, requests, requests, requests
			}
			if cfg.Load.Workload, err = workloadFlags(workload, inputTokens, outputTokens, dataset, seed); err != nil {
				return usagef("%v", err)
			}
			if slo != "" {
				if cfg.Load.SLO, err = parseSLO(slo); err != nil {
					return usagef("--slo: %v", err)
				}
			}
			cfg.Tools.Language = language
			if err := cfg.Tools.Check(); err != nil {
				return usagef("--language: %v", err)
			}
			c := benchmark.NewClient(endpoint, model, keyEnv, a.getenv)
			c.Timeout = timeout
			if model == "" {
				ids, err := c.Models(cmd.Context())
				if err != nil {
					return err
				}
				if len(ids) == 0 {
					return fmt.Errorf("%s serves no model", endpoint)
				}
				c.Model = ids[0]
			}
			r := &benchmark.Runner{Client: c, Config: cfg, Scrape: scrape}
			switch {
			case gpu == "local":
				r.GPU = benchmark.LocalNvidiaSMI
			case strings.HasPrefix(gpu, "container:"):
				r.GPU = benchmark.DockerNvidiaSMI(strings.TrimPrefix(gpu, "container:"))
			case gpu == "off":
			default:
				return usagef("--gpu %q: want local, off or container:NAME", gpu)
			}
			total := 0
			for _, n := range names {
				total += cfg.Total(n)
			}
			prog := newProgress(a.stderr, total)
			r.Progress = prog.update
			rep, runErr := r.Run(cmd.Context(), names)
			prog.end()
			if rep != nil {
				printReport(a.stdout, rep)
				if jsonOut != "" {
					if err := writeJSON(jsonOut, rep); err != nil {
						return err
					}
					fmt.Fprintf(a.stdout, "raw samples and summaries: %s\n", jsonOut)
				}
			}
			if runErr != nil && cmd.Context().Err() != nil {
				return fmt.Errorf("interrupted; the partial results above were kept")
			}
			return runErr
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoint, "endpoint", "", "server base URL, e.g. http://127.0.0.1:8000")
	f.StringVar(&model, "model", "", "model name (default: the first model the server lists)")
	f.StringVar(&keyEnv, "api-key-env", "VLLM_API_KEY", "environment variable holding the API key")
	f.StringVar(&language, "language", "en", "language of the tool-calling cases' prompts: en or fr")
	f.StringArrayVar(&scenarios, "scenario", nil, "scenario to run (repeatable; default all but sweep): "+strings.Join(benchmark.Scenarios, ", "))
	f.StringVar(&concurrency, "concurrency", "", "load: closed-loop levels, e.g. 1,2,4,8,16,32")
	f.StringVar(&rates, "rates", "", "load: Poisson arrival rates in requests/s, e.g. 2,4")
	f.IntVar(&requests, "requests", 0, "requests per kv-cache pair count and load level (default per scenario)")
	f.StringVar(&workload, "workload", "builtin", "load and sweep requests: builtin, synthetic or sharegpt")
	f.StringVar(&inputTokens, "input-tokens", "512", "synthetic: prompt tokens, fixed (512) or DIST:A:B (uniform:64:1024, normal:512:128, lognormal:400:300)")
	f.StringVar(&outputTokens, "output-tokens", "128", "synthetic: output tokens, same forms as --input-tokens (vLLM is asked to ignore EOS)")
	f.StringVar(&dataset, "dataset", "", "sharegpt: the ShareGPT-format JSON file (never downloaded)")
	f.Uint64Var(&seed, "seed", 1, "workload seed: the same seed sends the same requests")
	f.StringVar(&slo, "slo", "", "goodput and sweep bounds, e.g. ttft=2000,tpot=100,e2el=30000 (ms; default ttft=2000,tpot=100)")
	f.StringVar(&jsonOut, "json", "", "write the full report (summaries and raw samples) to this file")
	f.StringVar(&gpu, "gpu", "local", "GPU telemetry: local (nvidia-smi here), container:NAME (docker exec), off")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "per-request timeout")
	f.DurationVar(&scrape, "scrape-interval", time.Second, "interval of /metrics and nvidia-smi samples")
	cmd.RegisterFlagCompletionFunc("scenario", completeScenarios)
	cmd.RegisterFlagCompletionFunc("workload", cobra.FixedCompletions([]string{"builtin", "synthetic", "sharegpt"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("gpu", cobra.FixedCompletions([]string{"local", "off", "container:"}, cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveNoSpace))
	return cmd
}

// workloadFlags builds the load workload from vgrid bench's flags.
func workloadFlags(kind, in, out, dataset string, seed uint64) (benchmark.Workload, error) {
	w := benchmark.Workload{Kind: kind, Seed: seed, Path: dataset}
	if kind == "synthetic" {
		var err error
		if w.Input, err = parseLength(in); err != nil {
			return w, fmt.Errorf("--input-tokens: %v", err)
		}
		if w.Output, err = parseLength(out); err != nil {
			return w, fmt.Errorf("--output-tokens: %v", err)
		}
	}
	if kind == "sharegpt" && dataset == "" {
		return w, fmt.Errorf("--workload sharegpt needs --dataset FILE (a ShareGPT-format JSON file; vgrid never downloads one)")
	}
	if err := w.Check(); err != nil {
		return w, fmt.Errorf("--workload: %v", err)
	}
	return w, nil
}

// parseLength reads 512, uniform:64:256, normal:512:128 or lognormal:400:300.
func parseLength(s string) (benchmark.Length, error) {
	parts := strings.Split(s, ":")
	nums := make([]float64, 0, 2)
	for _, p := range parts[min(1, len(parts)-1):] {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return benchmark.Length{}, fmt.Errorf("%q: want 512, uniform:MIN:MAX, normal:MEAN:STD or lognormal:MEAN:STD", s)
		}
		nums = append(nums, v)
	}
	var l benchmark.Length
	switch {
	case len(parts) == 1:
		l = benchmark.Length{Dist: "fixed", Mean: nums[0]}
	case len(parts) == 3 && parts[0] == "uniform":
		l = benchmark.Length{Dist: "uniform", Min: nums[0], Max: nums[1]}
	case len(parts) == 3 && (parts[0] == "normal" || parts[0] == "lognormal"):
		l = benchmark.Length{Dist: parts[0], Mean: nums[0], Std: nums[1], Min: 1}
	default:
		return l, fmt.Errorf("%q: want 512, uniform:MIN:MAX, normal:MEAN:STD or lognormal:MEAN:STD", s)
	}
	return l, l.Check("length")
}

// parseSLO reads ttft=2000,tpot=100,e2el=30000 (milliseconds).
func parseSLO(s string) (benchmark.SLO, error) {
	var o benchmark.SLO
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return o, fmt.Errorf("%q: want NAME=MILLISECONDS, e.g. ttft=2000,tpot=100", kv)
		}
		switch k {
		case "ttft":
			o.TTFTMs = f
		case "tpot":
			o.TPOTMs = f
		case "e2el":
			o.E2ELMs = f
		default:
			return o, fmt.Errorf("%q: bounds are ttft, tpot and e2el", k)
		}
	}
	return o, nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func floatList(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// writeJSON writes the report atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	return profiles.WriteFileAtomic(path, append(b, '\n'), 0o644)
}

// progress draws a bar with an ETA on a terminal, or prints a plain line
// at each tenth otherwise.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	total   int
	done    int
	start   time.Time
	lastPct int
	counts  map[string]int
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: max(total, 1), start: time.Now(), lastPct: -1, counts: map[string]int{}}
	if f, ok := w.(*os.File); ok {
		p.tty = isatty.IsTerminal(f.Fd())
	}
	return p
}

// end ends the bar's line when a run stopped before its last request.
func (p *progress) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.done > 0 && p.done < p.total {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) update(scenario string, done, _ int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += done - p.counts[scenario]
	p.counts[scenario] = done
	frac := math.Min(1, float64(p.done)/float64(p.total))
	eta := "?"
	if p.done > 0 {
		el := time.Since(p.start)
		eta = (time.Duration(float64(el)/frac) - el).Round(time.Second).String()
	}
	if p.tty {
		const width = 30
		n := int(frac * width)
		fmt.Fprintf(p.w, "\r%-18s [%s%s] %4d/%-4d ETA %-8s", scenario, strings.Repeat("#", n), strings.Repeat(".", width-n), p.done, p.total, eta)
		if p.done >= p.total {
			fmt.Fprintln(p.w)
		}
		return
	}
	if pct := int(frac * 10); pct != p.lastPct {
		p.lastPct = pct
		fmt.Fprintf(p.w, "progress: %s %d/%d requests, ETA %s\n", scenario, p.done, p.total, eta)
	}
}

// levelLabel names a load level in tables: c=4, or 2 rps.
func levelLabel(l benchmark.LoadLevel) string {
	if l.Mode == "poisson" {
		return fmt.Sprintf("%g rps", l.Rate)
	}
	return fmt.Sprintf("c=%d", l.Concurrency)
}

// rateLine says what a Poisson level asked for and what it got: the rate
// achieved can be below the one asked for (the schedule's randomness, or
// a server that falls behind) without any request failing.
func rateLine(l benchmark.LoadLevel) string {
	return fmt.Sprintf("rate %g req/s asked, %s achieved: goodput %s req/s, %.0f%% met the SLOs, %d errors; TTFT p50 %s p99 %s ms",
		l.Rate, f1(l.RequestThroughput), f1(l.Goodput), 100*l.Attainment, l.Errors, f1(l.TTFT.P50), f1(l.TTFT.P99))
}

func f1(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// printReport writes the human summary.
func printReport(w io.Writer, rep *benchmark.Report) {
	fmt.Fprintf(w, "\n%s  model %s\n\n", rep.Endpoint, rep.Model)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\treqs\terrors\tTTFT p50\tTTFT p95\tTPOT p50\tITL p50\tE2EL p50\tout tok/s\treq/s\t")
	row := func(name string, c benchmark.Common) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, c.Requests, c.Errors, f1(c.TTFT.P50), f1(c.TTFT.P95),
			f1(c.TPOT.P50), f1(c.ITL.P50), f1(c.E2EL.P50), f1(c.OutputThroughput), f1(c.RequestThroughput))
	}
	for _, s := range rep.Scenarios {
		// A sweep of levels is one row per level: their average would
		// describe no load that was ever sent.
		levels := s.Load
		if s.Sweep != nil {
			levels = append([]benchmark.LoadLevel{s.Sweep.Capacity}, s.Sweep.Rates...)
		}
		if len(levels) == 0 {
			row(s.Name, s.Common)
			continue
		}
		for _, l := range levels {
			row(s.Name+" "+levelLabel(l), l.Common)
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "(milliseconds; p99 is the maximum below 100 samples; req/s is the achieved rate)")
	var gpuNotes, absent, legacy []string
	defer func() {
		for _, n := range gpuNotes {
			fmt.Fprintf(w, "\nGPU telemetry unavailable: %s\n", n)
		}
		if len(absent) > 0 {
			fmt.Fprintf(w, "\nserver metrics absent (this server does not expose them; reported absent, not zero): %s\n", strings.Join(absent, ", "))
		}
		if len(legacy) > 0 {
			fmt.Fprintf(w, "\nserver metrics read under an older vLLM's names: %s\n", strings.Join(legacy, ", "))
		}
	}()
	for _, s := range rep.Scenarios {
		if sv := s.Server; sv != nil {
			for _, a := range sv.Absent {
				if !slices.Contains(absent, a) {
					absent = append(absent, a)
				}
			}
			for _, l := range sv.Legacy {
				if !slices.Contains(legacy, l) {
					legacy = append(legacy, l)
				}
			}
		}
	}
	for _, s := range rep.Scenarios {
		fmt.Fprintf(w, "\n%s:\n", s.Name)
		switch {
		case s.KV != nil:
			fmt.Fprintf(w, "  TTFT miss p50 %s ms, hit p50 %s ms; acceleration %sx [95%% CI %s, %s]\n",
				f1(s.KV.TTFTMiss.P50), f1(s.KV.TTFTHit.P50), f1(s.Acceleration.Value), f1(s.Acceleration.Lo), f1(s.Acceleration.Hi))
			if s.KV.CachedOnHit != nil {
				fmt.Fprintf(w, "  cached tokens on hits p50 %s\n", f1(s.KV.CachedOnHit.P50))
			}
			if s.KV.PrefixHitRate != nil {
				fmt.Fprintf(w, "  server prefix cache hit rate %.0f%%\n", 100**s.KV.PrefixHitRate)
			}
		case s.Quality != nil:
			fmt.Fprintf(w, "  quality %.0f%%\n", 100*s.Quality.Score)
			for _, o := range s.Quality.Tasks {
				fmt.Fprintf(w, "  %-9s %-5v %s (reasoning %d, content %d tokens)\n", o.Task, o.Passed, o.Reason, o.ReasoningTokens, o.ContentTokens)
			}
		case s.ToolCallSuccess != nil:
			fmt.Fprintf(w, "  tool-call success %.0f%%\n", 100**s.ToolCallSuccess)
			for _, o := range s.Tools {
				fmt.Fprintf(w, "  %-10s %-5v %s %v\n", o.Case, o.Passed, o.Reason, o.Calls)
			}
		case s.Sweep != nil:
			sw := s.Sweep
			fmt.Fprintf(w, "  capacity at concurrency %d: %s req/s\n", sw.Capacity.Concurrency, f1(sw.Capacity.RequestThroughput))
			for _, l := range sw.Rates {
				fmt.Fprintf(w, "  %s\n", rateLine(l))
			}
			if sw.MaxRate > 0 {
				fmt.Fprintf(w, "  highest rate meeting %s for %.0f%% of requests: %g req/s (goodput %s req/s)\n", sw.SLO, 100*sw.Attainment, sw.MaxRate, f1(sw.Goodput))
			} else {
				fmt.Fprintf(w, "  no rate tried met %s for %.0f%% of requests\n", sw.SLO, 100*sw.Attainment)
			}
		case s.Load != nil:
			for _, l := range s.Load {
				if l.Mode == "poisson" {
					fmt.Fprintf(w, "  %s\n", rateLine(l))
					continue
				}
				fmt.Fprintf(w, "  concurrency %-4d out %7s tok/s  TTFT p50 %7s p99 %7s  TPOT p50 %6s  goodput %s of %s req/s (%.0f%% met the SLOs)\n", l.Concurrency,
					f1(l.OutputThroughput), f1(l.TTFT.P50), f1(l.TTFT.P99), f1(l.TPOT.P50), f1(l.Goodput), f1(l.RequestThroughput), 100*l.Attainment)
			}
			if s.SaturatesAt != nil {
				fmt.Fprintf(w, "  latency breaks beyond concurrency %d\n", *s.SaturatesAt)
			}
		}
		if d := s.Degradation; d != nil {
			fmt.Fprintf(w, "  TTFT first %s ms -> last %s ms (x%s), slope %s ms/step\n", f1(d.FirstMs), f1(d.LastMs), f1(d.Ratio), f1(d.SlopeMsPerStep))
			for name, c := range d.Classes {
				fmt.Fprintf(w, "  %-6s TTFT x%s TPOT x%s errors %d timeouts %d\n", name, f1(c.TTFTRatio), f1(c.TPOTRatio), c.Errors, c.Timeouts)
			}
		}
		if g := s.GPU; g != nil {
			if !g.Available && !slices.Contains(gpuNotes, g.Reason) {
				gpuNotes = append(gpuNotes, g.Reason)
			}
			for _, x := range g.GPUs {
				fmt.Fprintf(w, "  GPU %d: VRAM peak %s MiB of %s, util peak %s%%, power peak %s W\n", x.Index, f1(x.MemPeakMiB), f1(x.MemTotalMiB), f1(x.UtilPeakPct), f1(x.PowerPeakW))
			}
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		for _, e := range s.ErrorSamples {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}
}

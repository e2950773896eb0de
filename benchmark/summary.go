package benchmark

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Common are the metrics every scenario reports (vllm bench serve's names
// and units: milliseconds, tokens or requests per second). Warm-up
// requests are never counted.
type Common struct {
	Requests          int      `json:"requests"`
	Errors            int      `json:"errors"`
	TTFT              Stats    `json:"ttft_ms"`
	TTFC              Stats    `json:"ttft_content_ms"`
	TPOT              Stats    `json:"tpot_ms"`
	ITL               Stats    `json:"itl_ms"`
	E2EL              Stats    `json:"e2el_ms"`
	OutputThroughput  float64  `json:"output_throughput_tok_s"`
	RequestThroughput float64  `json:"request_throughput_rps"`
	WallSeconds       float64  `json:"wall_s"`
	ErrorSamples      []string `json:"error_samples,omitempty"` // first distinct errors
	// Connections set up inside the measured window (a request that found
	// none open), and how long each took: apart from TTFT, which starts
	// when a request goes out on an open connection.
	ConnectionsOpened int   `json:"connections_opened"`
	Connect           Stats `json:"connect_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measured drops warm-up requests.
func measured(rs []Result) []Result {
	out := make([]Result, 0, len(rs))
	for _, r := range rs {
		if !r.Warmup {
			out = append(out, r)
		}
	}
	return out
}

// Summarize computes the common metrics over the measured window: from
// the first measured request sent to the last one's last token.
func SummarizeCommon(all []Result) Common {
	rs := measured(all)
	c := Common{Requests: len(rs)}
	var ttft, ttfc, tpot, itl, e2el, connect []float64
	var tokens int
	var first, last time.Time
	for _, r := range rs {
		if first.IsZero() || (!r.Sent.IsZero() && r.Sent.Before(first)) {
			first = r.Sent
		}
		if end := r.Sent.Add(r.E2EL); end.After(last) {
			last = end
		}
		if r.Dialed {
			c.ConnectionsOpened++
			connect = append(connect, ms(r.Connect))
		}
		if !r.OK() {
			c.Errors++
			if len(c.ErrorSamples) < 5 && !slices.Contains(c.ErrorSamples, r.Err) {
				c.ErrorSamples = append(c.ErrorSamples, r.Err)
			}
			continue
		}
		tokens += r.OutputTokens
		if r.Chunks > 0 {
			ttft = append(ttft, ms(r.TTFT))
			e2el = append(e2el, ms(r.E2EL))
		}
		if r.TTFC > 0 {
			ttfc = append(ttfc, ms(r.TTFC))
		}
		if t, ok := r.TPOT(); ok {
			tpot = append(tpot, ms(t))
		}
		for _, g := range r.ITL {
			itl = append(itl, ms(g))
		}
	}
	c.TTFT, c.TTFC, c.TPOT, c.ITL, c.E2EL = Summarize(ttft), Summarize(ttfc), Summarize(tpot), Summarize(itl), Summarize(e2el)
	c.Connect = Summarize(connect)
	if wall := last.Sub(first).Seconds(); wall > 0 {
		c.WallSeconds = wall
		c.OutputThroughput = float64(tokens) / wall
		c.RequestThroughput = float64(len(rs)-c.Errors) / wall
	}
	return c
}

// KVReport is the kv-cache scenario's result.
type KVReport struct {
	TTFTMiss       Stats    `json:"ttft_miss_ms"`
	TTFTHit        Stats    `json:"ttft_hit_ms"`
	CachedOnHit    *Stats   `json:"cached_tokens_hit,omitempty"` // when the server reports cached_tokens
	PrefixHitRate  *float64 `json:"prefix_cache_hit_rate,omitempty"`
	PrefixCaching  *bool    `json:"server_prefix_caching,omitempty"` // from vllm:cache_config_info
	ExpectedNoGain bool     `json:"expected_no_gain,omitempty"`
}

// SummarizeKV computes TTFT miss/hit and acceleration = median miss / median
// hit with a bootstrap 95% CI.
func SummarizeKV(rs []Result) (KVReport, CI) {
	miss, hit := KVSamples(rs)
	var cached []float64
	for _, r := range measured(rs) {
		if r.OK() && r.Chunks > 0 && r.Tag == "hit" && r.CachedTokens >= 0 {
			cached = append(cached, float64(r.CachedTokens))
		}
	}
	k := KVReport{TTFTMiss: Summarize(miss), TTFTHit: Summarize(hit)}
	if len(cached) > 0 {
		s := Summarize(cached)
		k.CachedOnHit = &s
	}
	return k, MedianRatio(miss, hit)
}

// KVSamples returns the TTFTs (ms) of the kv-cache scenario's measured
// misses and hits: the samples behind its acceleration.
func KVSamples(rs []Result) (miss, hit []float64) {
	for _, r := range measured(rs) {
		if !r.OK() || r.Chunks == 0 {
			continue
		}
		switch r.Tag {
		case "miss":
			miss = append(miss, ms(r.TTFT))
		case "hit":
			hit = append(hit, ms(r.TTFT))
		}
	}
	return miss, hit
}

// TurnStat is one turn position of the long conversations.
type TurnStat struct {
	Turn         int     `json:"turn"`
	PromptTokens float64 `json:"prompt_tokens"` // median over conversations
	TTFTMs       float64 `json:"ttft_ms"`       // median over conversations
}

// Degradation says how latency evolves: per turn (conversations) or per
// window (stability), like for like.
type Degradation struct {
	SlopeMsPerStep float64               `json:"ttft_slope_ms_per_step"`
	FirstMs        float64               `json:"first_ttft_ms"` // median of the first 5 turns / first window
	LastMs         float64               `json:"last_ttft_ms"`  // median of the last 5 turns / last window
	Ratio          float64               `json:"ratio"`         // last / first
	Turns          []TurnStat            `json:"turns,omitempty"`
	Classes        map[string]ClassTrend `json:"classes,omitempty"`
}

// ClassTrend is one request class of the stability scenario.
type ClassTrend struct {
	TTFTFirstMs float64   `json:"ttft_first_window_ms"`
	TTFTLastMs  float64   `json:"ttft_last_window_ms"`
	TTFTRatio   float64   `json:"ttft_ratio"`
	TPOTFirstMs float64   `json:"tpot_first_window_ms"`
	TPOTLastMs  float64   `json:"tpot_last_window_ms"`
	TPOTRatio   float64   `json:"tpot_ratio"`
	WindowsTTFT []float64 `json:"ttft_by_window_ms"`
	Errors      int       `json:"errors"`
	Timeouts    int       `json:"timeouts"`
}

// turnOf reads "turn-N" tags.
func turnOf(tag string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(tag, "turn-"))
	return n, err == nil && strings.HasPrefix(tag, "turn-")
}

// SummarizeConversation: TTFT per turn (median over conversations) against
// the prompt tokens of that turn, the slope of TTFT over turns, and the
// first-5 against last-5 turn medians.
func SummarizeConversation(rs []Result) Degradation {
	byTurn := map[int][]Result{}
	maxTurn := 0
	for _, r := range measured(rs) {
		if n, ok := turnOf(r.Tag); ok && r.OK() && r.Chunks > 0 {
			byTurn[n] = append(byTurn[n], r)
			maxTurn = max(maxTurn, n)
		}
	}
	d := Degradation{}
	var xs, ys, first, last []float64
	for n := 1; n <= maxTurn; n++ {
		var tt, pt []float64
		for _, r := range byTurn[n] {
			tt = append(tt, ms(r.TTFT))
			pt = append(pt, float64(r.PromptTokens))
		}
		if len(tt) == 0 {
			continue
		}
		d.Turns = append(d.Turns, TurnStat{Turn: n, PromptTokens: median(pt), TTFTMs: median(tt)})
		for _, v := range tt {
			xs, ys = append(xs, float64(n)), append(ys, v)
		}
		if n <= 5 {
			first = append(first, tt...)
		}
		if n > maxTurn-5 {
			last = append(last, tt...)
		}
	}
	d.SlopeMsPerStep = Slope(xs, ys)
	d.FirstMs, d.LastMs = median(first), median(last)
	d.Ratio = d.LastMs / d.FirstMs
	return d
}

// windowOf reads "window-N" tags.
func windowOf(tag string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(tag, "window-"))
	return n, err == nil && strings.HasPrefix(tag, "window-")
}

// SummarizeStability compares, per request class, the first and the last
// window (every window holds the same mix), and counts errors and timeouts.
func SummarizeStability(rs []Result) Degradation {
	type key struct {
		class  string
		window int
	}
	ttft, tpot := map[key][]float64{}, map[key][]float64{}
	classes := map[string]*ClassTrend{}
	maxW := 0
	var xs, ys []float64
	for _, r := range measured(rs) {
		w, ok := windowOf(r.Tag)
		if !ok {
			continue
		}
		ct := classes[r.Class]
		if ct == nil {
			ct = &ClassTrend{}
			classes[r.Class] = ct
		}
		if !r.OK() {
			ct.Errors++
			if strings.HasPrefix(r.Err, "timeout") {
				ct.Timeouts++
			}
			continue
		}
		maxW = max(maxW, w)
		k := key{r.Class, w}
		ttft[k] = append(ttft[k], ms(r.TTFT))
		if t, ok := r.TPOT(); ok {
			tpot[k] = append(tpot[k], ms(t))
		}
		xs, ys = append(xs, float64(w)), append(ys, ms(r.TTFT))
	}
	d := Degradation{Classes: map[string]ClassTrend{}, SlopeMsPerStep: Slope(xs, ys)}
	var firstAll, lastAll []float64
	for name, ct := range classes {
		for w := 1; w <= maxW; w++ {
			ct.WindowsTTFT = append(ct.WindowsTTFT, median(ttft[key{name, w}]))
		}
		ct.TTFTFirstMs, ct.TTFTLastMs = median(ttft[key{name, 1}]), median(ttft[key{name, maxW}])
		ct.TPOTFirstMs, ct.TPOTLastMs = median(tpot[key{name, 1}]), median(tpot[key{name, maxW}])
		ct.TTFTRatio, ct.TPOTRatio = ct.TTFTLastMs/ct.TTFTFirstMs, ct.TPOTLastMs/ct.TPOTFirstMs
		d.Classes[name] = *ct
		firstAll = append(firstAll, ttft[key{name, 1}]...)
		lastAll = append(lastAll, ttft[key{name, maxW}]...)
	}
	d.FirstMs, d.LastMs = median(firstAll), median(lastAll)
	d.Ratio = d.LastMs / d.FirstMs
	return d
}

// Goodput counts requests meeting every SLO bound, per second of wall time.
func Goodput(rs []Result, slo SLO, wallSeconds float64) float64 {
	if wallSeconds <= 0 {
		return 0
	}
	good := 0
	for _, r := range measured(rs) {
		if slo.Meets(r) {
			good++
		}
	}
	return float64(good) / wallSeconds
}

// Attainment is the share of measured requests that met every SLO bound
// (a failed request does not).
func Attainment(rs []Result, slo SLO) float64 {
	m := measured(rs)
	if len(m) == 0 {
		return 0
	}
	good := 0
	for _, r := range m {
		if slo.Meets(r) {
			good++
		}
	}
	return float64(good) / float64(len(m))
}

// LoadLevel is one concurrency level or arrival rate. For a rate, the
// achieved request rate (Common.RequestThroughput) may be below the one
// asked for when the server falls behind; Attainment says how many
// requests met the SLOs.
type LoadLevel struct {
	Mode        string  `json:"mode"` // closed or poisson
	Concurrency int     `json:"concurrency,omitempty"`
	Rate        float64 `json:"rate_rps,omitempty"` // asked for
	Common
	Goodput    float64 `json:"goodput_rps"`
	Attainment float64 `json:"slo_attainment"`
}

// SummarizeLoad recomputes the load levels from a load scenario's raw
// results: one level per tag (concurrency-N, rate-R), in the order the
// levels ran. Pure.
func SummarizeLoad(rs []Result, slo SLO) []LoadLevel {
	var order []string
	byTag := map[string][]Result{}
	for _, r := range rs {
		if _, ok := byTag[r.Tag]; !ok {
			order = append(order, r.Tag)
		}
		byTag[r.Tag] = append(byTag[r.Tag], r)
	}
	var out []LoadLevel
	for _, tag := range order {
		level := byTag[tag]
		l := LoadLevel{Mode: level[0].Class, Common: SummarizeCommon(level)}
		if n, ok := strings.CutPrefix(tag, "concurrency-"); ok {
			l.Concurrency, _ = strconv.Atoi(n)
		} else if v, ok := strings.CutPrefix(tag, "rate-"); ok {
			l.Rate, _ = strconv.ParseFloat(v, 64)
		}
		l.Goodput = Goodput(level, slo, l.WallSeconds)
		l.Attainment = Attainment(level, slo)
		out = append(out, l)
	}
	return out
}

// SweepResult is the rate sweep's outcome, recomputed from its samples.
type SweepResult struct {
	SLO        SLO         `json:"slo"`
	Attainment float64     `json:"attainment"`   // the share of requests that must meet it
	Capacity   LoadLevel   `json:"capacity"`     // the closed-loop probe
	Rates      []LoadLevel `json:"rates"`        // the rates tried, in order
	MaxRate    float64     `json:"max_rate_rps"` // the highest rate that met the SLOs; 0: none did
	Goodput    float64     `json:"goodput_rps"`  // at MaxRate
}

// SummarizeSweep recomputes a sweep from its raw results (tags
// sweep-capacity-N and rate-R). Pure.
func SummarizeSweep(rs []Result, slo SLO, attainment float64) *SweepResult {
	out := &SweepResult{SLO: slo, Attainment: attainment}
	for _, l := range SummarizeLoad(rs, slo) {
		if l.Mode == "closed" {
			out.Capacity = l
			continue
		}
		out.Rates = append(out.Rates, l)
		if l.Attainment >= attainment && l.Rate > out.MaxRate {
			out.MaxRate, out.Goodput = l.Rate, l.Goodput
		}
	}
	return out
}

// Saturation returns the last closed-loop concurrency before latency
// breaks: the next level buys less than 25% more output throughput (an
// unsaturated server gains far more when the load doubles) while median
// TTFT grows by half or more. 0 when the sweep never saturates.
func Saturation(levels []LoadLevel) int {
	var prev *LoadLevel
	for i := range levels {
		l := &levels[i]
		if l.Mode != "closed" {
			continue
		}
		if prev != nil && l.OutputThroughput < prev.OutputThroughput*1.25 && l.TTFT.P50 > prev.TTFT.P50*1.5 {
			return prev.Concurrency
		}
		prev = l
	}
	return 0
}

// TaskOutcome is one reasoning task's quality.
type TaskOutcome struct {
	Task            string `json:"task"`
	Passed          bool   `json:"passed"`
	Reason          string `json:"reason"`
	FinishReason    string `json:"finish_reason"`
	ReasoningTokens int    `json:"reasoning_tokens"` // reasoning chunks (one token each from vLLM)
	ContentTokens   int    `json:"content_tokens"`   // output tokens minus reasoning
}

// Quality is the share of tasks that passed their checks.
type Quality struct {
	Score float64       `json:"score"`
	Tasks []TaskOutcome `json:"tasks"`
}

var numberedLine = func(n int) string { return fmt.Sprintf(`(?m)^\s*(?:\*\*)?%d[.)]`, n) }

// CheckContent applies a check to the final content only.
func CheckContent(c Check, content string) (bool, string) {
	switch c.Kind {
	case "numbered_items":
		for i := 1; i <= c.Count; i++ {
			if !regexpMatch(numberedLine(i), content) {
				return false, fmt.Sprintf("item %d of %d missing from the answer", i, c.Count)
			}
		}
		return true, fmt.Sprintf("%d numbered items", c.Count)
	case "contains_number":
		if regexpMatch(`(^|[^\d.])`+c.Number+`($|[^\d])`, content) {
			return true, "answer " + c.Number + " found"
		}
		return false, fmt.Sprintf("expected answer %s not in the final content", c.Number)
	}
	return false, fmt.Sprintf("unknown check kind %q", c.Kind)
}

// Outcome scores one reasoning result: an answer cut by max_tokens scores 0
// whatever it contains.
func Outcome(task ReasoningTask, r Result) TaskOutcome {
	o := TaskOutcome{Task: task.Name, FinishReason: r.FinishReason, ReasoningTokens: r.Reasoning}
	o.ContentTokens = max(0, r.OutputTokens-r.Reasoning)
	switch {
	case !r.OK():
		o.Reason = "request failed: " + r.Err
	case r.FinishReason == "length":
		where := "in the answer"
		if r.Content == "" {
			where = "inside the reasoning, before any answer"
		}
		o.Reason = fmt.Sprintf("truncated: max_tokens (%d) reached %s", task.MaxTokens, where)
	default:
		o.Passed, o.Reason = CheckContent(task.Check, r.Content)
	}
	return o
}

package benchmark

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Config defines every scenario as data. Defaults() covers the user's old
// suite (KV cache, 15-turn conversations, reasoning, tool calling,
// stability) plus a load sweep.
type Config struct {
	KVCache   KVCacheConfig   `json:"kv_cache"`
	LongConv  LongConvConfig  `json:"long_conversation"`
	Reasoning ReasoningConfig `json:"reasoning"`
	Tools     ToolsConfig     `json:"tool_calling"`
	Stability StabilityConfig `json:"stability"`
	Load      LoadConfig      `json:"load"`
	Sweep     SweepConfig     `json:"sweep"`
}

// KVCacheConfig: warm-up, then pairs of (miss, hit) requests sharing a long
// prefix that a nonce makes unique per pair.
type KVCacheConfig struct {
	Warmup      int      `json:"warmup"`
	Pairs       int      `json:"pairs"`
	PrefixWords int      `json:"prefix_words"`
	Questions   []string `json:"questions"` // miss uses [i], hit uses [i+1] (mod len)
	MaxTokens   int      `json:"max_tokens"`
}

// LongConvConfig: conversations of len(Turns) user turns, replies appended.
type LongConvConfig struct {
	Conversations int      `json:"conversations"`
	Turns         []string `json:"turns"`
	MaxTokens     int      `json:"max_tokens"`
}

// Check is a quality check on the final content (never on the reasoning).
type Check struct {
	Kind   string `json:"kind"`   // numbered_items, contains_number
	Count  int    `json:"count"`  // numbered_items: how many (1..Count)
	Number string `json:"number"` // contains_number: the expected answer
}

// ReasoningTask is one reasoning prompt and its check.
type ReasoningTask struct {
	Name      string `json:"name"`
	Prompt    string `json:"prompt"`
	MaxTokens int    `json:"max_tokens"`
	Check     Check  `json:"check"`
}

// ReasoningConfig lists the tasks; each runs Repetitions times.
type ReasoningConfig struct {
	Tasks       []ReasoningTask `json:"tasks"`
	Repetitions int             `json:"repetitions"`
}

// ToolsConfig: the tool-calling cases (see tools.go), each run Repetitions times.
type ToolsConfig struct {
	Repetitions int `json:"repetitions"`
	MaxSteps    int `json:"max_steps"`
	MaxTokens   int `json:"max_tokens"`
	// Language of the cases' prompts: "en" (default) or "fr" (the user's
	// own language: the model must call the tools from French requests).
	Language string `json:"language,omitempty"`
}

// Check refuses a language the built-in cases are not written in.
func (c ToolsConfig) Check() error {
	_, err := ToolCasesIn(c.Language)
	return err
}

// RequestClass is one kind of request in a mix.
type RequestClass struct {
	Name      string `json:"name"`
	Prompt    string `json:"prompt"`
	MaxTokens int    `json:"max_tokens"`
}

// StabilityConfig: Windows windows, each holding the same interleaved mix
// of every class PerWindow times, so windows compare like for like.
type StabilityConfig struct {
	Classes     []RequestClass `json:"classes"`
	Windows     int            `json:"windows"`
	PerWindow   int            `json:"per_window"` // requests of each class per window
	Concurrency int            `json:"concurrency"`
}

// SLO defines goodput: a request counts when it meets every set bound.
type SLO struct {
	TTFTMs float64 `json:"ttft_ms,omitempty" yaml:"ttft_ms"`
	TPOTMs float64 `json:"tpot_ms,omitempty" yaml:"tpot_ms"`
	E2ELMs float64 `json:"e2el_ms,omitempty" yaml:"e2el_ms"`
}

func (s SLO) String() string {
	var parts []string
	for _, b := range []struct {
		name string
		v    float64
	}{{"TTFT", s.TTFTMs}, {"TPOT", s.TPOTMs}, {"E2EL", s.E2ELMs}} {
		if b.v > 0 {
			parts = append(parts, fmt.Sprintf("%s <= %g ms", b.name, b.v))
		}
	}
	if len(parts) == 0 {
		return "no SLO"
	}
	return strings.Join(parts, ", ")
}

// Meets reports whether a request completed within every set bound.
func (s SLO) Meets(r Result) bool {
	if !r.OK() || r.Chunks == 0 {
		return false
	}
	if s.TTFTMs > 0 && ms(r.TTFT) > s.TTFTMs {
		return false
	}
	if t, ok := r.TPOT(); s.TPOTMs > 0 && ok && ms(t) > s.TPOTMs {
		return false
	}
	return s.E2ELMs <= 0 || ms(r.E2EL) <= s.E2ELMs
}

// LoadConfig: closed-loop concurrency levels, then open-loop Poisson rates.
type LoadConfig struct {
	Concurrency      []int        `json:"concurrency"`
	RequestsPerLevel int          `json:"requests_per_level"` // at least 2 x concurrency are sent
	Rates            []float64    `json:"rates"`              // requests per second (Poisson arrivals)
	RequestsPerRate  int          `json:"requests_per_rate"`
	Request          RequestClass `json:"request"`  // the built-in workload's request
	Workload         Workload     `json:"workload"` // what the load and sweep scenarios send
	SLO              SLO          `json:"slo"`      // goodput's bounds, and the sweep's
	Seed             uint64       `json:"seed"`     // Poisson arrivals
}

// SweepConfig: the highest Poisson request rate at which the server still
// meets the SLOs (Load.SLO), with Load.Workload's requests. A closed-loop
// probe at Concurrency measures the capacity; then rates are bisected
// between MinRate and it.
type SweepConfig struct {
	Concurrency int     `json:"concurrency" yaml:"concurrency"` // the capacity probe's concurrency
	Requests    int     `json:"requests" yaml:"requests"`       // requests per rate tried (and in the probe)
	Steps       int     `json:"steps" yaml:"steps"`             // bisection steps after the capacity is tried
	Attainment  float64 `json:"attainment" yaml:"attainment"`   // share of requests that must meet every SLO bound
	MinRate     float64 `json:"min_rate" yaml:"min_rate"`       // req/s: the lowest rate tried
}

// Check says what is wrong with a sweep configuration.
func (c SweepConfig) Check() error {
	switch {
	case c.Concurrency < 1, c.Requests < 1, c.Steps < 0:
		return fmt.Errorf("sweep: concurrency and requests must be at least 1, steps at least 0")
	case c.Attainment <= 0 || c.Attainment > 1:
		return fmt.Errorf("sweep.attainment %g: want a share in (0, 1], e.g. 0.95", c.Attainment)
	case c.MinRate <= 0:
		return fmt.Errorf("sweep.min_rate %g: want a positive rate in requests/s", c.MinRate)
	}
	return nil
}

// Defaults returns the built-in suite.
func Defaults() Config {
	return Config{
		KVCache: KVCacheConfig{Warmup: 2, Pairs: 8, PrefixWords: 1500, MaxTokens: 16, Questions: []string{
			"Summarise the incident timeline above in two sentences.",
			"Which service failed first according to the report above?",
			"List the three actions the team decided on.",
			"What was the measured impact on users?",
		}},
		LongConv: LongConvConfig{Conversations: 3, MaxTokens: 96, Turns: []string{
			"I am planning to migrate a small web application from a single VM to containers. Where should I start?",
			"The app is a Python API with a PostgreSQL database and a Redis cache. How would you split it into containers?",
			"How should I handle database migrations during deployments?",
			"What is a sensible way to manage secrets such as the database password?",
			"How do I make the API container wait until PostgreSQL is really ready?",
			"Which health checks would you define for each container?",
			"How should logs be collected from all three containers?",
			"What backup strategy do you suggest for the database volume?",
			"How can I test the whole stack locally before deploying?",
			"What resource limits would you set for each container, and why?",
			"How do I roll back if a new API image misbehaves in production?",
			"How would I add a second API replica behind a load balancer?",
			"Which metrics should I watch in the first week after the migration?",
			"What are the most common mistakes teams make in this kind of migration?",
			"Please summarise the whole plan we discussed as a short checklist.",
		}},
		Reasoning: ReasoningConfig{Repetitions: 1, Tasks: []ReasoningTask{
			{Name: "plan", MaxTokens: 1500, Check: Check{Kind: "numbered_items", Count: 10},
				Prompt: "Write a 10-step plan to move a PostgreSQL database to a new server with less than five minutes of downtime. Number the steps from 1 to 10, one per line."},
			{Name: "logic", MaxTokens: 1000, Check: Check{Kind: "contains_number", Number: "42"},
				Prompt: "A warehouse holds 17 crates. A truck delivers 25 more and none leave. What is 17 + 25, the number of crates now? End with the number."},
			{Name: "optimise", MaxTokens: 1500, Check: Check{Kind: "numbered_items", Count: 5},
				Prompt: "Give 5 concrete optimisations for this Python function, numbered 1 to 5, one per line:\n\ndef total(items):\n    result = 0\n    for i in range(len(items)):\n        if items[i] != None:\n            result = result + items[i]\n    return result"},
		}},
		Tools: ToolsConfig{Repetitions: 1, MaxSteps: 5, MaxTokens: 512},
		Stability: StabilityConfig{Windows: 4, PerWindow: 3, Concurrency: 2, Classes: []RequestClass{
			{Name: "short", MaxTokens: 32, Prompt: "Give one tip for writing clear commit messages."},
			{Name: "long", MaxTokens: 192, Prompt: "Explain how a write-ahead log makes a database crash-safe, with an example of a crash in the middle of a transaction."},
		}},
		Load: LoadConfig{Concurrency: []int{1, 2, 4, 8, 16, 32}, RequestsPerLevel: 16, Rates: []float64{2, 4}, RequestsPerRate: 16, Seed: 1,
			Request:  RequestClass{Name: "load", MaxTokens: 64, Prompt: "Describe the water cycle in a short paragraph."},
			Workload: Workload{Kind: "builtin"},
			SLO:      SLO{TTFTMs: 2000, TPOTMs: 100}},
		Sweep: SweepConfig{Concurrency: 16, Requests: 32, Steps: 5, Attainment: 0.95, MinRate: 0.1},
	}
}

// Scenarios is the list of scenario names, in run order.
var Scenarios = []string{"kv-cache", "long-conversation", "reasoning", "tool-calling", "stability", "load", "sweep"}

// DefaultScenarios run when none is named: every one but the sweep,
// which looks for a limit and takes longer.
var DefaultScenarios = Scenarios[:len(Scenarios)-1]

// CheckNames validates scenario names ("all" expands to every one, the
// sweep included; none named is DefaultScenarios).
func CheckNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return DefaultScenarios, nil
	}
	var out []string
	for _, n := range names {
		if n == "all" {
			return Scenarios, nil
		}
		found := false
		for _, s := range Scenarios {
			found = found || s == n
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q; scenarios: %s", n, strings.Join(Scenarios, ", "))
		}
		out = append(out, n)
	}
	return out, nil
}

// Settings is what a benchmark measured under: the scenarios, in order,
// and every parameter of the suite. Two reports are comparable only when
// their Settings are equal.
type Settings struct {
	Scenarios []string `json:"scenarios"`
	Config    Config   `json:"config"`
}

// Equal reports whether two settings measure the same thing.
func (s Settings) Equal(o Settings) bool { return s.Diff(o) == "" }

// Diff lists, in a few words, the parameters that differ ("load.rates: [2,4]
// vs []"), or "" when there is none. Only the scenarios run count.
func (s Settings) Diff(o Settings) string {
	if a, b := strings.Join(s.Scenarios, ","), strings.Join(o.Scenarios, ","); a != b {
		return fmt.Sprintf("scenarios: [%s] vs [%s]", a, b)
	}
	fa, fb := flatten(s.used()), flatten(o.used())
	var keys []string
	for k := range fa {
		keys = append(keys, k)
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var diffs []string
	for _, k := range keys {
		if fa[k] != fb[k] {
			diffs = append(diffs, fmt.Sprintf("%s: %s vs %s", k, orNone(fa[k]), orNone(fb[k])))
		}
	}
	if len(diffs) > 4 {
		diffs = append(diffs[:4], fmt.Sprintf("and %d more", len(diffs)-4))
	}
	return strings.Join(diffs, "; ")
}

func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

// used keeps the configuration of the scenarios that run, by JSON name.
func (s Settings) used() map[string]any {
	b, _ := json.Marshal(s.Config)
	var all map[string]any
	json.Unmarshal(b, &all)
	section := map[string]string{"kv-cache": "kv_cache", "long-conversation": "long_conversation", "reasoning": "reasoning",
		"tool-calling": "tool_calling", "stability": "stability", "load": "load", "sweep": "sweep"}
	out := map[string]any{}
	for _, n := range s.Scenarios {
		out[n] = all[section[n]]
		if n == "sweep" { // the sweep sends the load scenario's workload, against its SLOs
			out["load"] = all["load"]
		}
	}
	return out
}

// flatten turns nested JSON values into "a.b: value" pairs; lists of
// numbers and strings stay whole ("[2,4]").
func flatten(v map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok {
			for k, x := range m {
				walk(prefix+"."+k, x)
			}
			return
		}
		b, _ := json.Marshal(v)
		out[strings.TrimPrefix(prefix, ".")] = string(b)
	}
	for k, x := range v {
		walk(k, x)
	}
	return out
}

// Describe is the settings in one line, for reports.
func (s Settings) Describe() string {
	c := s.Config
	parts := []string{"scenarios " + strings.Join(s.Scenarios, ", ")}
	for _, n := range s.Scenarios {
		switch n {
		case "kv-cache":
			parts = append(parts, fmt.Sprintf("kv-cache %d warm-up + %d miss/hit pairs of a %d-word prefix", c.KVCache.Warmup, c.KVCache.Pairs, c.KVCache.PrefixWords))
		case "long-conversation":
			parts = append(parts, fmt.Sprintf("long-conversation %d x %d turns", c.LongConv.Conversations, len(c.LongConv.Turns)))
		case "stability":
			parts = append(parts, fmt.Sprintf("stability %d windows x %d per class", c.Stability.Windows, c.Stability.PerWindow))
		case "load":
			rates := "none"
			if len(c.Load.Rates) > 0 {
				rates = fmt.Sprint(c.Load.Rates) + " req/s x " + fmt.Sprint(c.Load.RequestsPerRate)
			}
			parts = append(parts, fmt.Sprintf("load concurrency %v x %d requests, Poisson rates %s, %s", c.Load.Concurrency, c.Load.RequestsPerLevel, rates, c.Load.Workload.Describe()))
		case "sweep":
			parts = append(parts, fmt.Sprintf("sweep for the highest rate where %.0f%% of requests meet %s (%d requests a rate, %s)", 100*c.Sweep.Attainment, c.Load.SLO, c.Sweep.Requests, c.Load.Workload.Describe()))
		}
	}
	return strings.Join(parts, "; ")
}

// Timing is a server's speed in a simple model: a fixed cost per request,
// a prefill cost per prompt token and a decode cost per output token. The
// simulator's defaults describe a 32B model on two RTX 4090s.
type Timing struct {
	BaseMs, PrefillMsPerToken, ITLMs float64
}

// Estimate predicts how long the named scenarios take on a server of this
// timing, before any run has been measured: request counts and token
// budgets from the configuration, concurrency dividing the time. It is a
// rough figure; vgrid prefers the store's history.
func (c Config) Estimate(names []string, t Timing) time.Duration {
	req := func(prompt, out int) float64 {
		return t.BaseMs + float64(prompt)*t.PrefillMsPerToken + float64(out)*t.ITLMs
	}
	words := func(s string) int { return len(strings.Fields(s))*4/3 + 1 }
	ms := 0.0
	for _, n := range names {
		switch n {
		case "kv-cache":
			prompt := c.KVCache.PrefixWords * 4 / 3
			ms += float64(c.KVCache.Warmup+c.KVCache.Pairs)*req(prompt, c.KVCache.MaxTokens) + float64(c.KVCache.Pairs)*req(32, c.KVCache.MaxTokens)
		case "long-conversation":
			for turn := range c.LongConv.Turns {
				ms += float64(c.LongConv.Conversations) * req(turn*(c.LongConv.MaxTokens+40), c.LongConv.MaxTokens)
			}
		case "reasoning":
			for _, task := range c.Reasoning.Tasks {
				ms += float64(max(1, c.Reasoning.Repetitions)) * req(words(task.Prompt), task.MaxTokens)
			}
		case "tool-calling":
			ms += float64(c.Total("tool-calling")) * req(300, c.Tools.MaxTokens/4)
		case "stability":
			for _, cl := range c.Stability.Classes {
				ms += float64(c.Stability.Windows*c.Stability.PerWindow) * req(words(cl.Prompt), cl.MaxTokens) / float64(max(1, c.Stability.Concurrency))
			}
		case "sweep":
			one := req(words(c.Load.Request.Prompt), c.Load.Request.MaxTokens)
			ms += float64(max(c.Sweep.Requests, 2*c.Sweep.Concurrency))*one/float64(max(1, c.Sweep.Concurrency)) + float64((c.Sweep.Steps+1)*c.Sweep.Requests)*one/2
		case "load":
			one := req(words(c.Load.Request.Prompt), c.Load.Request.MaxTokens)
			for _, cc := range c.Load.Concurrency {
				ms += float64(max(c.Load.RequestsPerLevel, 2*cc)) * one / float64(cc)
			}
			for _, rate := range c.Load.Rates {
				ms += float64(c.Load.RequestsPerRate)/rate*1000 + one
			}
		}
	}
	return time.Duration(ms * float64(time.Millisecond))
}

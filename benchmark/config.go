package benchmark

import (
	"fmt"
	"strings"
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
	TTFTMs float64 `json:"ttft_ms,omitempty"`
	TPOTMs float64 `json:"tpot_ms,omitempty"`
	E2ELMs float64 `json:"e2el_ms,omitempty"`
}

// LoadConfig: closed-loop concurrency levels, then open-loop Poisson rates.
type LoadConfig struct {
	Concurrency      []int        `json:"concurrency"`
	RequestsPerLevel int          `json:"requests_per_level"` // at least 2 x concurrency are sent
	Rates            []float64    `json:"rates"`              // requests per second (Poisson arrivals)
	RequestsPerRate  int          `json:"requests_per_rate"`
	Request          RequestClass `json:"request"`
	SLO              SLO          `json:"slo"`
	Seed             uint64       `json:"seed"`
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
			Request: RequestClass{Name: "load", MaxTokens: 64, Prompt: "Describe the water cycle in a short paragraph."},
			SLO:     SLO{TTFTMs: 2000, TPOTMs: 100}},
	}
}

// Scenarios is the list of scenario names, in run order.
var Scenarios = []string{"kv-cache", "long-conversation", "reasoning", "tool-calling", "stability", "load"}

// CheckNames validates scenario names ("all" expands to every one).
func CheckNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return Scenarios, nil
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

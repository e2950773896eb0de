package sim

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves vLLM's OpenAI-compatible API for a booted engine.
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-e.dead:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/models", e.auth(e.models))
	mux.HandleFunc("POST /v1/chat/completions", e.auth(e.chat))
	mux.HandleFunc("POST /v1/completions", e.auth(e.completions))
	return mux
}

// auth enforces --api-key on /v1 routes with vLLM's 401 body.
func (e *Engine) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e.Config.APIKey != "" {
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(e.Config.APIKey)) != 1 {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized"})
				return
			}
		}
		next(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// apiError writes vLLM's error body.
func apiError(w http.ResponseWriter, code int, typ, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
}

func (e *Engine) models(w http.ResponseWriter, _ *http.Request) {
	var data []map[string]any
	for _, n := range e.Config.ServedNames {
		data = append(data, map[string]any{"id": n, "object": "model", "created": time.Now().Unix(), "owned_by": "vllm",
			"root": e.Config.Model, "max_model_len": e.Mem.MaxModelLen})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role      string          `json:"role"`
		Content   json.RawMessage `json:"content"`
		ToolCalls []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"messages"`
	Tools         []toolDef       `json:"tools"`
	ToolChoice    json.RawMessage `json:"tool_choice"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int `json:"max_tokens"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
	// vLLM's extra sampling parameters: generate past the end of the
	// answer, up to max_tokens (ignore_eos) or at least min_tokens.
	IgnoreEOS bool `json:"ignore_eos"`
	MinTokens int  `json:"min_tokens"`
}

// messageText flattens a message content (a string or a list of parts).
func messageText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// templateTokens is what the chat template adds per message and at the end.
const templateTokens = 4

func (e *Engine) chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "BadRequestError", "invalid JSON body: "+err.Error())
		return
	}
	if !e.known(w, req.Model) {
		return
	}
	var prompt []int
	last, task, toolResults := "", "", []string{}
	var called []string
	for _, m := range req.Messages {
		text := messageText(m.Content)
		prompt = append(prompt, Tokenize(m.Role+" "+text)...)
		prompt = append(prompt, make([]int, templateTokens)...)
		switch m.Role {
		case "user":
			last = text
			if task == "" {
				task = text
			}
		case "tool":
			toolResults = append(toolResults, text)
		}
		for _, tc := range m.ToolCalls {
			called = append(called, tc.Function.Name)
		}
	}
	for _, t := range req.Tools {
		b, _ := json.Marshal(t)
		prompt = append(prompt, Tokenize(string(b))...)
	}
	maxTokens := e.Mem.MaxModelLen - len(prompt)
	for _, p := range []*int{req.MaxTokens, req.MaxCompletionTokens} {
		if p != nil {
			maxTokens = *p
		}
	}
	if !e.fits(w, len(prompt), maxTokens) {
		return
	}
	var call *toolCall
	if len(req.Tools) > 0 {
		choice := "auto"
		var named struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if len(req.ToolChoice) > 0 && json.Unmarshal(req.ToolChoice, &choice) != nil {
			choice = "named"
			json.Unmarshal(req.ToolChoice, &named)
		}
		if choice == "auto" && !e.Config.AutoToolChoice {
			apiError(w, http.StatusBadRequest, "BadRequestError", `"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set`)
			return
		}
		switch choice {
		case "none", "auto", "required", "named":
		default:
			apiError(w, http.StatusBadRequest, "BadRequestError", fmt.Sprintf("tool_choice %q: want none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}", choice))
			return
		}
		if choice != "none" {
			tools := req.Tools
			if choice == "named" {
				tools = nil
				for _, t := range req.Tools {
					if t.Function.Name == named.Function.Name {
						tools = append(tools, t)
					}
				}
				if len(tools) == 0 {
					apiError(w, http.StatusBadRequest, "BadRequestError", fmt.Sprintf("tool_choice names %q, which is not in tools", named.Function.Name))
					return
				}
			}
			var err error
			// required and a named function always call; auto decides.
			if call, err = planToolCall(tools, task+" "+last, called, fmt.Sprintf("chatcmpl-tool-%x", time.Now().UnixNano()), choice != "auto"); err != nil {
				apiError(w, http.StatusBadRequest, "BadRequestError", err.Error())
				return
			}
		}
	}
	out := e.generate(last, toolResults, call, maxTokens)
	if call == nil {
		if req.IgnoreEOS {
			out.pad(maxTokens, maxTokens)
		} else if req.MinTokens > 0 {
			out.pad(min(req.MinTokens, maxTokens), maxTokens)
		}
	}
	stream := newStream(w, req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, req.Model, e.Env.Personality)
	cached, err := e.run(r, prompt, out, stream)
	if err != nil {
		return // the client went away
	}
	stream.finish(len(prompt), cached, e.Config.PromptTokensInfo)
}

// known answers vLLM's 404 for a model it does not serve.
func (e *Engine) known(w http.ResponseWriter, model string) bool {
	if e.served(model) {
		return true
	}
	apiError(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("The model `%s` does not exist.", model))
	return false
}

// fits answers vLLM's 400 when prompt + completion exceed max-model-len.
func (e *Engine) fits(w http.ResponseWriter, prompt, maxTokens int) bool {
	if prompt+maxTokens <= e.Mem.MaxModelLen {
		return true
	}
	apiError(w, http.StatusBadRequest, "BadRequestError", fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
		e.Mem.MaxModelLen, prompt+maxTokens, prompt, maxTokens))
	return false
}

func (e *Engine) served(model string) bool {
	for _, n := range e.Config.ServedNames {
		if n == model {
			return true
		}
	}
	return false
}

// output is a planned generation: reasoning, then content or a tool call.
type output struct {
	reasoning, content []string
	call               *toolCall
	finish             string
}

var sumRe = regexp.MustCompile(`(-?\d+)\s*([+*-])\s*(-?\d+)`)

// generate decides the answer deterministically: a tool call when one was
// planned; after tool results, an answer quoting them; arithmetic answered
// correctly; anything else a fixed text. With a reasoning parser the
// thinking comes first in reasoning_content; without one it is inline in
// <think>...</think>. max_tokens cuts the output with finish_reason "length".
func (e *Engine) generate(question string, toolResults []string, call *toolCall, maxTokens int) output {
	answer := "Here is a concise answer based on the information provided, with the key points in order."
	if m := sumRe.FindStringSubmatch(question); m != nil {
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[3])
		res := map[string]int{"+": a + b, "-": a - b, "*": a * b}[m[2]]
		answer = fmt.Sprintf("The answer is %d.", res)
	}
	if len(toolResults) > 0 {
		answer = "Based on the tool results: " + strings.Join(toolResults, "; ")
	}
	thinking := "Let me work through this step by step, checking each part before answering."
	words := func(s string) []string { return strings.SplitAfter(s, " ") }
	o := output{finish: "stop"}
	if e.Config.ReasoningParser != "" {
		o.reasoning = words(thinking)
	} else {
		o.content = words("<think>" + thinking + "</think> ")
	}
	switch {
	case call != nil:
		o.call, o.finish = call, "tool_calls"
	default:
		o.content = append(o.content, words(answer)...)
	}
	if n := o.tokens(); n > maxTokens {
		o.finish = "length"
		cut := maxTokens
		if len(o.reasoning) >= cut {
			o.reasoning, o.content, o.call = o.reasoning[:cut], nil, nil
		} else if cut -= len(o.reasoning); len(o.content) >= cut {
			o.content, o.call = o.content[:cut], nil
		} else {
			o.call = nil
		}
	}
	return o
}

// filler is what a model says when it is asked to go on past its answer.
var filler = strings.SplitAfter("and so on, with more detail on each of the points above, one after the other, until the budget of tokens is spent. ", " ")

// pad extends the answer to n tokens (vLLM's ignore_eos / min_tokens); an
// answer that reaches maxTokens this way finishes with "length".
func (o *output) pad(n, maxTokens int) {
	for i := 0; o.tokens() < n; i++ {
		o.content = append(o.content, filler[i%len(filler)])
	}
	if o.tokens() >= maxTokens {
		o.finish = "length"
	}
}

// argPieces splits tool arguments into the fragments a parser streams.
func argPieces(args string) []string {
	var out []string
	for len(args) > 8 {
		out = append(out, args[:8])
		args = args[8:]
	}
	return append(out, args)
}

func (o output) tokens() int {
	n := len(o.reasoning) + len(o.content)
	if o.call != nil {
		n += 1 + len(argPieces(o.call.Arguments))
	}
	return n
}

// run hands a request to the scheduler and streams its tokens as they come.
func (e *Engine) run(r *http.Request, prompt []int, out output, st *stream) (cached int, err error) {
	q := &seq{ctx: r.Context(), prompt: prompt, finish: out.finish, start: time.Now(), done: make(chan struct{})}
	for _, t := range out.reasoning {
		q.out = append(q.out, tok{"reasoning_content", t})
	}
	for _, t := range out.content {
		q.out = append(q.out, tok{"content", t})
	}
	if out.call != nil {
		st.call = out.call
		q.out = append(q.out, tok{"tool_name", out.call.Name})
		for _, p := range argPieces(out.call.Arguments) {
			q.out = append(q.out, tok{"tool_args", p})
		}
	}
	q.events = make(chan tok, len(q.out))
	e.promptTokens.Add(int64(len(prompt)))
	e.sched.submit(q)
	for {
		select {
		case t := <-q.events:
			if err := st.token(t.kind, t.text); err != nil {
				return 0, err
			}
		case <-q.ctx.Done():
			// The client went away: a stalled scheduler would never
			// finish the sequence (vLLM aborts a disconnected request).
			return 0, q.ctx.Err()
		case <-q.done:
			for len(q.events) > 0 {
				t := <-q.events
				if err := st.token(t.kind, t.text); err != nil {
					return 0, err
				}
			}
			if q.err != nil {
				return 0, q.err
			}
			st.finishReason = q.finish
			return q.cached, nil
		}
	}
}

// registry exposes vLLM's metric names on a registry of the engine's own
// (built once, at boot).
func (e *Engine) registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vllm:cache_config_info", Help: "Information of the LLMEngine CacheConfig"},
		[]string{"block_size", "cache_dtype", "enable_prefix_caching", "gpu_memory_utilization", "num_gpu_blocks"})
	info.WithLabelValues(strconv.Itoa(e.Config.BlockSize), e.Config.KVCacheDtype, pyBool(e.Config.PrefixCaching),
		strconv.FormatFloat(e.Config.GPUUtil, 'f', -1, 64), strconv.Itoa(e.Mem.NumBlocks)).Set(1)
	reg.MustRegister(info)
	cache := func(f func() float64) func() float64 {
		return func() float64 { e.cacheMu.Lock(); defer e.cacheMu.Unlock(); return f() }
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge("vllm:num_requests_running", "Number of requests in model execution batches.", func() float64 { r, _ := e.sched.counts(); return float64(r) })
	gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", func() float64 { _, w := e.sched.counts(); return float64(w) })
	kvUsage := func() float64 {
		e.sched.mu.Lock()
		defer e.sched.mu.Unlock()
		return float64(e.sched.kvTokens()) / float64(max(e.Mem.KVTokens, 1))
	}
	queries := cache(func() float64 { return float64(e.cache.Queries) })
	hits := cache(func() float64 { return float64(e.cache.Hits) })
	// The names of the release played (docs/sim.md): the V1 renames came
	// in 0.10, which exposes both, the old ones marked DEPRECATED.
	if p := e.Env.Personality; p.NewMetrics {
		gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kvUsage)
		counter("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.", queries)
		counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.", hits)
	}
	if p := e.Env.Personality; p.OldMetrics {
		deprecated := ""
		if p.NewMetrics {
			deprecated = " DEPRECATED: Use vllm:kv_cache_usage_perc instead."
		}
		gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage."+deprecated, kvUsage)
		counter("vllm:gpu_prefix_cache_queries_total", "GPU prefix cache queries, in terms of number of queried tokens.", queries)
		counter("vllm:gpu_prefix_cache_hits_total", "GPU prefix cache hits, in terms of number of cached tokens.", hits)
	}
	counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.", func() float64 { return float64(e.promptTokens.Load()) })
	counter("vllm:generation_tokens_total", "Number of generation tokens processed.", func() float64 { return float64(e.generated.Load()) })
	counter("vllm:num_preemptions_total", "Cumulative number of preemption from the engine.", func() float64 { return float64(e.preemptions.Load()) })
	e.ttft = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vllm:time_to_first_token_seconds", Help: "Histogram of time to first token in seconds.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560}})
	reg.MustRegister(e.ttft)
	// Python's Prometheus client, which vLLM uses, exports its process's
	// start time; vgrid tells servers apart by it.
	gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", func() float64 {
		return float64(processStart.UnixNano()) / 1e9
	})
	return reg
}

// processStart is when this process started, as vLLM's process collector reports it.
var processStart = time.Now()

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens *int `json:"max_tokens"`
}

// completions serves /v1/completions: no chat template, no reasoning split.
func (e *Engine) completions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "BadRequestError", "invalid JSON body: "+err.Error())
		return
	}
	if !e.known(w, req.Model) {
		return
	}
	text := messageText(req.Prompt)
	if text == "" {
		var list []string
		json.Unmarshal(req.Prompt, &list)
		text = strings.Join(list, "")
	}
	prompt := Tokenize(text)
	maxTokens := 16 // the OpenAI completions default
	if req.MaxTokens != nil {
		maxTokens = *req.MaxTokens
	}
	if !e.fits(w, len(prompt), maxTokens) {
		return
	}
	out := e.generate(text, nil, nil, maxTokens)
	out.content = append(out.reasoning, out.content...)
	out.reasoning = nil
	st := (&stream{w: w, sse: req.Stream, includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage, model: req.Model,
		id: fmt.Sprintf("cmpl-%x", time.Now().UnixNano()), created: time.Now().Unix(), completion: true}).start()
	cached, err := e.run(r, prompt, out, st)
	if err != nil {
		return
	}
	st.finish(len(prompt), cached, e.Config.PromptTokensInfo)
}

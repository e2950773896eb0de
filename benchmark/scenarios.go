package benchmark

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Report is one benchmark run: every scenario's summary and raw samples.
type Report struct {
	Endpoint  string           `json:"endpoint"`
	Model     string           `json:"model"`
	Started   time.Time        `json:"started"`
	Settings  *Settings        `json:"settings,omitempty"` // what it measured under (absent in reports before vgrid 0.2)
	Scenarios []ScenarioReport `json:"scenarios"`
}

// ScenarioReport is one scenario: common metrics, its specific fields,
// telemetry, and the raw per-request samples everything was computed from.
type ScenarioReport struct {
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Common
	Acceleration    *CI           `json:"acceleration,omitempty"`
	KV              *KVReport     `json:"kv_cache,omitempty"`
	Degradation     *Degradation  `json:"degradation,omitempty"`
	Quality         *Quality      `json:"quality,omitempty"`
	ToolCallSuccess *float64      `json:"tool_call_success,omitempty"`
	Tools           []ToolOutcome `json:"tools,omitempty"`
	Load            []LoadLevel   `json:"load,omitempty"`
	Sweep           *SweepResult  `json:"sweep,omitempty"`
	SaturatesAt     *int          `json:"saturates_at_concurrency,omitempty"`
	GPU             *GPUReport    `json:"gpu,omitempty"`
	Server          *ServerReport `json:"server,omitempty"`
	Notes           []string      `json:"notes,omitempty"`
	Results         []Result      `json:"results"`
}

// Runner runs scenarios against one client.
type Runner struct {
	Client   *Client
	Config   Config
	GPU      GPUSource // nil: no GPU telemetry
	Scrape   time.Duration
	Progress func(scenario string, done, total int)
	// Look, when set, is called after each scenario with the report so
	// far; an error stops the run there (the report so far is returned
	// with it). The orchestrator's early stop uses it.
	Look func(sofar *Report) error
	// Stall, when set, stops a scenario in which requests are under way
	// and none has received anything for this long (StallError): a server
	// whose decoding is wedged while /health answers 200 is not waited
	// on for every request's own timeout.
	Stall time.Duration
}

// StallError stops a run whose server stopped producing tokens; the
// report returned with it holds every result up to that point.
type StallError struct {
	Endpoint, Scenario string
	InFlight           int           // requests under way when it stopped
	Quiet              time.Duration // since anything was received
	Health             string        // what GET /health answered then
}

func (e *StallError) Error() string {
	return fmt.Sprintf("%s sent nothing for %s with %d request(s) under way during %s while GET /health answered %s: decoding stalled; the run stopped there, the results so far are kept",
		e.Endpoint, e.Quiet.Round(time.Second), e.InFlight, e.Scenario, e.Health)
}

// watchStall stops the scenario with a StallError when requests are under
// way and none has received anything for r.Stall; it returns when ctx ends.
func (r *Runner) watchStall(ctx context.Context, stop context.CancelCauseFunc, scenario string) {
	tick := time.NewTicker(min(r.Stall/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, quiet := r.Client.Quiet()
		if n == 0 || quiet < r.Stall {
			continue
		}
		stop(&StallError{Endpoint: r.Client.Endpoint, Scenario: scenario, InFlight: n, Quiet: quiet, Health: r.Client.Health(ctx)})
		return
	}
}

// recorder collects a scenario's results as they complete.
type recorder struct {
	mu       sync.Mutex
	name     string
	results  []Result
	seq      int
	total    int
	progress func(string, int, int)

	// unreachable is called, one at a time, with each request that could
	// not connect and the number of results so far.
	unreachable func(Result, int)
	probing     sync.Mutex
}

func (r *recorder) add(res Result) {
	r.mu.Lock()
	res.Scenario = r.name
	res.Seq = r.seq
	r.seq++
	r.results = append(r.results, res)
	done := len(r.results)
	r.mu.Unlock()
	if r.progress != nil {
		r.progress(r.name, done, r.total)
	}
	if res.Unreachable && r.unreachable != nil {
		r.probing.Lock()
		r.unreachable(res, done)
		r.probing.Unlock()
	}
}

// EndpointDownError stops a run whose server stopped accepting
// connections mid-scenario; the report returned with it holds every
// result up to that point.
type EndpointDownError struct {
	Endpoint, Scenario string
	Requests           int    // results recorded in the scenario, the failed one included
	Observed           string // the failed request's error
}

func (e *EndpointDownError) Error() string {
	return fmt.Sprintf("%s stopped accepting connections during %s after %d requests (%s) and did not answer GET /v1/models either; the run stopped there, the results so far are kept",
		e.Endpoint, e.Scenario, e.Requests, e.Observed)
}

// stopWhenDown returns the recorder's unreachable hook: it asks the server
// for its models, and if that fails too, cancels the scenario with an
// EndpointDownError instead of sending the rest of its requests into a
// closed port. A single refused connection to a live server stays an
// error in the results and nothing more.
func (r *Runner) stopWhenDown(ctx context.Context, stop context.CancelCauseFunc, scenario string) func(Result, int) {
	return func(res Result, n int) {
		if ctx.Err() != nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := r.Client.Models(pctx); err == nil || ctx.Err() != nil {
			return
		}
		stop(&EndpointDownError{Endpoint: r.Client.Endpoint, Scenario: scenario, Requests: n, Observed: res.Err})
	}
}

// Total is the number of requests a scenario will send (for ETA).
func (c Config) Total(name string) int {
	switch name {
	case "kv-cache":
		return c.KVCache.Warmup + 2*c.KVCache.Pairs
	case "long-conversation":
		return c.LongConv.Conversations * len(c.LongConv.Turns)
	case "reasoning":
		return len(c.Reasoning.Tasks) * max(1, c.Reasoning.Repetitions)
	case "tool-calling":
		n := 0
		cases, _ := ToolCasesIn(c.Tools.Language)
		for _, tc := range cases {
			n += len(tc.Expect)
			if len(tc.Expect) > 1 {
				n++ // the final answer after the last tool result
			}
		}
		return n * max(1, c.Tools.Repetitions)
	case "stability":
		return c.Stability.Windows * c.Stability.PerWindow * len(c.Stability.Classes)
	case "load":
		n := 0
		for _, cc := range c.Load.Concurrency {
			n += max(c.Load.RequestsPerLevel, 2*cc)
		}
		return n + len(c.Load.Rates)*c.Load.RequestsPerRate
	case "sweep":
		return max(c.Sweep.Requests, 2*c.Sweep.Concurrency) + (c.Sweep.Steps+1)*c.Sweep.Requests
	}
	return 0
}

// Run runs the named scenarios in order. A run-level problem (endpoint
// down, key rejected, model not served) is an error; failed requests are
// data in the report. Cancelling ctx stops in-flight requests; the partial
// report is returned with the error.
func (r *Runner) Run(ctx context.Context, names []string) (*Report, error) {
	names, err := CheckNames(names)
	if err != nil {
		return nil, err
	}
	if err := r.Config.Load.Workload.prepare(); err != nil {
		return nil, err
	}
	if err := r.Client.Check(ctx); err != nil {
		return nil, err
	}
	rep := &Report{Endpoint: r.Client.Endpoint, Model: r.Client.Model, Started: time.Now(), Settings: &Settings{Scenarios: names, Config: r.Config}}
	for _, name := range names {
		sr, err := r.scenario(ctx, name)
		if sr != nil {
			rep.Scenarios = append(rep.Scenarios, *sr)
		}
		if err != nil {
			return rep, err
		}
		if r.Look != nil {
			if err := r.Look(rep); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

func (r *Runner) scenario(parent context.Context, name string) (*ScenarioReport, error) {
	ctx, stop := context.WithCancelCause(parent)
	defer stop(nil)
	rec := &recorder{name: name, total: r.Config.Total(name), progress: r.Progress}
	rec.unreachable = r.stopWhenDown(ctx, stop, name)
	if r.Stall > 0 {
		watched := make(chan struct{})
		go func() { defer close(watched); r.watchStall(ctx, stop, name) }()
		defer func() { stop(nil); <-watched }()
	}
	sr := &ScenarioReport{Name: name, Started: time.Now()}
	tel := startTelemetry(ctx, r.Client, r.GPU, r.Scrape)
	before := tel.server.snapshot(ctx)
	if name != "load" && name != "sweep" { // those open each level's own
		r.Client.Preopen(ctx, 2)
	}
	var err error
	switch name {
	case "kv-cache":
		err = r.kvCache(ctx, rec)
	case "long-conversation":
		err = r.longConversation(ctx, rec)
	case "reasoning":
		err = r.reasoning(ctx, rec, sr)
	case "tool-calling":
		err = r.toolCalling(ctx, rec, sr)
	case "stability":
		err = r.stability(ctx, rec)
	case "load":
		err = r.load(ctx, rec, sr)
	case "sweep":
		err = r.sweep(ctx, rec, sr)
	}
	// The closing scrape outlives a stopped scenario, within bounds: a
	// server that stopped answering must not hold the run.
	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	after := tel.server.snapshot(actx)
	acancel()
	sr.GPU, sr.Server = tel.stop(before, after)
	sr.Results = rec.results
	sr.Common = SummarizeCommon(rec.results)
	if n := sr.Common.ConnectionsOpened; n > 0 {
		sr.Notes = append(sr.Notes, fmt.Sprintf("%d request(s) had to open a connection inside the measured window (connect p50 %.2f ms, max %.2f ms): recorded apart, not in TTFT",
			n, sr.Common.Connect.P50, sr.Common.Connect.Max))
	}
	switch name {
	case "kv-cache":
		kv, acc := SummarizeKV(rec.results)
		sr.KV, sr.Acceleration = &kv, &acc
		if sr.Server != nil && sr.Server.PrefixHitRate != nil {
			kv.PrefixHitRate = sr.Server.PrefixHitRate
		}
		if sr.Server != nil && sr.Server.PrefixCaching != nil {
			kv.PrefixCaching = sr.Server.PrefixCaching
			if !*kv.PrefixCaching {
				kv.ExpectedNoGain = true
				sr.Notes = append(sr.Notes, "the server reports prefix caching disabled (vllm:cache_config_info): an acceleration of ~1 is expected")
			}
		}
		if kv.CachedOnHit == nil {
			sr.Notes = append(sr.Notes, "the server does not report cached_tokens (vLLM needs --enable-prompt-tokens-details)")
		}
	case "long-conversation":
		d := SummarizeConversation(rec.results)
		sr.Degradation = &d
	case "stability":
		d := SummarizeStability(rec.results)
		sr.Degradation = &d
	}
	var down *EndpointDownError
	if errors.As(context.Cause(ctx), &down) && parent.Err() == nil {
		sr.Notes = append(sr.Notes, down.Error())
		return sr, down
	}
	var stalled *StallError
	if errors.As(context.Cause(ctx), &stalled) && parent.Err() == nil {
		sr.Notes = append(sr.Notes, stalled.Error())
		return sr, stalled
	}
	return sr, err
}

// document builds a long, deterministic incident report of about n words.
func document(n int) string {
	parts := []string{"The storage service began returning errors at", "Operators observed rising latency on", "The on-call engineer restarted",
		"Traffic was shifted away from", "Metrics showed the queue depth of", "A configuration change was rolled back on", "Users reported failed uploads through"}
	services := []string{"the API gateway", "the metadata database", "the object store", "the cache tier", "the job scheduler"}
	var b strings.Builder
	for i := 0; b.Len()/6 < n; i++ {
		fmt.Fprintf(&b, "%s %s at step %d, minute %d. ", parts[i%len(parts)], services[(i*3)%len(services)], i, 7*i%60)
	}
	return b.String()
}

func (r *Runner) kvCache(ctx context.Context, rec *recorder) error {
	c := r.Config.KVCache
	doc := document(c.PrefixWords)
	qs := c.Questions
	if len(qs) == 0 {
		qs = []string{"Summarise the report above."}
	}
	for i := 0; i < c.Warmup; i++ {
		res := r.Client.Chat(ctx, Request{Messages: []Message{{Role: "user", Content: fmt.Sprintf("Warm-up %d: say hello.", i)}}, MaxTokens: c.MaxTokens})
		res.Warmup, res.Tag = true, "warmup"
		rec.add(res)
	}
	nonce := rand.Uint64()
	for i := 0; i < c.Pairs && ctx.Err() == nil; i++ {
		// The nonce comes first, so no earlier request shares any prefix
		// block with this pair's miss; the hit repeats the miss's prefix.
		system := fmt.Sprintf("Session %x-%d. Read this incident report.\n\n%s", nonce, i, doc)
		for j, tag := range []string{"miss", "hit"} {
			res := r.Client.Chat(ctx, Request{MaxTokens: c.MaxTokens, Messages: []Message{
				{Role: "system", Content: system}, {Role: "user", Content: qs[(2*i+j)%len(qs)]}}})
			res.Tag = tag
			rec.add(res)
		}
	}
	return ctx.Err()
}

func (r *Runner) longConversation(ctx context.Context, rec *recorder) error {
	c := r.Config.LongConv
	for conv := 1; conv <= c.Conversations && ctx.Err() == nil; conv++ {
		msgs := []Message{{Role: "system", Content: fmt.Sprintf("You are a helpful infrastructure engineer. Conversation %d.", conv)}}
		for t, prompt := range c.Turns {
			msgs = append(msgs, Message{Role: "user", Content: prompt})
			res := r.Client.Chat(ctx, Request{Messages: msgs, MaxTokens: c.MaxTokens})
			res.Tag, res.Class = fmt.Sprintf("turn-%d", t+1), fmt.Sprintf("conversation-%d", conv)
			rec.add(res)
			reply := res.Content
			if reply == "" {
				reply = "(no answer)"
			}
			msgs = append(msgs, Message{Role: "assistant", Content: reply})
			if ctx.Err() != nil {
				break
			}
		}
	}
	return ctx.Err()
}

func (r *Runner) reasoning(ctx context.Context, rec *recorder, sr *ScenarioReport) error {
	c := r.Config.Reasoning
	q := &Quality{}
	passed := 0
	for rep := 0; rep < max(1, c.Repetitions) && ctx.Err() == nil; rep++ {
		for _, task := range c.Tasks {
			res := r.Client.Chat(ctx, Request{Messages: []Message{{Role: "user", Content: task.Prompt}}, MaxTokens: task.MaxTokens})
			res.Tag = task.Name
			rec.add(res)
			o := Outcome(task, res)
			if o.Passed {
				passed++
			}
			q.Tasks = append(q.Tasks, o)
		}
	}
	if len(q.Tasks) > 0 {
		q.Score = float64(passed) / float64(len(q.Tasks))
	}
	sr.Quality = q
	return ctx.Err()
}

func (r *Runner) toolCalling(ctx context.Context, rec *recorder, sr *ScenarioReport) error {
	c := r.Config.Tools
	passed, total := 0, 0
	cases, err := ToolCasesIn(c.Language)
	if err != nil {
		return err
	}
	for rep := 0; rep < max(1, c.Repetitions) && ctx.Err() == nil; rep++ {
		for _, tc := range cases {
			o := r.toolCase(ctx, rec, tc)
			total++
			if o.Passed {
				passed++
			}
			sr.Tools = append(sr.Tools, o)
		}
	}
	if total > 0 {
		rate := float64(passed) / float64(total)
		sr.ToolCallSuccess = &rate
	}
	return ctx.Err()
}

// toolCase runs one case: the model calls tools, vgrid executes each call
// with its fake implementation and sends the result back, until the model
// answers in text or MaxSteps is reached. Every call is checked.
func (r *Runner) toolCase(ctx context.Context, rec *recorder, tc ToolCase) ToolOutcome {
	o := ToolOutcome{Case: tc.Name}
	defs := make([]json.RawMessage, 0, len(tc.Tools))
	for _, t := range tc.Tools {
		defs = append(defs, t.def())
	}
	msgs := []Message{{Role: "user", Content: tc.Prompt}}
	maxSteps := max(r.Config.Tools.MaxSteps, len(tc.Expect)+1)
	next := 0
	for o.Steps < maxSteps {
		o.Steps++
		res := r.Client.Chat(ctx, Request{Messages: msgs, Tools: defs, ToolChoice: "auto", MaxTokens: r.Config.Tools.MaxTokens})
		res.Tag, res.Class = fmt.Sprintf("step-%d", o.Steps), tc.Name
		rec.add(res)
		if !res.OK() {
			o.Reason = "request failed: " + res.Err
			return o
		}
		if len(res.ToolCalls) == 0 {
			if next < len(tc.Expect) {
				o.Reason = fmt.Sprintf("answered in text after %d of %d expected calls (next: %s)", next, len(tc.Expect), tc.Expect[next].Function)
				return o
			}
			if strings.TrimSpace(res.Content) == "" {
				o.Reason = "no final answer after the tool results"
				return o
			}
			o.Passed, o.Reason = true, fmt.Sprintf("%d call(s) validated, final answer given", len(tc.Expect))
			return o
		}
		msgs = append(msgs, Message{Role: "assistant", ToolCalls: res.ToolCalls})
		for _, call := range res.ToolCalls {
			o.Calls = append(o.Calls, call.Function.Name)
			if next >= len(tc.Expect) {
				o.Reason = fmt.Sprintf("unexpected extra call %s", call.Function.Name)
				return o
			}
			args, err := CheckCall(tc.Tools, tc.Expect[next], call)
			if err != nil {
				o.Reason = err.Error()
				return o
			}
			next++
			var result string
			for _, t := range tc.Tools {
				if t.Name == call.Function.Name {
					result = t.Result(args)
				}
			}
			msgs = append(msgs, Message{Role: "tool", ToolCallID: call.ID, Content: result})
		}
		if len(tc.Expect) == 1 && next == 1 {
			// A single-call case passes once the call is right; the model's
			// answer to the tool result is not part of it.
			o.Passed, o.Reason = true, "call validated"
			return o
		}
	}
	o.Reason = fmt.Sprintf("no final answer after %d steps", maxSteps)
	return o
}

// stability interleaves the classes so that every window holds the same
// mix: window w sends class A, B, A, B... PerWindow times.
func (r *Runner) stability(ctx context.Context, rec *recorder) error {
	c := r.Config.Stability
	type job struct {
		class  RequestClass
		window int
	}
	var jobs []job
	for w := 1; w <= c.Windows; w++ {
		for i := 0; i < c.PerWindow; i++ {
			for _, cl := range c.Classes {
				jobs = append(jobs, job{cl, w})
			}
		}
	}
	return r.pool(ctx, max(1, c.Concurrency), len(jobs), func(i int) {
		j := jobs[i]
		res := r.Client.Chat(ctx, Request{Messages: []Message{{Role: "user", Content: j.class.Prompt}}, MaxTokens: j.class.MaxTokens})
		res.Tag, res.Class = fmt.Sprintf("window-%d", j.window), j.class.Name
		rec.add(res)
	})
}

// pool runs n jobs in order with at most workers at a time (closed loop).
func (r *Runner) pool(ctx context.Context, workers, n int, job func(i int)) error {
	return r.warmPool(ctx, workers, n, nil, job)
}

// warmPool is pool with a warm-up: each worker calls warm, and no job
// starts before every worker has.
func (r *Runner) warmPool(ctx context.Context, workers, n int, warm func(), job func(i int)) error {
	var wg, ready sync.WaitGroup
	next := make(chan int)
	ready.Add(workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if warm != nil {
				warm()
			}
			ready.Done()
			ready.Wait()
			for i := range next {
				job(i)
			}
		}()
	}
	ready.Wait()
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			close(next)
			wg.Wait()
			return ctx.Err()
		}
	}
	close(next)
	wg.Wait()
	return ctx.Err()
}

// PoissonSchedule returns n arrival offsets for rate requests per second:
// exponential gaps from a seeded source, so a schedule can be replayed. Pure.
func PoissonSchedule(rate float64, n int, seed uint64) []time.Duration {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]time.Duration, n)
	var t float64
	for i := range out {
		out[i] = time.Duration(t * float64(time.Second))
		t += rng.ExpFloat64() / rate
	}
	return out
}

// items draws n requests from the load workload, in order.
func (r *Runner) items(n int) ([]Item, error) {
	c := r.Config.Load
	w := c.Workload
	return w.Items(n, Request{Messages: []Message{{Role: "user", Content: c.Request.Prompt}}, MaxTokens: c.Request.MaxTokens})
}

// closedLevel sends n requests at concurrency cc, tagged concurrency-cc.
func (r *Runner) closedLevel(ctx context.Context, rec *recorder, cc int, items []Item) ([]Result, error) {
	// Each worker opens its connection before the window (a failure shows in
	// the requests).
	workers := min(cc, len(items))
	o := r.Client.NewOpener(ctx, workers)
	defer o.Done()
	var mu sync.Mutex
	var level []Result
	err := r.warmPool(ctx, workers, len(items), func() { o.Open() }, func(i int) {
		res := r.Client.Chat(ctx, items[i].Request)
		res.Tag, res.Class = fmt.Sprintf("concurrency-%d", cc), "closed"
		rec.add(res)
		mu.Lock()
		level = append(level, res)
		mu.Unlock()
	})
	return level, err
}

// poissonLevel sends the items with Poisson arrivals at rate, tagged rate-R.
func (r *Runner) poissonLevel(ctx context.Context, rec *recorder, rate float64, items []Item) ([]Result, error) {
	sched := PoissonSchedule(rate, len(items), r.Config.Load.Seed)
	// Requests in flight at once are not known ahead: enough for a burst.
	r.Client.Preopen(ctx, min(len(items), 64))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var level []Result
	start := time.Now()
	for i, at := range sched {
		if err := sleepCtx(ctx, time.Until(start.Add(at))); err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := r.Client.Chat(ctx, items[i].Request)
			res.Tag, res.Class = "rate-"+strconv.FormatFloat(rate, 'g', 6, 64), "poisson"
			rec.add(res)
			mu.Lock()
			level = append(level, res)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return level, ctx.Err()
}

func (r *Runner) load(ctx context.Context, rec *recorder, sr *ScenarioReport) error {
	c := r.Config.Load
	all, err := r.items(r.Config.Total("load"))
	if err != nil {
		return err
	}
	next := func(n int) []Item {
		it := all[:n]
		all = all[n:]
		return it
	}
	defer func() { sr.Load = SummarizeLoad(rec.results, c.SLO) }()
	for _, cc := range c.Concurrency {
		if _, err := r.closedLevel(ctx, rec, cc, next(max(c.RequestsPerLevel, 2*cc))); err != nil {
			return err
		}
	}
	for _, rate := range c.Rates {
		if _, err := r.poissonLevel(ctx, rec, rate, next(c.RequestsPerRate)); err != nil {
			return err
		}
	}
	if s := Saturation(SummarizeLoad(rec.results, c.SLO)); s > 0 {
		sr.SaturatesAt = &s
	}
	return nil
}

// sweep finds the highest Poisson rate meeting the SLOs: a closed-loop
// probe measures the capacity, the capacity itself is tried, then the
// rates between MinRate and it are bisected.
func (r *Runner) sweep(ctx context.Context, rec *recorder, sr *ScenarioReport) error {
	c, slo := r.Config.Sweep, r.Config.Load.SLO
	all, err := r.items(r.Config.Total("sweep"))
	if err != nil {
		return err
	}
	next := func(n int) []Item {
		it := all[:n]
		all = all[n:]
		return it
	}
	defer func() { sr.Sweep = SummarizeSweep(rec.results, slo, c.Attainment) }()
	probe, err := r.closedLevel(ctx, rec, c.Concurrency, next(max(c.Requests, 2*c.Concurrency)))
	if err != nil {
		return err
	}
	capacity := SummarizeCommon(probe).RequestThroughput
	if capacity <= 0 {
		return fmt.Errorf("the capacity probe completed no request: cannot sweep rates")
	}
	meets := func(rate float64) (bool, error) {
		level, err := r.poissonLevel(ctx, rec, rate, next(c.Requests))
		return Attainment(level, slo) >= c.Attainment, err
	}
	lo, hi := c.MinRate, round3(capacity)
	ok, err := meets(hi)
	if err != nil || ok {
		return err
	}
	for step := 0; step < c.Steps; step++ {
		mid := round3((lo + hi) / 2)
		ok, err := meets(mid)
		if err != nil {
			return err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return nil
}

// round3 keeps three significant digits, so rates read well in tags.
func round3(v float64) float64 {
	if v <= 0 {
		return v
	}
	p := math.Pow(10, 2-math.Floor(math.Log10(v)))
	return math.Round(v*p) / p
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

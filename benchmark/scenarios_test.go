package benchmark

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var simBase = []string{"--model", "m", "--max-model-len", "16384", "--gpu-memory-utilization", "0.5", "--enable-prompt-tokens-details"}

func runner(url string, cfg Config) *Runner {
	c := NewClient(url, "m", "VLLM_API_KEY", func(string) string { return "" })
	return &Runner{Client: c, Config: cfg}
}

func small() Config {
	c := Defaults()
	c.KVCache.Pairs = 6
	c.LongConv.Conversations = 2
	c.LongConv.MaxTokens = 24
	c.Stability.Windows, c.Stability.PerWindow = 3, 2
	c.Load.Concurrency = []int{1, 2, 4, 8}
	c.Load.RequestsPerLevel = 8
	c.Load.Rates = []float64{20}
	c.Load.RequestsPerRate = 10
	c.Load.Request.MaxTokens = 16
	return c
}

func TestKVCacheAccelerationOnAndOff(t *testing.T) {
	for _, on := range []bool{true, false} {
		args := simBase
		if !on {
			args = append(append([]string{}, simBase...), "--no-enable-prefix-caching")
		}
		rep, err := runner(startSim(t, args, nil), small()).Run(context.Background(), []string{"kv-cache"})
		if err != nil {
			t.Fatal(err)
		}
		s := rep.Scenarios[0]
		acc := s.Acceleration
		if s.Errors != 0 || s.Requests != 12 {
			t.Fatalf("errors %d requests %d (warm-up must not count)", s.Errors, s.Requests)
		}
		if on {
			if acc.Lo <= 1.5 || s.KV.CachedOnHit == nil || s.KV.CachedOnHit.P50 < 1000 || s.KV.PrefixHitRate == nil || *s.KV.PrefixHitRate < 0.3 {
				t.Errorf("prefix caching on: acceleration %+v, cached %+v, hit rate %v", acc, s.KV.CachedOnHit, s.KV.PrefixHitRate)
			}
		} else {
			// No gain: the point estimate near 1 and the interval far from
			// the >1.5 seen with caching on. Not "the interval contains 1":
			// a 95% interval of 6 pairs misses 1 one run in twenty by
			// design, more often on a loaded machine (it did under Wine).
			if acc.Value < 0.8 || acc.Value > 1.25 || acc.Lo > 1.2 || !s.KV.ExpectedNoGain || len(s.Notes) == 0 || !strings.Contains(s.Notes[0], "disabled") {
				t.Errorf("prefix caching off: acceleration %+v (want ~1: no gain), notes %v", acc, s.Notes)
			}
		}
		if s.GPU == nil || s.GPU.Available {
			t.Errorf("GPU report %+v: want unavailable, said", s.GPU)
		}
	}
}

func TestToolCallingValidated(t *testing.T) {
	url := startSim(t, append(append([]string{}, simBase...), "--enable-auto-tool-choice", "--tool-call-parser", "hermes"), nil)
	rep, err := runner(url, small()).Run(context.Background(), []string{"tool-calling"})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Scenarios[0]
	if s.ToolCallSuccess == nil || *s.ToolCallSuccess != 1 {
		t.Errorf("success %v: %+v", s.ToolCallSuccess, s.Tools)
	}
	for _, o := range s.Tools {
		if o.Case == "multi-step" && strings.Join(o.Calls, ",") != "search_flights,book_hotel,convert_currency" {
			t.Errorf("multi-step calls %v", o.Calls)
		}
	}
	// The same cases asked in French (the user's language): the same calls,
	// with the arguments as the French prompts name them.
	fr := small()
	fr.Tools.Language = "fr"
	rep, err = runner(url, fr).Run(context.Background(), []string{"tool-calling"})
	if err != nil {
		t.Fatal(err)
	}
	s = rep.Scenarios[0]
	if s.ToolCallSuccess == nil || *s.ToolCallSuccess != 1 {
		t.Errorf("French prompts: success %v: %+v", s.ToolCallSuccess, s.Tools)
	}
	if _, err := ToolCasesIn("de"); err == nil {
		t.Error("a language the cases are not written in is accepted")
	}
	// Without --enable-auto-tool-choice the server refuses: every case fails, with the reason.
	url = startSim(t, simBase, nil)
	rep, _ = runner(url, small()).Run(context.Background(), []string{"tool-calling"})
	s = rep.Scenarios[0]
	if *s.ToolCallSuccess != 0 || !strings.Contains(s.Tools[0].Reason, "enable-auto-tool-choice") {
		t.Errorf("without the flags: %v %+v", *s.ToolCallSuccess, s.Tools)
	}
}

func TestCheckCallRejectsWhatIsWrong(t *testing.T) {
	tc := ToolCases()[2] // nested create_user
	call := func(args string) ToolCall {
		var c ToolCall
		c.Function.Name, c.Function.Arguments = "create_user", args
		return c
	}
	good := `{"name":"Alice Martin","email":"alice@example.com","preferences":{"language":"french","newsletter":true}}`
	if _, err := CheckCall(tc.Tools, tc.Expect[0], call(good)); err != nil {
		t.Fatalf("good call: %v", err)
	}
	for args, want := range map[string]string{
		`{"name":"Alice Martin"`: "not JSON",
		`{"name":"Alice Martin","email":"alice@example.com","preferences":{"language":"klingon","newsletter":true}}`: "schema",
		`{"name":"Bob","email":"alice@example.com","preferences":{"language":"french","newsletter":true}}`:           "name = Bob, expected Alice Martin",
		`{"name":"Alice Martin","email":"alice@example.com","preferences":{"language":"french","newsletter":false}}`: "preferences.newsletter = false",
	} {
		if _, err := CheckCall(tc.Tools, tc.Expect[0], call(args)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", args, err, want)
		}
	}
	wrong := call(good)
	wrong.Function.Name = "delete_user"
	if _, err := CheckCall(tc.Tools, tc.Expect[0], wrong); err == nil || !strings.Contains(err.Error(), `called "delete_user"`) {
		t.Errorf("wrong function: %v", err)
	}
}

func TestReasoningQualityAndTruncation(t *testing.T) {
	url := startSim(t, append(append([]string{}, simBase...), "--reasoning-parser", "qwen3"), nil)
	cfg := small()
	rep, err := runner(url, cfg).Run(context.Background(), []string{"reasoning"})
	if err != nil {
		t.Fatal(err)
	}
	q := rep.Scenarios[0].Quality
	byTask := map[string]TaskOutcome{}
	for _, o := range q.Tasks {
		byTask[o.Task] = o
	}
	// The simulator answers arithmetic correctly and nothing else: the logic
	// task passes, the plan fails for a real reason.
	if !byTask["logic"].Passed || byTask["plan"].Passed || !strings.Contains(byTask["plan"].Reason, "item 1 of 10 missing") {
		t.Errorf("outcomes %+v", q.Tasks)
	}
	if byTask["logic"].ReasoningTokens == 0 || byTask["logic"].ContentTokens == 0 {
		t.Errorf("reasoning and content tokens not reported separately: %+v", byTask["logic"])
	}
	// max_tokens inside the reasoning: truncated, scores 0 even though...
	cfg.Reasoning.Tasks = []ReasoningTask{{Name: "logic", Prompt: cfg.Reasoning.Tasks[1].Prompt, MaxTokens: 5, Check: Check{Kind: "contains_number", Number: "42"}}}
	rep, _ = runner(url, cfg).Run(context.Background(), []string{"reasoning"})
	o := rep.Scenarios[0].Quality.Tasks[0]
	if o.Passed || !strings.Contains(o.Reason, "truncated: max_tokens (5) reached inside the reasoning") || rep.Scenarios[0].Quality.Score != 0 {
		t.Errorf("truncated: %+v", o)
	}
}

func TestLongConversationAndStability(t *testing.T) {
	url := startSim(t, simBase, nil)
	rep, err := runner(url, small()).Run(context.Background(), []string{"long-conversation", "stability"})
	if err != nil {
		t.Fatal(err)
	}
	conv, stab := rep.Scenarios[0], rep.Scenarios[1]
	d := conv.Degradation
	if conv.Errors != 0 || len(d.Turns) != 15 || d.Turns[14].PromptTokens <= d.Turns[0].PromptTokens*3 || math.IsNaN(d.SlopeMsPerStep) || d.Ratio <= 0 {
		t.Errorf("conversation: errors %d, %+v", conv.Errors, d)
	}
	if len(stab.Degradation.Classes) != 2 || stab.Errors != 0 {
		t.Fatalf("stability %+v", stab.Degradation)
	}
	for name, c := range stab.Degradation.Classes {
		if len(c.WindowsTTFT) != 3 || c.TTFTRatio <= 0 {
			t.Errorf("class %s: %+v", name, c)
		}
	}
}

func TestLoadFindsSaturation(t *testing.T) {
	// With --max-num-seqs 2, more than 2 concurrent requests only queue.
	url := startSim(t, append(append([]string{}, simBase...), "--max-num-seqs", "2"), map[string]string{"VLLM_SIM_TIME_SCALE": "0.5"})
	rep, err := runner(url, small()).Run(context.Background(), []string{"load"})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Scenarios[0]
	if len(s.Load) != 5 || s.SaturatesAt == nil || *s.SaturatesAt != 2 {
		t.Fatalf("saturation %v, levels %d", s.SaturatesAt, len(s.Load))
	}
	if s.Load[4].Mode != "poisson" || s.Load[4].Requests != 10 || s.Load[0].Goodput <= 0 {
		t.Errorf("levels %+v", s.Load)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("report does not encode: %v", err)
	}
}

func TestPoissonSchedule(t *testing.T) {
	s := PoissonSchedule(10, 2000, 7)
	mean := s[len(s)-1].Seconds() / float64(len(s)-1)
	if s[0] != 0 || math.Abs(mean-0.1) > 0.01 {
		t.Errorf("mean gap %.4fs, want ~0.1s at 10 rps", mean)
	}
	if PoissonSchedule(10, 5, 7)[3] != s[3] {
		t.Error("not reproducible with the same seed")
	}
}

func TestSaturationRule(t *testing.T) {
	lvl := func(c int, tput, ttft float64) LoadLevel {
		return LoadLevel{Mode: "closed", Concurrency: c, Common: Common{OutputThroughput: tput, TTFT: Stats{P50: ttft}}}
	}
	tests := []struct {
		levels []LoadLevel
		want   int
	}{
		{[]LoadLevel{lvl(1, 75, 12), lvl(2, 135, 30), lvl(4, 149, 227), lvl(8, 150, 652)}, 2},
		{[]LoadLevel{lvl(1, 75, 12), lvl(2, 140, 13), lvl(4, 270, 15)}, 0},           // still scaling
		{[]LoadLevel{lvl(1, 75, 12), lvl(2, 80, 14)}, 0},                             // flat but latency fine: no break
		{[]LoadLevel{lvl(1, 75, 12), {Mode: "poisson", Rate: 9}, lvl(2, 76, 40)}, 1}, // open-loop levels ignored
	}
	for i, tt := range tests {
		if got := Saturation(tt.levels); got != tt.want {
			t.Errorf("case %d: saturation %d, want %d", i, got, tt.want)
		}
	}
}

// A server that dies mid-run stops the run with what was observed; the
// results up to then are in the report, and the rest of the load sweep is
// not sent into a closed port.
func TestEndpointDownStopsTheRunKeepingResults(t *testing.T) {
	url := startSim(t, simBase, map[string]string{"VLLM_SIM_DIE_AFTER_REQUESTS": "5"})
	cfg := small()
	rep, err := runner(url, cfg).Run(context.Background(), []string{"load", "stability"})
	var down *EndpointDownError
	if !errors.As(err, &down) {
		t.Fatalf("err %v, want an EndpointDownError", err)
	}
	// A connection made as the listener closes is reset rather than refused.
	if msg := strings.ToLower(err.Error()); down.Scenario != "load" || !strings.Contains(msg, "refused") && !strings.Contains(msg, "reset by peer") || !strings.Contains(err.Error(), "results so far are kept") {
		t.Errorf("error %q: want the scenario and the refused (or reset) connection", err)
	}
	if rep == nil || len(rep.Scenarios) != 1 {
		t.Fatalf("report %+v, want the load scenario only", rep)
	}
	s := rep.Scenarios[0]
	ok, unreachable := 0, 0
	for _, r := range s.Results {
		if r.OK() {
			ok++
		}
		if r.Unreachable {
			unreachable++
		}
	}
	// At most the in-flight requests of the highest level (8) end after
	// the one that stopped the run, as cancelled.
	if ok < 5 || unreachable == 0 || len(s.Results) > down.Requests+8 || len(s.Results) >= cfg.Total("load") {
		t.Errorf("%d results (%d ok, %d unreachable) of %d planned; error after %d", len(s.Results), ok, unreachable, cfg.Total("load"), down.Requests)
	}
	if len(s.Notes) == 0 || !strings.Contains(s.Notes[len(s.Notes)-1], "stopped accepting connections") {
		t.Errorf("notes %q: the scenario should say why it ended", s.Notes)
	}
}

// A server whose decoding wedges while /health answers 200 stops the run
// after Stall, not after every request's own timeout: the error says what
// was seen, and the results up to then are kept.
func TestStallStopsTheRunKeepingResults(t *testing.T) {
	url := startSim(t, simBase, map[string]string{"VLLM_SIM_STALL_AFTER_REQUESTS": "4"})
	cfg := small()
	r := runner(url, cfg)
	r.Stall = 500 * time.Millisecond
	start := time.Now()
	rep, err := r.Run(context.Background(), []string{"stability", "load"})
	var st *StallError
	if !errors.As(err, &st) {
		t.Fatalf("err %v, want a StallError", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the stall was seen after %s", took)
	}
	if st.Scenario != "stability" || st.Health != "200" || st.InFlight == 0 || st.Quiet < r.Stall || !strings.Contains(err.Error(), "decoding stalled") {
		t.Errorf("stall %+v: %v", st, err)
	}
	if rep == nil || len(rep.Scenarios) != 1 {
		t.Fatalf("report %+v, want the stability scenario only", rep)
	}
	ok := 0
	for _, res := range rep.Scenarios[0].Results {
		if res.OK() {
			ok++
		}
	}
	if ok < 4 || len(rep.Scenarios[0].Notes) == 0 {
		t.Errorf("%d ok results (want the 4 before the stall), notes %q", ok, rep.Scenarios[0].Notes)
	}
}

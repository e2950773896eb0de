package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vgrid/vgrid/vllm"
)

type simServer struct {
	url  string
	e    *Engine
	stop func() error
	done chan error // Serve's return, when it returns by itself
}

// startSim boots an engine in-process with env (VLLM_SIM_* overrides) and
// serves it on a loopback port.
func startSim(t *testing.T, args []string, env map[string]string) *simServer {
	t.Helper()
	c, err := vllm.ParseServeArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["VLLM_SIM_TIME_SCALE"]; !ok {
		env["VLLM_SIM_TIME_SCALE"] = "0.1"
	}
	if _, ok := env["VLLM_SIM_BOOT_SLOWDOWN"]; !ok {
		env["VLLM_SIM_BOOT_SLOWDOWN"] = "0" // boots are tested in memory_test and the process tests
	}
	ev, err := EnvFromGetenv(c, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	e, err := Boot(context.Background(), c, ev, &log)
	if err != nil {
		t.Fatalf("boot: %v\n%s", err, log.String())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ln) }()
	s := &simServer{url: "http://" + ln.Addr().String(), e: e, done: done}
	var once sync.Once
	var serveErr error
	s.stop = func() error { once.Do(func() { cancel(); serveErr = <-done }); return serveErr }
	t.Cleanup(func() { s.stop() })
	return s
}

type chunk struct {
	Choices []struct {
		Delta struct {
			Role             string `json:"role"`
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
			Reasoning        string `json:"reasoning"`
			ToolCalls        []struct {
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        int `json:"prompt_tokens"`
		CompletionTokens    int `json:"completion_tokens"`
		PromptTokensDetails *struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
}

type streamed struct {
	status    int
	body      string
	chunks    []chunk
	arrivals  []time.Time // per chunk with a non-empty delta
	sent      time.Time
	done      bool
	reasoning string
	content   string
	finish    string
	toolName  string
	toolArgs  string
}

func (r streamed) ttft() time.Duration { return r.arrivals[0].Sub(r.sent) }

func (r streamed) maxGap() time.Duration {
	var g time.Duration
	for i := 1; i < len(r.arrivals); i++ {
		g = max(g, r.arrivals[i].Sub(r.arrivals[i-1]))
	}
	return g
}

func post(t *testing.T, url, key string, body any) streamed {
	t.Helper()
	return postWatch(t, url, key, body, nil)
}

// postWatch is post with a callback at the first token.
func postWatch(t *testing.T, url, key string, body any, onFirst func()) streamed {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	r := streamed{sent: time.Now()}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		all, _ := io.ReadAll(resp.Body)
		r.body = string(all)
		return r
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		data := strings.TrimPrefix(line, "data: ")
		if data == "[DONE]" {
			r.done = true
			continue
		}
		var c chunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("bad chunk %q: %v", data, err)
		}
		r.chunks = append(r.chunks, c)
		for _, ch := range c.Choices {
			d := ch.Delta
			if d.Content != "" || d.ReasoningContent != "" || d.Reasoning != "" || len(d.ToolCalls) > 0 {
				r.arrivals = append(r.arrivals, time.Now())
				if len(r.arrivals) == 1 && onFirst != nil {
					onFirst()
				}
			}
			r.reasoning += d.Reasoning
			if d.Reasoning == "" {
				r.reasoning += d.ReasoningContent
			}
			r.content += d.Content
			for _, tc := range d.ToolCalls {
				r.toolName += tc.Function.Name
				r.toolArgs += tc.Function.Arguments
			}
			if ch.FinishReason != nil {
				r.finish = *ch.FinishReason
			}
		}
	}
	return r
}

func chatBody(model, prompt string, maxTokens int) map[string]any {
	return map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": prompt}},
		"stream": true, "stream_options": map[string]bool{"include_usage": true}, "max_tokens": maxTokens}
}

var smallArgs = []string{"--model", "m", "--max-model-len", "8192", "--gpu-memory-utilization", "0.5"}

func TestStreamingWireFormat(t *testing.T) {
	s := startSim(t, append(smallArgs, "--reasoning-parser", "qwen3", "--enable-prompt-tokens-details"), nil)
	r := post(t, s.url, "", chatBody("m", "What is 17 + 25?", 200))
	if r.status != 200 || !r.done {
		t.Fatalf("status %d, done %v: %s", r.status, r.done, r.body)
	}
	if r.chunks[0].Choices[0].Delta.Role != "assistant" {
		t.Error("first chunk is not the role chunk")
	}
	if r.reasoning == "" || strings.Contains(r.content, "<think>") || strings.TrimSpace(r.content) != "The answer is 42." {
		t.Errorf("reasoning %q content %q; want reasoning_content first and the correct answer", r.reasoning, r.content)
	}
	last := r.chunks[len(r.chunks)-1]
	if r.finish != "stop" || last.Usage == nil || len(last.Choices) != 0 || last.Usage.PromptTokensDetails == nil {
		t.Errorf("finish %q, last chunk %+v: want a usage chunk with prompt_tokens_details", r.finish, last)
	}
	if last.Usage.CompletionTokens != len(r.arrivals) {
		t.Errorf("usage says %d tokens, %d token chunks arrived", last.Usage.CompletionTokens, len(r.arrivals))
	}

	// Without a reasoning parser the thinking is inline; without
	// --enable-prompt-tokens-details usage has no cached_tokens.
	s2 := startSim(t, smallArgs, nil)
	r = post(t, s2.url, "", chatBody("m", "What is 2 * 21?", 200))
	if !strings.HasPrefix(r.content, "<think>") || !strings.Contains(r.content, "The answer is 42.") || r.reasoning != "" {
		t.Errorf("content %q reasoning %q", r.content, r.reasoning)
	}
	if u := r.chunks[len(r.chunks)-1].Usage; u == nil || u.PromptTokensDetails != nil {
		t.Errorf("usage %+v: want no prompt_tokens_details", u)
	}
}

func TestTruncatedReasoning(t *testing.T) {
	s := startSim(t, append(smallArgs, "--reasoning-parser", "qwen3"), nil)
	r := post(t, s.url, "", chatBody("m", "What is 17 + 25?", 5))
	if r.finish != "length" || r.content != "" || len(r.arrivals) != 5 {
		t.Errorf("finish %q, content %q, %d tokens; want length, no content, 5 tokens", r.finish, r.content, len(r.arrivals))
	}
}

func longPrompt(words int, seed string) string {
	var b strings.Builder
	for i := 0; i < words; i++ {
		fmt.Fprintf(&b, "%s%d ", seed, i)
	}
	return b.String()
}

func TestPrefixCachingOnAndOff(t *testing.T) {
	prefix := longPrompt(3000, "ctx")
	for _, on := range []bool{true, false} {
		args := append([]string{}, smallArgs...)
		args = append(args, "--enable-prompt-tokens-details")
		if !on {
			args = append(args, "--no-enable-prefix-caching")
		}
		s := startSim(t, args, map[string]string{"VLLM_SIM_TIME_SCALE": "0.5"})
		miss := post(t, s.url, "", chatBody("m", prefix+"First question?", 4))
		hit := post(t, s.url, "", chatBody("m", prefix+"Second question?", 4))
		cached := hit.chunks[len(hit.chunks)-1].Usage.PromptTokensDetails.CachedTokens
		if on && (cached < 2900 || hit.ttft()*3 > miss.ttft()) {
			t.Errorf("prefix caching on: cached %d, TTFT miss %v hit %v; want >2900 cached and hit < miss/3", cached, miss.ttft(), hit.ttft())
		}
		if !on && (cached != 0 || hit.ttft()*2 < miss.ttft()) {
			t.Errorf("prefix caching off: cached %d, TTFT miss %v hit %v; want 0 cached and similar TTFT", cached, miss.ttft(), hit.ttft())
		}
		resp, _ := http.Get(s.url + "/metrics")
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf(`enable_prefix_caching="%s"`, map[bool]string{true: "True", false: "False"}[on])
		if !strings.Contains(string(m), want) || !strings.Contains(string(m), "vllm:prefix_cache_hits_total") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestErrorsLikeVLLM(t *testing.T) {
	s := startSim(t, append(smallArgs, "--api-key", "secret", "--served-model-name", "alias"), nil)
	if r := post(t, s.url, "", chatBody("alias", "hi", 4)); r.status != 401 || !strings.Contains(r.body, `"error":"Unauthorized"`) {
		t.Errorf("no key: %d %s", r.status, r.body)
	}
	if r := post(t, s.url, "wrong", chatBody("alias", "hi", 4)); r.status != 401 {
		t.Errorf("wrong key: %d", r.status)
	}
	if r := post(t, s.url, "secret", chatBody("m", "hi", 4)); r.status != 404 || !strings.Contains(r.body, "The model `m` does not exist.") {
		t.Errorf("unknown model: %d %s", r.status, r.body)
	}
	if r := post(t, s.url, "secret", chatBody("alias", "hi", 9000)); r.status != 400 || !strings.Contains(r.body, "maximum context length is 8192 tokens") {
		t.Errorf("too long: %d %s", r.status, r.body)
	}
	resp, err := http.Get(s.url + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != 0 {
		t.Errorf("health body %q, want empty", b)
	}
}

var weatherTool = map[string]any{"type": "function", "function": map[string]any{
	"name": "get_weather", "description": "Get the current weather for a city",
	"parameters": map[string]any{"type": "object", "required": []string{"city"}, "properties": map[string]any{
		"city": map[string]any{"type": "string"}, "unit": map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}}}}}}

func TestToolCalls(t *testing.T) {
	body := chatBody("m", "What is the weather in Paris today, in fahrenheit?", 200)
	body["tools"] = []any{weatherTool}
	body["tool_choice"] = "auto"

	plain := startSim(t, smallArgs, nil)
	if r := post(t, plain.url, "", body); r.status != 400 || !strings.Contains(r.body, `\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set`) {
		t.Errorf("auto tool choice without the flags: %d %s", r.status, r.body)
	}
	s := startSim(t, append(smallArgs, "--enable-auto-tool-choice", "--tool-call-parser", "hermes"), nil)
	r := post(t, s.url, "", body)
	var args map[string]string
	if err := json.Unmarshal([]byte(r.toolArgs), &args); err != nil || r.toolName != "get_weather" || r.finish != "tool_calls" {
		t.Fatalf("tool %q args %q (%v) finish %q", r.toolName, r.toolArgs, err, r.finish)
	}
	if args["city"] != "Paris" || args["unit"] != "fahrenheit" {
		t.Errorf("arguments %v: want city Paris, unit fahrenheit", args)
	}
	// After the tool result, the model answers in text.
	body["messages"] = []map[string]any{
		{"role": "user", "content": "What is the weather in Paris today, in fahrenheit?"},
		{"role": "assistant", "tool_calls": []any{map[string]any{"id": "1", "type": "function", "function": map[string]string{"name": "get_weather", "arguments": r.toolArgs}}}},
		{"role": "tool", "tool_call_id": "1", "content": "72F and sunny"},
	}
	r = post(t, s.url, "", body)
	if r.toolName != "" || !strings.Contains(r.content, "72F and sunny") || r.finish != "stop" {
		t.Errorf("after the tool result: tool %q content %q finish %q", r.toolName, r.content, r.finish)
	}
}

func TestSchedulerQueuesBeyondMaxNumSeqs(t *testing.T) {
	s := startSim(t, append(smallArgs, "--max-num-seqs", "1"), map[string]string{"VLLM_SIM_TIME_SCALE": "1", "VLLM_SIM_ITL_MS": "10"})
	var wg sync.WaitGroup
	res := make([]streamed, 2)
	for i := range res {
		wg.Add(1)
		go func() { defer wg.Done(); res[i] = post(t, s.url, "", chatBody("m", "hello", 20)) }()
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	firstEnd := res[0].arrivals[len(res[0].arrivals)-1]
	if !res[1].arrivals[0].After(firstEnd) {
		t.Errorf("with --max-num-seqs 1 the second request's first token (%v) came before the first finished (%v)",
			res[1].arrivals[0].Sub(res[1].sent), firstEnd.Sub(res[0].sent))
	}
}

// A long prompt arriving while another request decodes: with chunked
// prefill the decode keeps going between chunks; without it, it stalls for
// the whole prefill.
func TestChunkedPrefillInterleavesDecode(t *testing.T) {
	gaps := map[bool]time.Duration{}
	for _, chunked := range []bool{true, false} {
		args := append([]string{}, smallArgs...)
		if chunked {
			args = append(args, "--max-num-batched-tokens", "512")
		} else {
			args = append(args, "--no-enable-chunked-prefill")
		}
		s := startSim(t, args, map[string]string{"VLLM_SIM_TIME_SCALE": "1", "VLLM_SIM_ITL_MS": "5", "VLLM_SIM_PREFILL_MS_PER_TOKEN": "0.1", "VLLM_SIM_BASE_MS": "1"})
		var decoding streamed
		done := make(chan struct{})
		started := make(chan struct{})
		// 200 tokens x 5 ms: still decoding when the long prompt arrives.
		go func() {
			decoding = postWatch(t, s.url, "", chatBody("m", "hello", 200), func() { close(started) })
			close(done)
		}()
		<-started
		time.Sleep(20 * time.Millisecond)
		post(t, s.url, "", chatBody("m", longPrompt(5000, "p"), 1))
		<-done
		gaps[chunked] = decoding.maxGap()
	}
	// 5000 tokens x 0.1 ms = 500 ms in one step without chunking; chunks of
	// <=512 tokens cost ~52 ms each.
	if gaps[false] < 400*time.Millisecond || gaps[true] > 150*time.Millisecond {
		t.Errorf("largest decode gap: chunked %v, unchunked %v; want <150ms and >400ms", gaps[true], gaps[false])
	}
}

func TestEngineDeath(t *testing.T) {
	s := startSim(t, smallArgs, map[string]string{"VLLM_SIM_DIE_AFTER_REQUESTS": "1"})
	if r := post(t, s.url, "", chatBody("m", "hi", 3)); r.status != 200 {
		t.Fatalf("first request: %d", r.status)
	}
	// The engine dies on its own once the request is counted: Serve
	// returns without being asked to stop.
	var dead *EngineDeadError
	select {
	case err := <-s.done:
		if !errors.As(err, &dead) {
			t.Fatalf("Serve returned %v, want EngineDeadError", err)
		}
		s.done <- err // for stop() in Cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("the engine did not die after the injected request count")
	}
}

func TestDecodeStallKeepsHealth(t *testing.T) {
	s := startSim(t, smallArgs, map[string]string{"VLLM_SIM_STALL_AFTER_REQUESTS": "1"})
	post(t, s.url, "", chatBody("m", "hi", 3))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	b, _ := json.Marshal(chatBody("m", "hi again", 3))
	req, _ := http.NewRequestWithContext(ctx, "POST", s.url+"/v1/chat/completions", bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body) // headers come at once; the tokens never do
		resp.Body.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request on a wedged engine: %v, want a timeout", err)
	}
	h, err := http.Get(s.url + "/health")
	if err != nil || h.StatusCode != 200 {
		t.Errorf("health on a wedged engine: %v %v, want 200 (the wedge vLLM users see)", h, err)
	}
	h.Body.Close()
}

// The simulated model decides from the tools offered and the request, in
// the user's language, and honours every tool_choice.
func TestToolChoiceAndLanguages(t *testing.T) {
	s := startSim(t, append(smallArgs, "--enable-auto-tool-choice", "--tool-call-parser", "hermes"), nil)
	location := map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "description": "Get the current weather for a location",
		"parameters": map[string]any{"type": "object", "properties": map[string]any{"location": map[string]any{"type": "string"}}, "required": []string{"location"}}}}
	flights := map[string]any{"type": "function", "function": map[string]any{"name": "search_flights", "description": "Search flights between two cities",
		"parameters": map[string]any{"type": "object", "properties": map[string]any{"origin": map[string]any{"type": "string"}, "destination": map[string]any{"type": "string"}}}}}
	hotel := map[string]any{"type": "function", "function": map[string]any{"name": "book_hotel", "description": "Book a hotel in a city for a number of nights",
		"parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}, "nights": map[string]any{"type": "integer"}}}}}
	tests := []struct {
		prompt string
		tools  []any
		choice any
		name   string            // "" = no call
		args   map[string]string // expected argument values
	}{
		{"Quelle est la météo à Paris ?", []any{location}, "auto", "get_weather", map[string]string{"location": "Paris"}},
		{"Quel temps fait-il à Lyon ?", []any{location}, "auto", "get_weather", map[string]string{"location": "Lyon"}},
		{"¿Qué tiempo hace en Madrid?", []any{location}, "auto", "get_weather", map[string]string{"location": "Madrid"}},
		{"Wie ist das Wetter in Berlin?", []any{location}, "auto", "get_weather", map[string]string{"location": "Berlin"}},
		{"Cherche des vols de Paris à Tokyo, puis réserve un hôtel à Tokyo pour 3 nuits.", []any{flights, hotel}, "auto", "search_flights", map[string]string{"origin": "Paris", "destination": "Tokyo"}},
		{"Réserve un hôtel à Marseille pour 2 nuits.", []any{flights, hotel}, "auto", "book_hotel", map[string]string{"city": "Marseille", "nights": "2"}},
		{"Raconte-moi une blague.", []any{location}, "auto", "", nil},
		{"Quelle est la météo à Paris ?", []any{location}, "none", "", nil},
		{"Raconte-moi une blague.", []any{location}, "required", "get_weather", nil},
		{"Quelle est la météo à Paris ?", []any{flights, hotel, location}, map[string]any{"type": "function", "function": map[string]string{"name": "book_hotel"}}, "book_hotel", map[string]string{"city": "Paris"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v %s", tt.choice, tt.prompt), func(t *testing.T) {
			body := chatBody("m", tt.prompt, 200)
			body["tools"], body["tool_choice"] = tt.tools, tt.choice
			r := post(t, s.url, "", body)
			if r.status != 200 || r.toolName != tt.name {
				t.Fatalf("status %d, tool %q (args %s), content %q; want tool %q", r.status, r.toolName, r.toolArgs, r.content, tt.name)
			}
			if tt.name == "" {
				if r.finish != "stop" || r.content == "" {
					t.Errorf("finish %q content %q: want a text answer", r.finish, r.content)
				}
				return
			}
			var args map[string]any
			if err := json.Unmarshal([]byte(r.toolArgs), &args); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.args {
				if fmt.Sprint(args[k]) != v {
					t.Errorf("argument %s = %v, want %s (all: %v)", k, args[k], v, args)
				}
			}
		})
	}
	// A named function that is not among the tools is a 400, as in vLLM.
	body := chatBody("m", "Quelle est la météo à Paris ?", 200)
	body["tools"], body["tool_choice"] = []any{location}, map[string]any{"type": "function", "function": map[string]string{"name": "nope"}}
	if r := post(t, s.url, "", body); r.status != 400 || !strings.Contains(r.body, "not in tools") {
		t.Errorf("unknown named tool: %d %s", r.status, r.body)
	}
}

package benchmark

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// sseServer streams scripted chunks: each step waits, then writes a data line.
type step struct {
	wait time.Duration
	data string
}

func sseServer(t *testing.T, steps []step) *httptest.Server {
	return sseServerAt(t, steps, nil)
}

// flushes records when a server wrote each step, from the moment its
// handler started.
type flushes struct {
	mu   sync.Mutex
	at   []time.Duration
	when []time.Time // the same moments, on the clock the client's Sent reads
}

func (f *flushes) add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at = append(f.at, d)
	f.when = append(f.when, time.Now())
}

func (f *flushes) moments() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.when)
}

func (f *flushes) get() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.at)
}

// sseServerAt is sseServer that also records, in at, when it wrote each
// step.
func sseServerAt(t *testing.T, steps []step, at *flushes) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			fmt.Fprint(w, `{"data":[{"id":"served-a"},{"id":"served-b"}]}`)
			return
		}
		start := time.Now()
		w.Header().Set("Content-Type", "text/event-stream")
		for _, s := range steps {
			time.Sleep(s.wait)
			if at != nil {
				at.add(time.Since(start))
			}
			fmt.Fprintf(w, "data: %s\n\n", s.data)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func delta(field, text string) string {
	return fmt.Sprintf(`{"choices":[{"index":0,"delta":{%q:%q},"finish_reason":null}]}`, field, text)
}

func TestStreamMetricsDefinitions(t *testing.T) {
	var fl flushes
	srv := sseServerAt(t, []step{
		{0, `{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`}, // role only: not a token
		{50 * time.Millisecond, delta("reasoning_content", "think ")},
		{20 * time.Millisecond, delta("reasoning_content", "more ")},
		{20 * time.Millisecond, delta("content", "Answer")},
		{20 * time.Millisecond, delta("content", " done")},
		{0, `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`},
		{0, `{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":8}}}`},
		{0, "[DONE]"},
	}, &fl)
	c := NewClient(srv.URL, "m", "K", func(string) string { return "" })
	r := c.Chat(context.Background(), Request{Messages: []Message{{Role: "user", Content: "hi"}}})
	if !r.OK() {
		t.Fatal(r.Err)
	}
	at := fl.get()
	// Each metric, as a moment (the request's Sent plus the metric), lies
	// between the moment the server flushed its own event and the moment
	// it flushed the next one (the definitions differ by which chunk they
	// stop at). Bounded by the server's own flushes on the same clock, not
	// by the nominal sleeps: Windows' timer (under Wine) stretches a 20 ms
	// sleep to 26 ms or more, and the request's way to the handler varies.
	// Slack: the client's read after the last flush.
	const slack = 5 * time.Millisecond
	when := fl.moments()
	between := func(got time.Duration, from, to int) bool {
		m := r.Sent.Add(got)
		return !m.Before(when[from]) && m.Before(when[to].Add(slack))
	}
	// at: 0 role, 1 think, 2 more, 3 Answer, 4 done, 5 finish, 6 usage, 7 [DONE]
	if !between(r.TTFT, 1, 2) || !between(r.TTFC, 3, 4) || !between(r.E2EL, 4, 7) {
		t.Errorf("TTFT %v (want the first reasoning chunk, role chunk excluded, flushed at %v), TTFC %v (flushed at %v), E2EL %v (at %v); flushes %v", r.TTFT, at[1], r.TTFC, at[3], r.E2EL, at[4], at)
	}
	if r.Chunks != 4 || len(r.ITL) != 3 || r.OutputTokens != 4 || r.TokensFromUs || r.PromptTokens != 12 || r.CachedTokens != 8 {
		t.Errorf("chunks %d itl %d out %d counted %v prompt %d cached %d", r.Chunks, len(r.ITL), r.OutputTokens, r.TokensFromUs, r.PromptTokens, r.CachedTokens)
	}
	// Not E2EL/4 nor (E2EL-TTFT)/4: (E2EL-TTFT)/(4-1), from the server's flushes.
	if tpot, ok := r.TPOT(); !ok || tpot < (at[4]-at[2])/3 || tpot > (at[7]-at[1]+slack)/3 {
		t.Errorf("TPOT %v, want (E2EL-TTFT)/(4-1) ~ %v", tpot, (at[4]-at[1])/3)
	}
	if r.Content != "Answer done" || r.ReasoningText != "think more " || r.FinishReason != "stop" || r.Reasoning != 2 {
		t.Errorf("content %q reasoning %q finish %q", r.Content, r.ReasoningText, r.FinishReason)
	}
}

func TestStreamWithoutUsageCountsChunks(t *testing.T) {
	srv := sseServer(t, []step{{0, delta("content", "a")}, {0, delta("content", "b")}, {0, "[DONE]"}})
	r := NewClient(srv.URL, "m", "K", func(string) string { return "" }).Chat(context.Background(), Request{})
	if !r.OK() || r.OutputTokens != 2 || !r.TokensFromUs || r.CachedTokens != -1 {
		t.Errorf("%+v: want 2 tokens counted from chunks, flagged, cached unknown", r)
	}
}

func TestBadInputs(t *testing.T) {
	getenv := func(k string) string { return map[string]string{"MY_KEY": "secret-value"}[k] }
	unauthorized := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		fmt.Fprint(w, `{"error":"Unauthorized"}`)
	}))
	defer unauthorized.Close()
	notFound := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			fmt.Fprint(w, `{"data":[{"id":"qwen3"}]}`)
			return
		}
		w.WriteHeader(404)
		fmt.Fprint(w, `{"error":{"message":"The model x does not exist."}}`)
	}))
	defer notFound.Close()
	malformed := sseServer(t, []step{{0, delta("content", "a")}, {0, `{"choices": [oops`}})
	early := sseServer(t, []step{{0, delta("content", "a")}})
	slow := sseServer(t, []step{{0, delta("content", "a")}, {2 * time.Second, "[DONE]"}})
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	tests := []struct {
		name, url string
		timeout   time.Duration
		want      string
	}{
		{"401 names the variable, never the key", unauthorized.URL, 0, "rejected the API key read from $MY_KEY"},
		{"404 lists served models", notFound.URL, 0, "served: qwen3"},
		{"malformed SSE line", malformed.URL, 0, `malformed SSE data line: "{\"choices\": [oops"`},
		{"stream closed early", early.URL, 0, "closed the stream before [DONE] after 1 chunks"},
		{"per-request timeout", slow.URL, 200 * time.Millisecond, "timeout after 200ms (1 chunks received)"},
		{"endpoint down", down.URL, 0, "refused"}, // Windows: "actively refused it"
	}
	for _, tt := range tests {
		c := NewClient(tt.url, "x", "MY_KEY", getenv)
		c.Timeout = tt.timeout
		r := c.Chat(context.Background(), Request{Messages: []Message{{Role: "user", Content: "hi"}}})
		if r.OK() || !strings.Contains(strings.ToLower(r.Err), strings.ToLower(tt.want)) || strings.Contains(r.Err, "secret-value") {
			t.Errorf("%s: error %q, want %q (and no key)", tt.name, r.Err, tt.want)
		}
	}
	if err := NewClient(notFound.URL, "x", "MY_KEY", getenv).Check(context.Background()); err == nil || !strings.Contains(err.Error(), `model "x" is not served`) {
		t.Errorf("Check: %v", err)
	}
	if err := NewClient(unauthorized.URL, "x", "EMPTY", getenv).Check(context.Background()); err == nil || !strings.Contains(err.Error(), "$EMPTY is empty") {
		t.Errorf("Check without key: %v", err)
	}
}

func TestCancelReachesInFlightStream(t *testing.T) {
	srv := sseServer(t, []step{{0, delta("content", "a")}, {5 * time.Second, "[DONE]"}})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start := time.Now()
	r := NewClient(srv.URL, "m", "K", func(string) string { return "" }).Chat(ctx, Request{})
	if r.Err != "cancelled" || time.Since(start) > time.Second {
		t.Errorf("err %q after %v, want cancelled promptly", r.Err, time.Since(start))
	}
}

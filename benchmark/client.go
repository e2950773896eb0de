package benchmark

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
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Message is one chat message.
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// ToolCall is a function call the model made.
type ToolCall struct {
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// Request is one chat completion to send (always streamed).
type Request struct {
	Messages   []Message
	MaxTokens  int
	Tools      []json.RawMessage
	ToolChoice any
	Extra      map[string]any // e.g. chat_template_kwargs, temperature
}

// Result is one request, measured. A failed request is data (Err), not a
// Go error. Durations are from the moment the request was sent.
type Result struct {
	Scenario string `json:"scenario"`
	Tag      string `json:"tag,omitempty"`   // e.g. miss/hit, turn-3, short/long
	Class    string `json:"class,omitempty"` // request class within a scenario
	Seq      int    `json:"seq"`             // order within the scenario
	Warmup   bool   `json:"warmup,omitempty"`

	// Sent is when the request had an open connection to go out on.
	// Setting up a connection, when the request had to (none was open or
	// pre-opened), comes before and is Connect, never part of TTFT.
	Sent         time.Time       `json:"sent"`
	Connect      time.Duration   `json:"connect_ns,omitempty"` // waiting for a connection (a TCP handshake when Dialed)
	Dialed       bool            `json:"dialed,omitempty"`     // a connection was dialed for this request
	TTFT         time.Duration   `json:"ttft_ns"`              // first chunk with a non-empty delta (reasoning, content or tool call)
	TTFC         time.Duration   `json:"ttfc_ns"`              // first content (answer) chunk; 0 if none
	E2EL         time.Duration   `json:"e2el_ns"`              // last token chunk
	ITL          []time.Duration `json:"itl_ns,omitempty"`     // gaps between successive token chunks
	Chunks       int             `json:"chunks"`               // token chunks received
	OutputTokens int             `json:"output_tokens"`        // from usage; Chunks when usage is missing
	TokensFromUs bool            `json:"tokens_counted,omitempty"`
	PromptTokens int             `json:"prompt_tokens"`
	CachedTokens int             `json:"cached_tokens"` // -1: the server does not report it
	Reasoning    int             `json:"reasoning_chunks"`
	FinishReason string          `json:"finish_reason,omitempty"`
	Status       int             `json:"status"`
	Unreachable  bool            `json:"unreachable,omitempty"`   // no connection could be made
	ArrivalClock string          `json:"arrival_clock,omitempty"` // kernel, read or mixed: where chunk arrival times came from
	Err          string          `json:"error,omitempty"`

	Content       string     `json:"content,omitempty"`
	ReasoningText string     `json:"reasoning,omitempty"`
	ToolCalls     []ToolCall `json:"tool_calls,omitempty"`
}

// OK reports a request that completed without error.
func (r *Result) OK() bool { return r.Err == "" }

// TPOT is (E2EL - TTFT) / (output tokens - 1), the vllm bench definition.
func (r *Result) TPOT() (time.Duration, bool) {
	if r.OutputTokens < 2 || !r.OK() {
		return 0, false
	}
	return (r.E2EL - r.TTFT) / time.Duration(r.OutputTokens-1), true
}

// Client talks to one OpenAI-compatible endpoint. The API key comes from an
// environment variable and is never printed or stored.
type Client struct {
	Endpoint string // http://host:port
	Model    string
	KeyEnv   string // the variable the key was read from, for messages
	apiKey   string
	HTTP     *http.Client
	Timeout  time.Duration // per request (default 5 min)

	// ReadStamps times each chunk when its read returns instead of when
	// the kernel received it (see stampConn). Set it before the first
	// request; it exists to measure what kernel stamps are worth.
	ReadStamps bool

	inflight atomic.Int64 // chat requests under way
	progress atomic.Int64 // unix nanoseconds of the last request sent, chunk read or request ended
}

func (c *Client) touch() { c.progress.Store(time.Now().UnixNano()) }

// Quiet says how many chat requests are under way and for how long none
// of them has received anything (nor has any started or ended).
func (c *Client) Quiet() (inflight int, quiet time.Duration) {
	n := int(c.inflight.Load())
	last := c.progress.Load()
	if n == 0 || last == 0 {
		return n, 0
	}
	return n, time.Since(time.Unix(0, last))
}

// SetKey sets the API key when it comes from elsewhere than the environment
// (the profile's own env file, for a compose target). It is never printed.
func (c *Client) SetKey(key string) { c.apiKey = key }

// NewClient reads the API key from keyEnv via getenv.
// Connections record the kernel's receive time of what they read (Linux),
// which is what chunk arrivals are measured from.
func NewClient(endpoint, model, keyEnv string, getenv func(string) string) *Client {
	c := &Client{Endpoint: strings.TrimRight(endpoint, "/"), Model: model, KeyEnv: keyEnv, apiKey: getenv(keyEnv), Timeout: 5 * time.Minute}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	// HTTP/1.1 only: a connection carries one stream at a time, which the
	// per-connection arrival stamps rely on (HTTP/2 would multiplex).
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	c.HTTP = &http.Client{Transport: &http.Transport{
		Protocols:           &protocols,
		MaxIdleConnsPerHost: 1024,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if c.ReadStamps {
				return d.DialContext(ctx, network, addr)
			}
			return dialStamped(ctx, d, network, addr)
		},
	}}
	return c
}

// Preopen opens n connections to the endpoint through the client's own
// transport (closing the idle ones first) and leaves them idle for the next
// requests, so that a measured window starts with its connections set up:
// the first wave of a 256-stream level would otherwise spend its first
// milliseconds in TCP handshakes, in the server's accept queue and in the
// transport's setup of each connection, which is not time to first token.
// Each connection carries one GET /health; all n are held busy until every
// one has a connection, so the transport has to open n, and each counts as
// open once the server has answered on it (the kernel completes a handshake
// long before a busy server accepts the connection). At most 1024, the
// transport's idle limit.
func (c *Client) Preopen(ctx context.Context, n int) error {
	o := c.NewOpener(ctx, n)
	defer o.Done()
	errs := make([]error, o.n)
	var wg sync.WaitGroup
	for i := range o.n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = o.Open()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Opener opens a set of connections for Preopen, one Open call each, made
// by the goroutines that will then send the window's requests (a closed
// level's workers), so that their first requests find their stacks grown
// as well as their connections open.
type Opener struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	n      int
	got    atomic.Int64
	all    chan struct{}
	once   sync.Once
	trace  context.Context
}

// NewOpener prepares n connections (at most 1024, the transport's idle
// limit), closing the idle ones first: the server may close an earlier
// window's at any time (uvicorn's keep-alive: 5 s).
func (c *Client) NewOpener(ctx context.Context, n int) *Opener {
	c.HTTP.CloseIdleConnections()
	o := &Opener{c: c, n: max(0, min(n, 1024)), all: make(chan struct{})}
	o.ctx, o.cancel = context.WithTimeout(ctx, 30*time.Second)
	o.trace = httptrace.WithClientTrace(o.ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {
		if o.got.Add(1) == int64(o.n) {
			o.release()
		}
	}})
	return o
}

func (o *Opener) release() { o.once.Do(func() { close(o.all) }) }

// Open sends one GET /health, held until all n of the opener's requests
// have a connection, so that the transport opens n; it returns once the
// server answered on it (a busy server accepts a connection long after the
// kernel completed its handshake).
func (o *Opener) Open() error {
	if o.n == 0 {
		return nil
	}
	req, err := http.NewRequestWithContext(o.trace, "GET", o.c.Endpoint+"/health", &gate{all: o.all, ctx: o.ctx})
	if err != nil {
		o.release()
		return err
	}
	req.ContentLength = 1
	resp, err := o.c.HTTP.Do(req)
	if err != nil {
		o.release() // do not hold the others
		return fmt.Errorf("open a connection to %s: %w", o.c.Endpoint, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

// Done releases the opener.
func (o *Opener) Done() { o.release(); o.cancel() }

// gate is a one-byte request body that is sent only once every request of
// Preopen holds a connection.
type gate struct {
	all  <-chan struct{}
	ctx  context.Context
	done bool
}

func (g *gate) Read(p []byte) (int, error) {
	if g.done {
		return 0, io.EOF
	}
	select {
	case <-g.all:
	case <-g.ctx.Done():
		return 0, g.ctx.Err()
	}
	g.done = true
	p[0] = '\n'
	return 1, io.EOF
}

// Close closes the client's idle connections.
func (c *Client) Close() { c.HTTP.CloseIdleConnections() }

func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Endpoint+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	return req, nil
}

// Health is what GET /health answers, in words ("200", "503",
// "no answer: ..."), within 5 seconds.
func (c *Client) Health(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := c.newRequest(ctx, "GET", "/health", nil)
	if err != nil {
		return "no answer: " + err.Error()
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "no answer: " + err.Error()
	}
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode)
}

// Models lists the served model ids.
func (c *Client) Models(ctx context.Context) ([]string, error) {
	req, err := c.newRequest(ctx, "GET", "/v1/models", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s/v1/models: %w (is the server up?)", c.Endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, c.unauthorized()
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s/v1/models: status %d: %s", c.Endpoint, resp.StatusCode, b)
	}
	var m struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("GET %s/v1/models: %w", c.Endpoint, err)
	}
	var ids []string
	for _, d := range m.Data {
		ids = append(ids, d.ID)
	}
	return ids, nil
}

func (c *Client) unauthorized() error {
	if c.apiKey == "" {
		return fmt.Errorf("the server at %s requires an API key (401) and $%s is empty; set it, or pass --api-key-env with the variable that holds the key", c.Endpoint, c.KeyEnv)
	}
	return fmt.Errorf("the server at %s rejected the API key read from $%s (401); check the key (it is not printed)", c.Endpoint, c.KeyEnv)
}

// Check verifies the endpoint before a run: reachable, the key accepted,
// the model served (listing what is served otherwise).
func (c *Client) Check(ctx context.Context) error {
	ids, err := c.Models(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id == c.Model {
			return nil
		}
	}
	return fmt.Errorf("model %q is not served at %s; served: %s", c.Model, c.Endpoint, strings.Join(ids, ", "))
}

// chunk is the part of a chat.completion.chunk vgrid reads. It is reused
// between lines; fields are reset by decodeChunk.
type chunk struct {
	Choices []struct {
		Delta struct {
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
			Reasoning        string `json:"reasoning"`
			ToolCalls        []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Type     string `json:"type"`
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

func decodeChunk(data []byte, ch *chunk) error {
	// json.Unmarshal reuses slice elements and leaves fields absent from
	// the new line as they were: zero them, or a finish chunk ("delta":{})
	// would repeat the previous token.
	all := ch.Choices[:cap(ch.Choices)]
	clear(all)
	ch.Choices = all[:0]
	ch.Usage = nil
	return json.Unmarshal(data, ch)
}

// sseReader reads "data:" payloads of an SSE stream.
type sseReader struct {
	r   *bufio.Reader
	buf []byte
}

// newSSEReader reads with a 4 KiB buffer: chunks are a few hundred bytes,
// and longer lines are assembled in buf (a 64 KiB buffer per request cost
// 16 MiB of garbage per 256-stream burst, visible as GC delay in TTFT).
func newSSEReader(r io.Reader) *sseReader { return &sseReader{r: bufio.NewReaderSize(r, 4096)} }

// next returns the next data payload (without "data: "), io.EOF at the end
// of the stream. Comments, event names and blank lines are skipped.
func (s *sseReader) next() ([]byte, error) {
	for {
		line, err := s.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			s.buf = append(s.buf[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = s.r.ReadSlice('\n')
				s.buf = append(s.buf, line...)
			}
			line = s.buf
		}
		if len(line) == 0 && err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if bytes.HasPrefix(line, []byte("data:")) {
			return bytes.TrimPrefix(line[5:], []byte(" ")), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Chat sends one streamed chat completion and measures it.
func (c *Client) Chat(ctx context.Context, r Request) Result {
	c.inflight.Add(1)
	c.touch()
	defer func() { c.touch(); c.inflight.Add(-1) }()
	res := Result{CachedTokens: -1}
	body := map[string]any{"model": c.Model, "messages": r.Messages, "stream": true,
		"stream_options": map[string]any{"include_usage": true}}
	if r.MaxTokens > 0 {
		body["max_tokens"] = r.MaxTokens
	}
	if len(r.Tools) > 0 {
		body["tools"] = r.Tools
		if r.ToolChoice != nil {
			body["tool_choice"] = r.ToolChoice
		}
	}
	for k, v := range r.Extra {
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		res.Err = "encode request: " + err.Error()
		return res
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := c.newRequest(ctx, "POST", "/v1/chat/completions", b)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	// The transport calls GotConn on this goroutine, before it hands the
	// request to the connection's writer: the moment taken there is before
	// the request is written, as a send time must be (a time taken after
	// the write, in WroteRequest, can come late on a loaded host, after the
	// server already answered, and shorten TTFT at random).
	var conn net.Conn
	var got time.Time
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		// A dial the transport started for this request may lose to a
		// connection coming back idle: only a new connection counts.
		GotConn: func(info httptrace.GotConnInfo) { conn, got, res.Dialed = info.Conn, time.Now(), !info.Reused },
	}))
	start := time.Now()
	res.Sent = start
	resp, err := c.HTTP.Do(req)
	if !got.IsZero() {
		res.Sent, res.Connect = got, got.Sub(start) // the request goes out on an open connection now
	}
	if err != nil {
		res.Err = c.transportErr(ctx, err, timeout)
		var op *net.OpError
		res.Unreachable = errors.As(err, &op) && op.Op == "dial"
		return res
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			res.Err = c.unauthorized().Error()
		case http.StatusNotFound:
			served, _ := c.Models(context.WithoutCancel(ctx))
			res.Err = fmt.Sprintf("404: model %q not found; served: %s", c.Model, strings.Join(served, ", "))
		default:
			res.Err = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		}
		return res
	}
	c.readStream(ctx, resp.Body, conn, &res, timeout)
	return res
}

func (c *Client) transportErr(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("timeout after %s", timeout)
	}
	if errors.Is(err, context.Canceled) {
		return "cancelled"
	}
	return err.Error()
}

// line is one SSE data payload and when it arrived.
type line struct {
	at   time.Time
	data []byte
}

// readStream reads the whole stream first, keeping each data line with its
// arrival time, and decodes afterwards: while streams are live, a request
// costs only a read and a timestamp, so a burst of first tokens across
// hundreds of streams is measured without JSON decoding in its way.
//
// A line's arrival is the kernel's receive time of conn's latest read when
// conn records one: that read delivered the line's last bytes.
func (c *Client) readStream(ctx context.Context, body io.Reader, conn net.Conn, res *Result, timeout time.Duration) {
	sse := newSSEReader(body)
	var lines []line
	var kernel, read int
	defer func() { res.ArrivalClock = clockName(kernel, read) }()
	done := false
	var readErr error
	for {
		data, err := sse.next()
		if err != nil {
			readErr = err
			break
		}
		c.touch()
		now := time.Now()
		if at, ok := arrival(conn); ok && !at.Before(res.Sent) && !at.After(now) {
			now = at
			kernel++
		} else {
			read++
		}
		if string(data) == "[DONE]" {
			done = true
			continue
		}
		lines = append(lines, line{at: now, data: append([]byte(nil), data...)})
	}
	c.decodeStream(lines, res)
	if res.Err != "" || done {
		return
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.Err = fmt.Sprintf("timeout after %s (%d chunks received)", timeout, res.Chunks)
	case errors.Is(ctx.Err(), context.Canceled):
		res.Err = "cancelled"
	case readErr == io.EOF:
		res.Err = fmt.Sprintf("the server closed the stream before [DONE] after %d chunks", res.Chunks)
	default:
		res.Err = fmt.Sprintf("stream read after %d chunks: %v", res.Chunks, readErr)
	}
}

// clockName says where a request's arrival times came from: the kernel's
// receive stamps, the reads' own times, or both.
func clockName(kernel, read int) string {
	switch {
	case kernel > 0 && read > 0:
		return "mixed"
	case kernel > 0:
		return "kernel"
	case read > 0:
		return "read"
	}
	return ""
}

// decodeStream turns the received lines into the measurements.
func (c *Client) decodeStream(lines []line, res *Result) {
	var ch chunk
	var last time.Time
	var content, reasoning strings.Builder
	calls := map[int]*ToolCall{}
	var order []int
	defer func() {
		if res.OutputTokens == 0 && res.Chunks > 0 {
			res.OutputTokens, res.TokensFromUs = res.Chunks, true
		}
		res.Content, res.ReasoningText = content.String(), reasoning.String()
		for _, i := range order {
			res.ToolCalls = append(res.ToolCalls, *calls[i])
		}
	}()
	for _, l := range lines {
		now := l.at
		if err := decodeChunk(l.data, &ch); err != nil {
			res.Err = fmt.Sprintf("malformed SSE data line: %.200q", l.data)
			return
		}
		token := false
		for _, choice := range ch.Choices {
			d := &choice.Delta
			// "reasoning_content" up to vLLM 0.11.0, "reasoning" from 0.16,
			// both (the same text) in between: one of them, never both.
			r := d.Reasoning
			if r == "" {
				r = d.ReasoningContent
			}
			if d.Content != "" {
				content.WriteString(d.Content)
				if res.TTFC == 0 {
					res.TTFC = now.Sub(res.Sent)
				}
			}
			if r != "" {
				reasoning.WriteString(r)
				res.Reasoning++
			}
			for _, tc := range d.ToolCalls {
				call, ok := calls[tc.Index]
				if !ok {
					call = &ToolCall{Type: "function"}
					calls[tc.Index] = call
					order = append(order, tc.Index)
				}
				if tc.ID != "" {
					call.ID = tc.ID
				}
				call.Function.Name += tc.Function.Name
				call.Function.Arguments += tc.Function.Arguments
			}
			if d.Content != "" || r != "" || len(d.ToolCalls) > 0 {
				token = true
			}
			if choice.FinishReason != nil && *choice.FinishReason != "" {
				res.FinishReason = *choice.FinishReason
			}
		}
		if token {
			if res.Chunks == 0 {
				res.TTFT = now.Sub(res.Sent)
			} else {
				res.ITL = append(res.ITL, now.Sub(last))
			}
			res.Chunks++
			last = now
			res.E2EL = now.Sub(res.Sent)
		}
		if u := ch.Usage; u != nil {
			res.OutputTokens, res.PromptTokens = u.CompletionTokens, u.PromptTokens
			if u.PromptTokensDetails != nil {
				res.CachedTokens = u.PromptTokensDetails.CachedTokens
			}
		}
	}
}

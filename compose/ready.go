package compose

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// ReadyOptions tune WaitReady.
type ReadyOptions struct {
	Timeout          time.Duration // overall; cold boots of real models take up to 30 min (default 30m)
	Interval         time.Duration // probe interval (default 250ms)
	DecodeTimeout    time.Duration // one decode probe (default 30s)
	UnreachableAfter time.Duration // probes failing this long after the log says the API is up (default 10s)
	OnPhase          func(phase string)
}

func (o *ReadyOptions) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.DecodeTimeout <= 0 {
		o.DecodeTimeout = 30 * time.Second
	}
	if o.UnreachableAfter <= 0 {
		o.UnreachableAfter = 10 * time.Second
	}
}

// Boot is the boot time breakdown vLLM logs, in seconds (0 when absent).
type Boot struct {
	Weights    float64 `json:"weights_s"`
	Compile    float64 `json:"compile_s"`
	InitEngine float64 `json:"init_engine_s"` // profiling, KV cache, warm-up and graphs
	Graphs     float64 `json:"graphs_s"`
	Ready      float64 `json:"ready_s"` // container start to the first decoded token, measured by vgrid
}

var bootPatterns = []struct {
	re  *regexp.Regexp
	set func(b *Boot, v float64)
}{
	{regexp.MustCompile(`Model loading took [\d.]+ GiB and ([\d.]+) seconds`), func(b *Boot, v float64) { b.Weights = v }},
	{regexp.MustCompile(`torch\.compile takes ([\d.]+) s in total`), func(b *Boot, v float64) { b.Compile = v }},
	{regexp.MustCompile(`init engine \(profile, create kv cache, warmup model\) took ([\d.]+) seconds`), func(b *Boot, v float64) { b.InitEngine = v }},
	{regexp.MustCompile(`Graph capturing finished in ([\d.]+) secs`), func(b *Boot, v float64) { b.Graphs = v }},
}

// ParseBoot reads the boot breakdown from vLLM log lines.
func ParseBoot(lines []string) Boot {
	var b Boot
	for _, l := range lines {
		for _, p := range bootPatterns {
			if m := p.re.FindStringSubmatch(l); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				p.set(&b, v)
			}
		}
	}
	return b
}

// Ready is a service that answered a decode probe.
type Ready struct {
	Endpoint string
	Boot     Boot
	Logs     []string
}

// probeResult is one round of readiness probes.
type probeResult struct {
	ready   bool
	refused bool   // connection refused or reset: nothing listens
	stage   string // health, models, decode
	err     error
	fail    *Failure // a definitive answer (wrong model, rejected key)
}

// WaitReady waits until the service's container serves a decoded token, or
// returns a *Failure as soon as the log, Docker's events or state prove it
// will not: within one probe interval of the fact.
func (d *Deployer) WaitReady(ctx context.Context, s *Spec, res *Result, opts ReadyOptions) (*Ready, error) {
	opts.defaults()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	id := res.ContainerID
	start := res.Started
	if start.IsZero() {
		start = d.now()
	}

	lines := make(chan logLine, 1024)
	wg.Add(1)
	go func() { defer wg.Done(); d.followLogs(ctx, id, lines) }()
	ev := d.cli.Events(ctx, client.EventsListOptions{Filters: client.Filters{}.Add("container", id).Add("type", "container")})
	probes := make(chan probeResult, 1)
	probing := false

	w := &watch{d: d, s: s, id: id, logs: &ring{n: 200}, phase: "starting the container", phaseAt: d.now(), onPhase: opts.OnPhase}
	if r, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil {
		w.restarts0 = r.Container.RestartCount
	}
	ticker := time.NewTicker(opts.Interval)
	defer ticker.Stop()
	deadline := time.NewTimer(opts.Timeout)
	defer deadline.Stop()
	endpoint := ""
	var refusedSince time.Time

	for {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			if f := w.line(l); f != nil {
				return nil, f
			}
		case m, ok := <-ev.Messages:
			if !ok {
				ev.Messages = nil
				continue
			}
			switch {
			case m.Action == "die" || m.Action == "oom":
				if c, err := strconv.Atoi(m.Actor.Attributes["exitCode"]); err == nil {
					w.exitCode, w.exitKnown = c, true
				}
				return nil, w.exited(ctx, lines)
			case strings.HasPrefix(string(m.Action), "health_status") && strings.Contains(string(m.Action), "unhealthy"):
				return nil, w.fail(ReasonUnhealthy, fmt.Sprintf("Docker's health check reports unhealthy while vLLM was %s", w.phase), "")
			}
		case <-ev.Err:
			ev.Err = nil // events are a speed-up; the ticker's inspect still sees everything
		case p := <-probes:
			probing = false
			switch {
			case p.fail != nil:
				p.fail.Phase, p.fail.Logs = w.phase, w.logs.snapshot()
				return nil, p.fail
			case p.ready:
				boot := ParseBoot(w.logs.snapshot())
				boot.Ready = d.now().Sub(start).Seconds()
				return &Ready{Endpoint: endpoint, Boot: boot, Logs: w.logs.snapshot()}, nil
			case p.refused && w.phase == "serving":
				if refusedSince.IsZero() {
					refusedSince = d.now()
				}
				if d.now().Sub(refusedSince) > opts.UnreachableAfter {
					return nil, w.fail(ReasonUnreachable, fmt.Sprintf("the log says the API server is up, but %s refused connections for %s: is the port published (ports:) and the endpoint right?", endpoint, opts.UnreachableAfter), "")
				}
			default:
				refusedSince = time.Time{}
			}
		case <-ticker.C:
			r, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			if err != nil {
				return nil, w.fail(ReasonExited, fmt.Sprintf("the container is gone: %v", err), "")
			}
			st := r.Container.State
			if st != nil && (st.Status == container.StateExited || st.Status == container.StateDead) {
				return nil, w.exited(ctx, lines)
			}
			if r.Container.RestartCount > w.restarts0 {
				return nil, w.exited(ctx, lines)
			}
			if st != nil && st.Health != nil && st.Health.Status == container.Unhealthy {
				return nil, w.fail(ReasonUnhealthy, fmt.Sprintf("Docker's health check reports unhealthy while vLLM was %s", w.phase), "")
			}
			if endpoint == "" {
				if endpoint, err = d.Endpoint(s, r.Container.NetworkSettings); err != nil {
					return nil, w.fail(ReasonUnreachable, err.Error(), "")
				}
			}
			if !probing && st != nil && st.Running {
				probing = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := probe(ctx, endpoint, s, opts.DecodeTimeout)
					select {
					case probes <- p:
					case <-ctx.Done():
					}
				}()
			}
		case <-deadline.C:
			return nil, w.fail(ReasonHealthTimeout, fmt.Sprintf("not ready after %s; still %s for %s", opts.Timeout, w.phase, d.now().Sub(w.phaseAt).Round(time.Second)), "")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func publishedPort(ns *container.NetworkSettings, port int) string {
	if ns == nil {
		return ""
	}
	p, err := network.ParsePort(fmt.Sprintf("%d/tcp", port))
	if err != nil {
		return ""
	}
	for _, b := range ns.Ports[p] {
		if b.HostPort != "" {
			return b.HostPort
		}
	}
	return ""
}

// watch is WaitReady's view of the container.
type watch struct {
	d         *Deployer
	s         *Spec
	id        string
	logs      *ring
	phase     string
	phaseAt   time.Time
	restarts0 int
	onPhase   func(string)
	exitCode  int // from the die event, which outlives a restart
	exitKnown bool
}

func (w *watch) fail(r Reason, detail, line string) *Failure {
	return &Failure{Reason: r, Detail: detail, Line: line, Phase: w.phase, Logs: w.logs.snapshot(), DetectedAt: w.d.now()}
}

// line takes one log line: it may advance the phase or prove a failure.
func (w *watch) line(l logLine) *Failure {
	w.logs.add(l.text)
	if p, ok := phaseOf(l.text); ok && p != w.phase {
		w.phase, w.phaseAt = p, w.d.now()
		if w.onPhase != nil {
			w.onPhase(p)
		}
	}
	if r, ok := classifyLine(l.text); ok {
		f := w.fail(r, fmt.Sprintf("vLLM failed while %s", w.phase), l.text)
		f.LineAt = l.at
		return f
	}
	return nil
}

// exited explains a container that stopped or restarted: the last log lines
// (read until the stream ends, at most 1 s more), the exit code, and the
// restart policy's RestartCount.
func (w *watch) exited(ctx context.Context, lines <-chan logLine) *Failure {
	drain := time.After(time.Second)
	for lines != nil {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			if f := w.line(l); f != nil {
				w.decorate(ctx, f)
				return f
			}
		case <-drain:
			lines = nil
		}
	}
	f := w.fail(ReasonExited, "", "")
	f.ExitCode = -1
	w.decorate(ctx, f)
	logs := w.logs.snapshot()
	for i := len(logs) - 1; i >= 0; i-- {
		if strings.Contains(logs[i], "Traceback (most recent call last)") {
			f.Reason = ReasonBootCrash
			f.Line = lastNonEmpty(logs[i:])
			break
		}
	}
	if f.Line == "" {
		f.Line = lastNonEmpty(logs)
	}
	code := fmt.Sprintf("with code %d", f.ExitCode)
	if f.ExitCode < 0 {
		code = "(exit code not seen: already restarted)"
	}
	switch {
	case f.Restarts > 0 && f.Reason == ReasonExited:
		f.Reason = ReasonCrashLoop
		f.Detail = fmt.Sprintf("exited %s while %s and was restarted %d time(s) by its restart policy", code, w.phase, f.Restarts)
	default:
		f.Detail = fmt.Sprintf("the container exited %s while vLLM was %s", code, w.phase)
	}
	return f
}

// decorate adds the exit code and restarts to a failure; with a restart
// policy it waits briefly for Docker's restart, to report the crash loop.
func (w *watch) decorate(ctx context.Context, f *Failure) {
	policy := w.s.Host.RestartPolicy
	deadline := time.Now().Add(3 * time.Second)
	for {
		r, err := w.d.cli.ContainerInspect(context.WithoutCancel(ctx), w.id, client.ContainerInspectOptions{})
		if err != nil {
			return
		}
		switch {
		case w.exitKnown:
			f.ExitCode = w.exitCode
		case r.Container.State != nil && !r.Container.State.Running:
			// A restarted container reports 0: only a stopped or
			// restarting one still holds its last exit code.
			f.ExitCode = r.Container.State.ExitCode
		}
		f.Restarts = r.Container.RestartCount - w.restarts0
		if f.Restarts > 0 || policy.IsNone() || policy.Name == "" || time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lastNonEmpty(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) != "" {
			return lines[i]
		}
	}
	return ""
}

// logLine is one container log line and when Docker received it.
type logLine struct {
	at   time.Time
	text string
}

// followLogs streams the container's log lines (stdout and stderr) into out
// until the stream ends or ctx is cancelled, then closes out.
func (d *Deployer) followLogs(ctx context.Context, id string, out chan<- logLine) {
	defer close(out)
	rc, err := d.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true})
	if err != nil {
		return
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l := logLine{text: sc.Text()}
		if ts, rest, ok := strings.Cut(l.text, " "); ok {
			if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				l.at, l.text = t, rest
			}
		}
		select {
		case out <- l:
		case <-ctx.Done():
			return
		}
	}
}

// probe runs the readiness checks in order: /health 200, /v1/models lists
// the served model, a one-token chat completion decodes.
func probe(ctx context.Context, endpoint string, s *Spec, decodeTimeout time.Duration) probeResult {
	hc := &http.Client{}
	do := func(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, endpoint+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if s.APIKey != "" {
			req.Header.Set("Authorization", "Bearer "+s.APIKey)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, b, err
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	code, _, err := do(short, "GET", "/health", nil)
	if err != nil {
		return probeResult{stage: "health", err: err, refused: errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)}
	}
	if code != http.StatusOK {
		return probeResult{stage: "health", err: fmt.Errorf("/health answered %d", code)}
	}
	code, body, err := do(short, "GET", "/v1/models", nil)
	switch {
	case err != nil:
		return probeResult{stage: "models", err: err}
	case code == http.StatusUnauthorized:
		return probeResult{fail: &Failure{Reason: ReasonUnreachable, Detail: fmt.Sprintf("%s/v1/models answered 401: the server rejected the API key vgrid read from the profile's --api-key", endpoint)}}
	case code != http.StatusOK:
		return probeResult{stage: "models", err: fmt.Errorf("/v1/models answered %d", code)}
	}
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	json.Unmarshal(body, &models)
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
		if m.ID == s.ServedModel {
			ids = nil
			break
		}
	}
	if ids != nil || len(models.Data) == 0 {
		return probeResult{fail: &Failure{Reason: ReasonConfigDrift, Detail: fmt.Sprintf("the server serves %v, not %q", ids, s.ServedModel)}}
	}
	dctx, dcancel := context.WithTimeout(ctx, decodeTimeout)
	defer dcancel()
	req, _ := json.Marshal(map[string]any{"model": s.ServedModel, "max_tokens": 1, "stream": false,
		"messages": []map[string]string{{"role": "user", "content": "Reply with OK."}}})
	code, body, err = do(dctx, "POST", "/v1/chat/completions", req)
	if err != nil {
		return probeResult{stage: "decode", err: fmt.Errorf("decode probe: %w", err)}
	}
	var out struct {
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &out) != nil || out.Usage.CompletionTokens < 1 {
		return probeResult{stage: "decode", err: fmt.Errorf("decode probe answered %d: %.200s", code, body)}
	}
	return probeResult{ready: true}
}

// ProbeReady runs vgrid's readiness checks once against any vLLM endpoint:
// ready when /health is 200, /v1/models lists model and a one-token chat
// completion decodes. A non-nil *Failure is a definitive answer (wrong
// model, rejected key); err says what is not ready yet. refused reports a
// connection refused (nothing listens).
func ProbeReady(ctx context.Context, endpoint, model, apiKey string, decodeTimeout time.Duration) (ready, refused bool, fail *Failure, err error) {
	p := probe(ctx, endpoint, &Spec{ServedModel: model, APIKey: apiKey}, decodeTimeout)
	return p.ready, p.refused, p.fail, p.err
}

// ClassifyLine returns the failure a vLLM log line proves, if any.
func ClassifyLine(line string) (Reason, bool) { return classifyLine(line) }

// PhaseOf returns the vLLM boot phase a log line starts, if any.
func PhaseOf(line string) (string, bool) { return phaseOf(line) }

// Diagnose explains a service that stopped answering: nil while its
// container runs, else a Failure from its exit code, restarts and the last
// 200 log lines (EngineDeadError -> engine_dead, ...).
func (d *Deployer) Diagnose(ctx context.Context, s *Spec) *Failure {
	c, err := d.Find(ctx, s)
	if err != nil {
		return &Failure{Reason: ReasonExited, Detail: err.Error()}
	}
	if c == nil {
		return &Failure{Reason: ReasonExited, Detail: "the container is gone"}
	}
	if c.State != nil && c.State.Running && c.State.Health != nil && c.State.Health.Status == container.Unhealthy {
		return &Failure{Reason: ReasonUnhealthy, Detail: "Docker's health check reports unhealthy"}
	}
	if c.State != nil && c.State.Running && c.RestartCount == 0 {
		return nil
	}
	f := &Failure{Reason: ReasonExited, Restarts: c.RestartCount, ExitCode: -1}
	if c.State != nil && !c.State.Running {
		f.ExitCode = c.State.ExitCode
	}
	if rc, err := d.cli.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "200"}); err == nil {
		var buf bytes.Buffer
		stdcopy.StdCopy(&buf, &buf, rc)
		rc.Close()
		f.Logs = strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	}
	for i := len(f.Logs) - 1; i >= 0; i-- {
		if r, ok := classifyLine(f.Logs[i]); ok {
			f.Reason, f.Line = r, f.Logs[i]
			break
		}
	}
	if f.Line == "" {
		f.Line = lastNonEmpty(f.Logs)
		if c.RestartCount > 0 {
			f.Reason = ReasonCrashLoop
		}
	}
	f.Detail = fmt.Sprintf("the server stopped answering: container %s, exit code %d, restarts %d", c.State.Status, f.ExitCode, c.RestartCount)
	return f
}

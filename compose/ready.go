package compose

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/vgrid/vgrid/vllm"
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

// Ready is a service that answered a decode probe.
type Ready struct {
	Endpoint string
	Boot     failure.Boot
	Logs     []string
}

// WaitReady waits until the service's container serves a decoded token, or
// returns a *failure.Failure as soon as the log, Docker's events or state prove it
// will not: within one probe interval of the fact.
func (d *Deployer) WaitReady(ctx context.Context, s *Spec, res *Result, opts ReadyOptions) (*Ready, error) {
	r, f := d.waitReady(ctx, s, res, opts)
	if f != nil {
		return nil, f
	}
	return r, ctx.Err()
}

func (d *Deployer) waitReady(ctx context.Context, s *Spec, res *Result, opts ReadyOptions) (*Ready, *failure.Failure) {
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
	probes := make(chan vllm.ProbeResult, 1)
	probing := false

	w := &watch{d: d, s: s, id: id, bw: failure.NewBootWatch("starting the container", d.now()), since: time.Now()}
	w.bw.OnPhase, w.bw.UnreachableAfter = opts.OnPhase, opts.UnreachableAfter
	if r, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil {
		w.restarts0 = r.Container.RestartCount
	}
	ticker := time.NewTicker(opts.Interval)
	defer ticker.Stop()
	deadline := time.NewTimer(opts.Timeout)
	defer deadline.Stop()
	endpoint := ""

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
				return nil, w.fail(failure.ReasonUnhealthy, fmt.Sprintf("Docker's health check reports unhealthy while vLLM was %s", w.bw.Phase()), "")
			}
		case <-ev.Err:
			ev.Err = nil // events are a speed-up; the ticker's inspect still sees everything
		case p := <-probes:
			probing = false
			switch ready, f := w.bw.Probe(p, endpoint, d.now()); {
			case f != nil:
				return nil, f
			case ready:
				return &Ready{Endpoint: endpoint, Boot: w.bw.Boot(d.now().Sub(start)), Logs: w.bw.Logs()}, nil
			}
		case <-ticker.C:
			r, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			if err != nil {
				return nil, w.fail(failure.ReasonExited, fmt.Sprintf("the container is gone: %v", err), "")
			}
			st := r.Container.State
			if st != nil && (st.Status == container.StateExited || st.Status == container.StateDead) {
				return nil, w.exited(ctx, lines)
			}
			if r.Container.RestartCount > w.restarts0 {
				return nil, w.exited(ctx, lines)
			}
			if st != nil && st.Health != nil && st.Health.Status == container.Unhealthy {
				return nil, w.fail(failure.ReasonUnhealthy, fmt.Sprintf("Docker's health check reports unhealthy while vLLM was %s", w.bw.Phase()), "")
			}
			if endpoint == "" {
				if endpoint, err = d.Endpoint(s, r.Container.NetworkSettings); err != nil {
					return nil, w.fail(failure.ReasonUnreachable, err.Error(), "")
				}
			}
			if !probing && st != nil && st.Running {
				probing = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := vllm.Probe(ctx, endpoint, s.ServedModel, s.APIKey, opts.DecodeTimeout)
					select {
					case probes <- p:
					case <-ctx.Done():
					}
				}()
			}
		case <-deadline.C:
			return nil, w.bw.Timeout(opts.Timeout, d.now())
		case <-ctx.Done():
			return nil, nil
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
	bw        *failure.BootWatch // what vLLM's output proves, its phase and last lines
	restarts0 int
	since     time.Time // when the watch began (this machine's clock; the event lookup allows a second of skew)
	exitCode  int       // from the die event, which outlives a restart
	exitKnown bool
}

func (w *watch) fail(r failure.Reason, detail, line string) *failure.Failure {
	return w.bw.Fail(r, detail, line, w.d.now())
}

// line feeds one log line to the boot watch.
func (w *watch) line(l logLine) *failure.Failure { return w.bw.Line(l.text, l.at, w.d.now()) }

// exited explains a container that stopped or restarted: the last log lines
// (read until the stream ends, at most 1 s more), the exit code, and the
// restart policy's RestartCount.
func (w *watch) exited(ctx context.Context, lines <-chan logLine) *failure.Failure {
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
	if f := w.bw.Ended(w.d.now()); f != nil { // EngineDeadError, no root cause found
		w.decorate(ctx, f)
		return f
	}
	f := w.fail(failure.ReasonExited, "", "")
	f.ExitCode = -1
	w.decorate(ctx, f)
	logs := w.bw.Logs()
	for i := len(logs) - 1; i >= 0; i-- {
		if strings.Contains(logs[i], "Traceback (most recent call last)") {
			f.Reason = failure.ReasonBootCrash
			f.Line = lastNonEmpty(logs[i:])
			break
		}
	}
	if f.Line == "" {
		f.Line = lastNonEmpty(logs)
	}
	code := "with " + exitText(f.ExitCode)
	switch {
	case f.Restarts > 0 && f.Reason == failure.ReasonExited:
		f.Reason = failure.ReasonCrashLoop
		f.Detail = fmt.Sprintf("exited %s while %s and was restarted %d time(s) by its restart policy", code, w.bw.Phase(), f.Restarts)
	default:
		f.Detail = fmt.Sprintf("the container exited %s while vLLM was %s", code, w.bw.Phase())
	}
	return f
}

// decorate adds the exit code and restarts to a failure; with a restart
// policy it waits briefly for Docker's restart, to report the crash loop.
func (w *watch) decorate(ctx context.Context, f *failure.Failure) {
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
		default:
			// Restarted before its die event reached the live stream:
			// the engine's event history still has it.
			if c, ok := w.lastDie(ctx); ok {
				w.exitCode, w.exitKnown = c, true
				f.ExitCode = c
			}
		}
		f.Restarts = r.Container.RestartCount - w.restarts0
		if f.Restarts > 0 || policy.IsNone() || policy.Name == "" || time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lastDie reads the exit code of the container's latest die event since
// the watch began, from the engine's event history.
func (w *watch) lastDie(ctx context.Context) (int, bool) {
	code, _, ok := w.d.lastExit(ctx, w.id, w.since)
	return code, ok
}

// lastExit reads the exit code and time of a container's latest die event
// since since (zero: as far back as the engine remembers) from the
// engine's event history, bounded to 2 s: a restart policy has already
// replaced the state that held them.
func (d *Deployer) lastExit(ctx context.Context, id string, since time.Time) (code int, at time.Time, ok bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	opts := client.EventsListOptions{
		Until:   strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10),
		Filters: client.Filters{}.Add("container", id).Add("type", "container").Add("event", "die"),
	}
	if !since.IsZero() {
		opts.Since = strconv.FormatInt(since.Add(-time.Second).Unix(), 10)
	}
	ev := d.cli.Events(ctx, opts)
	for {
		select {
		case m, open := <-ev.Messages:
			if !open {
				return code, at, ok
			}
			if c, err := strconv.Atoi(m.Actor.Attributes["exitCode"]); err == nil {
				code, at, ok = c, time.Unix(0, m.TimeNano), true
			}
		case <-ev.Err:
			return code, at, ok
		case <-ctx.Done():
			return code, at, ok
		}
	}
}

// exitText says what an exit code means: the signal that ended the
// process, where it is one.
func exitText(code int) string {
	switch {
	case code < 0:
		return "an exit code not seen"
	case code == 137:
		return "code 137 (SIGKILL: the kernel's OOM killer, or kill -9)"
	case code == 139:
		return "code 139 (SIGSEGV: the process crashed)"
	case code > 128 && code < 160:
		return fmt.Sprintf("code %d (signal %d)", code, code-128)
	}
	return fmt.Sprintf("code %d", code)
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

// Diagnose explains a service that stopped answering: nil while its
// container runs, else a Failure from its exit code, restarts and the last
// 200 log lines (EngineDeadError -> engine_dead, ...).
func (d *Deployer) Diagnose(ctx context.Context, s *Spec) *failure.Failure {
	c, err := d.Find(ctx, s)
	if err != nil {
		return &failure.Failure{Reason: failure.ReasonExited, Detail: err.Error()}
	}
	if c == nil {
		return &failure.Failure{Reason: failure.ReasonExited, Detail: "the container is gone"}
	}
	running := c.State != nil && c.State.Running
	if running && c.RestartCount == 0 {
		if c.State.Health != nil && c.State.Health.Status == container.Unhealthy {
			return &failure.Failure{Reason: failure.ReasonUnhealthy, Detail: "Docker's health check reports unhealthy"}
		}
		return nil
	}
	// Stopped, or restarted by its restart policy (Docker then reports
	// the health of the server that died, and an exit code of 0): the
	// server that was measured is explained by its exit and its log.
	f := &failure.Failure{Reason: failure.ReasonExited, Restarts: c.RestartCount, ExitCode: -1}
	logs := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "200"}
	status := "in an unknown state"
	switch {
	case c.State == nil:
	case !running:
		status, f.ExitCode = string(c.State.Status), c.State.ExitCode
	default:
		status = string(c.State.Status)
		created, _ := time.Parse(time.RFC3339Nano, c.Created)
		if code, at, ok := d.lastExit(ctx, c.ID, created); ok {
			// The log of the server that died, not of the one booting.
			f.ExitCode = code
			logs.Until = strconv.FormatFloat(float64(at.UnixNano())/1e9, 'f', 9, 64)
		}
	}
	if rc, err := d.cli.ContainerLogs(ctx, c.ID, logs); err == nil {
		var buf bytes.Buffer
		stdcopy.StdCopy(&buf, &buf, rc)
		rc.Close()
		f.Logs = strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	}
	if c, ok := vllm.Classify(f.Logs); ok {
		f.Reason, f.Line = failure.FromCause(c.Cause), c.Line
	}
	if f.Line == "" {
		f.Line = lastNonEmpty(f.Logs)
		if c.RestartCount > 0 {
			f.Reason = failure.ReasonCrashLoop
		}
	}
	f.Detail = fmt.Sprintf("the server stopped answering: its container exited with %s", exitText(f.ExitCode))
	if c.RestartCount > 0 {
		f.Detail += fmt.Sprintf(" and was restarted %d time(s) by its restart policy (now %s)", c.RestartCount, status)
	}
	return f
}

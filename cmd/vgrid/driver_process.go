package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/internal/proc"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/vllm"
)

// processDriver runs each candidate as a child process from a vllm
// serve-style command (as vllm bench sweep does): the candidate's flags are
// rendered into the command's arguments. Before the run nothing of vgrid's
// runs there, so "restore" stops the process; "crown" leaves the champion
// running in its own session, its output in a log file.
type processDriver struct {
	prefix   []string // up to and including "serve"
	args     vllm.Flags
	env      []string
	endpoint string
	logDir   string
	log      zerolog.Logger
	sim      bool // the simulator from this binary (vgrid sim serve)

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	lines   []string
	phase   string
	logFile string
	flags   vllm.Flags
	started time.Time
	// serverStart is when the server this trial measures started, as its
	// /metrics says; zero when it does not say.
	serverStart time.Time
}

func newProcessDriver(t orchestrator.Target, environ []string, logDir string, log zerolog.Logger) (*processDriver, error) {
	if t.Endpoint == "" {
		return nil, fmt.Errorf("target.endpoint is required with the process driver (e.g. http://127.0.0.1:8011, matching the command's --port)")
	}
	cmd := append([]string(nil), t.Command...)
	if cmd[0] == "vgrid" {
		// The simulator from this same binary: nothing else to install.
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd[0] = self
	}
	i := 0
	for i < len(cmd) && cmd[i] != "serve" {
		i++
	}
	if i == len(cmd) {
		return nil, fmt.Errorf("target.command %q has no serve subcommand (want e.g. [vllm, serve, --model, ...])", strings.Join(t.Command, " "))
	}
	env := append([]string(nil), environ...)
	for k, v := range t.Env {
		env = append(env, k+"="+v)
	}
	return &processDriver{prefix: cmd[:i+1], args: vllm.ParseArgs(cmd[i+1:]), env: env, endpoint: strings.TrimRight(t.Endpoint, "/"), logDir: logDir, log: log,
		sim: t.Command[0] == "vgrid"}, nil
}

func (p *processDriver) Key() string {
	return orchestrator.Target{Driver: "process", Endpoint: p.endpoint}.Key()
}

func (p *processDriver) Prepare(ctx context.Context, runID string) (string, error) {
	if answers(ctx, p.endpoint) {
		return "", fmt.Errorf("something already answers at %s; stop it (a champion left by an earlier run?) or change the port", p.endpoint)
	}
	return "", os.MkdirAll(p.logDir, 0o755)
}

// answers reports whether any HTTP server answers at endpoint.
func answers(ctx context.Context, endpoint string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", endpoint+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// Resume needs nothing: the base command is in the grid, not on disk.
func (p *processDriver) Resume(ctx context.Context, runID, backup string) error {
	return os.MkdirAll(p.logDir, 0o755)
}

func (p *processDriver) Render(ctx context.Context, c orchestrator.Candidate) (*orchestrator.Rendered, error) {
	flags := p.args.Apply(c.Settings)
	words := flags.Words()
	full := append(append([]string(nil), p.prefix...), words...)
	sum := sha256.Sum256([]byte(strings.Join(full, "\x00")))
	shown := append([]string(nil), words...)
	for i := 1; i < len(shown); i++ {
		if vllm.CanonicalName(shown[i-1]) == "api-key" {
			shown[i] = "<redacted>"
		}
	}
	return &orchestrator.Rendered{Candidate: c, Hash: hex.EncodeToString(sum[:]), Words: shown, Image: p.program(), Private: full}, nil
}

// program names what runs the server: "vllm", or "vgrid sim" for the
// simulator from this binary.
func (p *processDriver) program() string {
	if p.sim {
		return "vgrid sim"
	}
	return filepath.Base(p.prefix[0])
}

// ServerEnv is the environment the server runs with.
func (p *processDriver) ServerEnv() map[string]string {
	out := map[string]string{}
	for _, kv := range p.env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// stop ends the running child: SIGTERM, then SIGKILL after 10 s.
func (p *processDriver) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

func (p *processDriver) start(full []string, detach bool) error {
	p.stop()
	name := fmt.Sprintf("vllm-%d.log", time.Now().UnixNano())
	logFile := filepath.Join(p.logDir, name)
	f, err := os.Create(logFile)
	if err != nil {
		return fmt.Errorf("process log: %w", err)
	}
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, f, f
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		// A trial's server dies with vgrid, even on kill -9, so a resumed
		// run finds the port free.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return &orchestrator.Failure{Reason: orchestrator.ReasonExited, Detail: fmt.Sprintf("cannot start %s: %v", full[0], err)}
	}
	f.Close()
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.lines, p.phase, p.logFile, p.started = cmd, exited, nil, "starting the process", logFile, time.Now()
	p.serverStart = time.Time{}
	p.flags = vllm.ParseArgs(full[len(p.prefix):])
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

func (p *processDriver) Deploy(ctx context.Context, r *orchestrator.Rendered) error {
	return p.start(r.Private.([]string), false)
}

// readLog takes the new lines of the process log.
func (p *processDriver) readLog(offset *int64) []string {
	f, err := os.Open(p.logFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	f.Seek(*offset, 0)
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		*offset += int64(len(sc.Bytes()) + 1)
		out = append(out, sc.Text())
	}
	return out
}

func (p *processDriver) failure(reason orchestrator.Reason, detail, line string) *orchestrator.Failure {
	p.mu.Lock()
	defer p.mu.Unlock()
	logs := p.lines
	if len(logs) > 200 {
		logs = logs[len(logs)-200:]
	}
	return &orchestrator.Failure{Reason: reason, Detail: detail, Line: line, Phase: p.phase, Logs: append([]string(nil), logs...)}
}

func (p *processDriver) WaitReady(ctx context.Context, timeout time.Duration) (*orchestrator.Ready, error) {
	deadline := time.Now().Add(timeout)
	var offset int64
	model, _ := p.flags.Get("model")
	if v, ok := p.flags.Get("served-model-name"); ok && v != "" {
		model = strings.Fields(v)[0]
	}
	key, _ := p.flags.Get("api-key")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, l := range p.readLog(&offset) {
			p.mu.Lock()
			p.lines = append(p.lines, l)
			if ph, ok := vllm.PhaseOf(l); ok {
				p.phase = ph
			}
			p.mu.Unlock()
			if c, ok := vllm.ClassifyLine(l); ok {
				return nil, p.failure(orchestrator.FromCause(c), "vLLM failed while "+p.phase, l)
			}
		}
		select {
		case <-p.exited:
			p.mu.Lock()
			err := p.waitErr
			p.mu.Unlock()
			for _, l := range p.readLog(&offset) {
				p.lines = append(p.lines, l)
				if c, ok := vllm.ClassifyLine(l); ok {
					return nil, p.failure(orchestrator.FromCause(c), "vLLM failed while "+p.phase, l)
				}
			}
			last := ""
			if n := len(p.lines); n > 0 {
				last = p.lines[n-1]
			}
			return nil, p.failure(orchestrator.ReasonExited, fmt.Sprintf("the process exited (%v) while %s", err, p.phase), last)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		pr := vllm.Probe(ctx, p.endpoint, model, key, 30*time.Second)
		if pr.Final != "" {
			reason := orchestrator.ReasonUnreachable
			if pr.Drift {
				reason = orchestrator.ReasonConfigDrift
			}
			return nil, p.failure(reason, pr.Final, "")
		}
		if pr.Ready {
			if f := p.claim(ctx); f != nil {
				return nil, f
			}
			boot := vllm.ParseBoot(p.lines)
			return &orchestrator.Ready{Endpoint: p.endpoint, Model: model, APIKey: key,
				Boot: orchestrator.Boot{Boot: boot, Ready: time.Since(p.started).Seconds()}}, nil
		}
		if time.Now().After(deadline) {
			return nil, p.failure(orchestrator.ReasonHealthTimeout, fmt.Sprintf("not ready after %s; still %s", timeout, p.phase), "")
		}
	}
}

// claim checks that the server that answered is the one this trial
// started: the child still runs, and the server's process did not start
// before it (another vgrid, on another store, may serve the same port).
func (p *processDriver) claim(ctx context.Context) *orchestrator.Failure {
	select {
	case <-p.exited:
		return p.failure(orchestrator.ReasonExited, "the server this trial started exited while another answered at "+p.endpoint, "")
	default:
	}
	p.mu.Lock()
	pid := 0
	if p.cmd != nil {
		pid = p.cmd.Process.Pid
	}
	p.mu.Unlock()
	if u, err := url.Parse(p.endpoint); err == nil && pid > 0 {
		if port, err := strconv.Atoi(u.Port()); err == nil {
			// Exact where the platform can tell: who holds the listening socket.
			if owns, known := proc.OwnsListener(pid, port); known && !owns {
				return p.failure(orchestrator.ReasonForeignServer, fmt.Sprintf("the server answering at %s is not the process this trial started (pid %d does not hold port %d): another process serves this endpoint (another vgrid, or a server left running), and its answers are not this candidate's",
					p.endpoint, pid, port), "")
			}
		}
	}
	start, err := vllm.ServerStart(ctx, p.endpoint)
	if err != nil || start.IsZero() {
		return nil // nothing to compare: the host lock on the target still holds
	}
	if start.Before(p.started.Add(-2 * time.Second)) {
		return p.failure(orchestrator.ReasonForeignServer, fmt.Sprintf("the server answering at %s started at %s, before this trial started its own at %s: another process serves this endpoint (another vgrid, or a server left running), and its answers are not this candidate's",
			p.endpoint, start.Format(time.RFC3339Nano), p.started.Format(time.RFC3339Nano)), "")
	}
	p.serverStart = start
	return nil
}

// same checks, before and after each benchmark, that the endpoint is still
// served by the server this trial measured.
func (p *processDriver) same(ctx context.Context) *orchestrator.Failure {
	if p.serverStart.IsZero() {
		return nil
	}
	start, err := vllm.ServerStart(ctx, p.endpoint)
	if err != nil || start.IsZero() {
		return nil // unreachable or silent: Diagnose's other checks say why
	}
	if d := start.Sub(p.serverStart); d > time.Millisecond || d < -time.Millisecond {
		return p.failure(orchestrator.ReasonForeignServer, fmt.Sprintf("the server at %s is not the one this trial measured: it started at %s, the trial's at %s",
			p.endpoint, start.Format(time.RFC3339Nano), p.serverStart.Format(time.RFC3339Nano)), "")
	}
	return nil
}

func (p *processDriver) Verify(ctx context.Context, r *orchestrator.Rendered) (map[string]string, error) {
	if f := p.same(ctx); f != nil {
		return nil, f
	}
	return verifyEndpoint(ctx, p.endpoint, p.flags)
}

func (p *processDriver) Diagnose(ctx context.Context) *orchestrator.Failure {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return nil
	}
	select {
	case <-exited:
	default:
		if answers(ctx, p.endpoint) {
			if f := p.same(ctx); f != nil {
				return f
			}
			return nil
		}
		select { // nothing answers: a dying engine takes a moment to exit
		case <-exited:
		case <-time.After(2 * time.Second):
			return p.failure(orchestrator.ReasonUnreachable, "the server stopped answering during the benchmark", "")
		}
	}
	var offset int64
	lines := p.readLog(&offset)
	p.mu.Lock()
	p.lines = lines
	p.mu.Unlock()
	for i := len(lines) - 1; i >= 0; i-- {
		if c, ok := vllm.ClassifyLine(lines[i]); ok {
			return p.failure(orchestrator.FromCause(c), "the server died during the benchmark", lines[i])
		}
	}
	return p.failure(orchestrator.ReasonExited, "the server process exited during the benchmark", "")
}

func (p *processDriver) Restore(ctx context.Context) error {
	p.stop()
	return nil
}

func (p *processDriver) Crown(ctx context.Context, c orchestrator.Candidate) error {
	r, err := p.Render(ctx, c)
	if err != nil {
		return err
	}
	if err := p.start(r.Private.([]string), true); err != nil {
		return err
	}
	if _, err := p.WaitReady(ctx, 30*time.Minute); err != nil {
		return err
	}
	p.mu.Lock()
	p.cmd = nil // left running: it is the service now
	p.mu.Unlock()
	return nil
}

func (p *processDriver) Close() error {
	p.stop()
	return nil
}

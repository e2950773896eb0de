package driver

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/internal/proc"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/vllm"
)

// Process runs each candidate as a child process from a vllm serve-style
// command (as vllm bench sweep does): the candidate's flags are rendered
// into the command's arguments. Before the run nothing of vgrid's runs
// there, so "restore" stops the process; "crown" leaves the champion
// running in its own session, its output in a log file. One child runs at
// a time: deploying the next stops the previous one.
type Process struct {
	prefix   []string // up to and including "serve"
	args     vllm.Flags
	env      []string
	endpoint string
	logDir   string
	log      zerolog.Logger
	sim      bool // the simulator from this binary (vgrid sim serve)

	mu  sync.Mutex
	cur *ProcessDeployment // the child running now, if any

	flags FlagCheck
}

// NewProcess checks the target's command and endpoint; nothing is started.
// Server logs go to logDir (the run's directory).
func NewProcess(t orchestrator.Target, environ []string, logDir string, log zerolog.Logger) (*Process, error) {
	if t.Endpoint == "" {
		return nil, fmt.Errorf("target.endpoint is required with the process driver (e.g. http://127.0.0.1:8011, matching the command's --port)")
	}
	cmd := append([]string(nil), t.Command...)
	sim := cmd[0] == "vgrid"
	if sim {
		// The simulator from this same binary: nothing else to install.
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd[0] = self
	}
	i := 0
	for i < len(cmd) && cmd[i] != "serve" && cmd[i] != "vllm.entrypoints.openai.api_server" {
		i++
	}
	if i == len(cmd) {
		return nil, fmt.Errorf("target.command %q has no serve subcommand (want e.g. [vllm, serve, --model, ...] or [python3, -m, vllm.entrypoints.openai.api_server, ...])", strings.Join(t.Command, " "))
	}
	env := ServerEnviron(environ) // never vgrid's token, engine or credentials
	for k, v := range t.Env {
		env = append(env, k+"="+v)
	}
	return &Process{prefix: cmd[:i+1], args: vllm.ParseArgs(cmd[i+1:]), env: env, endpoint: strings.TrimRight(t.Endpoint, "/"), logDir: logDir, log: log, sim: sim}, nil
}

// SetProgram replaces the program the command runs (tests run their own
// binary as vgrid).
func (p *Process) SetProgram(path string) { p.prefix[0] = path }

// CheckTarget says whether the server's program can be started: it is
// on PATH (or a path that exists). Nothing is started.
func (p *Process) CheckTarget(ctx context.Context) error {
	if _, err := exec.LookPath(p.prefix[0]); err != nil {
		return fmt.Errorf("target.command runs %q, which cannot be started here (%v): install vLLM where vgrid runs, or give the program's full path in target.command", p.prefix[0], err)
	}
	return nil
}

// Prepare refuses an endpoint that something already answers on.
func (p *Process) Prepare(ctx context.Context, runID string) (string, error) {
	if answers(ctx, p.endpoint) {
		return "", fmt.Errorf("something already answers at %s; stop it (a champion left by an earlier run?) or change the port", p.endpoint)
	}
	return "", os.MkdirAll(p.logDir, 0o755)
}

// Resume needs nothing: the base command is in the grid, not on disk.
func (p *Process) Resume(ctx context.Context, runID, backup string) error {
	return os.MkdirAll(p.logDir, 0o755)
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

// program names what runs the server: "vllm", or "vgrid sim" for the
// simulator from this binary.
func (p *Process) program() string {
	if p.sim {
		return "vgrid sim"
	}
	return filepath.Base(p.prefix[0])
}

// ServerEnv is the environment the server runs with.
func (p *Process) ServerEnv() map[string]string {
	out := map[string]string{}
	for _, kv := range p.env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// Render renders the candidate into the command's arguments.
func (p *Process) Render(ctx context.Context, c orchestrator.Candidate) (orchestrator.Plan, error) {
	return p.render(c), nil
}

func (p *Process) render(c orchestrator.Candidate) *processPlan {
	flags := p.args.Apply(c.Settings)
	full := append(append([]string(nil), p.prefix...), flags.Words()...)
	sum := sha256.Sum256([]byte(strings.Join(full, "\x00")))
	return &processPlan{p: p, full: full, flags: flags,
		rendered: orchestrator.Rendered{Candidate: c, Hash: hex.EncodeToString(sum[:]), Words: Redacted(flags.Words()), Image: p.program()}}
}

// stop ends the running child, if any.
func (p *Process) stop() {
	p.mu.Lock()
	cur := p.cur
	p.cur = nil
	p.mu.Unlock()
	if cur != nil {
		terminate(cur.cmd.Process, cur.exited, 10*time.Second)
	}
}

// Restore stops the trial's server: before the run nothing of vgrid's ran.
func (p *Process) Restore(ctx context.Context) error {
	p.stop()
	return nil
}

// Crown starts the champion detached from vgrid and waits until it serves;
// it keeps running after vgrid exits.
func (p *Process) Crown(ctx context.Context, c orchestrator.Candidate) error {
	dep, err := p.render(c).start(true)
	if err != nil {
		return err
	}
	if _, err := dep.WaitReady(ctx, 30*time.Minute); err != nil {
		return err
	}
	p.mu.Lock()
	p.cur = nil // left running: it is the service now
	p.mu.Unlock()
	return nil
}

// Close stops the running child.
func (p *Process) Close() error {
	p.stop()
	return nil
}

// processPlan is a candidate's command line.
type processPlan struct {
	p        *Process
	rendered orchestrator.Rendered
	full     []string
	flags    vllm.Flags
}

func (pl *processPlan) Rendered() orchestrator.Rendered { return pl.rendered }

func (pl *processPlan) Deploy(ctx context.Context) (orchestrator.Deployment, error) {
	return pl.start(false)
}

// start stops the previous child and starts this one, its output in a log
// file of its own.
func (pl *processPlan) start(detach bool) (*ProcessDeployment, error) {
	p := pl.p
	p.stop()
	if err := os.MkdirAll(p.logDir, 0o755); err != nil {
		return nil, fmt.Errorf("process log directory: %w", err)
	}
	logFile := filepath.Join(p.logDir, fmt.Sprintf("vllm-%d.log", time.Now().UnixNano()))
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600) // server logs may quote prompts and keys: the store's user only
	if err != nil {
		return nil, fmt.Errorf("process log: %w", err)
	}
	cmd := exec.Command(pl.full[0], pl.full[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, f, f
	cmd.SysProcAttr = childAttr(detach)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, failure.Fail(failure.ReasonExited, "cannot start %s: %v", pl.full[0], err)
	}
	f.Close()
	d := &ProcessDeployment{pl: pl, cmd: cmd, exited: make(chan struct{}), logFile: logFile, started: time.Now(), watch: failure.NewBootWatch("starting the process", time.Now())}
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.waitErr = err
		d.mu.Unlock()
		close(d.exited)
	}()
	p.mu.Lock()
	p.cur = d
	p.mu.Unlock()
	return d, nil
}

// ProcessDeployment is a candidate's server process.
type ProcessDeployment struct {
	pl      *processPlan
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile string
	started time.Time

	mu      sync.Mutex
	waitErr error
	watch   *failure.BootWatch // what the server's output proves, its phase and last lines
	offset  int64
	// serverStart is when the server this trial measures started, as its
	// /metrics says; zero when it does not say.
	serverStart time.Time
}

// readLog takes the new lines of the process log.
func (d *ProcessDeployment) readLog() []string {
	f, err := os.Open(d.logFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	f.Seek(d.offset, 0)
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		d.offset += int64(len(sc.Bytes()) + 1)
		out = append(out, sc.Text())
	}
	return out
}

// follow feeds the new log lines to the boot watch; it returns the failure
// a line proves, if any, its detail saying when (at the watch's phase).
func (d *ProcessDeployment) follow(when string) *failure.Failure {
	for _, l := range d.readLog() {
		d.mu.Lock()
		f := d.watch.Line(l, time.Time{}, time.Now())
		d.mu.Unlock()
		if f != nil {
			f.Detail = when + f.Phase
			return f
		}
	}
	return nil
}

func (d *ProcessDeployment) failure(reason failure.Reason, detail, line string) *failure.Failure {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.watch.Fail(reason, detail, line, time.Now())
}

func (d *ProcessDeployment) WaitReady(ctx context.Context, timeout time.Duration) (*orchestrator.Ready, error) {
	deadline := time.Now().Add(timeout)
	model, _, key := d.pl.flags.Served()
	endpoint := d.pl.p.endpoint
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if f := d.follow("vLLM failed while "); f != nil {
			return nil, f
		}
		select {
		case <-d.exited:
			if f := d.follow("vLLM failed while "); f != nil {
				return nil, f
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			return nil, d.watch.Died(fmt.Sprintf("the process exited (%v)", d.waitErr), time.Now())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		pr := vllm.Probe(ctx, endpoint, model, key, 30*time.Second)
		d.mu.Lock()
		ready, f := d.watch.Probe(pr, endpoint, time.Now())
		d.mu.Unlock()
		switch {
		case f != nil:
			return nil, f
		case ready:
			if f := d.claim(ctx); f != nil {
				return nil, f
			}
			d.mu.Lock()
			boot := d.watch.Boot(time.Since(d.started))
			d.mu.Unlock()
			return &orchestrator.Ready{Endpoint: endpoint, Model: model, APIKey: key, Boot: boot}, nil
		case time.Now().After(deadline):
			d.mu.Lock()
			defer d.mu.Unlock()
			return nil, d.watch.Timeout(timeout, time.Now())
		}
	}
}

// claim checks that the server that answered is the one this trial
// started: the child still runs, holds the listening socket (where the
// platform can tell), and its process did not start before it (another
// vgrid, on another store, may serve the same port).
func (d *ProcessDeployment) claim(ctx context.Context) *failure.Failure {
	endpoint := d.pl.p.endpoint
	select {
	case <-d.exited:
		return d.failure(failure.ReasonExited, "the server this trial started exited while another answered at "+endpoint, "")
	default:
	}
	pid := d.cmd.Process.Pid
	if u, err := url.Parse(endpoint); err == nil {
		if port, err := strconv.Atoi(u.Port()); err == nil {
			if owns, known := proc.OwnsListener(pid, port); known && !owns {
				return d.failure(failure.ReasonForeignServer, fmt.Sprintf("the server answering at %s is not the process this trial started (pid %d does not hold port %d): another process serves this endpoint (another vgrid, or a server left running), and its answers are not this candidate's",
					endpoint, pid, port), "")
			}
		}
	}
	start, err := vllm.ServerStart(ctx, endpoint)
	if err != nil || start.IsZero() {
		return nil // nothing to compare: the host lock on the target still holds
	}
	if start.Before(d.started.Add(-2 * time.Second)) {
		return d.failure(failure.ReasonForeignServer, fmt.Sprintf("the server answering at %s started at %s, before this trial started its own at %s: another process serves this endpoint (another vgrid, or a server left running), and its answers are not this candidate's",
			endpoint, start.Format(time.RFC3339Nano), d.started.Format(time.RFC3339Nano)), "")
	}
	d.serverStart = start
	return nil
}

// Verify checks that the server is still the one measured, then compares
// what it reports with the candidate's flags.
func (d *ProcessDeployment) Verify(ctx context.Context) (map[string]string, error) {
	if f := SameServer(ctx, d.pl.p.endpoint, d.serverStart); f != nil {
		return nil, f
	}
	return VerifyEndpoint(ctx, d.pl.p.endpoint, d.pl.flags)
}

// Diagnose explains a server that stopped answering during the benchmark,
// or one that is not the one measured; nil while it serves.
func (d *ProcessDeployment) Diagnose(ctx context.Context) *failure.Failure {
	endpoint := d.pl.p.endpoint
	select {
	case <-d.exited:
	default:
		if answers(ctx, endpoint) {
			return SameServer(ctx, endpoint, d.serverStart)
		}
		select { // nothing answers: a dying engine takes a moment to exit
		case <-d.exited:
		case <-time.After(2 * time.Second):
			return d.failure(failure.ReasonUnreachable, "the server stopped answering during the benchmark", "")
		}
	}
	if f := d.follow("the server died during the benchmark while "); f != nil {
		f.Detail = "the server died during the benchmark"
		return f
	}
	d.mu.Lock()
	lines := d.watch.Logs()
	d.mu.Unlock()
	if c, ok := vllm.Classify(lines); ok {
		return d.failure(failure.FromCause(c.Cause), "the server died during the benchmark", c.Line)
	}
	return d.failure(failure.ReasonExited, "the server process exited during the benchmark", "")
}

// FlagCheck is the driver's check of flags against its program's --help.
func (p *Process) FlagCheck() *FlagCheck { return &p.flags }

// CheckFlags asks the program the target runs (`vllm serve`, `python -m
// vllm.entrypoints.openai.api_server`, the simulator) for its --help, once
// per executable, and checks the plan's arguments against it.
func (p *Process) CheckFlags(ctx context.Context, pl orchestrator.Plan) ([]string, error) {
	plan, ok := pl.(*processPlan)
	if !ok {
		return nil, fmt.Errorf("not a process plan: %T", pl)
	}
	exe, err := exec.LookPath(p.prefix[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.prefix[0], err)
	}
	info, err := os.Stat(exe)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("exe %s %d %d\x00%s", exe, info.Size(), info.ModTime().UnixNano(), strings.Join(p.prefix[1:], " "))
	h, err := p.flags.Help(ctx, key, p.prefix, func(ctx context.Context, arg string) (string, int, error) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, exe, append(append([]string(nil), p.prefix[1:]...), arg)...)
		cmd.Env = p.env
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee) && ctx.Err() == nil:
			return string(out), ee.ExitCode(), nil
		case err != nil:
			return string(out), 0, fmt.Errorf("%s %s: %w", exe, arg, err)
		}
		return string(out), 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("ask %s for its flags: %w", p.program(), err)
	}
	of := "the vLLM at " + exe
	if p.sim {
		of = "the simulator (" + exe + " sim serve)"
	}
	return Refusals(h, of, plan.flags.Words()), nil
}

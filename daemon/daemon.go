// Package daemon is `vgrid serve`: one process, one store, an authenticated
// HTTP API to submit, watch, cancel and read runs, a persistent queue (one
// run at a time per target, different targets in parallel), live events
// over SSE, and Prometheus metrics on its own registry.
//
// Drivers and the benchmark come from the caller (factories), so the
// package imports the orchestrator and the store, never the Docker SDK.
//
// May import: orchestrator, store, profiles, report, web, driver and
// driver/assemble (the one assembly), benchmark types, client_golang.
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/driver"
	"github.com/vgrid/vgrid/driver/assemble"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
	"github.com/vgrid/vgrid/web"
)

// Config wires a daemon.
type Config struct {
	Listen    string // host:port; loopback unless a token is set
	TokenFile string // generated (0600) when absent
	// TLSCert and TLSKey, when both set, serve HTTPS (PEM files): the
	// dashboard's session cookie is then marked Secure.
	TLSCert, TLSKey string
	// InsecureListen allows plain HTTP on a non-loopback address: the
	// token (a root shell on the daemon's host) then crosses the network
	// in clear text. Refused without it.
	InsecureListen bool
	// Hosts are names the dashboard answers for besides an address,
	// localhost, this machine's name and the --listen host (a reverse
	// proxy's name, a DNS alias): other names are refused (DNS rebinding).
	Hosts   []string
	Store   *store.Store
	Log     zerolog.Logger
	Version string
	// Assemble builds what runs a grid (driver, slots, benchmark,
	// feasibility, estimates): assemble.Build, as vgrid run uses it; runDir
	// is where the run keeps its files.
	Assemble func(ctx context.Context, g *orchestrator.Grid, runDir string) (*assemble.Parts, error)
	// Target builds the target's driver alone, to check a submitted grid
	// (assemble.Target).
	Target func(ctx context.Context, g *orchestrator.Grid, runDir string) (driver.Closer, error)
	// Engine, optional, says which Docker engine the daemon drives (for /healthz).
	Engine func(ctx context.Context) string
	Now    func() time.Time
}

// Daemon is a running vgrid serve.
type Daemon struct {
	cfg   Config
	token string

	mu        sync.Mutex
	running   map[string]*active // by target key
	draining  bool
	wake      chan struct{}
	wg        sync.WaitGroup
	dash      *web.Dashboard // the last Handler's, warmed as trials end
	following atomic.Bool    // a Follow pass is under way

	hub      hub          // wakes the live event streams
	streams  atomic.Int64 // live event streams open
	failures *failures    // failed logins and wrong tokens, per client
	guard    *connGuard   // the connections held (Serve's)

	rollbackMu sync.Mutex // one rollback at a time: check and replace as one step
}

// active is a run in progress.
type active struct {
	runID  string
	keys   []string                // its target's and its slots' (Target.Keys)
	cancel context.CancelCauseFunc // orchestrator.ErrCancelled: by the API; errShutdown: the daemon stops
}

// errShutdown is the cancellation cause of runs the daemon stops when it
// shuts down: they are interrupted, and resume at its next start.
var errShutdown = errors.New("the daemon is shutting down")

// LoadToken reads the token file, creating it with a fresh random token
// (mode 0600) when it does not exist. It returns the token and whether it
// was created.
func LoadToken(path string) (string, bool, error) {
	info, err := os.Stat(path)
	if err == nil {
		if err := checkTokenFile(path, info); err != nil {
			return "", false, err
		}
		if info.Size() > 4096 {
			return "", false, fmt.Errorf("token file %s has %d bytes; a token is one line (delete it to have one generated)", path, info.Size())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", false, fmt.Errorf("read token file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if err := strongToken(t); err != nil {
			return "", false, fmt.Errorf("token file %s: %w (or delete it to have one generated)", path, err)
		}
		return t, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read token file: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, err
	}
	t := hex.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("create token file: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(t + "\n"); err != nil {
		return "", false, err
	}
	return t, true, f.Sync()
}

// strongToken refuses a token someone could guess: shorter than 32
// characters, or made of fewer than 10 different characters.
func strongToken(t string) error {
	distinct := map[rune]bool{}
	for _, r := range t {
		distinct[r] = true
	}
	switch {
	case len(t) < 32:
		return fmt.Errorf("the token has %d characters; use at least 32 (e.g. openssl rand -hex 32)", len(t))
	case len(distinct) < 10:
		return fmt.Errorf("the token uses %d different characters; use a random one (e.g. openssl rand -hex 32)", len(distinct))
	}
	return nil
}

// New prepares a daemon: it loads (or creates) the token. A non-loopback
// listen address without a token file is refused.
func New(cfg Config) (*Daemon, bool, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, false, fmt.Errorf("--listen %q: %w", cfg.Listen, err)
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if !loopback && cfg.TokenFile == "" {
		return nil, false, fmt.Errorf("--listen %s is not a loopback address: set --token-file so the API is not open to the network", cfg.Listen)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, false, errors.New("--tls-cert and --tls-key go together: give both PEM files, or neither for plain HTTP")
	}
	if !loopback && cfg.TLSCert == "" && !cfg.InsecureListen {
		return nil, false, fmt.Errorf("--listen %s is reachable from the network, and without TLS the token and the dashboard's cookie cross it in clear text; the token can run commands as this daemon's user (root, often). Give --tls-cert and --tls-key, listen on 127.0.0.1 and reach it through an ssh tunnel (ssh -L 8321:127.0.0.1:8321 HOST), or pass --insecure-listen on a network you trust", cfg.Listen)
	}
	if cfg.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, false, fmt.Errorf("--tls-cert %s / --tls-key %s: %v; give a PEM certificate and its private key", cfg.TLSCert, cfg.TLSKey, err)
		}
	}
	if cfg.TokenFile == "" {
		return nil, false, errors.New("no token file")
	}
	tok, created, err := LoadToken(cfg.TokenFile)
	if err != nil {
		return nil, false, err
	}
	return &Daemon{cfg: cfg, token: tok, running: map[string]*active{}, wake: make(chan struct{}, 1),
		failures: &failures{now: cfg.Now, by: map[string]*failCount{}}}, created, nil
}

func (d *Daemon) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Serve listens and schedules runs until ctx ends, then drains: it stops
// accepting runs, cancels the running ones (each persists and is left
// resumable) and returns once they have stopped.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener) error {
	d.guard = newConnGuard(ln, MaxConns)
	srv := &http.Server{Handler: d.Handler(), ConnState: d.guard.hook, MaxHeaderBytes: 64 << 10,
		// A client has 10 s to send its headers and 2 minutes for a body or
		// an answer (event streams extend their own deadline per write);
		// an idle keep-alive connection is closed after 2 minutes.
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute, WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: httpErrorLog(d.cfg.Log)}
	errc := make(chan error, 1)
	go func() {
		if d.cfg.TLSCert != "" {
			errc <- srv.ServeTLS(d.guard, d.cfg.TLSCert, d.cfg.TLSKey)
			return
		}
		errc <- srv.Serve(d.guard)
	}()
	d.cfg.Log.Info().Str("listen", ln.Addr().String()).Str("store", d.cfg.Store.Path()).Msg("vgrid serve started")
	d.logLeftRuns()
	d.kick()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			break loop
		case <-d.wake:
			d.schedule()
		case <-tick.C:
			d.schedule()
			d.follow()
		}
	}
	d.mu.Lock()
	d.draining = true
	for _, a := range d.running {
		a.cancel(errShutdown)
	}
	d.mu.Unlock()
	d.wg.Wait() // every run persisted its state
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	d.cfg.Log.Info().Msg("vgrid serve stopped")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// follow has the dashboard compute the measurements of the running runs'
// newly ended trials, off the scheduling loop, one pass at a time.
func (d *Daemon) follow() {
	d.mu.Lock()
	dash := d.dash
	var ids []string
	for _, a := range d.running {
		ids = append(ids, a.runID)
	}
	d.mu.Unlock()
	if dash == nil || len(ids) == 0 || !d.following.CompareAndSwap(false, true) {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer d.following.Store(false)
		for _, id := range ids {
			dash.Follow(id)
		}
	}()
}

// logLeftRuns says which runs a previous daemon left running or
// interrupted: the scheduler resumes them before any queued run of their
// target.
func (d *Daemon) logLeftRuns() {
	runs, err := d.cfg.Store.Runs()
	if err != nil {
		d.cfg.Log.Error().Err(err).Msg("list runs")
		return
	}
	for _, r := range runs {
		if r.State == orchestrator.RunRunning || r.State == orchestrator.RunInterrupted {
			d.cfg.Log.Info().Str("run_id", r.ID).Str("state", r.State.String()).Msg("resuming a run left by the previous daemon")
		}
	}
}

// schedule starts the runs pick chooses. It reads the runs while it holds
// d.mu, as Cancel records a cancel: a list read before a cancel must not
// start the run it cancelled.
func (d *Daemon) schedule() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.draining {
		return
	}
	runs, err := d.cfg.Store.Runs()
	if err != nil {
		d.cfg.Log.Error().Err(err).Msg("list runs")
		return
	}
	busy := map[string]bool{}
	for target, a := range d.running {
		busy[target] = true
		for _, k := range a.keys {
			busy[k] = true
		}
	}
	for _, r := range pick(runs, busy) {
		ctx, cancel := context.WithCancelCause(context.Background())
		a := &active{runID: r.ID, cancel: cancel, keys: r.Grid.Target.Keys()}
		d.running[r.Target] = a
		d.wg.Add(1)
		go d.execute(ctx, r, a)
	}
}

// execute runs one run to its end (or its interruption); the orchestrator
// records every outcome.
func (d *Daemon) execute(ctx context.Context, r *orchestrator.Run, a *active) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.running, r.Target)
		dash := d.dash
		d.mu.Unlock()
		a.cancel(nil)
		d.kick()
		if dash != nil { // the trials that ended since the last tick
			dash.Follow(r.ID)
		}
		// A checked copy of the store after each run (FILE.backup): what
		// a damaged store's messages point to.
		if _, err := d.cfg.Store.Backup(); err != nil {
			d.cfg.Log.Warn().Err(err).Msg("store: backup not taken; the last one stays")
		}
	}()
	log := d.cfg.Log.With().Str("run_id", r.ID).Logger()
	st := notifying{d.cfg.Store, &d.hub}
	parts, err := d.assemble(ctx, r, log)
	if err != nil {
		o := &orchestrator.Orchestrator{Store: st, Log: log, Now: d.cfg.Now}
		if rerr := o.Refuse(r, fmt.Errorf("cannot prepare the target: %w", err)); rerr != nil {
			log.Error().Err(rerr).Msg("persist run")
		}
		return
	}
	defer parts.Close()
	o := parts.Orchestrator(ctx, st, log, d.cfg.Now)
	o.LeaveOnInterrupt = true
	if err := o.Run(ctx, r); err != nil {
		log.Info().Err(err).Str("cause", fmt.Sprint(context.Cause(ctx))).Msg("run ended")
	}
}

// assemble builds the run's driver and orchestrator. An engine that does
// not answer (a Docker engine restarting between two runs) is waited for,
// up to the grid's timeouts.engine, before the run is refused.
func (d *Daemon) assemble(ctx context.Context, r *orchestrator.Run, log zerolog.Logger) (*assemble.Parts, error) {
	wait := time.Duration(r.Grid.Timeouts.Engine)
	if wait <= 0 {
		wait = orchestrator.DefaultEngineWait
	}
	var start time.Time
	for {
		parts, err := d.cfg.Assemble(ctx, &r.Grid, d.cfg.Store.RunDir(r.ID))
		var down interface{ EngineDown() bool }
		if err == nil || !errors.As(err, &down) || ctx.Err() != nil {
			if err == nil && !start.IsZero() {
				log.Warn().Stringer("after", time.Since(start).Round(time.Millisecond)).Msg("the engine answers again")
			}
			return parts, err
		}
		if start.IsZero() {
			start = time.Now()
			log.Warn().Err(err).Stringer("for_up_to", wait).Msg("the engine does not answer: waiting for it before the run starts")
		} else if time.Since(start) >= wait {
			return parts, fmt.Errorf("%w (waited %s)", err, wait)
		}
		select {
		case <-ctx.Done():
			return parts, err
		case <-time.After(time.Second):
		}
	}
}

// Submit queues a grid (the API's POST /v1/runs). dir resolves relative
// paths of the grid file.
func (d *Daemon) Submit(src []byte, name, dir string) (*orchestrator.Run, error) {
	d.mu.Lock()
	draining := d.draining
	d.mu.Unlock()
	if draining {
		return nil, errDraining
	}
	g, err := orchestrator.LoadGrid(name, src, dir)
	if err != nil {
		return nil, err
	}
	r := orchestrator.NewRun(g, name, d.cfg.Now(), g.Target.Key(), d.cfg.Version)
	// What can be said without the target: a deadline passed, a grid too
	// large for a night. The estimates are checked when the run starts.
	if err := orchestrator.CheckSchedule(g, r.Deadline, d.cfg.Now(), nil); err != nil {
		return nil, err
	}
	if err := d.checkGrid(g); err != nil {
		return nil, err
	}
	o := &orchestrator.Orchestrator{Store: notifying{d.cfg.Store, &d.hub}, Log: d.cfg.Log, Now: d.cfg.Now}
	if err := o.Queue(r); err != nil {
		return nil, err
	}
	d.kick()
	return r, nil
}

var errDraining = errors.New("the daemon is shutting down and accepts no new run")

// checkGrid refuses, before a run is queued, a grid whose flags the
// target's vLLM does not accept (its --help) or whose target cannot start
// any candidate, as vgrid run does: nothing is stored.
func (d *Daemon) checkGrid(g *orchestrator.Grid) error {
	if d.cfg.Target == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "vgrid-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	drv, err := d.cfg.Target(ctx, g, dir)
	if err != nil {
		return fmt.Errorf("the target: %w", err)
	}
	defer drv.Close()
	if err := orchestrator.CheckTarget(ctx, drv); err != nil {
		return fmt.Errorf("no candidate can start on %s: %w", g.Target.Key(), err)
	}
	var refused *orchestrator.FlagsRefusedError
	if err := orchestrator.CheckFlags(ctx, drv, g.Expand()); errors.As(err, &refused) {
		return err
	}
	return nil
}

// Cancel stops a run: a queued one is cancelled and never starts; a
// running or interrupted one is marked cancelled in the store before this
// returns (final: nothing starts it again, a daemon restart included), and
// its orchestrator restores the original configuration and ends it
// cancelled, keeping its measured trials.
func (d *Daemon) Cancel(id string) (*orchestrator.Run, error) {
	d.mu.Lock()
	defer d.mu.Unlock() // held: the scheduler reads the runs under it
	r, changed, err := d.cfg.Store.RequestCancel(id, d.cfg.Now())
	if err != nil {
		return nil, err
	}
	if changed {
		text := "cancel requested by the user"
		if r.State == orchestrator.RunCancelled {
			text = "cancelled: cancelled through the API before it ran"
		}
		if err := (notifying{d.cfg.Store, &d.hub}).AddEvent(r.ID, orchestrator.Event{At: d.cfg.Now(), Kind: orchestrator.EventRun, Trial: -1, Text: text}); err != nil {
			d.cfg.Log.Error().Err(err).Str("run_id", r.ID).Msg("persist event")
		}
		d.cfg.Log.Info().Str("run_id", r.ID).Str("state", r.State.String()).Msg(text)
	}
	if a, ok := d.running[r.Target]; ok && a.runID == r.ID {
		a.cancel(orchestrator.ErrCancelled)
	} else if r.State != orchestrator.RunCancelled {
		d.kick() // a run left by a previous daemon: its restore runs now
	}
	return r, nil
}

// authorized compares the bearer token in constant time; the scheme is
// case-insensitive (RFC 6750 after RFC 7235).
func (d *Daemon) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && d.ValidToken(strings.TrimSpace(tok))
}

// Runs lists the store's runs, newest first (the dashboard's reads).
func (d *Daemon) Runs() ([]*orchestrator.Run, error) { return d.cfg.Store.Runs() }

// GetRun reads a run; an unknown one is store.ErrNotFound.
func (d *Daemon) GetRun(id string) (*orchestrator.Run, error) { return d.cfg.Store.GetRun(id) }

// Trials reads a run's trials.
func (d *Daemon) Trials(runID string) ([]*orchestrator.Trial, error) {
	return d.cfg.Store.Trials(runID)
}

// Reports reads a trial's stored reports.
func (d *Daemon) Reports(runID string, seq int) ([]*benchmark.Report, error) {
	return d.cfg.Store.Reports(runID, seq)
}

// TokenFile is the file that holds the daemon's token.
func (d *Daemon) TokenFile() string { return d.cfg.TokenFile }

// ValidToken reports, in constant time, whether tok is the daemon's token
// (the dashboard's login).
func (d *Daemon) ValidToken(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(d.token)) == 1
}

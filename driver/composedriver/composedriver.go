// Package composedriver is the compose driver: each candidate runs as the
// compose service's container, on a local or remote Docker engine (see
// package driver for the seam it implements). It is apart from package
// driver so that the process driver links no Docker code.
//
// May import: orchestrator (types), failure, compose, profiles, driver,
// benchmark, vllm, internal/diskwait, internal/proc.
package composedriver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/compose"
	"github.com/vgrid/vgrid/driver"
	"github.com/vgrid/vgrid/internal/diskwait"
	"github.com/vgrid/vgrid/internal/proc"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/vllm"
)

// Compose runs candidates as a compose service: each candidate is rendered
// from the original profile, written atomically, and the service
// recreated. The original was backed up (label = run id) before the first.
type Compose struct {
	proj     profiles.Project // Content pins the original profile
	service  string
	opts     compose.ConvertOptions
	endpoint string
	d        *compose.Deployer
	log      zerolog.Logger

	file     string // the profile file that carries the vLLM arguments
	original []byte
	mode     os.FileMode
	image    string            // the service's image, as the profile names it
	env      map[string]string // the service's environment, as compose resolves it
	runID    string

	projectName string        // the project's name, as compose resolves it
	slot        *compose.Slot // nil: the target's own service
	local       bool          // the slot's engine runs on this machine

	// OnPhase, when set, hears each vLLM boot phase as WaitReady sees it.
	OnPhase func(phase string)

	flags driver.FlagCheck
}

// NewCompose connects to the target's Docker engine and reads the
// original profile; nothing is changed.
func NewCompose(ctx context.Context, t orchestrator.Target, environ []string, log zerolog.Logger) (*Compose, error) {
	for _, f := range append(append([]string(nil), t.Files...), t.EnvFile) {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("target: %s does not exist; relative paths in target.files and env_file are resolved against the grid file's directory, so put the grid file where they hold, or write them relative to it (or absolute)", f)
		}
	}
	p := profiles.Project{Files: t.Files, Name: t.Project, Environ: environ}
	if t.EnvFile != "" {
		p.EnvFiles = []string{t.EnvFile}
	}
	return NewComposeProject(ctx, p, ComposeOptions{Service: t.Service, GPUsOff: t.GPUs == "off", Endpoint: t.Endpoint, DockerHost: t.DockerHost}, log)
}

// ComposeOptions say which service of a project vgrid drives, and how.
type ComposeOptions struct {
	Service    string // default: the only service that runs vLLM
	GPUsOff    bool   // strip GPU reservations (dry runs on hosts without GPUs)
	Endpoint   string // default: the published port on the engine's host
	DockerHost string // default: the environment's engine
}

// NewComposeProject is NewCompose for a project given directly (vgrid
// deploy's -f, --env-file and -p).
func NewComposeProject(ctx context.Context, p profiles.Project, o ComposeOptions, log zerolog.Logger) (*Compose, error) {
	d, err := compose.Connect(ctx, o.DockerHost, log)
	if err != nil {
		return nil, err
	}
	c := &Compose{proj: p, service: o.Service, opts: compose.ConvertOptions{GPUsOff: o.GPUsOff, APIVersion: d.APIVersion()},
		endpoint: o.Endpoint, d: d, log: log}
	plan, err := p.Render(ctx, o.Service, nil)
	if err != nil {
		d.Close()
		return nil, err
	}
	c.file, c.service, c.original = plan.File, plan.Service, plan.Before
	c.projectName = plan.Loaded.Name
	c.local = orchestrator.Machine(d.Host()) == "local"
	info, err := os.Stat(c.file)
	if err != nil {
		d.Close()
		return nil, err
	}
	c.mode = info.Mode().Perm()
	if svc, ok := plan.Loaded.Services[c.service]; ok {
		c.image = svc.Image
		c.env = map[string]string{}
		for k, v := range svc.Environment {
			if v != nil {
				c.env[k] = *v
			}
		}
	}
	c.pin(c.original)
	return c, nil
}

// pin makes every later render start from these bytes of the profile.
func (c *Compose) pin(original []byte) {
	c.original = original
	c.proj.Content = map[string][]byte{c.file: original}
	c.proj.Before = &profiles.BeforeCache{} // the original does not change during a run
}

// Close releases the Docker client.
func (c *Compose) Close() error { return c.d.Close() }

// Deployer is the Docker engine connection (vgrid deploy status reads it).
func (c *Compose) Deployer() *compose.Deployer { return c.d }

// ServerEnv is the environment the vLLM service runs with.
func (c *Compose) ServerEnv() map[string]string { return c.env }

// File is the profile file that carries the vLLM arguments.
func (c *Compose) File() string { return c.file }

// Prepare refuses a service another live vgrid drives (even with another
// store: the container's owner label says who), then backs up the profile.
// CheckTarget says, changing nothing, whether a candidate can start: the
// profile renders and loads, the image is on the engine, a GPU service
// has the NVIDIA runtime, every bind-mount source exists.
func (c *Compose) CheckTarget(ctx context.Context) error {
	p, err := c.render(ctx, orchestrator.Candidate{})
	if err != nil {
		return err
	}
	return c.d.CheckHost(ctx, p.spec, c.local)
}

func (c *Compose) Prepare(ctx context.Context, runID string) (string, error) {
	c.runID = runID
	if c.slot != nil {
		return "", c.prepareSlot(ctx)
	}
	p, err := c.render(ctx, orchestrator.Candidate{})
	if err != nil {
		return "", err
	}
	if err := c.checkOwner(ctx, p.spec); err != nil {
		return "", err
	}
	var backup string
	err = diskwait.Retry(ctx, FileWait, func(err error) {
		c.log.Error().Err(err).Str("file", c.file).Msg("the profile's directory refused the backup (read-only or full); the run waits and retries")
	}, nil, func() (err error) {
		backup, err = profiles.WriteBackup(c.file, runID, time.Now())
		return err
	})
	return backup, err
}

// Resume reads the original profile from the run's backup: after an
// interruption the file on disk holds the interrupted trial's rendering.
func (c *Compose) Resume(ctx context.Context, runID, backup string) error {
	c.runID = runID
	if c.slot != nil && backup == "" {
		return c.prepareSlot(ctx) // a slot never writes the profile: it is the original
	}
	if backup == "" {
		return fmt.Errorf("run %s has no backup of %s: cannot tell its original content", runID, c.file)
	}
	orig, err := os.ReadFile(backup)
	if err != nil {
		return fmt.Errorf("read the run's backup: %w", err)
	}
	c.pin(orig)
	return nil
}

// ownerLabel names the vgrid process driving a container: host, pid, run.
const ownerLabel = "io.vgrid.owner"

func owner(runID string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), runID)
}

// ownerAlive reports whether the owner label names a live vgrid other
// than this one (a process on another host is taken as alive).
func ownerAlive(label, runID string) bool {
	parts := strings.SplitN(label, ":", 3)
	if len(parts) != 3 || label == owner(runID) {
		return false
	}
	host, _ := os.Hostname()
	if parts[0] != host {
		return true
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid == os.Getpid() {
		return false
	}
	return proc.Alive(pid)
}

func (c *Compose) checkOwner(ctx context.Context, s *compose.Spec) error {
	cont, err := c.d.Find(ctx, s)
	if err != nil || cont == nil || cont.Config == nil {
		return err
	}
	if o := cont.Config.Labels[ownerLabel]; o != "" && ownerAlive(o, c.runID) {
		return fmt.Errorf("service %s is driven by another vgrid (%s: host:pid:run); wait for it or stop it", c.service, o)
	}
	return nil
}

// Render renders a candidate from the original profile, verified by
// compose-go; the project is loaded once, and its conversion is the plan.
func (c *Compose) Render(ctx context.Context, cand orchestrator.Candidate) (orchestrator.Plan, error) {
	return c.render(ctx, cand)
}

// Plan is Render with the compose driver's own type (vgrid deploy).
func (c *Compose) Plan(ctx context.Context, cand orchestrator.Candidate) (*ComposePlan, error) {
	return c.render(ctx, cand)
}

func (c *Compose) render(ctx context.Context, cand orchestrator.Candidate) (*ComposePlan, error) {
	plan, err := c.proj.Render(ctx, c.service, cand.Settings)
	if err != nil {
		return nil, err
	}
	loaded, files := plan.Loaded, map[string][]byte{c.file: plan.After}
	if c.slot != nil {
		sp, generated, err := c.slotProject(plan.After, plan.Loaded)
		if err != nil {
			return nil, err
		}
		if loaded, err = sp.Load(ctx, nil); err != nil {
			return nil, fmt.Errorf("slot %d: the generated override does not load: %w", c.slot.Index+1, err)
		}
		files = generated
	}
	spec, err := compose.Convert(loaded.Project, c.service, c.opts)
	if err != nil {
		return nil, err
	}
	spec.Endpoint = c.endpoint
	sum := sha256.Sum256(plan.After)
	return &ComposePlan{c: c, files: files, spec: spec, flags: plan.Effective,
		rendered: orchestrator.Rendered{Candidate: cand, Hash: hex.EncodeToString(sum[:]), Words: driver.Redacted(plan.Effective.Words()), Image: c.image}}, nil
}

// Restore puts the original profile back and waits until it serves; a
// slot's driver removes the slot's container instead.
func (c *Compose) Restore(ctx context.Context) error {
	if c.slot != nil {
		return c.releaseSlot(ctx)
	}
	p, err := c.render(ctx, orchestrator.Candidate{})
	if err != nil {
		return err
	}
	dep, err := p.Start(ctx)
	if err != nil {
		return err
	}
	if _, err := dep.WaitReady(ctx, 30*time.Minute); err != nil {
		return fmt.Errorf("the original configuration did not come back: %w", err)
	}
	return nil
}

// Crown deploys the champion and waits until it serves.
func (c *Compose) Crown(ctx context.Context, cand orchestrator.Candidate) error {
	p, err := c.render(ctx, cand)
	if err != nil {
		return err
	}
	dep, err := p.Start(ctx)
	if err != nil {
		return err
	}
	_, err = dep.WaitReady(ctx, 30*time.Minute)
	return err
}

// ComposePlan is a candidate rendered into the profile and converted.
type ComposePlan struct {
	c        *Compose
	rendered orchestrator.Rendered
	files    map[string][]byte // what Start writes: the profile's rendering, or a slot's files
	spec     *compose.Spec
	flags    vllm.Flags // what vLLM receives, as compose resolves the rendering
}

func (p *ComposePlan) Rendered() orchestrator.Rendered { return p.rendered }

// Spec is the service as it will be created.
func (p *ComposePlan) Spec() *compose.Spec { return p.spec }

func (p *ComposePlan) Deploy(ctx context.Context) (orchestrator.Deployment, error) {
	dep, err := p.Start(ctx)
	if err != nil {
		return nil, p.c.gone(ctx, err)
	}
	return dep, nil
}

// EngineAlive says whether the service's Docker engine answers: the
// orchestrator waits for an engine that is restarted, then redoes the
// trial it broke.
func (c *Compose) EngineAlive(ctx context.Context) error { return c.d.Alive(ctx) }

// gone turns err into an engine_unreachable failure when the engine no
// longer answers (the cause of err is then the engine, not the trial).
func (c *Compose) gone(ctx context.Context, err error) error {
	if f := c.engineGone(ctx, err); f != nil {
		return f
	}
	return err
}

func (c *Compose) engineGone(ctx context.Context, cause error) *failure.Failure {
	if ctx.Err() != nil {
		return nil
	}
	perr := c.d.Alive(ctx)
	if perr == nil {
		return nil
	}
	detail := fmt.Sprintf("the Docker engine at %s stopped answering (%v)", c.d.Host(), perr)
	if cause != nil {
		detail += "; the trial saw: " + cause.Error()
	}
	return failure.Fail(failure.ReasonEngineGone, "%s", detail)
}

// Start checks that no other live vgrid drives the service, writes the
// rendering (when it differs from the file), and recreates the service.
func (p *ComposePlan) Start(ctx context.Context) (*ComposeDeployment, error) {
	c := p.c
	if err := c.checkOwner(ctx, p.spec); err != nil {
		return nil, err
	}
	if _, err := os.Stat(c.file); err != nil {
		return nil, fmt.Errorf("read %s: %w", c.file, err)
	}
	if err := c.writeFiles(ctx, p.files); err != nil {
		return nil, err
	}
	s := *p.spec
	cfg := *p.spec.Config
	s.Config = &cfg
	s.Config.Labels = map[string]string{}
	for k, v := range p.spec.Config.Labels {
		s.Config.Labels[k] = v
	}
	if c.runID != "" {
		s.Config.Labels["io.vgrid.run"] = c.runID
		s.Config.Labels[ownerLabel] = owner(c.runID)
	}
	res, err := c.d.Recreate(ctx, &s)
	if err != nil {
		return nil, err
	}
	return &ComposeDeployment{p: p, spec: &s, Res: res}, nil
}

// ComposeDeployment is a candidate's container, recreated.
type ComposeDeployment struct {
	p    *ComposePlan
	spec *compose.Spec
	Res  *compose.Result
	// serverStart is when the measured server's process started (its
	// /metrics), zero when it does not say.
	serverStart time.Time
	endpoint    string
	imageID     string // of the container's image, on its engine
}

func (d *ComposeDeployment) WaitReady(ctx context.Context, timeout time.Duration) (*orchestrator.Ready, error) {
	c := d.p.c
	ready, err := c.d.WaitReady(ctx, d.spec, d.Res, compose.ReadyOptions{Timeout: timeout, OnPhase: c.OnPhase})
	if err != nil {
		return nil, c.gone(ctx, err)
	}
	if f := d.claim(ctx, ready.Endpoint); f != nil {
		return nil, f
	}
	d.endpoint = ready.Endpoint
	r := &orchestrator.Ready{Endpoint: ready.Endpoint, Model: d.spec.ServedModel, APIKey: d.spec.APIKey, Boot: ready.Boot, ImageID: d.imageID}
	if c.slot != nil || !c.local {
		// The GPUs that matter are the container's, on its engine's host.
		id := d.Res.ContainerID
		r.GPU = func(ctx context.Context, interval time.Duration) (io.ReadCloser, error) {
			return c.d.Exec(ctx, id, benchmark.NvidiaSMIArgs(interval))
		}
	}
	return r, nil
}

// claim checks that the server that answered runs in the container this
// trial created (or found serving its configuration), which carries this
// vgrid's owner label, and that the endpoint is served from it.
func (d *ComposeDeployment) claim(ctx context.Context, endpoint string) *failure.Failure {
	c := d.p.c
	cont, err := c.d.Find(ctx, d.spec)
	if err != nil || cont == nil {
		return failure.Fail(failure.ReasonExited, "the service's container is gone after it answered (%v)", err)
	}
	if cont.ID != d.Res.ContainerID {
		return failure.Fail(failure.ReasonForeignServer, "service %s now runs container %.12s, not %.12s that this trial created: another process recreated it", c.service, cont.ID, d.Res.ContainerID)
	}
	d.imageID = cont.Image
	if o := cont.Config.Labels[ownerLabel]; c.runID != "" && o != owner(c.runID) {
		return failure.Fail(failure.ReasonForeignServer, "container %.12s carries owner %q, not this vgrid (%s)", cont.ID, o, owner(c.runID))
	}
	start, err := vllm.ServerStart(ctx, endpoint)
	if err != nil || start.IsZero() {
		return nil
	}
	if started, perr := time.Parse(time.RFC3339Nano, cont.State.StartedAt); perr == nil && start.Before(started.Add(-2*time.Second)) {
		return failure.Fail(failure.ReasonForeignServer, "the server answering at %s started at %s, before container %.12s (started %s): the endpoint is served by something else",
			endpoint, start.Format(time.RFC3339Nano), cont.ID, started.Format(time.RFC3339Nano))
	}
	d.serverStart = start
	return nil
}

// same checks, before and after each benchmark, that the service still
// runs the container and the server this trial measured.
func (d *ComposeDeployment) same(ctx context.Context) *failure.Failure {
	cont, err := d.p.c.d.Find(ctx, d.spec)
	if err != nil {
		return d.p.c.engineGone(ctx, err) // nil: Diagnose says why
	}
	if cont == nil || cont.ID != d.Res.ContainerID {
		return nil // gone or replaced: Diagnose says why
	}
	return driver.SameServer(ctx, d.endpoint, d.serverStart)
}

// Verify compares the configuration the server reports with the
// candidate's rendering (as compose resolves it), after checking that the
// server is still the one measured.
func (d *ComposeDeployment) Verify(ctx context.Context) (map[string]string, error) {
	if f := d.same(ctx); f != nil {
		return nil, f
	}
	return driver.VerifyEndpoint(ctx, d.endpoint, d.p.flags)
}

// Diagnose explains a container that stopped answering, or a server that
// is not the one measured; nil while it runs and is.
func (d *ComposeDeployment) Diagnose(ctx context.Context) *failure.Failure {
	if f := d.p.c.engineGone(ctx, nil); f != nil {
		return f
	}
	if f := d.p.c.d.Diagnose(ctx, d.spec); f != nil {
		return f
	}
	if f := d.same(ctx); f != nil {
		return f
	}
	// A vLLM whose engine died answers /health 503 while its process
	// shuts down: the container still runs. Wait for it to exit and say
	// why, rather than call the trial measured.
	code := health(ctx, d.endpoint)
	if code == http.StatusOK {
		return nil
	}
	deadline := time.Now().Add(diagnoseWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		if f := d.p.c.d.Diagnose(ctx, d.spec); f != nil {
			return f
		}
	}
	return failure.Fail(failure.ReasonUnhealthy, "vLLM's /health answered %s after the benchmark (200 when it was ready), and its container still runs %s later", httpCode(code), diagnoseWait)
}

// diagnoseWait bounds the wait for a server whose /health fails to exit.
const diagnoseWait = 10 * time.Second

// health is the status GET /health answers within 5 s; 0: no answer.
func health(ctx context.Context, endpoint string) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(endpoint, "/")+"/health", nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpCode(code int) string {
	if code == 0 {
		return "nothing"
	}
	return strconv.Itoa(code)
}

// FlagCheck is the driver's check of flags against the image's --help.
func (c *Compose) FlagCheck() *driver.FlagCheck { return &c.flags }

// CheckFlags asks the vLLM of the plan's image for its flags (a throwaway
// container running the service's server program with --help=all, then
// --help; once per image ID and program, cached) and checks the plan's
// arguments against them.
func (c *Compose) CheckFlags(ctx context.Context, pl orchestrator.Plan) ([]string, error) {
	p, ok := pl.(*ComposePlan)
	if !ok {
		return nil, fmt.Errorf("not a compose plan: %T", pl)
	}
	return CheckImageFlags(ctx, c.d, &c.flags, p.spec.Config.Image, p.spec.Config.Entrypoint, p.spec.Config.Cmd, p.flags)
}

// CheckImageFlags checks the arguments vLLM receives (flags) against the
// --help of the vLLM in image, started the way the container's entrypoint
// and command start it (vgrid profile set uses it without a driver).
func CheckImageFlags(ctx context.Context, d *compose.Deployer, fc *driver.FlagCheck, image string, entrypoint, cmd []string, flags vllm.Flags) ([]string, error) {
	id, err := d.ImageID(ctx, image)
	if err != nil {
		return nil, err
	}
	program, err := profiles.ProgramOf("", entrypoint, cmd)
	if err != nil {
		return nil, err
	}
	if program == nil {
		program = entrypoint // the arguments go to the entrypoint (nil: the image's)
	}
	key := "image " + id + "\x00" + strings.Join(program, " ")
	h, err := fc.Help(ctx, key, program, func(ctx context.Context, arg string) (string, int, error) {
		return d.RunOnce(ctx, image, program, []string{arg}, 3*time.Minute)
	})
	if err != nil {
		return nil, fmt.Errorf("ask the vLLM in image %s for its flags: %w", image, err)
	}
	short := strings.TrimPrefix(id, "sha256:")
	if len(short) > 12 {
		short = short[:12]
	}
	return driver.Refusals(h, fmt.Sprintf("the vLLM in image sha256:%s (%s)", short, image), flags.Words()), nil
}

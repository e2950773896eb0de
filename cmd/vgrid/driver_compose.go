package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/compose"
	"github.com/vgrid/vgrid/internal/proc"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/vllm"
)

// composeDriver runs candidates as a compose service: each candidate is
// rendered from the original profile, written atomically, and the service
// recreated. The original was backed up (label = run id) before the first.
type composeDriver struct {
	proj     profiles.Project
	service  string
	gpusOff  bool
	endpoint string
	d        *compose.Deployer
	log      zerolog.Logger

	key      string
	file     string // the profile file that carries the vLLM arguments
	original []byte
	mode     os.FileMode
	runID    string
	spec     *compose.Spec
	res      *compose.Result
	// serverStart is when the measured server's process started (its
	// /metrics), zero when it does not say.
	serverStart time.Time
	image       string            // the service's image, as the profile names it
	env         map[string]string // the service's environment, as compose resolves it
}

func newComposeDriver(ctx context.Context, t orchestrator.Target, environ []string, log zerolog.Logger) (*composeDriver, error) {
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
	d, err := compose.Connect(ctx, log)
	if err != nil {
		return nil, err
	}
	c := &composeDriver{proj: p, service: t.Service, gpusOff: t.GPUs == "off", endpoint: t.Endpoint, d: d, log: log, key: t.Key()}
	plan, err := p.Render(ctx, t.Service, nil)
	if err != nil {
		d.Close()
		return nil, err
	}
	c.file, c.service, c.original = plan.File, plan.Service, plan.Before
	info, err := os.Stat(c.file)
	if err != nil {
		d.Close()
		return nil, err
	}
	c.mode = info.Mode().Perm()
	if l, err := p.Load(ctx, nil); err == nil {
		if svc, ok := l.Services[c.service]; ok {
			c.image = svc.Image
			c.env = map[string]string{}
			for k, v := range svc.Environment {
				if v != nil {
					c.env[k] = *v
				}
			}
		}
	}
	c.proj.Content = map[string][]byte{c.file: c.original}
	c.proj.Before = &profiles.BeforeCache{} // the original does not change during a run
	return c, nil
}

func (c *composeDriver) Close() error { return c.d.Close() }

func (c *composeDriver) Key() string { return c.key }

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

// Prepare refuses a service another live vgrid drives (even with another
// store: the container's owner label says who), then backs up the profile.
func (c *composeDriver) Prepare(ctx context.Context, runID string) (string, error) {
	c.runID = runID
	if err := c.checkOwner(ctx); err != nil {
		return "", err
	}
	return profiles.WriteBackup(c.file, runID, time.Now())
}

// Resume reads the original profile from the run's backup: after an
// interruption the file on disk holds the interrupted trial's rendering.
func (c *composeDriver) Resume(ctx context.Context, runID, backup string) error {
	c.runID = runID
	if backup == "" {
		return fmt.Errorf("run %s has no backup of %s: cannot tell its original content", runID, c.file)
	}
	orig, err := os.ReadFile(backup)
	if err != nil {
		return fmt.Errorf("read the run's backup: %w", err)
	}
	c.original = orig
	c.proj.Content = map[string][]byte{c.file: orig}
	c.proj.Before = &profiles.BeforeCache{}
	return nil
}

func (c *composeDriver) checkOwner(ctx context.Context) error {
	disk := c.proj
	disk.Content = nil
	l, err := disk.Load(ctx, nil)
	if err != nil {
		return err
	}
	s, err := compose.Convert(l.Project, c.service, compose.ConvertOptions{GPUsOff: c.gpusOff})
	if err != nil {
		return err
	}
	cont, err := c.d.Find(ctx, s)
	if err != nil || cont == nil || cont.Config == nil {
		return err
	}
	if o := cont.Config.Labels[ownerLabel]; o != "" && ownerAlive(o, c.runID) {
		return fmt.Errorf("service %s is driven by another vgrid (%s: host:pid:run); wait for it or stop it", c.service, o)
	}
	return nil
}

func (c *composeDriver) Render(ctx context.Context, cand orchestrator.Candidate) (*orchestrator.Rendered, error) {
	plan, err := c.proj.Render(ctx, c.service, cand.Settings)
	if err != nil {
		return nil, err
	}
	words := plan.Effective.Words()
	for i := 1; i < len(words); i++ {
		if vllm.CanonicalName(words[i-1]) == "api-key" {
			words[i] = "<redacted>"
		}
	}
	sum := sha256.Sum256(plan.After)
	return &orchestrator.Rendered{Candidate: cand, Hash: hex.EncodeToString(sum[:]), Words: words, Image: c.image, Private: plan.After}, nil
}

// ServerEnv is the environment the vLLM service runs with.
func (c *composeDriver) ServerEnv() map[string]string { return c.env }

// apply writes profile bytes and recreates the service.
func (c *composeDriver) apply(ctx context.Context, content []byte) error {
	cur, err := os.ReadFile(c.file)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.file, err)
	}
	if string(cur) != string(content) {
		if err := profiles.WriteFileAtomic(c.file, content, c.mode); err != nil {
			return err
		}
	}
	disk := c.proj
	disk.Content = nil
	l, err := disk.Load(ctx, nil)
	if err != nil {
		return err
	}
	s, err := compose.Convert(l.Project, c.service, compose.ConvertOptions{GPUsOff: c.gpusOff, APIVersion: c.d.APIVersion()})
	if err != nil {
		return err
	}
	s.Endpoint = c.endpoint
	if c.runID != "" {
		s.Config.Labels["io.vgrid.run"] = c.runID
		s.Config.Labels[ownerLabel] = owner(c.runID)
	}
	res, err := c.d.Recreate(ctx, s)
	if err != nil {
		return err
	}
	c.spec, c.res = s, res
	return nil
}

// Deploy checks that no other live vgrid drives the service (its owner
// label), then writes the rendering and recreates the service.
func (c *composeDriver) Deploy(ctx context.Context, r *orchestrator.Rendered) error {
	if err := c.checkOwner(ctx); err != nil {
		return err
	}
	return c.apply(ctx, r.Private.([]byte))
}

func (c *composeDriver) WaitReady(ctx context.Context, timeout time.Duration) (*orchestrator.Ready, error) {
	ready, err := c.d.WaitReady(ctx, c.spec, c.res, compose.ReadyOptions{Timeout: timeout})
	if err != nil {
		return nil, err
	}
	if f := c.claim(ctx, ready.Endpoint); f != nil {
		return nil, f
	}
	return &orchestrator.Ready{Endpoint: ready.Endpoint, Model: c.spec.ServedModel, APIKey: c.spec.APIKey, Boot: ready.Boot}, nil
}

// claim checks that the server that answered runs in the container this
// trial created (or found serving its configuration), which carries this
// vgrid's owner label, and that the endpoint is served from it.
func (c *composeDriver) claim(ctx context.Context, endpoint string) *orchestrator.Failure {
	cont, err := c.d.Find(ctx, c.spec)
	if err != nil || cont == nil {
		return &orchestrator.Failure{Reason: orchestrator.ReasonExited, Detail: fmt.Sprintf("the service's container is gone after it answered (%v)", err)}
	}
	if cont.ID != c.res.ContainerID {
		return &orchestrator.Failure{Reason: orchestrator.ReasonForeignServer, Detail: fmt.Sprintf("service %s now runs container %.12s, not %.12s that this trial created: another process recreated it", c.service, cont.ID, c.res.ContainerID)}
	}
	if o := cont.Config.Labels[ownerLabel]; c.runID != "" && o != owner(c.runID) {
		return &orchestrator.Failure{Reason: orchestrator.ReasonForeignServer, Detail: fmt.Sprintf("container %.12s carries owner %q, not this vgrid (%s)", cont.ID, o, owner(c.runID))}
	}
	start, err := vllm.ServerStart(ctx, endpoint)
	if err != nil || start.IsZero() {
		return nil
	}
	if started, perr := time.Parse(time.RFC3339Nano, cont.State.StartedAt); perr == nil && start.Before(started.Add(-2*time.Second)) {
		return &orchestrator.Failure{Reason: orchestrator.ReasonForeignServer, Detail: fmt.Sprintf("the server answering at %s started at %s, before container %.12s (started %s): the endpoint is served by something else",
			endpoint, start.Format(time.RFC3339Nano), cont.ID, started.Format(time.RFC3339Nano))}
	}
	c.serverStart = start
	return nil
}

// same checks, before and after each benchmark, that the service still
// runs the container and the server this trial measured.
func (c *composeDriver) same(ctx context.Context, endpoint string) *orchestrator.Failure {
	if c.res == nil {
		return nil
	}
	cont, err := c.d.Find(ctx, c.spec)
	if err != nil || cont == nil || cont.ID != c.res.ContainerID {
		return nil // gone or replaced: Diagnose says why
	}
	if c.serverStart.IsZero() || endpoint == "" {
		return nil
	}
	start, err := vllm.ServerStart(ctx, endpoint)
	if err != nil || start.IsZero() {
		return nil
	}
	if d := start.Sub(c.serverStart); d > time.Millisecond || d < -time.Millisecond {
		return &orchestrator.Failure{Reason: orchestrator.ReasonForeignServer, Detail: fmt.Sprintf("the server at %s is not the one this trial measured: it started at %s, the trial's at %s",
			endpoint, start.Format(time.RFC3339Nano), c.serverStart.Format(time.RFC3339Nano))}
	}
	return nil
}

func (c *composeDriver) Verify(ctx context.Context, r *orchestrator.Rendered) (map[string]string, error) {
	ep := c.endpoint
	if ep == "" {
		if cont, err := c.d.Find(ctx, c.spec); err == nil && cont != nil {
			ep, _ = c.d.Endpoint(c.spec, cont.NetworkSettings)
		}
	}
	if f := c.same(ctx, ep); f != nil {
		return nil, f
	}
	return verifyEndpoint(ctx, ep, c.spec.Flags)
}

// verifyEndpoint scrapes vllm:cache_config_info and checks it against flags.
func verifyEndpoint(ctx context.Context, endpoint string, flags vllm.Flags) (map[string]string, error) {
	eff, err := vllm.ScrapeEffective(ctx, endpoint)
	if err != nil {
		return nil, &orchestrator.Failure{Reason: orchestrator.ReasonConfigDrift, Detail: "cannot read the effective configuration: " + err.Error()}
	}
	m := map[string]string{"enable_prefix_caching": fmt.Sprint(eff.PrefixCaching), "gpu_memory_utilization": fmt.Sprint(eff.GPUUtil),
		"cache_dtype": eff.CacheDtype, "num_gpu_blocks": fmt.Sprint(eff.NumGPUBlocks), "block_size": fmt.Sprint(eff.BlockSize)}
	if d := vllm.CheckDrift(flags, eff); d != "" {
		return m, &orchestrator.Failure{Reason: orchestrator.ReasonConfigDrift, Detail: d}
	}
	return m, nil
}

func (c *composeDriver) Diagnose(ctx context.Context) *orchestrator.Failure {
	if c.spec == nil {
		return nil
	}
	if f := c.d.Diagnose(ctx, c.spec); f != nil {
		return f
	}
	ep := c.endpoint
	if ep == "" {
		if cont, err := c.d.Find(ctx, c.spec); err == nil && cont != nil {
			ep, _ = c.d.Endpoint(c.spec, cont.NetworkSettings)
		}
	}
	return c.same(ctx, ep)
}

func (c *composeDriver) Restore(ctx context.Context) error {
	if err := c.apply(ctx, c.original); err != nil {
		return err
	}
	_, err := c.d.WaitReady(ctx, c.spec, c.res, compose.ReadyOptions{Timeout: 30 * time.Minute})
	if err != nil {
		return fmt.Errorf("the original configuration did not come back: %w", err)
	}
	return nil
}

func (c *composeDriver) Crown(ctx context.Context, cand orchestrator.Candidate) error {
	r, err := c.Render(ctx, cand)
	if err != nil {
		return err
	}
	if err := c.Deploy(ctx, r); err != nil {
		return err
	}
	_, err = c.d.WaitReady(ctx, c.spec, c.res, compose.ReadyOptions{Timeout: 30 * time.Minute})
	return err
}

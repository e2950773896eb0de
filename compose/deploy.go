package compose

import (
	"context"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/vllm"
)

// Deployer recreates compose services on one Docker engine (local socket,
// tcp or ssh via DOCKER_HOST), API version negotiated.
type Deployer struct {
	cli        *client.Client
	log        zerolog.Logger
	host       string // where published ports are reached from here
	addr       string // the engine's address, for messages (ssh:// as given)
	apiVersion string
	now        func() time.Time
}

// EngineDownError says the Docker engine did not answer: a daemon's
// queued run waits for it (it may be restarting); a command fails at once.
type EngineDownError struct{ err error }

func (e *EngineDownError) Error() string { return e.err.Error() }
func (e *EngineDownError) Unwrap() error { return e.err }

// EngineDown marks the error for those that must not import this package.
func (e *EngineDownError) EngineDown() bool { return true }

// Connect opens a Docker engine and checks that it answers: host is a
// DOCKER_HOST-style address (unix://, npipe://, tcp://) or a docker context
// name; "" chooses like the docker CLI (DOCKER_HOST, DOCKER_CONTEXT, the
// current context, else the platform's default socket or pipe).
func Connect(ctx context.Context, host string, log zerolog.Logger) (*Deployer, error) {
	ep, err := ResolveEndpoint(host, os.Getenv)
	if err != nil {
		return nil, err
	}
	opts, err := ep.options()
	if err != nil {
		return nil, err
	}
	cli, err := client.New(opts...) // API versions are negotiated by default
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", ep.Source, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		addr := cli.DaemonHost()
		if ep.Host != "" {
			addr = redact(ep.Host)
		}
		advice := "start dockerd or Docker Desktop, or choose another engine (DOCKER_HOST, docker context use, target.docker_host)"
		if u, uerr := sshHost(ep.Host); uerr == nil {
			argv, _ := sshCommand(u)
			line := strings.Replace(strings.Join(argv, " "), "system dial-stdio", "version", 1)
			advice = fmt.Sprintf("check that `%s` works from this machine: vgrid never asks for a password, so it needs a key (ssh-copy-id) or an ssh agent, and docker on that host", line)
		}
		return nil, &EngineDownError{fmt.Errorf("the Docker engine at %s (%s) does not answer: %v; %s", addr, ep.Source, err, advice)}
	}
	d := &Deployer{cli: cli, log: log, host: "127.0.0.1", addr: cli.DaemonHost(), apiVersion: cli.ClientVersion(), now: time.Now}
	if ep.Host != "" {
		d.addr = redact(ep.Host)
	}
	if u, err := url.Parse(d.addr); err == nil && (u.Scheme == "tcp" || u.Scheme == "ssh") && u.Hostname() != "" {
		d.host = u.Hostname()
	}
	return d, nil
}

// Close releases the client.
func (d *Deployer) Close() error { return d.cli.Close() }

// APIVersion is the negotiated engine API version.
func (d *Deployer) APIVersion() string { return d.apiVersion }

// Action is what Recreate did.
type Action string

const (
	ActionUnchanged Action = "unchanged" // same config hash, running and healthy: nothing done
	ActionCreated   Action = "created"   // no container before
	ActionRecreated Action = "recreated" // the old container was replaced
)

// Result of Recreate.
type Result struct {
	ContainerID string
	Action      Action
	Replaced    string // ID of the container it replaced
	Started     time.Time
}

// existing finds the service's containers: by compose labels, and any
// container holding the name the new one needs.
func (d *Deployer) existing(ctx context.Context, s *Spec) ([]container.Summary, error) {
	byLabel, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", LabelProject+"="+s.Project, LabelService+"="+s.Service)})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	byName, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("name", "^/"+s.Name+"$")})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := byLabel.Items
	for _, c := range byName.Items {
		if c.Labels[LabelProject] != s.Project || c.Labels[LabelService] != s.Service {
			return nil, fmt.Errorf("a container named %s already exists (%s) and is not service %s of project %s; remove or rename it, or set another container_name",
				s.Name, c.ID[:12], s.Service, s.Project)
		}
		if !slices.ContainsFunc(out, func(x container.Summary) bool { return x.ID == c.ID }) {
			out = append(out, c)
		}
	}
	return out, nil
}

// sameConfig returns the container that may already be the spec: the only
// one, running, with the same config hash and every label the spec sets.
// The labels matter because the hash covers only the compose file: a
// container started by another vgrid process (its owner and run labels)
// has served that process's requests, and is not this trial's to measure.
// Pure. Whether it also serves is for a probe to say: Docker's own health
// status lags by its interval.
func sameConfig(s *Spec, cs []container.Summary) (string, bool) {
	if len(cs) != 1 {
		return "", false
	}
	c := cs[0]
	if c.Labels[LabelConfigHash] != s.ServiceHash || c.State != container.StateRunning {
		return c.ID, false
	}
	if s.Config != nil {
		for k, v := range s.Config.Labels {
			if got, ok := c.Labels[k]; !ok || got != v {
				return c.ID, false
			}
		}
	}
	return c.ID, true
}

// Preflight checks what must hold before anything is changed: the image is
// on the host, and a GPU service has the NVIDIA runtime.
func (d *Deployer) Preflight(ctx context.Context, s *Spec) error {
	if _, err := d.cli.ImageInspect(ctx, s.Config.Image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return &failure.Failure{Reason: failure.ReasonImageMissing, Detail: fmt.Sprintf("image %q is not on the Docker host %s; pull or build it (the simulator: make sim-image), nothing was changed", s.Config.Image, d.addr)}
		}
		return fmt.Errorf("inspect image %s: %w", s.Config.Image, err)
	}
	if s.GPUs {
		info, err := d.cli.Info(ctx, client.InfoOptions{})
		if err != nil {
			return fmt.Errorf("docker info: %w", err)
		}
		if _, ok := info.Info.Runtimes["nvidia"]; !ok {
			var names []string
			for n := range info.Info.Runtimes {
				names = append(names, n)
			}
			sort.Strings(names)
			return &failure.Failure{Reason: failure.ReasonNoGPURuntime, Detail: fmt.Sprintf("service %s asks for NVIDIA GPUs but the Docker host %s has no nvidia runtime (runtimes: %s); install the NVIDIA Container Toolkit, or pass --gpus=off for a dry run without GPUs; nothing was changed",
				s.Service, d.addr, strings.Join(names, ", "))}
		}
	}
	return nil
}

// serving reports whether a running container of the spec answers a
// decode probe and is not unhealthy for Docker.
func (d *Deployer) serving(ctx context.Context, s *Spec, id string) bool {
	r, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || r.Container.State == nil || !r.Container.State.Running {
		return false
	}
	if h := r.Container.State.Health; h != nil && h.Status == container.Unhealthy {
		return false
	}
	ep, err := d.Endpoint(s, r.Container.NetworkSettings)
	if err != nil {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return vllm.Probe(pctx, ep, s.ServedModel, s.APIKey, 10*time.Second).Ready
}

// endpoint is where this host reaches the service's vLLM server: the
// Spec's override, else the host port published for vLLM's --port.
func (d *Deployer) Endpoint(s *Spec, ns *container.NetworkSettings) (string, error) {
	if s.Endpoint != "" {
		return s.Endpoint, nil
	}
	hp := publishedPort(ns, s.Port)
	if hp == "" {
		return "", fmt.Errorf("container port %d (vLLM's --port) is not published, so vgrid cannot reach the server from this host; publish it under ports: or pass --endpoint", s.Port)
	}
	return "http://" + d.host + ":" + hp, nil
}

// Recreate makes the service's container match the spec: nothing when it
// already does; otherwise the new container is created under a temporary
// name (so a refused create leaves the old one running), the old one is
// stopped with the service's grace period and removed, and the new one is
// renamed and started. Other services are not touched.
func (d *Deployer) Recreate(ctx context.Context, s *Spec) (*Result, error) {
	if err := d.Preflight(ctx, s); err != nil {
		return nil, err
	}
	old, err := d.existing(ctx, s)
	if err != nil {
		return nil, err
	}
	if id, ok := sameConfig(s, old); ok && d.serving(ctx, s, id) {
		d.log.Info().Str("container", id[:12]).Str("service_hash", s.ServiceHash[:12]).Msg("service already runs this configuration")
		return &Result{ContainerID: id, Action: ActionUnchanged}, nil
	}
	if err := d.ensureNetwork(ctx, s); err != nil {
		return nil, err
	}
	if err := d.ensureVolumes(ctx, s); err != nil {
		return nil, err
	}
	tmpName := fmt.Sprintf("%s_vgrid_%d", s.Name, d.now().UnixNano())
	cfg := *s.Config
	cr, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &cfg, HostConfig: s.Host, Name: tmpName,
		NetworkingConfig: d.networking(s)})
	if err != nil {
		return nil, &failure.Failure{Reason: failure.ReasonCreate, Detail: fmt.Sprintf("the engine refused to create %s: %v; the running service was not changed", s.Name, err)}
	}
	res := &Result{ContainerID: cr.ID, Action: ActionCreated}
	for _, c := range old {
		res.Action, res.Replaced = ActionRecreated, c.ID
		timeout := int(s.StopTimeout.Seconds())
		if _, err := d.cli.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
			d.cli.ContainerRemove(context.WithoutCancel(ctx), cr.ID, client.ContainerRemoveOptions{Force: true})
			return nil, fmt.Errorf("stop %s: %w", c.ID[:12], err)
		}
		if _, err := d.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("remove %s: %w", c.ID[:12], err)
		}
	}
	if _, err := d.cli.ContainerRename(ctx, cr.ID, client.ContainerRenameOptions{NewName: s.Name}); err != nil {
		return nil, fmt.Errorf("rename %s to %s: %w", cr.ID[:12], s.Name, err)
	}
	res.Started = d.now()
	if _, err := d.cli.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		return res, &failure.Failure{Reason: failure.ReasonCreate, Detail: fmt.Sprintf("the engine refused to start %s: %v", s.Name, err)}
	}
	d.log.Info().Str("container", cr.ID[:12]).Str("action", string(res.Action)).Str("service_hash", s.ServiceHash[:12]).Msg("service container started")
	return res, nil
}

func (d *Deployer) networking(s *Spec) *network.NetworkingConfig {
	if s.Network == "" {
		return nil
	}
	return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{s.Network: {Aliases: s.Aliases}}}
}

func (d *Deployer) ensureNetwork(ctx context.Context, s *Spec) error {
	if s.Network == "" {
		return nil
	}
	if _, err := d.cli.NetworkInspect(ctx, s.Network, client.NetworkInspectOptions{}); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", s.Network, err)
	}
	_, err := d.cli.NetworkCreate(ctx, s.Network, client.NetworkCreateOptions{Driver: "bridge",
		Labels: map[string]string{LabelProject: s.Project, LabelNetwork: strings.TrimPrefix(s.Network, s.Project+"_"), LabelVersion: composeVersion}})
	if err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("create network %s: %w", s.Network, err)
	}
	return nil
}

func (d *Deployer) ensureVolumes(ctx context.Context, s *Spec) error {
	for _, v := range s.Volumes {
		if _, err := d.cli.VolumeInspect(ctx, v, client.VolumeInspectOptions{}); err == nil {
			continue
		} else if !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("inspect volume %s: %w", v, err)
		}
		_, err := d.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: v,
			Labels: map[string]string{LabelProject: s.Project, LabelVolume: strings.TrimPrefix(v, s.Project+"_"), LabelVersion: composeVersion}})
		if err != nil {
			return fmt.Errorf("create volume %s: %w", v, err)
		}
	}
	return nil
}

// Find returns the service's current container, if any.
func (d *Deployer) Find(ctx context.Context, s *Spec) (*container.InspectResponse, error) {
	cs, err := d.existing(ctx, s)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, nil
	}
	r, err := d.cli.ContainerInspect(ctx, cs[0].ID, client.ContainerInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", cs[0].ID[:12], err)
	}
	return &r.Container, nil
}

// Describe names the engine: its address and negotiated API version.
func (d *Deployer) Describe(ctx context.Context) string {
	v, err := d.cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return fmt.Sprintf("%s (API %s)", d.addr, d.apiVersion)
	}
	return fmt.Sprintf("%s: engine %s, API %s", d.addr, v.Version, d.apiVersion)
}

// redact hides a password in an address.
func redact(addr string) string {
	if u, err := url.Parse(addr); err == nil {
		return u.Redacted()
	}
	return addr
}

package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/vllm"
)

// Labels docker compose sets on the containers it manages; vgrid sets the
// same so `docker compose ps` and `docker compose logs` keep seeing the
// service it recreated.
const (
	LabelProject     = "com.docker.compose.project"
	LabelService     = "com.docker.compose.service"
	LabelNumber      = "com.docker.compose.container-number"
	LabelOneoff      = "com.docker.compose.oneoff"
	LabelConfigHash  = "com.docker.compose.config-hash"
	LabelConfigFiles = "com.docker.compose.project.config_files"
	LabelWorkingDir  = "com.docker.compose.project.working_dir"
	LabelVersion     = "com.docker.compose.version"
	LabelNetwork     = "com.docker.compose.network"
	LabelVolume      = "com.docker.compose.volume"
	// LabelManaged marks containers vgrid created.
	LabelManaged = "io.vgrid.managed"
)

// composeVersion is written in LabelVersion; compose reads it only to warn
// about very old containers.
const composeVersion = "2.29.0"

// Spec is everything needed to create the container of one service, computed
// without talking to Docker.
type Spec struct {
	Project     string
	Service     string
	Name        string // container name
	Config      *container.Config
	Host        *container.HostConfig
	Network     string   // network to join (the project's default unless network_mode is set)
	Aliases     []string // DNS names on that network
	Volumes     []string // named volumes to create if missing (engine names)
	ServiceHash string   // docker compose's config hash of the service (label com.docker.compose.config-hash)
	StopTimeout time.Duration
	Warnings    []string
	GPUs        bool // the service asks for NVIDIA GPUs (after --gpus=off: false)

	// vLLM facts for readiness and verification (never logged or stored:
	// APIKey is a secret).
	Flags       vllm.Flags
	Port        int    // container port vLLM listens on
	ServedModel string // first --served-model-name, else --model
	APIKey      string
	Endpoint    string // http://host:port override; default: the published port on the engine's host
}

// ConvertOptions adjust the conversion.
type ConvertOptions struct {
	// GPUsOff strips GPU reservations and runtime: nvidia for dry runs on
	// hosts without GPUs.
	GPUsOff bool
	// APIVersion is the negotiated engine API version; fields newer than it
	// are left out.
	APIVersion string
}

// ServiceHash is the service's config hash, computed as docker compose does:
// the JSON of the resolved service without the fields that do not change
// the container (build, pull policy, scale, replicas, depends_on, profiles).
func ServiceHash(s types.ServiceConfig) (string, error) {
	s.Build = nil
	s.PullPolicy = ""
	s.Scale = nil
	if s.Deploy != nil {
		d := *s.Deploy
		d.Replicas = nil
		s.Deploy = &d
	}
	s.DependsOn = nil
	s.Profiles = nil
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Convert turns a service of a loaded compose project into a container Spec.
func Convert(p *types.Project, service string, opts ConvertOptions) (*Spec, error) {
	svc, ok := p.Services[service]
	if !ok {
		return nil, fmt.Errorf("compose project %q has no service %q; services: %s", p.Name, service, strings.Join(p.ServiceNames(), ", "))
	}
	if svc.Image == "" {
		return nil, fmt.Errorf("service %q has no image (vgrid does not build images): set its image key", service)
	}
	s := &Spec{Project: p.Name, Service: service, Name: svc.ContainerName}
	if s.Name == "" {
		s.Name = fmt.Sprintf("%s-%s-1", p.Name, service)
	}
	if opts.GPUsOff {
		svc = stripGPUs(svc, &s.Warnings)
	}
	hash, err := ServiceHash(svc)
	if err != nil {
		return nil, fmt.Errorf("hash service %q: %w", service, err)
	}
	s.ServiceHash = hash

	labels := map[string]string{}
	for k, v := range svc.Labels {
		labels[k] = v
	}
	labels[LabelProject] = p.Name
	labels[LabelService] = service
	labels[LabelNumber] = "1"
	labels[LabelOneoff] = "False"
	labels[LabelConfigHash] = hash
	labels[LabelConfigFiles] = strings.Join(p.ComposeFiles, ",")
	labels[LabelWorkingDir] = p.WorkingDir
	labels[LabelVersion] = composeVersion
	labels[LabelManaged] = "true"

	var env []string
	for k, v := range svc.Environment {
		if v != nil {
			env = append(env, k+"="+*v)
		}
	}
	sort.Strings(env)

	s.Config = &container.Config{
		Image:        svc.Image,
		Entrypoint:   []string(svc.Entrypoint),
		Cmd:          []string(svc.Command),
		Env:          env,
		Labels:       labels,
		Hostname:     svc.Hostname,
		User:         svc.User,
		WorkingDir:   svc.WorkingDir,
		StopSignal:   svc.StopSignal,
		ExposedPorts: network.PortSet{},
		Healthcheck:  healthcheck(svc.HealthCheck, opts.APIVersion),
	}
	s.Host = &container.HostConfig{
		PortBindings:  network.PortMap{},
		RestartPolicy: restartPolicy(svc.Restart),
		IpcMode:       container.IpcMode(svc.Ipc),
		ShmSize:       int64(svc.ShmSize),
		Runtime:       svc.Runtime,
		Init:          svc.Init,
	}
	for _, pc := range svc.Ports {
		proto := pc.Protocol
		if proto == "" {
			proto = "tcp"
		}
		port, err := network.ParsePort(fmt.Sprintf("%d/%s", pc.Target, proto))
		if err != nil {
			return nil, fmt.Errorf("service %q port %d: %w", service, pc.Target, err)
		}
		s.Config.ExposedPorts[port] = struct{}{}
		b := network.PortBinding{HostPort: pc.Published}
		if pc.HostIP != "" {
			ip, err := netip.ParseAddr(pc.HostIP)
			if err != nil {
				return nil, fmt.Errorf("service %q port %d: host_ip %q: %w", service, pc.Target, pc.HostIP, err)
			}
			b.HostIP = ip
		}
		s.Host.PortBindings[port] = append(s.Host.PortBindings[port], b)
	}
	if err := s.volumes(p, svc); err != nil {
		return nil, err
	}
	s.Host.DeviceRequests = append(s.Host.DeviceRequests, gpuRequests(svc)...)
	s.GPUs = len(s.Host.DeviceRequests) > 0 || svc.Runtime == "nvidia"
	if svc.StopGracePeriod != nil {
		s.StopTimeout = time.Duration(*svc.StopGracePeriod)
	} else {
		s.StopTimeout = 10 * time.Second
	}
	switch {
	case svc.NetworkMode != "":
		s.Host.NetworkMode = container.NetworkMode(svc.NetworkMode)
	default:
		net := "default"
		for n := range svc.Networks {
			net = n // the user's profiles use one network at most
			break
		}
		s.Network = p.Networks[net].Name
		if s.Network == "" {
			s.Network = p.Name + "_" + net
		}
		s.Host.NetworkMode = container.NetworkMode(s.Network)
		s.Aliases = []string{service, s.Name}
	}

	// vLLM facts.
	words, err := profilesEffective(svc)
	if err == nil {
		s.Flags = vllm.ParseArgs(words)
		s.ServedModel, s.Port, s.APIKey = s.Flags.Served()
	}
	return s, nil
}

// profilesEffective extracts the vLLM argument words of a resolved service.
func profilesEffective(svc types.ServiceConfig) ([]string, error) {
	l := &profiles.Loaded{Project: &types.Project{Services: types.Services{svc.Name: svc}}}
	f, err := l.Flags(svc.Name)
	if err != nil {
		return nil, err
	}
	return f.Words(), nil
}

func stripGPUs(svc types.ServiceConfig, warnings *[]string) types.ServiceConfig {
	if svc.Runtime == "nvidia" {
		svc.Runtime = ""
		*warnings = append(*warnings, "--gpus=off: runtime: nvidia removed")
	}
	if svc.Deploy != nil && svc.Deploy.Resources.Reservations != nil && len(svc.Deploy.Resources.Reservations.Devices) > 0 {
		d := *svc.Deploy
		r := *d.Resources.Reservations
		r.Devices = nil
		d.Resources.Reservations = &r
		svc.Deploy = &d
		*warnings = append(*warnings, "--gpus=off: GPU device reservations removed")
	}
	if len(svc.Gpus) > 0 {
		svc.Gpus = nil
		*warnings = append(*warnings, "--gpus=off: gpus removed")
	}
	return svc
}

// gpuRequests are the service's device requests: deploy reservations,
// then gpus: (which, like docker compose, always asks for the gpu
// capability; "all" is a count of -1).
func gpuRequests(svc types.ServiceConfig) []container.DeviceRequest {
	var reqs []types.DeviceRequest
	if svc.Deploy != nil && svc.Deploy.Resources.Reservations != nil {
		reqs = append(reqs, svc.Deploy.Resources.Reservations.Devices...)
	}
	for _, g := range svc.Gpus {
		if !slices.Contains(g.Capabilities, "gpu") {
			g.Capabilities = append(slices.Clone(g.Capabilities), "gpu")
		}
		reqs = append(reqs, g)
	}
	var out []container.DeviceRequest
	for _, d := range reqs {
		r := container.DeviceRequest{Driver: d.Driver, Count: int(d.Count), DeviceIDs: d.IDs, Options: map[string]string(d.Options)}
		if len(d.Capabilities) > 0 {
			r.Capabilities = [][]string{d.Capabilities}
		}
		if r.Count == 0 && len(r.DeviceIDs) == 0 {
			r.Count = -1 // compose: no count and no ids means all devices
		}
		out = append(out, r)
	}
	return out
}

func restartPolicy(r string) container.RestartPolicy {
	name, count, _ := strings.Cut(r, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	if name == "" {
		p.Name = container.RestartPolicyDisabled
	}
	if n, err := strconv.Atoi(count); err == nil {
		p.MaximumRetryCount = n
	}
	return p
}

func healthcheck(h *types.HealthCheckConfig, apiVersion string) *container.HealthConfig {
	if h == nil {
		return nil
	}
	if h.Disable {
		return &container.HealthConfig{Test: []string{"NONE"}}
	}
	c := &container.HealthConfig{Test: h.Test}
	if h.Interval != nil {
		c.Interval = time.Duration(*h.Interval)
	}
	if h.Timeout != nil {
		c.Timeout = time.Duration(*h.Timeout)
	}
	if h.StartPeriod != nil {
		c.StartPeriod = time.Duration(*h.StartPeriod)
	}
	if h.StartInterval != nil && apiAtLeast(apiVersion, 1, 44) {
		c.StartInterval = time.Duration(*h.StartInterval)
	}
	if h.Retries != nil {
		c.Retries = int(*h.Retries)
	}
	return c
}

func apiAtLeast(v string, major, minor int) bool {
	a, b, _ := strings.Cut(v, ".")
	ma, _ := strconv.Atoi(a)
	mi, _ := strconv.Atoi(b)
	return v == "" || ma > major || ma == major && mi >= minor
}

// volumes converts service volumes. Like docker compose, a bind whose host
// path may be created goes in Binds (the engine creates a missing source);
// a bind with create_host_path: false goes in Mounts, where the engine
// refuses a missing source instead of mounting an empty directory.
func (s *Spec) volumes(p *types.Project, svc types.ServiceConfig) error {
	for _, v := range svc.Volumes {
		switch v.Type {
		case types.VolumeTypeBind:
			if v.Bind != nil && !bool(v.Bind.CreateHostPath) {
				s.Host.Mounts = append(s.Host.Mounts, mount.Mount{Type: mount.TypeBind, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly})
				continue
			}
			bind := v.Source + ":" + v.Target
			if v.ReadOnly {
				bind += ":ro"
			}
			s.Host.Binds = append(s.Host.Binds, bind)
		case types.VolumeTypeVolume:
			if v.Source == "" { // anonymous volume
				s.Host.Mounts = append(s.Host.Mounts, mount.Mount{Type: mount.TypeVolume, Target: v.Target, ReadOnly: v.ReadOnly})
				continue
			}
			name := v.Source
			if vol, ok := p.Volumes[v.Source]; ok {
				if vol.Name != "" {
					name = vol.Name
				}
				if !bool(vol.External) && !slices.Contains(s.Volumes, name) {
					s.Volumes = append(s.Volumes, name)
				}
			}
			s.Host.Mounts = append(s.Host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: name, Target: v.Target, ReadOnly: v.ReadOnly})
		case types.VolumeTypeTmpfs:
			s.Host.Mounts = append(s.Host.Mounts, mount.Mount{Type: mount.TypeTmpfs, Target: v.Target})
		default:
			return fmt.Errorf("service %q: volume type %q (target %s) is not supported by vgrid", s.Service, v.Type, v.Target)
		}
	}
	return nil
}

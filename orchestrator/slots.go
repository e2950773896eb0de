package orchestrator

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// SlotDef is one slot of a target (target.slots in the grid): the GPUs a
// trial's server gets, the host port it listens on and, for the compose
// driver, the Docker engine that runs it.
type SlotDef struct {
	GPUs string `yaml:"gpus" json:"gpus"` // device IDs: "0,1"
	Port int    `yaml:"port" json:"port"`
	// DockerHost is the slot's engine (compose driver): an address
	// (unix://, tcp://, ssh://user@host) or a docker context name; ""
	// is the target's.
	DockerHost string `yaml:"docker_host" json:"docker_host,omitempty"`
}

// Name is how trials record the slot.
func (s SlotDef) Name() string {
	n := fmt.Sprintf("gpus %s port %d", s.GPUs, s.Port)
	if s.DockerHost != "" {
		n += " on " + s.DockerHost
	}
	return n
}

// Devices are the slot's GPU IDs.
func (s SlotDef) Devices() ([]int, error) {
	var out []int
	for _, f := range strings.Split(s.GPUs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("gpus %q: want device IDs separated by commas, e.g. \"0,1\"", s.GPUs)
		}
		out = append(out, n)
	}
	return out, nil
}

// Machine names the computer whose GPUs and ports a Docker host uses:
// the host of a tcp:// or ssh:// address; "local" for this machine's
// sockets and pipes and for ""; a context name stands for itself (its
// address is read only when connecting). Pure.
func Machine(dockerHost string) string {
	if dockerHost == "" || strings.HasPrefix(dockerHost, "unix://") || strings.HasPrefix(dockerHost, "npipe://") {
		return "local"
	}
	if u, err := url.Parse(dockerHost); err == nil && u.Hostname() != "" {
		switch u.Hostname() {
		case "localhost", "127.0.0.1", "::1":
			return "local"
		}
		return u.Hostname()
	}
	return "context " + dockerHost
}

// slotHost is the Docker host slot i runs on.
func (t Target) slotHost(i int) string {
	if h := t.Slots[i].DockerHost; h != "" {
		return h
	}
	return t.DockerHost
}

// checkSlots refuses slots that would collide: a GPU in two slots of one
// machine, a port twice on one machine or the target's own, a bad value.
// Each slot's server runs at once with the others.
func (t Target) checkSlots() error {
	if len(t.Slots) == 0 {
		return nil
	}
	own := 0
	if u, err := url.Parse(t.Endpoint); err == nil {
		own, _ = strconv.Atoi(u.Port())
	}
	type at struct {
		machine string
		n       int
	}
	gpus := map[at]int{}
	ports := map[at]int{}
	for i, s := range t.Slots {
		if s.DockerHost != "" && t.Driver != "compose" {
			return fmt.Errorf("target.slots[%d]: docker_host is for the compose driver; the process driver runs its slots on this machine", i)
		}
		m := Machine(t.slotHost(i))
		where := ""
		if m != "local" {
			where = " on " + m
		}
		if s.Port < 1 || s.Port > 65535 {
			return fmt.Errorf("target.slots[%d]: port %d: want the host port its server listens on (1-65535)", i, s.Port)
		}
		if s.Port == own && m == Machine(t.DockerHost) {
			return fmt.Errorf("target.slots[%d]: port %d is the target's own (its endpoint, where the champion is crowned); give the slot another", i, s.Port)
		}
		if j, ok := ports[at{m, s.Port}]; ok {
			return fmt.Errorf("target.slots[%d] and [%d] both use port %d%s: each slot's server needs its own", j, i, s.Port, where)
		}
		ports[at{m, s.Port}] = i
		devs, err := s.Devices()
		if err != nil {
			return fmt.Errorf("target.slots[%d]: %v", i, err)
		}
		for _, d := range devs {
			if j, ok := gpus[at{m, d}]; ok {
				return fmt.Errorf("target.slots[%d] and [%d] both use GPU %d%s: slots run at once, so their GPU sets must not overlap", j, i, d, where)
			}
			gpus[at{m, d}] = i
		}
	}
	return nil
}

// SlotProject is the compose project of slot i of a project: each slot's
// container lives in its own project, so `docker compose -p NAME ps` and
// `docker compose ls` show it apart from the user's. Pure.
func SlotProject(project string, i int) string {
	return fmt.Sprintf("%s-vgrid-slot%d", project, i+1)
}

// SlotTarget is the target slot i runs. Process driver: the target's
// command with the slot's --port, its endpoint on that port, and
// CUDA_VISIBLE_DEVICES set to the slot's GPUs. Compose driver: the slot's
// engine and project (the driver renders the rest in a generated
// override), its endpoint, when the target names one, on the slot's port.
// Pure.
func (t Target) SlotTarget(i int) (Target, error) {
	def := t.Slots[i]
	st := t
	st.Slots = nil
	if t.Driver == "compose" {
		st.DockerHost = t.slotHost(i)
		project := t.Project
		if project == "" && len(t.Files) > 0 {
			project = filepath.Base(filepath.Dir(t.Files[0]))
		}
		st.Project = SlotProject(project, i)
		if t.Endpoint == "" {
			return st, nil
		}
	} else {
		st.Command = withPort(t.Command, def.Port)
	}
	u, err := url.Parse(t.Endpoint)
	if err != nil || u.Host == "" {
		return st, fmt.Errorf("target.endpoint %q: want a URL such as http://127.0.0.1:8000", t.Endpoint)
	}
	u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(def.Port))
	st.Endpoint = strings.TrimRight(u.String(), "/")
	if t.Driver == "compose" {
		return st, nil
	}
	st.Env = map[string]string{}
	for k, v := range t.Env {
		st.Env[k] = v
	}
	st.Env["CUDA_VISIBLE_DEVICES"] = def.GPUs
	return st, nil
}

// Keys are what a run of the target holds while it runs: the target's
// key and each slot's (no other run may drive any of them meanwhile).
func (t Target) Keys() []string {
	keys := []string{t.Key()}
	for i := range t.Slots {
		if st, err := t.SlotTarget(i); err == nil {
			keys = append(keys, st.Key())
		}
	}
	return keys
}

// withPort returns the command with its --port set to port (added when
// the command has none).
func withPort(cmd []string, port int) []string {
	out := append([]string(nil), cmd...)
	p := strconv.Itoa(port)
	for i, w := range out {
		switch {
		case w == "--port" && i+1 < len(out):
			out[i+1] = p
			return out
		case strings.HasPrefix(w, "--port="):
			out[i] = "--port=" + p
			return out
		}
	}
	return append(out, "--port", p)
}

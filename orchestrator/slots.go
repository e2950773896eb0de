package orchestrator

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// SlotDef is one slot of a target (target.slots in the grid): the GPUs a
// trial's server gets and the host port it listens on.
type SlotDef struct {
	GPUs string `yaml:"gpus" json:"gpus"` // device IDs: "0,1"
	Port int    `yaml:"port" json:"port"`
}

// Name is how trials record the slot.
func (s SlotDef) Name() string { return fmt.Sprintf("gpus %s port %d", s.GPUs, s.Port) }

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

// checkSlots refuses slots that would collide: a GPU in two slots, a port
// twice or the target's own, a bad value. Each slot's server runs at once
// with the others on the same host.
func (t Target) checkSlots() error {
	if len(t.Slots) == 0 {
		return nil
	}
	if t.Driver == "compose" {
		return fmt.Errorf("target.slots: slots of the compose driver are not supported yet; use the process driver, or one trial at a time")
	}
	own := 0
	if u, err := url.Parse(t.Endpoint); err == nil {
		own, _ = strconv.Atoi(u.Port())
	}
	gpus := map[int]int{}
	ports := map[int]int{}
	for i, s := range t.Slots {
		if s.Port < 1 || s.Port > 65535 {
			return fmt.Errorf("target.slots[%d]: port %d: want the host port its server listens on (1-65535)", i, s.Port)
		}
		if s.Port == own {
			return fmt.Errorf("target.slots[%d]: port %d is the target's own (its endpoint, where the champion is crowned); give the slot another", i, s.Port)
		}
		if j, ok := ports[s.Port]; ok {
			return fmt.Errorf("target.slots[%d] and [%d] both use port %d: each slot's server needs its own", j, i, s.Port)
		}
		ports[s.Port] = i
		devs, err := s.Devices()
		if err != nil {
			return fmt.Errorf("target.slots[%d]: %v", i, err)
		}
		for _, d := range devs {
			if j, ok := gpus[d]; ok {
				return fmt.Errorf("target.slots[%d] and [%d] both use GPU %d: slots run at once, so their GPU sets must not overlap", j, i, d)
			}
			gpus[d] = i
		}
	}
	return nil
}

// SlotTarget is the target slot i runs (process driver): the target's
// command with the slot's --port, its endpoint on that port, and
// CUDA_VISIBLE_DEVICES set to the slot's GPUs. Pure.
func (t Target) SlotTarget(i int) (Target, error) {
	def := t.Slots[i]
	st := t
	st.Slots = nil
	st.Command = withPort(t.Command, def.Port)
	u, err := url.Parse(t.Endpoint)
	if err != nil || u.Host == "" {
		return st, fmt.Errorf("target.endpoint %q: want a URL such as http://127.0.0.1:8000", t.Endpoint)
	}
	u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(def.Port))
	st.Endpoint = strings.TrimRight(u.String(), "/")
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

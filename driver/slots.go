package driver

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
)

// ProcessSlots builds one process driver per slot of the target: the
// target's command with the slot's --port, its endpoint on that port, and
// CUDA_VISIBLE_DEVICES set to the slot's GPUs. Each slot's server logs go
// to its own folder under logDir; its hardware is its GPUs' models as this
// host's nvidia-smi names them (unknown without one). The caller closes
// the drivers.
func ProcessSlots(ctx context.Context, t orchestrator.Target, environ []string, logDir string, log zerolog.Logger) ([]orchestrator.Slot, []Closer, error) {
	if len(t.Slots) == 0 {
		return nil, nil, nil
	}
	host, _ := os.Hostname()
	names, err := benchmark.LocalGPUNames(ctx)
	if err != nil {
		log.Debug().Err(err).Msg("the slots' GPU models are unknown")
	}
	var slots []orchestrator.Slot
	var closers []Closer
	for i, def := range t.Slots {
		st := t
		st.Slots = nil
		st.Command = withPort(t.Command, def.Port)
		ep, err := onPort(t.Endpoint, def.Port)
		if err != nil {
			return nil, closers, err
		}
		st.Endpoint = ep
		st.Env = map[string]string{}
		for k, v := range t.Env {
			st.Env[k] = v
		}
		st.Env["CUDA_VISIBLE_DEVICES"] = def.GPUs
		p, err := NewProcess(st, environ, filepath.Join(logDir, fmt.Sprintf("slot-%d", i)), log.With().Str("slot", def.Name()).Logger())
		if err != nil {
			return nil, closers, fmt.Errorf("target.slots[%d]: %w", i, err)
		}
		closers = append(closers, p)
		devs, _ := def.Devices() // checked with the grid
		slots = append(slots, orchestrator.Slot{Name: def.Name(), Host: host, Key: st.Key(), Hardware: benchmark.Hardware(names, devs), Driver: p})
	}
	return slots, closers, nil
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

// onPort returns the endpoint with its port replaced.
func onPort(endpoint string, port int) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("target.endpoint %q: want a URL such as http://127.0.0.1:8000", endpoint)
	}
	u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(port))
	return strings.TrimRight(u.String(), "/"), nil
}

package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

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
	var samples []benchmark.GPUSample
	for i, def := range t.Slots {
		st, err := t.SlotTarget(i)
		if err != nil {
			return nil, closers, err
		}
		p, err := NewProcess(st, environ, filepath.Join(logDir, fmt.Sprintf("slot-%d", i)), log.With().Str("slot", def.Name()).Logger())
		if err != nil {
			return nil, closers, fmt.Errorf("target.slots[%d]: %w", i, err)
		}
		closers = append(closers, p)
		devs, _ := def.Devices() // checked with the grid
		if samples == nil {
			samples = LocalGPUs()
		}
		slots = append(slots, orchestrator.Slot{Name: def.Name(), Host: host, Key: st.Key(), Hardware: benchmark.Hardware(names, devs), Driver: p,
			GPUs: SlotGPUs(samples, devs)})
	}
	return slots, closers, nil
}

package driver

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/vllm"
)

// LocalGPUs reads this host's GPUs from nvidia-smi (none without it).
func LocalGPUs() []benchmark.GPUSample {
	out, err := exec.Command(benchmark.NvidiaSMI(), "--query-gpu="+benchmark.GPUQuery, "--format=csv,noheader,nounits").Output()
	if err != nil {
		return nil
	}
	ss, err := benchmark.ParseGPUCSV(strings.NewReader(string(out)), time.Now)
	if err != nil {
		return nil
	}
	return ss
}

// SlotGPUs are the GPUs of samples whose index is one of devices, in the
// order of devices (none when one is missing).
func SlotGPUs(samples []benchmark.GPUSample, devices []int) []benchmark.GPUSample {
	var out []benchmark.GPUSample
	for _, d := range devices {
		found := false
		for _, s := range samples {
			if s.Index == d {
				out, found = append(out, s), true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return out
}

// MemorySetup reads a candidate's vLLM words into the memory model's
// inputs: its configuration, the model's architecture (the grid's
// hardware.model when --model is a path) and the GPUs (the grid's
// hardware, else this host's, as nvidia-smi sees them now).
func MemorySetup(g *orchestrator.Grid, words []string) (*vllm.Config, vllm.Arch, []vllm.GPU, error) {
	return memorySetup(g, words, LocalGPUs)
}

// memorySetup is MemorySetup with the GPUs read by local (a slot's).
func memorySetup(g *orchestrator.Grid, words []string, local func() []benchmark.GPUSample) (*vllm.Config, vllm.Arch, []vllm.GPU, error) {
	cfg, err := vllm.ParseServeArgs(words)
	if err != nil {
		return nil, vllm.Arch{}, nil, err
	}
	model := cfg.Model
	if g.Feasibility.Model != "" {
		model = g.Feasibility.Model
	}
	arch, _ := vllm.LookupArch(model, "")
	var used []string
	for _, u := range g.Feasibility.GPUUsedMiB {
		used = append(used, fmt.Sprint(u))
	}
	total := ""
	if g.Feasibility.GPUMemoryMiB > 0 {
		total = fmt.Sprint(g.Feasibility.GPUMemoryMiB)
	} else if gpus := local(); len(gpus) > 0 {
		total = fmt.Sprint(gpus[0].MemTotalMiB)
		if len(used) == 0 {
			for _, g := range gpus {
				used = append(used, fmt.Sprint(g.MemUsedMiB))
			}
		}
	}
	gpus, err := vllm.ParseGPUs(max(cfg.TP, 1), total, strings.Join(used, ","), "")
	return cfg, arch, gpus, err
}

// Feasibility predicts, with the memory model (docs/sim.md), whether vLLM
// can boot a candidate on the grid's hardware. With slots whose GPUs are
// known (and no hardware in the grid), it asks each slot's GPUs, as its
// host's nvidia-smi saw them: a candidate is infeasible only when it fits
// on none of them (it never skips what could boot on some slot).
func Feasibility(ctx context.Context, g *orchestrator.Grid, d orchestrator.Driver, slots ...orchestrator.Slot) func(orchestrator.Candidate) (bool, string) {
	sources := []func() []benchmark.GPUSample{LocalGPUs}
	names := []string{""}
	if g.Feasibility.GPUMemoryMiB == 0 {
		for _, s := range slots {
			if len(s.GPUs) > 0 {
				if len(names) == 1 && names[0] == "" {
					sources, names = nil, nil
				}
				gpus := s.GPUs
				sources = append(sources, func() []benchmark.GPUSample { return gpus })
				names = append(names, "slot "+s.Name+": ")
			}
		}
	}
	return func(c orchestrator.Candidate) (bool, string) {
		p, err := d.Render(ctx, c)
		if err != nil {
			return false, err.Error()
		}
		var why []string
		for i, src := range sources {
			cfg, arch, gpus, err := memorySetup(g, p.Rendered().Words, src)
			if err != nil {
				return false, err.Error()
			}
			m, err := vllm.PlanMemory(cfg, arch, gpus)
			if err != nil {
				why = append(why, names[i]+err.Error())
				continue
			}
			return true, fmt.Sprintf("%s%.2f GiB KV per GPU, %d tokens", names[i], m.KVGiB, m.KVTokens)
		}
		return false, strings.Join(why, "; ")
	}
}

// ModelDurations is the model's estimate of a trial when the store has no
// history: the boot model (vllm.BootSeconds) and a token-rate model of the
// benchmark, scaled by VLLM_SIM_TIME_SCALE (and the boot by
// VLLM_SIM_BOOT_SLOWDOWN) when the server is the simulator.
func ModelDurations(g *orchestrator.Grid, words []string, env map[string]string) orchestrator.Durations {
	scale, boot := 1.0, 1.0
	if v, err := strconv.ParseFloat(env["VLLM_SIM_TIME_SCALE"], 64); err == nil && v > 0 {
		scale = v
	}
	if v, err := strconv.ParseFloat(env["VLLM_SIM_BOOT_SLOWDOWN"], 64); err == nil {
		boot = v
	}
	seconds := 165.0 // a 32B AWQ model on TP 2, when the words do not parse
	if cfg, arch, gpus, err := MemorySetup(g, words); err == nil {
		seconds = vllm.BootSeconds(cfg, arch, gpus)
	}
	names, _ := benchmark.CheckNames(g.Benchmark.Scenarios)
	bench := g.Benchmark.Resolve().Estimate(names, benchmark.Timing{BaseMs: 20, PrefillMsPerToken: 0.15, ITLMs: 25})
	return orchestrator.Durations{Boot: time.Duration(seconds * scale * boot * float64(time.Second)), Bench: time.Duration(float64(bench) * scale)}
}

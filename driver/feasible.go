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

// MemorySetup reads a candidate's vLLM words into the memory model's
// inputs: its configuration, the model's architecture (the grid's
// hardware.model when --model is a path) and the GPUs (the grid's
// hardware, else this host's, as nvidia-smi sees them now).
func MemorySetup(g *orchestrator.Grid, words []string) (*vllm.Config, vllm.Arch, []vllm.GPU, error) {
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
	} else if gpus := LocalGPUs(); len(gpus) > 0 {
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
// can boot a candidate on the grid's hardware.
func Feasibility(ctx context.Context, g *orchestrator.Grid, d orchestrator.Driver) func(orchestrator.Candidate) (bool, string) {
	return func(c orchestrator.Candidate) (bool, string) {
		p, err := d.Render(ctx, c)
		if err != nil {
			return false, err.Error()
		}
		cfg, arch, gpus, err := MemorySetup(g, p.Rendered().Words)
		if err != nil {
			return false, err.Error()
		}
		m, err := vllm.PlanMemory(cfg, arch, gpus)
		if err != nil {
			return false, err.Error()
		}
		return true, fmt.Sprintf("%.2f GiB KV per GPU, %d tokens", m.KVGiB, m.KVTokens)
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

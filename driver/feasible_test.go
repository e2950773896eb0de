//go:build unix

package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/vllm"
)

// TestDesktopGPUFeedsFeasibility: on the user's workstation GPU 0 also
// drives the display. nvidia-smi (here a stand-in on PATH printing what a
// Windows driver prints under WDDM: memory in use, no per-process figures)
// reports that use, and the memory model counts it: 0.95 of a 24 GiB card
// does not fit beside the desktop's 1.9 GiB, 0.85 does.
func TestDesktopGPUFeedsFeasibility(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\n" +
		"echo '0, GPU-5a1f0e7c-0000-0000-0000-000000000000, 7, 1946, 24564, 41, 38.12'\n" +
		"echo '1, GPU-9b2e1d8d-0000-0000-0000-000000000000, 0, 0, 24564, 33, 11.85'\n"
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	gpus := LocalGPUs()
	if len(gpus) != 2 || gpus[0].MemUsedMiB != 1946 || gpus[1].MemUsedMiB != 0 {
		t.Fatalf("LocalGPUs: %+v", gpus)
	}
	g := &orchestrator.Grid{}
	for _, tc := range []struct {
		util     string
		feasible bool
	}{{"0.95", false}, {"0.85", true}} {
		cfg, arch, devs, err := MemorySetup(g, []string{"--model", "Qwen/Qwen3-32B-AWQ", "--tensor-parallel-size", "2", "--gpu-memory-utilization", tc.util, "--max-model-len", "32768"})
		if err != nil {
			t.Fatal(err)
		}
		if devs[0].UsedMiB != 1946 || devs[0].TotalMiB != 24564 {
			t.Fatalf("GPU 0: %+v, want the desktop's 1946 MiB of 24564", devs[0])
		}
		_, err = vllm.PlanMemory(cfg, arch, devs)
		if (err == nil) != tc.feasible {
			t.Errorf("gpu-memory-utilization %s: feasible %v (%v), want %v", tc.util, err == nil, err, tc.feasible)
		}
	}
}

// TestFeasibilityPerSlot: each slot's GPUs, as its host reported them,
// feed the memory model: 0.95 does not fit on the slot whose GPU 0 drives
// a desktop, but fits on the free pair, so it is not skipped; with only
// the desktop's slot it is, and the reason names the slot.
func TestFeasibilityPerSlot(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no nvidia-smi here: only the slots' GPUs count
	free := []benchmarkSample{{2, 0}, {3, 0}}
	desk := []benchmarkSample{{0, 1946}, {1, 0}}
	target := orchestrator.Target{Driver: "process", Command: []string{"vllm", "serve", "--model", "Qwen/Qwen3-32B-AWQ", "--tensor-parallel-size", "2", "--max-model-len", "32768"}, Endpoint: "http://127.0.0.1:8000"}
	p, err := NewProcess(target, nil, t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	g := &orchestrator.Grid{Target: target}
	cand, _ := vllm.NewCandidate([]string{"gpu-memory-utilization=0.95"}, nil)
	c := orchestrator.Candidate{Name: "0.95", Settings: cand}
	both := Feasibility(t.Context(), g, p, slotOf("desk", desk), slotOf("free", free))
	if ok, why := both(c); !ok || !strings.Contains(why, "slot free") {
		t.Errorf("on both slots: %v %q, want feasible on the free slot", ok, why)
	}
	one := Feasibility(t.Context(), g, p, slotOf("desk", desk))
	if ok, why := one(c); ok || !strings.Contains(why, "slot desk: ") {
		t.Errorf("on the desktop's slot: %v %q, want infeasible, naming the slot", ok, why)
	}
}

type benchmarkSample struct {
	index int
	used  float64
}

func slotOf(name string, gpus []benchmarkSample) orchestrator.Slot {
	s := orchestrator.Slot{Name: name}
	for _, g := range gpus {
		s.GPUs = append(s.GPUs, benchmark.GPUSample{Index: g.index, MemUsedMiB: g.used, MemTotalMiB: 24564})
	}
	return s
}

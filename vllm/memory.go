package vllm

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

const (
	GiB = 1 << 30
	MiB = 1 << 20
)

// Arch is what the memory model needs to know about a model.
type Arch struct {
	Layers       int     // layers that hold a KV cache (attention layers of hybrid models)
	KVHeads      int     // key/value heads
	HeadDim      int     // per head
	Hidden       int     // hidden size
	Intermediate int     // MLP intermediate size (for MoE: active experts' total)
	WeightBytes  float64 // all weights, all GPUs together
	MaxPositions int     // max_position_embeddings
	DtypeBytes   float64 // bytes per element of the model dtype (2 for half/bf16)
}

// Archs is the model table. Sizes from the models' config.json; weights
// from the repositories' safetensors totals.
var Archs = map[string]Arch{
	"Qwen/Qwen3-32B-AWQ": {Layers: 64, KVHeads: 8, HeadDim: 128, Hidden: 5120, Intermediate: 25600,
		WeightBytes: 19.3e9, MaxPositions: 40960, DtypeBytes: 2},
	// Qwen3.6/3.5 MoE: 40 layers of which 10 are full attention (30 Gated DeltaNet with a fixed state).
	"cyankiwi/Qwen3.6-35B-A3B-AWQ-4bit": {Layers: 10, KVHeads: 2, HeadDim: 256, Hidden: 2048, Intermediate: 9 * 512,
		WeightBytes: 22e9, MaxPositions: 262144, DtypeBytes: 2},
	"ulkaa/Ornith-1.5-35B-A3B-AWQ-INT4": {Layers: 10, KVHeads: 2, HeadDim: 256, Hidden: 2048, Intermediate: 9 * 512,
		WeightBytes: 22e9, MaxPositions: 262144, DtypeBytes: 2},
	"cyankiwi/Qwen3-VL-8B-Thinking-AWQ-4bit": {Layers: 36, KVHeads: 8, HeadDim: 128, Hidden: 4096, Intermediate: 12288,
		WeightBytes: 6.1e9, MaxPositions: 262144, DtypeBytes: 2},
	// The default for any other name: a small model, so quick demos boot anywhere.
	"sim-small": {Layers: 16, KVHeads: 4, HeadDim: 64, Hidden: 1024, Intermediate: 3072,
		WeightBytes: 1.2e9, MaxPositions: 32768, DtypeBytes: 2},
}

// LookupArch returns the model's architecture: VLLM_SIM_MODEL_ARCH
// ("layers=64,kv_heads=8,head_dim=128,hidden=5120,intermediate=25600,
// weights_gb=19.3,max_positions=40960") overrides the table; unknown models
// are "sim-small".
func LookupArch(model, override string) (Arch, error) {
	a, ok := Archs[model]
	if !ok {
		a = Archs["sim-small"]
	}
	if override == "" {
		return a, nil
	}
	for _, kv := range strings.Split(override, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return a, fmt.Errorf("VLLM_SIM_MODEL_ARCH: %q: %q is not a number", k, v)
		}
		switch k {
		case "layers":
			a.Layers = int(f)
		case "kv_heads":
			a.KVHeads = int(f)
		case "head_dim":
			a.HeadDim = int(f)
		case "hidden":
			a.Hidden = int(f)
		case "intermediate":
			a.Intermediate = int(f)
		case "weights_gb":
			a.WeightBytes = f * 1e9
		case "max_positions":
			a.MaxPositions = int(f)
		default:
			return a, fmt.Errorf("VLLM_SIM_MODEL_ARCH: unknown key %q (layers, kv_heads, head_dim, hidden, intermediate, weights_gb, max_positions)", k)
		}
	}
	return a, nil
}

// GPU is one device as the simulator sees it.
type GPU struct {
	TotalMiB  float64 // VLLM_SIM_GPU_MEMORY_MIB, default 24564 (RTX 4090)
	UsedMiB   float64 // by other processes at startup (VLLM_SIM_GPU_USED_MIB, e.g. "1500,0")
	GrowthMiB float64 // taken by other processes during boot, after the startup check (VLLM_SIM_GPU_USED_GROWTH_MIB)
}

// ParseGPUs reads the per-device environment for n devices.
func ParseGPUs(n int, totalEnv, usedEnv, growthEnv string) ([]GPU, error) {
	total := 24564.0
	if totalEnv != "" {
		v, err := strconv.ParseFloat(totalEnv, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("VLLM_SIM_GPU_MEMORY_MIB=%q: want a positive number of MiB", totalEnv)
		}
		total = v
	}
	list := func(name, s string) ([]float64, error) {
		out := make([]float64, n)
		if s == "" {
			return out, nil
		}
		for i, f := range strings.Split(s, ",") {
			if i >= n {
				break
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("%s=%q: want MiB per device, e.g. \"1500,0\"", name, s)
			}
			out[i] = v
		}
		return out, nil
	}
	used, err := list("VLLM_SIM_GPU_USED_MIB", usedEnv)
	if err != nil {
		return nil, err
	}
	growth, err := list("VLLM_SIM_GPU_USED_GROWTH_MIB", growthEnv)
	if err != nil {
		return nil, err
	}
	gpus := make([]GPU, n)
	for i := range gpus {
		gpus[i] = GPU{TotalMiB: total, UsedMiB: used[i], GrowthMiB: growth[i]}
	}
	return gpus, nil
}

// Memory model constants (per GPU), documented in docs/sim.md.
const (
	NonTorchGiB = 0.6 // CUDA context, NCCL buffers
	GraphsGiB   = 0.4 // CUDA graph pool (0 with --enforce-eager)
)

// KVBytes is the KV cache size of one token element for a cache dtype.
func KVBytes(cacheDtype string, modelDtypeBytes float64) float64 {
	switch {
	case strings.HasPrefix(cacheDtype, "fp8"):
		return 1
	case cacheDtype == "turboquant_k8v4": // 8-bit keys, 4-bit values
		return 0.75
	case cacheDtype == "float16", cacheDtype == "bfloat16":
		return 2
	}
	return modelDtypeBytes
}

// Memory is the outcome of the memory model for one engine.
type Memory struct {
	MaxModelLen      int
	BatchedTokens    int
	RequestedGiB     float64 // total x gpu-memory-utilization, per GPU
	WeightsGiB       float64 // per GPU
	ActivationGiB    float64 // per GPU, peak of a max-num-batched-tokens forward pass
	GraphsGiB        float64
	KVGiB            float64 // available for the KV cache, per GPU
	KVBytesPerToken  float64 // per GPU
	NumBlocks        int
	KVTokens         int     // NumBlocks x block size
	MaxConcurrency   float64 // KV tokens / max-model-len
	WeightsBytesEach float64
}

// BootError is a startup failure, with the lines vLLM would log.
type BootError struct {
	Phase string   // "init", "profile", "kv_alloc", "config"
	Lines []string // the last one is vLLM's message
}

func (e *BootError) Error() string { return e.Lines[len(e.Lines)-1] }

func gib(b float64) float64 { return b / GiB }

// PlanMemory runs vLLM's startup arithmetic (per GPU, tensor-parallel
// split): the free-memory check, the profile run, the KV budget, the
// one-sequence check and the KV allocation. It is pure.
func PlanMemory(c *Config, a Arch, gpus []GPU) (*Memory, error) {
	if len(gpus) < c.TP {
		return nil, &BootError{"init", []string{fmt.Sprintf("ValueError: World size (%d) is larger than the number of available GPUs (%d) in this node.", c.TP, len(gpus))}}
	}
	m := &Memory{}
	derived := a.MaxPositions
	if c.RopeFactor > 0 && c.RopeOriginalMax > 0 {
		derived = int(float64(c.RopeOriginalMax) * c.RopeFactor)
	}
	m.MaxModelLen = derived
	if c.MaxModelLen > 0 {
		if c.MaxModelLen > derived {
			return nil, &BootError{"config", []string{fmt.Sprintf("ValueError: User-specified max_model_len (%d) is greater than the derived max_model_len (max_position_embeddings=%d or model_max_length=None in model's config.json). To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1.", c.MaxModelLen, derived)}}
		}
		m.MaxModelLen = c.MaxModelLen
	}
	tp := float64(c.TP)
	m.BatchedTokens = c.BatchedTokens(m.MaxModelLen)
	m.WeightsBytesEach = a.WeightBytes / tp
	m.WeightsGiB = gib(m.WeightsBytesEach)
	// Peak activation of the profiling forward pass: per token, the MLP's
	// gate+up output (2 x intermediate) and ~4 hidden-size buffers, in the
	// model dtype, split by TP.
	m.ActivationGiB = gib(float64(m.BatchedTokens) * float64(2*a.Intermediate+4*a.Hidden) * a.DtypeBytes / tp)
	if !c.EnforceEager {
		m.GraphsGiB = GraphsGiB
	}
	m.KVBytesPerToken = 2 * float64(a.Layers*a.KVHeads*a.HeadDim) * KVBytes(c.KVCacheDtype, a.DtypeBytes) / tp

	for rank := 0; rank < c.TP; rank++ {
		g := gpus[rank]
		total, free := g.TotalMiB*MiB, (g.TotalMiB-g.UsedMiB)*MiB
		requested := total * c.GPUUtil
		if requested > free {
			return nil, &BootError{"init", []string{fmt.Sprintf("ValueError: Free memory on device cuda:%d (%.2f/%.2f GiB) on startup is less than desired GPU memory utilization (%g, %.2f GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.",
				rank, gib(free), gib(total), c.GPUUtil, gib(requested))}}
		}
		m.RequestedGiB = gib(requested)
	}
	m.KVGiB = m.RequestedGiB - m.WeightsGiB - m.ActivationGiB - NonTorchGiB - m.GraphsGiB
	if m.KVGiB <= 0 {
		return nil, &BootError{"profile", []string{
			fmt.Sprintf("Memory profiling takes %.2f GiB: weights %.2f GiB, peak activation %.2f GiB, non-torch %.2f GiB, CUDA graphs %.2f GiB; budget %.2f GiB", m.WeightsGiB+m.ActivationGiB+NonTorchGiB+m.GraphsGiB, m.WeightsGiB, m.ActivationGiB, NonTorchGiB, m.GraphsGiB, m.RequestedGiB),
			"ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine."}}
	}
	blockBytes := m.KVBytesPerToken * float64(c.BlockSize)
	m.NumBlocks = int(m.KVGiB * GiB / blockBytes)
	m.KVTokens = m.NumBlocks * c.BlockSize
	needed := m.KVBytesPerToken * float64(m.MaxModelLen)
	if needed > m.KVGiB*GiB {
		return nil, &BootError{"profile", []string{
			fmt.Sprintf("Available KV cache memory: %.2f GiB", m.KVGiB),
			fmt.Sprintf("ValueError: To serve at least one request with the models's max seq len (%d), (%.2f GiB KV cache is needed, which is larger than the available KV cache memory (%.2f GiB). Based on the available memory, the estimated maximum model length is %d. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.",
				m.MaxModelLen, gib(needed), m.KVGiB, m.KVTokens)}}
	}
	// KV allocation: other processes may have taken memory since the check.
	for rank := 0; rank < c.TP; rank++ {
		g := gpus[rank]
		physFree := (g.TotalMiB-g.UsedMiB-g.GrowthMiB)*MiB - (m.WeightsGiB+NonTorchGiB+m.GraphsGiB)*GiB
		if m.KVGiB*GiB > physFree {
			return nil, &BootError{"kv_alloc", []string{fmt.Sprintf("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate %.2f GiB. GPU %d has a total capacity of %.2f GiB of which %.2f GiB is free. Including non-PyTorch memory, this process has %.2f GiB memory in use.",
				m.KVGiB, rank, g.TotalMiB/1024, math.Max(0, gib(physFree)), m.WeightsGiB+NonTorchGiB+m.GraphsGiB)}}
		}
	}
	m.MaxConcurrency = float64(m.KVTokens) / float64(m.MaxModelLen)
	return m, nil
}

// The boot model, in seconds before any time scale (docs/sim.md): what a
// cold vLLM boot of a 32B model on two RTX 4090s takes, phase by phase.
const (
	LoadGBps       = 0.15 // weights read per GPU, GB/s (cold page cache)
	CompileSeconds = 40   // torch.compile (skipped with --enforce-eager)
	ProfileSeconds = 10   // profiling run
	KVAllocSeconds = 2
	GraphSeconds   = 25 // CUDA graph capture (skipped with --enforce-eager)
	APISeconds     = 2
)

// BootSeconds is how long the simulated boot of a configuration takes in
// simulated seconds (before VLLM_SIM_TIME_SCALE and BOOT_SLOWDOWN): weights,
// compile, profiling, KV allocation, CUDA graphs and the API server, the
// same constants Boot sleeps for. A boot PlanMemory rejects stops at its
// check. vgrid's plan uses it as a real vLLM boot's estimate when the store
// has no history.
func BootSeconds(c *Config, a Arch, gpus []GPU) float64 {
	_, err := PlanMemory(c, a, gpus)
	phase := ""
	if be, ok := err.(*BootError); ok {
		phase = be.Phase
	}
	if phase == "init" || phase == "config" {
		return 0
	}
	s := a.WeightBytes / float64(max(c.TP, 1)) / (LoadGBps * 1e9)
	if !c.EnforceEager {
		s += CompileSeconds
	}
	s += ProfileSeconds
	if phase == "profile" {
		return s
	}
	s += KVAllocSeconds
	if phase == "kv_alloc" {
		return s
	}
	if !c.EnforceEager {
		s += GraphSeconds
	}
	return s + APISeconds
}

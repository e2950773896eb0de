package vllm

import (
	"regexp"
	"strconv"
	"strings"
)

// Cause is a failure that vLLM's own output proves. Its values are the
// names of vgrid's failure reasons (orchestrator.Reason).
type Cause string

const (
	CauseFreeMemory    Cause = "free_memory"              // free memory on a device below the requested share
	CauseNoKVMemory    Cause = "no_kv_memory"             // nothing left for KV cache blocks
	CauseKVTooSmall    Cause = "kv_cache_too_small"       // one max-model-len sequence does not fit the KV cache
	CauseOOM           Cause = "oom"                      // CUDA out of memory
	CauseEngineDead    Cause = "engine_dead"              // EngineDeadError
	CauseBadArgs       Cause = "bad_args"                 // argparse refused the arguments
	CauseNCCL          Cause = "nccl"                     // NCCL failed (tensor parallelism)
	CauseModelNotFound Cause = "model_not_found"          // no such model on the hub, or gated without a token
	CauseGraphOOM      Cause = "cuda_graph_oom"           // out of memory while capturing CUDA graphs
	CauseQuantization  Cause = "quantization_unsupported" // the GPU or model cannot run the quantization
)

// logPatterns map vLLM's failure lines to causes, most specific first.
// Each pattern is tested against real logs (testdata/logs/INDEX.md).
var logPatterns = []struct {
	re    *regexp.Regexp
	cause Cause
}{
	{regexp.MustCompile(`Free memory on device .* on startup is less than desired GPU memory utilization`), CauseFreeMemory},
	{regexp.MustCompile(`No available memory for the cache blocks`), CauseNoKVMemory},
	{regexp.MustCompile(`To serve at least one request with the models?'s max seq len`), CauseKVTooSmall},
	{regexp.MustCompile(`max seq len \(\d+\) is larger than the maximum number of tokens that can be stored in KV cache`), CauseKVTooSmall},
	{regexp.MustCompile(`(?i)(out of memory|OutOfMemoryError).*(graph|captur)|(graph|captur).*(out of memory|OutOfMemoryError)`), CauseGraphOOM},
	{regexp.MustCompile(`(torch\.)?(cuda\.)?OutOfMemoryError: CUDA out of memory|CUDA error: out of memory`), CauseOOM},
	{regexp.MustCompile(`EngineDeadError`), CauseEngineDead},
	{regexp.MustCompile(`error: unrecognized arguments:|error: argument --[\w-]+:|error: ambiguous option:`), CauseBadArgs},
	{regexp.MustCompile(`NCCL error|ncclUnhandledCudaError|ncclSystemError|ncclInternalError|ncclInvalidUsage|NCCL WARN.*(failed|error)|DistNetworkError`), CauseNCCL},
	{regexp.MustCompile(`(?i)repository not found for url|is not a local folder and is not a valid model identifier|Cannot access gated repo|GatedRepoError|401 Client Error.*huggingface|RepositoryNotFoundError`), CauseModelNotFound},
	{regexp.MustCompile(`(?i)quantization .*(is|are) not supported|not supported for the current GPU|Minimum capability: \d+\. Current capability: \d+|does not support quantization method|Unknown quantization method`), CauseQuantization},
}

// ClassifyLine returns the cause a log line proves, if any.
func ClassifyLine(line string) (Cause, bool) {
	for _, p := range logPatterns {
		if p.re.MatchString(line) {
			return p.cause, true
		}
	}
	return "", false
}

// phases are vLLM boot milestones, in order, as they appear in its log
// (V1 and the V0 engine's lines alike).
var phases = []struct{ marker, name string }{
	{"Starting to load model", "loading weights"},
	{"Loading weights took", "compiling and profiling"},
	{"Model loading took", "compiling and profiling"},
	{"Available KV cache memory", "allocating KV cache"},
	{"GPU KV cache size", "capturing CUDA graphs"},
	{"# GPU blocks:", "capturing CUDA graphs"},
	{"Starting vLLM API server", "starting the API server"},
	{"Application startup complete", "serving"},
}

// PhaseOf returns the boot phase a log line starts, if any.
func PhaseOf(line string) (string, bool) {
	for _, p := range phases {
		if strings.Contains(line, p.marker) {
			return p.name, true
		}
	}
	return "", false
}

// Boot is the boot time breakdown vLLM logs, in seconds (0 when absent).
type Boot struct {
	Weights    float64 `json:"weights_s,omitempty"`
	Compile    float64 `json:"compile_s,omitempty"`
	InitEngine float64 `json:"init_engine_s,omitempty"` // profiling, KV cache, warm-up and graphs
	Graphs     float64 `json:"graphs_s,omitempty"`
}

var bootPatterns = []struct {
	re  *regexp.Regexp
	set func(b *Boot, v float64)
}{
	{regexp.MustCompile(`Model loading took [\d.]+ ?GiB and ([\d.]+) ?s`), func(b *Boot, v float64) { b.Weights = v }},
	{regexp.MustCompile(`torch\.compile takes ([\d.]+) s in total`), func(b *Boot, v float64) { b.Compile = v }},
	{regexp.MustCompile(`init engine \(profile, create kv cache, warmup model\) took ([\d.]+) seconds`), func(b *Boot, v float64) { b.InitEngine = v }},
	{regexp.MustCompile(`Graph capturing finished in ([\d.]+) secs`), func(b *Boot, v float64) { b.Graphs = v }},
}

// ParseBoot reads the boot breakdown from vLLM log lines.
func ParseBoot(lines []string) Boot {
	var b Boot
	for _, l := range lines {
		for _, p := range bootPatterns {
			if m := p.re.FindStringSubmatch(l); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				p.set(&b, v)
			}
		}
	}
	return b
}

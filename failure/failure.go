// Package failure is vgrid's failure vocabulary: why a trial failed
// (Reason, persisted by name), the evidence (Failure, found with
// errors.As), the boot breakdown (Boot), and the explicit map from what
// vLLM's own output proves (vllm.Cause) to a reason. Every driver and the
// orchestrator use it; it imports nothing of vgrid but vllm.
//
// May import: vllm.
package failure

import (
	"fmt"
	"time"

	"github.com/vgrid/vgrid/vllm"
)

// Reason is why a trial failed or was skipped. The numeric values are
// fixed and the names are what the store and the API carry (MarshalText):
// never renumber, never rename, only append.
type Reason int

const (
	ReasonNone          Reason = 0
	ReasonFreeMemory    Reason = 1  // vLLM: free memory on a device below the requested share
	ReasonNoKVMemory    Reason = 2  // vLLM: no memory left for KV cache blocks
	ReasonKVTooSmall    Reason = 3  // vLLM: one max-model-len sequence does not fit the KV cache
	ReasonOOM           Reason = 4  // CUDA out of memory
	ReasonEngineDead    Reason = 5  // EngineDeadError
	ReasonBadArgs       Reason = 6  // vLLM rejected its arguments (unrecognized / invalid)
	ReasonBootCrash     Reason = 7  // a Python traceback at boot, none of the above
	ReasonExited        Reason = 8  // the server exited, no known cause in its log
	ReasonCrashLoop     Reason = 9  // restarted by its restart policy, no known cause in its log
	ReasonUnhealthy     Reason = 10 // Docker's health check says unhealthy
	ReasonHealthTimeout Reason = 11 // not ready within the ready timeout
	ReasonUnreachable   Reason = 12 // running, but vgrid cannot reach its API
	ReasonConfigDrift   Reason = 13 // the server reports other settings than the rendered flags
	ReasonImageMissing  Reason = 14 // the image is not on the Docker host
	ReasonNoGPURuntime  Reason = 15 // GPUs requested, no NVIDIA runtime on the host
	ReasonCreate        Reason = 16 // the engine refused to create or start the container
	ReasonForeignServer Reason = 17 // the endpoint is served by another server than the trial started
	ReasonRender        Reason = 18 // the candidate could not be rendered into the profile
	ReasonBenchmark     Reason = 19 // the benchmark itself failed (key rejected, model not served, ...)
	ReasonInfeasible    Reason = 20 // skipped: the memory model says it cannot boot
	ReasonError         Reason = 21 // an unexpected error; the detail says which
	ReasonNCCL          Reason = 22 // NCCL (tensor-parallel communication) failed at boot
	ReasonModelNotFound Reason = 23 // the model is not on the hub, or gated without a token
	ReasonGraphOOM      Reason = 24 // out of memory while capturing CUDA graphs
	ReasonQuantization  Reason = 25 // the GPU or the model does not support the quantization
	ReasonUnknownFlag   Reason = 26 // legacy: a flag the image's vLLM does not have; now refused before any boot, read from old stores
	ReasonEngineGone    Reason = 27 // the Docker engine of the trial's slot stopped answering
	ReasonPruned        Reason = 28 // stopped early: significantly worse than the champion
	ReasonDeadline      Reason = 29 // not started: it could not end before the run's deadline
	ReasonStalled       Reason = 30 // requests under way and no token for timeouts.stall, /health answering
	ReasonUnschedulable Reason = 31 // Kubernetes: no node could take the trial's pod within timeouts.schedule
	ReasonOOMKilled     Reason = 32 // the kernel killed the server for its memory limit (Kubernetes OOMKilled)

	reasonLast = ReasonOOMKilled // the highest reason, for tests
)

var reasonNames = map[Reason]string{
	ReasonNone: "none", ReasonFreeMemory: "free_memory", ReasonNoKVMemory: "no_kv_memory",
	ReasonKVTooSmall: "kv_cache_too_small", ReasonOOM: "oom", ReasonEngineDead: "engine_dead",
	ReasonBadArgs: "bad_args", ReasonBootCrash: "boot_crash", ReasonExited: "exited",
	ReasonCrashLoop: "crash_loop", ReasonUnhealthy: "unhealthy", ReasonHealthTimeout: "health_timeout",
	ReasonUnreachable: "unreachable", ReasonConfigDrift: "config_drift", ReasonImageMissing: "image_missing",
	ReasonNoGPURuntime: "no_gpu_runtime", ReasonCreate: "create_failed", ReasonForeignServer: "foreign_server",
	ReasonRender: "render", ReasonBenchmark: "benchmark", ReasonInfeasible: "infeasible", ReasonError: "error",
	ReasonNCCL: "nccl", ReasonModelNotFound: "model_not_found", ReasonGraphOOM: "cuda_graph_oom",
	ReasonQuantization: "quantization_unsupported", ReasonUnknownFlag: "unknown_flag", ReasonEngineGone: "engine_unreachable",
	ReasonPruned: "pruned", ReasonDeadline: "deadline", ReasonStalled: "stalled",
	ReasonUnschedulable: "unschedulable", ReasonOOMKilled: "oom_killed",
}

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// ParseReason is the inverse of String.
func ParseReason(s string) (Reason, bool) {
	for r, n := range reasonNames {
		if n == s {
			return r, true
		}
	}
	return ReasonNone, false
}

// MarshalText writes the reason's stable name.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a name; an unknown one is an error (the store
// migrates legacy names before they are read).
func (r *Reason) UnmarshalText(b []byte) error {
	v, ok := ParseReason(string(b))
	if !ok {
		return fmt.Errorf("unknown failure reason %q", b)
	}
	*r = v
	return nil
}

// causes maps every failure vLLM's output can prove to its reason: a
// cause missing here is a test failure (TestEveryCauseMaps), never a
// silent boot_crash.
var causes = map[vllm.Cause]Reason{
	vllm.CauseFreeMemory:    ReasonFreeMemory,
	vllm.CauseNoKVMemory:    ReasonNoKVMemory,
	vllm.CauseKVTooSmall:    ReasonKVTooSmall,
	vllm.CauseOOM:           ReasonOOM,
	vllm.CauseEngineDead:    ReasonEngineDead,
	vllm.CauseBadArgs:       ReasonBadArgs,
	vllm.CauseNCCL:          ReasonNCCL,
	vllm.CauseModelNotFound: ReasonModelNotFound,
	vllm.CauseGraphOOM:      ReasonGraphOOM,
	vllm.CauseQuantization:  ReasonQuantization,
}

// FromCause is the reason a line of vLLM's output proves. Every cause of
// vllm.Causes is in the map (TestEveryCauseMaps); boot_crash answers only
// for a cause added to vllm without its entry here.
func FromCause(c vllm.Cause) Reason {
	if r, ok := causes[c]; ok {
		return r
	}
	return ReasonBootCrash
}

// Failure is why a trial failed or was skipped, with the evidence. It is
// the one failure type of vgrid: drivers and the Docker package return it,
// found with errors.As.
type Failure struct {
	Reason     Reason    `json:"reason"`
	Detail     string    `json:"detail"`                // what was observed, in one sentence
	Line       string    `json:"line,omitempty"`        // the log line that proves it
	ExitCode   int       `json:"exit_code,omitempty"`   // when the server exited; -1 when not seen
	Restarts   int       `json:"restarts,omitempty"`    // RestartCount seen, when a restart policy restarted it
	Phase      string    `json:"phase,omitempty"`       // the vLLM boot phase reached
	Logs       []string  `json:"logs,omitempty"`        // last log lines (at most 200)
	LineAt     time.Time `json:"line_at,omitempty"`     // when the engine received Line (Docker's timestamp)
	DetectedAt time.Time `json:"detected_at,omitempty"` // when vgrid concluded
}

func (f *Failure) Error() string {
	s := f.Reason.String() + ": " + f.Detail
	if f.Line != "" {
		s += fmt.Sprintf(" (log: %q)", f.Line)
	}
	return s
}

// Fail is a Failure of reason r with a formatted detail.
func Fail(r Reason, format string, a ...any) *Failure {
	return &Failure{Reason: r, Detail: fmt.Sprintf(format, a...)}
}

// Boot is the boot breakdown of a trial, in seconds: what vLLM logs, and
// the time vgrid measured to the first decoded token.
type Boot struct {
	vllm.Boot
	Ready float64 `json:"ready_s"` // start of the deploy to the first decoded token, measured by vgrid
}

package compose

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Reason says why a deployment did not become ready. Values are persisted:
// never renumber them, only append.
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
	ReasonExited        Reason = 8  // the container exited, no known cause in its log
	ReasonCrashLoop     Reason = 9  // restarted by its restart policy, no known cause in its log
	ReasonUnhealthy     Reason = 10 // Docker's health check says unhealthy
	ReasonHealthTimeout Reason = 11 // not ready within the ready timeout
	ReasonUnreachable   Reason = 12 // running, but vgrid cannot reach its API
	ReasonConfigDrift   Reason = 13 // the server reports other settings than the rendered flags
	ReasonImageMissing  Reason = 14 // the image is not on the Docker host
	ReasonNoGPURuntime  Reason = 15 // GPUs requested, no NVIDIA runtime on the host
	ReasonCreate        Reason = 16 // the engine refused to create or start the container
	ReasonForeignServer Reason = 17 // the endpoint is served by another server than the trial started
)

var reasonNames = map[Reason]string{
	ReasonNone: "none", ReasonFreeMemory: "free_memory", ReasonNoKVMemory: "no_kv_memory",
	ReasonKVTooSmall: "kv_cache_too_small", ReasonOOM: "oom", ReasonEngineDead: "engine_dead",
	ReasonBadArgs: "bad_args", ReasonBootCrash: "boot_crash", ReasonExited: "exited",
	ReasonCrashLoop: "crash_loop", ReasonUnhealthy: "unhealthy", ReasonHealthTimeout: "health_timeout",
	ReasonUnreachable: "unreachable", ReasonConfigDrift: "config_drift", ReasonImageMissing: "image_missing",
	ReasonNoGPURuntime: "no_gpu_runtime", ReasonCreate: "create_failed", ReasonForeignServer: "foreign_server",
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

// Failure is a deployment that did not become ready, with the evidence.
// Find it with errors.As.
type Failure struct {
	Reason   Reason
	Detail   string   // what was observed, in one sentence
	Line     string   // the log line that proves it, if any
	ExitCode int      // when the container exited; -1 when not seen
	Restarts int      // RestartCount seen, when a restart policy restarted it
	Phase    string   // last boot phase seen in the log
	Logs     []string // the last lines of the container log (at most 200)

	LineAt     time.Time // when Docker received Line (zero if unknown)
	DetectedAt time.Time // when vgrid concluded
}

func (f *Failure) Error() string {
	s := fmt.Sprintf("%s: %s", f.Reason, f.Detail)
	if f.Line != "" {
		s += fmt.Sprintf("; log: %q", f.Line)
	}
	return s
}

// logPatterns map vLLM's startup and runtime failures to reasons, most
// specific first.
var logPatterns = []struct {
	re     *regexp.Regexp
	reason Reason
}{
	{regexp.MustCompile(`Free memory on device .* on startup is less than desired GPU memory utilization`), ReasonFreeMemory},
	{regexp.MustCompile(`No available memory for the cache blocks`), ReasonNoKVMemory},
	{regexp.MustCompile(`To serve at least one request with the models?'s max seq len`), ReasonKVTooSmall},
	{regexp.MustCompile(`max seq len \(\d+\) is larger than the maximum number of tokens that can be stored in KV cache`), ReasonKVTooSmall},
	{regexp.MustCompile(`(torch\.)?OutOfMemoryError: CUDA out of memory|CUDA error: out of memory`), ReasonOOM},
	{regexp.MustCompile(`EngineDeadError`), ReasonEngineDead},
	{regexp.MustCompile(`error: unrecognized arguments:|error: argument --[\w-]+:`), ReasonBadArgs},
}

// classifyLine returns the failure reason a log line proves, if any.
func classifyLine(line string) (Reason, bool) {
	for _, p := range logPatterns {
		if p.re.MatchString(line) {
			return p.reason, true
		}
	}
	return ReasonNone, false
}

// phases are vLLM boot milestones, in order, as they appear in its log.
var phases = []struct{ marker, name string }{
	{"Starting to load model", "loading weights"},
	{"Model loading took", "compiling and profiling"},
	{"Available KV cache memory", "allocating KV cache"},
	{"GPU KV cache size", "capturing CUDA graphs"},
	{"Starting vLLM API server", "starting the API server"},
	{"Application startup complete", "serving"},
}

// phaseOf returns the boot phase a log line starts, if any.
func phaseOf(line string) (string, bool) {
	for _, p := range phases {
		if strings.Contains(line, p.marker) {
			return p.name, true
		}
	}
	return "", false
}

// ring keeps the last n log lines.
type ring struct {
	lines []string
	n     int
}

func (r *ring) add(l string) {
	r.lines = append(r.lines, l)
	if len(r.lines) > r.n {
		r.lines = r.lines[len(r.lines)-r.n:]
	}
}

func (r *ring) snapshot() []string { return append([]string(nil), r.lines...) }

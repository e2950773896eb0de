package vllm

import (
	"regexp"
	"strconv"
	"strings"
)

// Cause is a failure that vLLM's own output proves. Its values are the
// names of vgrid's failure reasons (failure.Reason, which maps each).
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

// Causes lists every Cause: the failure vocabulary maps each to a reason.
var Causes = []Cause{CauseFreeMemory, CauseNoKVMemory, CauseKVTooSmall, CauseOOM, CauseEngineDead, CauseBadArgs,
	CauseNCCL, CauseModelNotFound, CauseGraphOOM, CauseQuantization}

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
	{regexp.MustCompile(`(?i)(out of memory|OutOfMemoryError).*(cuda ?graph|graph captur|capturing)|(cuda ?graph|graph captur|capturing).*(out of memory|OutOfMemoryError)`), CauseGraphOOM},
	{regexp.MustCompile(`(torch\.)?(cuda\.)?OutOfMemoryError: CUDA out of memory|CUDA error: out of memory|CUDA out of memory\. Tried to allocate`), CauseOOM},
	{regexp.MustCompile(`EngineDeadError`), CauseEngineDead},
	{regexp.MustCompile(`error: unrecognized arguments:|error: argument [-\w/]+:|error: ambiguous option:|error: the following arguments are required:`), CauseBadArgs},
	{regexp.MustCompile(`NCCL error|ncclUnhandledCudaError|ncclSystemError|ncclInternalError|ncclInvalidUsage|NCCL WARN.*(failed|error)|DistNetworkError`), CauseNCCL},
	{regexp.MustCompile(`(?i)repository not found for url|is not a local folder and is not a valid model identifier|Cannot access gated repo|GatedRepoError|401 Client Error.*huggingface|RepositoryNotFoundError|Invalid repository ID or local directory specified`), CauseModelNotFound},
	{regexp.MustCompile(`(?i)quantization .*(is|are) not supported|not supported for the current GPU|Minimum capability: \d+\. Current capability: \d+|Min capability: \d+|does not support quantization method|Unknown quantization method`), CauseQuantization},
}

// Context that one line lacks: what the lines before it say.
var (
	// The engine starts capturing CUDA graphs (tqdm bar, V0 and V1
	// messages), or a traceback passes through the capture.
	graphsStart = regexp.MustCompile(`Capturing CUDA graph|Capturing cudagraphs|Capturing the model for CUDA graphs|capture_model\(|torch\.cuda\.graph\(|cuda_graph\.capture_end|graph_capture\(`)
	graphsDone  = regexp.MustCompile(`Graph capturing finished`)
	// An out-of-memory line whose place (graphs or not) comes from context.
	oomLine = regexp.MustCompile(`(?i)CUDA error: out of memory|OutOfMemoryError|CUDA out of memory`)
	// Nothing left for the KV cache, logged at INFO before the ValueError
	// (and the only line in logs cut short).
	kvNone = regexp.MustCompile(`Available KV cache memory: -\d|# (GPU|cuda) blocks: 0\b`)
	// A traceback frame of the quantization capability check.
	quantFrame = regexp.MustCompile(`_check_scheme_supported\(|_check_quant_capability|verify_quantization`)
	// A line at INFO, DEBUG or WARNING level: vLLM's hints ("if out-of-memory
	// error occurs during cudagraph capture, ...") are never failures.
	infoLevel = regexp.MustCompile(`^(INFO|DEBUG|WARNING|WARN)\b|^\S*\s*(INFO|DEBUG|WARNING) \d\d-\d\d `)
	// What tools put before vLLM's own text: colours (sent, or written out
	// as ^[[...m), quote marks, borders, CI timestamps, compose's service
	// column, process and rank prefixes.
	linePrefix = regexp.MustCompile(`^(\s+|>|│|\||\[\d{4}-\d\d-\d\dT[\d:.]+Z\]|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.\d]* \| \w+ \| \w+ \||[\w.-]+-\d+\s+\||\([\w ]+(rank=\d+ )?pid=\d+(, ip=[\d.]+)?\)|\[rank\d+\]:|\[Stage-\d+\])`)
	ansiColour = regexp.MustCompile(`\x1b\[[0-9;]*m|\^\[\[[0-9;]*m`)
)

// Clean removes from a log line what tools and vLLM's process prefixes put
// before its text, and colour codes.
func Clean(line string) string {
	line = ansiColour.ReplaceAllString(line, "")
	for {
		loc := linePrefix.FindStringIndex(line)
		if loc == nil || loc[1] == 0 {
			return strings.TrimRight(line, " \t\r│")
		}
		line = line[loc[1]:]
	}
}

// Finding is a cause a log proves, with the line that proves it.
type Finding struct {
	Cause Cause
	Line  string
}

// Classifier reads vLLM's output a line at a time and says which failure it
// proves. One line is not always enough, so it keeps context:
//
//   - an out-of-memory error while CUDA graphs are being captured (the
//     capture had started, or the traceback passes through it) is
//     cuda_graph_oom, otherwise oom;
//   - "Available KV cache memory: -3.86 GiB" or "# GPU blocks: 0" prove
//     no_kv_memory before the ValueError that some logs never show;
//   - a traceback through the quantization capability check proves
//     quantization_unsupported before its last line;
//   - EngineDeadError only says the engine died: it is tentative (Line
//     does not report it), and a root cause printed before or after it
//     wins (Result);
//   - a message a terminal wrapped is read with the line before it;
//   - INFO, DEBUG and WARNING lines prove nothing but the KV cache lines
//     above (vLLM's hints mention out-of-memory errors).
type Classifier struct {
	graphs bool
	prev   string // the previous line, cleaned
	dead   *Finding
	found  *Finding
}

// Line reads one line and returns a cause as soon as the log proves one.
func (c *Classifier) Line(raw string) (Finding, bool) {
	line := Clean(raw)
	prev := c.prev
	c.prev = line
	if c.found != nil {
		return *c.found, true
	}
	f, ok := c.classify(line, prev, raw)
	if !ok {
		return Finding{}, false
	}
	if f.Cause == CauseEngineDead {
		if c.dead == nil {
			c.dead = &f
		}
		return Finding{}, false
	}
	c.found = &f
	return f, true
}

// Result is the cause the lines read so far prove, EngineDeadError
// included when nothing more specific was found.
func (c *Classifier) Result() (Finding, bool) {
	switch {
	case c.found != nil:
		return *c.found, true
	case c.dead != nil:
		return *c.dead, true
	}
	return Finding{}, false
}

func (c *Classifier) classify(line, prev, raw string) (Finding, bool) {
	if graphsDone.MatchString(line) {
		c.graphs = false
	} else if graphsStart.MatchString(line) {
		c.graphs = true
	}
	if kvNone.MatchString(line) {
		return Finding{CauseNoKVMemory, raw}, true
	}
	if infoLevel.MatchString(line) {
		return Finding{}, false
	}
	if quantFrame.MatchString(line) {
		return Finding{CauseQuantization, raw}, true
	}
	for _, text := range []string{line, prev + line, prev + " " + line} {
		for _, p := range logPatterns {
			if !p.re.MatchString(text) {
				continue
			}
			cause := p.cause
			if cause == CauseOOM && c.graphs {
				cause = CauseGraphOOM
			}
			return Finding{cause, raw}, true
		}
		if prev == "" {
			break
		}
	}
	if c.graphs && oomLine.MatchString(line) {
		return Finding{CauseGraphOOM, raw}, true
	}
	return Finding{}, false
}

// Classify reads a whole log (a container's last lines after it exited).
func Classify(lines []string) (Finding, bool) {
	var c Classifier
	for _, l := range lines {
		c.Line(l)
	}
	return c.Result()
}

// ClassifyLine returns the cause one log line proves on its own, if any.
func ClassifyLine(line string) (Cause, bool) {
	var c Classifier
	f, ok := c.Line(line)
	if !ok {
		f, ok = c.Result()
	}
	return f.Cause, ok
}

// phases are vLLM boot milestones, in order, as they appear in its log
// (V1 and the V0 engine's lines alike).
var phases = []struct{ marker, name string }{
	{"Starting to load model", "loading weights"},
	{"Loading weights took", "compiling and profiling"},
	{"Loading model weights took", "compiling and profiling"}, // V0
	{"Model loading took", "compiling and profiling"},
	{"Available KV cache memory", "allocating KV cache"},
	{"GPU KV cache size", "capturing CUDA graphs"},
	{"# GPU blocks:", "capturing CUDA graphs"},
	{"Capturing CUDA graph", "capturing CUDA graphs"},
	{"Capturing cudagraphs", "capturing CUDA graphs"},
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
	// "Model loading took 2.28 GiB and 74.27 seconds" (2025),
	// "... 2.05 GiB memory and 27.2 seconds" (from late 2025).
	{regexp.MustCompile(`Model loading took [\d.]+ ?GiB(?: memory)? and ([\d.]+) ?s`), func(b *Boot, v float64) { b.Weights = v }},
	// "Loading weights took 24.84 seconds" when the line above is absent.
	{regexp.MustCompile(`Loading weights took ([\d.]+) ?s`), func(b *Boot, v float64) {
		if b.Weights == 0 {
			b.Weights = v
		}
	}},
	{regexp.MustCompile(`torch\.compile (?:takes|took) ([\d.]+) s in total`), func(b *Boot, v float64) { b.Compile = v }},
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

package vllm

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Kind is the type of a vLLM serve flag's value.
type Kind int

const (
	KindString Kind = iota // free text, passed through
	KindFloat              // a float within [Min, Max] (see Spec.MinOpen)
	KindInt                // an integer within [Min, Max]
	KindBool               // --flag / --no-flag, no value
	KindEnum               // one of Spec.Allowed
	KindJSON               // a JSON document (rope-scaling, limit-mm-per-prompt...)
)

func (k Kind) String() string {
	switch k {
	case KindFloat:
		return "float"
	case KindInt:
		return "int"
	case KindBool:
		return "bool"
	case KindEnum:
		return "enum"
	case KindJSON:
		return "json"
	default:
		return "string"
	}
}

// Spec describes one `vllm serve` flag.
type Spec struct {
	Name    string // canonical name: lower case, '-' separated, no leading dashes
	Kind    Kind
	Min     float64 // numeric kinds
	Max     float64
	MinOpen bool     // the lower bound is excluded: (Min, Max]
	Allowed []string // KindEnum
	// Negatable bools accept --no-NAME (argparse.BooleanOptionalAction).
	// A bool that is not negatable is store_true: absent means false.
	Negatable bool
	// DefaultOn bools are on in vLLM V1 unless negated: the reason "off by
	// omission" is a lie for them.
	DefaultOn bool
	// Multi flags take one or more values (argparse nargs="+").
	Multi bool
	// Secret values are never printed.
	Secret bool
}

// The flags vgrid knows. Everything else passes through as a string flag
// whose values are the tokens up to the next flag. Sources: vLLM's
// EngineArgs/FrontendArgs (bool dataclass fields are BooleanOptionalAction)
// and the user's
var specs = func() map[string]Spec {
	m := map[string]Spec{}
	add := func(s Spec) { m[s.Name] = s }
	num := func(name string, k Kind, lo, hi float64, open bool) {
		add(Spec{Name: name, Kind: k, Min: lo, Max: hi, MinOpen: open})
	}
	const big = 1 << 40
	num("gpu-memory-utilization", KindFloat, 0, 1, true)
	num("swap-space", KindFloat, 0, 1024, false)
	num("cpu-offload-gb", KindFloat, 0, 1<<20, false)
	num("max-num-seqs", KindInt, 1, 1<<20, false)
	num("max-num-batched-tokens", KindInt, 1, big, false)
	num("max-model-len", KindInt, 1, big, false)
	num("tensor-parallel-size", KindInt, 1, 1024, false)
	num("pipeline-parallel-size", KindInt, 1, 1024, false)
	num("data-parallel-size", KindInt, 1, 1024, false)
	num("port", KindInt, 1, 65535, false)
	num("api-server-count", KindInt, 1, 1024, false)
	num("max-num-partial-prefills", KindInt, 1, 1<<20, false)
	num("long-prefill-token-threshold", KindInt, 0, big, false)
	num("max-seq-len-to-capture", KindInt, 1, big, false)
	num("seed", KindInt, 0, big, false)
	num("max-logprobs", KindInt, -1, big, false)
	add(Spec{Name: "block-size", Kind: KindEnum, Allowed: []string{"1", "8", "16", "32", "64", "128"}})

	for _, b := range []struct {
		name      string
		defaultOn bool
	}{
		{"enable-prefix-caching", true},
		{"enable-chunked-prefill", true},
		{"enforce-eager", false},
		{"enable-auto-tool-choice", false},
		{"async-scheduling", false},
		{"enable-prompt-tokens-details", false},
		{"enable-expert-parallel", false},
		{"trust-remote-code", false},
		{"disable-custom-all-reduce", false},
		{"skip-mm-profiling", false},
		{"enable-flashinfer-autotune", false},
		{"scheduler-reserve-full-isl", false},
		{"disable-log-stats", false},
		{"enable-log-requests", false},
		{"enable-sleep-mode", false},
		{"disable-sliding-window", false},
		{"enable-lora", false},
		{"language-model-only", false},
		{"enable-force-include-usage", false},
		{"enable-server-load-tracking", false},
		{"disable-fastapi-docs", false},
		{"enable-request-id-headers", false},
		{"disable-frontend-multiprocessing", false},
	} {
		add(Spec{Name: b.name, Kind: KindBool, Negatable: true, DefaultOn: b.defaultOn})
	}
	// Legacy store_true flag (deprecated in favour of --enable-log-requests).
	add(Spec{Name: "disable-log-requests", Kind: KindBool})

	enum := func(name string, allowed ...string) { add(Spec{Name: name, Kind: KindEnum, Allowed: allowed}) }
	enum("kv-cache-dtype", "auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla",
		"turboquant_k8v4") // turboquant_k8v4: vLLM 0.27 (medium-ornith15-awq.yml)
	enum("dtype", "auto", "half", "float16", "bfloat16", "float", "float32")
	enum("quantization", "awq", "awq_marlin", "gptq", "gptq_marlin", "gptq_marlin_24", "marlin", "fp8", "fbgemm_fp8",
		"compressed-tensors", "bitsandbytes", "gguf", "modelopt", "modelopt_fp4", "mxfp4", "experts_int8",
		"deepspeedfp", "tpu_int8", "ptpc_fp8", "moe_wna16", "torchao", "quark", "inc", "auto-round", "None")
	enum("tool-call-parser", "hermes", "qwen3_xml", "qwen3_coder", "mistral", "llama3_json", "llama4_json",
		"llama4_pythonic", "pythonic", "granite", "granite-20b-fc", "internlm", "jamba", "deepseek_v3",
		"deepseek_v31", "kimi_k2", "glm45", "hunyuan_a13b", "xlam", "minimax", "minimax_m2", "phi4_mini_json",
		"openai", "step3", "seed_oss", "longcat", "olmo3", "gigachat3")
	enum("reasoning-parser", "qwen3", "deepseek_r1", "deepseek_v3", "granite", "glm45", "hunyuan_a13b", "mistral",
		"step3", "gpt_oss", "seed_oss", "ernie45", "minimax_m2", "minimax_m2_append_think", "kimi_k2", "olmo3")
	enum("distributed-executor-backend", "mp", "ray", "uni", "external_launcher")

	for _, n := range []string{"rope-scaling", "hf-overrides", "limit-mm-per-prompt", "mm-processor-kwargs",
		"override-generation-config", "default-chat-template-kwargs", "speculative-config", "kv-transfer-config"} {
		add(Spec{Name: n, Kind: KindJSON})
	}
	add(Spec{Name: "served-model-name", Kind: KindString, Multi: true})
	add(Spec{Name: "api-key", Kind: KindString, Secret: true})
	for _, n := range []string{"model", "host", "tokenizer", "chat-template", "middleware", "prefix-caching-hash-algo",
		"gdn-prefill-backend", "performance-mode", "attention-backend", "generation-config"} {
		add(Spec{Name: n, Kind: KindString})
	}
	return m
}()

// shortAliases are vLLM's single-dash option strings (`-tp 2`), as its
// help lists them (vllm/testdata/help).
var shortAliases = map[string]string{
	"tp":  "tensor-parallel-size",
	"pp":  "pipeline-parallel-size",
	"dp":  "data-parallel-size",
	"q":   "quantization",
	"asc": "api-server-count",
}

// ShortAlias returns the single-dash alias of a flag ("tp"), or "".
func ShortAlias(name string) string {
	for a, n := range shortAliases {
		if n == name {
			return a
		}
	}
	return ""
}

// CanonicalName turns "--kv_cache_dtype", "kv-cache-dtype" or "KV_CACHE_DTYPE"
// into "kv-cache-dtype": vLLM treats '_' and '-' alike in flag names. A
// single-dash alias ("-tp") becomes the flag it stands for.
func CanonicalName(s string) string {
	if len(s) > 1 && s[0] == '-' && s[1] != '-' {
		if n, ok := shortAliases[s[1:]]; ok {
			return n
		}
	}
	s = strings.TrimLeft(s, "-")
	return strings.ToLower(strings.ReplaceAll(s, "_", "-"))
}

// Lookup returns the spec of a flag; unknown flags get a pass-through string spec.
func Lookup(name string) (Spec, bool) {
	s, ok := specs[CanonicalName(name)]
	if !ok {
		return Spec{Name: CanonicalName(name), Kind: KindString}, false
	}
	return s, true
}

// Specs lists every known flag, sorted by name.
func Specs() []Spec {
	out := make([]Spec, 0, len(specs))
	for _, s := range specs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Spec) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ValueError says which flag got which value and what it accepts.
type ValueError struct {
	Flag    string
	Value   string
	Allowed string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("invalid value %q for --%s: %s", e.Value, e.Flag, e.Allowed)
}

// Normalize validates a candidate value for flag name and returns the
// canonical text vgrid writes ("true"/"false" for booleans).
func Normalize(name, value string) (string, error) {
	spec, _ := Lookup(name)
	v := strings.TrimSpace(value)
	bad := func(allowed string) error { return &ValueError{Flag: spec.Name, Value: value, Allowed: allowed} }
	switch spec.Kind {
	case KindBool:
		switch strings.ToLower(v) {
		case "true", "on", "yes", "1":
			return "true", nil
		case "false", "off", "no", "0":
			return "false", nil
		}
		return "", bad("allowed: true or false")
	case KindFloat:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !inRange(spec, f) {
			return "", bad("allowed: a number in " + rangeText(spec))
		}
		return v, nil
	case KindInt:
		n, err := parseIntHuman(v)
		if err != nil || !inRange(spec, float64(n)) {
			return "", bad("allowed: an integer in " + rangeText(spec))
		}
		return v, nil
	case KindEnum:
		if slices.Contains(spec.Allowed, v) {
			return v, nil
		}
		return "", bad("allowed: " + strings.Join(spec.Allowed, ", "))
	case KindJSON:
		if !json.Valid([]byte(v)) {
			return "", bad("allowed: a JSON document, e.g. '{\"key\": 1}'")
		}
		return v, nil
	}
	if v == "" && !spec.Multi {
		return "", bad("allowed: a non-empty value")
	}
	return v, nil
}

func inRange(s Spec, f float64) bool {
	if s.MinOpen && f <= s.Min {
		return false
	}
	return f >= s.Min && f <= s.Max
}

func rangeText(s Spec) string {
	lo := "["
	if s.MinOpen {
		lo = "("
	}
	return fmt.Sprintf("%s%s, %s]", lo, strconv.FormatFloat(s.Min, 'g', -1, 64), strconv.FormatFloat(s.Max, 'g', -1, 64))
}

// parseIntHuman accepts vLLM's integer forms (human_readable_int): 131072,
// 128k (decimal: 128000), 128K (binary: 131072), 25.6k, 1M, 1G.
func parseIntHuman(v string) (int64, error) {
	mult := 1.0
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'k':
			mult = 1e3
		case 'm':
			mult = 1e6
		case 'g':
			mult = 1e9
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			v = v[:n-1]
		}
	}
	if mult == 1 {
		return strconv.ParseInt(v, 10, 64)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, err
	}
	return int64(f * mult), nil
}

// ParseInt parses an integer flag value in any form vLLM accepts.
func ParseInt(v string) (int64, error) { return parseIntHuman(strings.TrimSpace(v)) }

package vllm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Config is what `vllm serve` was asked to run.
type Config struct {
	Model            string
	ServedNames      []string
	Host             string
	Port             int
	APIKey           string
	TP               int
	GPUUtil          float64
	MaxModelLen      int // 0: derived from the model
	MaxNumSeqs       int
	MaxBatchedTokens int // 0: vLLM's default for the chunked-prefill setting
	BlockSize        int
	KVCacheDtype     string
	Dtype            string
	Quantization     string
	PrefixCaching    bool
	ChunkedPrefill   bool
	EnforceEager     bool
	AutoToolChoice   bool
	ToolParser       string
	ReasoningParser  string
	PromptTokensInfo bool // --enable-prompt-tokens-details
	RopeFactor       float64
	RopeOriginalMax  int
	Flags            Flags // everything, as parsed
}

// ArgError is an argparse-style error: vLLM prints "vllm serve: error: ..."
// and exits with status 2.
type ArgError struct{ Msg string }

func (e *ArgError) Error() string { return "vllm serve: error: " + e.Msg }

// ParseServeArgs parses `vllm serve` arguments as vLLM does: "--name value"
// and "--name=value", '_' and '-' alike, --flag/--no-flag booleans, an
// optional positional model. Defaults follow vLLM V1.
// DefaultModel is the model vLLM serves when none is given.
const DefaultModel = "Qwen/Qwen3-0.6B"

// Served is what a server started with these flags answers to: the model
// name clients send (the first --served-model-name, else the model: the
// positional model tag or --model as ParseServeArgs reads them, else
// vLLM's default), its port (--port, else 8000) and its API key. Unlike
// ParseServeArgs it refuses nothing: a flag vLLM would refuse is vLLM's
// to refuse. Every driver asks it.
func (f Flags) Served() (model string, port int, apiKey string) {
	port = 8000
	for _, a := range f {
		switch a.Name {
		case "":
			if model == "" {
				model = a.Value()
			}
		case "model":
			model = a.Value()
		case "port":
			if n, err := strconv.Atoi(a.Value()); err == nil {
				port = n
			}
		case "api-key":
			apiKey = a.Value()
		}
	}
	if v, ok := f.Get("served-model-name"); ok && strings.TrimSpace(v) != "" {
		model = strings.Fields(v)[0]
	}
	if model == "" {
		model = DefaultModel
	}
	return model, port, apiKey
}

func ParseServeArgs(args []string) (*Config, error) {
	c := &Config{
		Host: "0.0.0.0", Port: 8000, TP: 1, GPUUtil: 0.9, MaxNumSeqs: 256, BlockSize: 16,
		KVCacheDtype: "auto", Dtype: "auto", PrefixCaching: true, ChunkedPrefill: true,
	}
	flags := Flags(ParseArgs(args))
	c.Flags = flags
	var unknown []string
	for _, a := range flags {
		if a.Name == "" {
			if c.Model != "" {
				unknown = append(unknown, a.Value())
				continue
			}
			c.Model = a.Value()
			continue
		}
		if _, known := Lookup(a.Name); !known {
			unknown = append(unknown, a.Spelled)
			continue
		}
		if err := c.set(a); err != nil {
			return nil, err
		}
	}
	if len(unknown) > 0 {
		return nil, &ArgError{"unrecognized arguments: " + strings.Join(unknown, " ")}
	}
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if len(c.ServedNames) == 0 {
		c.ServedNames = []string{c.Model}
	}
	if c.AutoToolChoice && c.ToolParser == "" {
		return nil, fmt.Errorf("TypeError: Error: --enable-auto-tool-choice requires --tool-call-parser")
	}
	return c, nil
}

func (c *Config) set(a Arg) error {
	v := a.Value()
	spec, _ := Lookup(a.Name)
	if spec.Kind != KindBool && len(a.Values) == 0 {
		return &ArgError{fmt.Sprintf("argument --%s: expected one argument", a.Name)}
	}
	if spec.Kind == KindBool && len(a.Values) > 0 {
		return &ArgError{fmt.Sprintf("argument --%s: ignored explicit argument '%s'", a.Name, v)}
	}
	if spec.Kind != KindString && spec.Kind != KindBool {
		if _, err := Normalize(a.Name, v); err != nil {
			return &ArgError{fmt.Sprintf("argument --%s: invalid value '%s' (%s)", a.Name, v, err.(*ValueError).Allowed)}
		}
	}
	atoi := func() int { n, _ := ParseInt(v); return int(n) }
	on := !a.Negated
	switch a.Name {
	case "model":
		c.Model = v
	case "served-model-name":
		c.ServedNames = a.Values
	case "host":
		c.Host = v
	case "port":
		c.Port = atoi()
	case "api-key":
		c.APIKey = v
	case "tensor-parallel-size":
		c.TP = atoi()
	case "gpu-memory-utilization":
		c.GPUUtil, _ = strconv.ParseFloat(v, 64)
	case "max-model-len":
		c.MaxModelLen = atoi()
	case "max-num-seqs":
		c.MaxNumSeqs = atoi()
	case "max-num-batched-tokens":
		c.MaxBatchedTokens = atoi()
	case "block-size":
		c.BlockSize = atoi()
	case "kv-cache-dtype":
		c.KVCacheDtype = v
	case "dtype":
		c.Dtype = v
	case "quantization":
		c.Quantization = v
	case "enable-prefix-caching":
		c.PrefixCaching = on
	case "enable-chunked-prefill":
		c.ChunkedPrefill = on
	case "enforce-eager":
		c.EnforceEager = on
	case "enable-auto-tool-choice":
		c.AutoToolChoice = on
	case "tool-call-parser":
		c.ToolParser = v
	case "reasoning-parser":
		c.ReasoningParser = v
	case "enable-prompt-tokens-details":
		c.PromptTokensInfo = on
	case "rope-scaling":
		var rs struct {
			Factor      float64 `json:"factor"`
			OriginalMax int     `json:"original_max_position_embeddings"`
		}
		if err := json.Unmarshal([]byte(v), &rs); err != nil {
			return &ArgError{fmt.Sprintf("argument --rope-scaling: invalid loads value: '%s'", v)}
		}
		c.RopeFactor, c.RopeOriginalMax = rs.Factor, rs.OriginalMax
	}
	return nil
}

// BatchedTokens is the scheduler's token budget per step: the flag, or
// vLLM V1's default (8192 for the API server with chunked prefill; without
// chunked prefill a whole prompt must fit, so max-model-len).
func (c *Config) BatchedTokens(maxModelLen int) int {
	if c.MaxBatchedTokens > 0 {
		return c.MaxBatchedTokens
	}
	if c.ChunkedPrefill {
		return 8192
	}
	return max(maxModelLen, 2048)
}

package vllm

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// medium.yml's arguments, with gpu-memory-utilization left to the test.
func mediumArgs(util string, extra ...string) []string {
	return append([]string{"--host", "0.0.0.0", "--port", "5002", "--model", "Qwen/Qwen3-32B-AWQ", "--api-key", "k",
		"--tensor-parallel-size", "2", "--gpu-memory-utilization", util, "--max-model-len", "131072",
		"--quantization", "awq_marlin", "--kv-cache-dtype", "fp8", "--enable-chunked-prefill", "--dtype", "half",
		"--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--reasoning-parser", "qwen3",
		"--distributed-executor-backend=mp",
		"--rope_scaling", `{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":32768}`,
		"--swap-space", "16"}, extra...)
}

// Hand computation (per GPU, TP 2, RTX 4090 = 24564 MiB = 23.988 GiB):
//
//	weights    19.3e9 B / 2                         = 8.987 GiB
//	activation 8192 tok x (2x25600 + 4x5120) x 2 B / 2 = 0.547 GiB
//	non-torch 0.6 GiB, CUDA graphs 0.4 GiB           -> fixed 10.534 GiB
//	KV per token: 2 x 64 layers x 8 heads x 128 x 1 B (fp8) / 2 = 65536 B
//	one 131072-token sequence needs 8.000 GiB
//
// GPU 0 runs a desktop using 1500 MiB: free 23064 MiB = 22.523 GiB.
func TestMemoryModelQwen3_32B(t *testing.T) {
	gpus, err := ParseGPUs(2, "", "1500,0", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		util     string
		kvGiB    float64 // 0 when it must fail
		failWith string
	}{
		{"0.75", 0, "To serve at least one request with the models's max seq len (131072), (8.00 GiB KV cache is needed, which is larger than the available KV cache memory (7.46 GiB)"},
		{"0.80", 19.191 - 10.534, ""},
		{"0.85", 20.390 - 10.534, ""},
		{"0.90", 21.589 - 10.534, ""},
		{"0.95", 0, "Free memory on device cuda:0 (22.52/23.99 GiB) on startup is less than desired GPU memory utilization (0.95, 22.79 GiB)"},
	}
	for _, tt := range tests {
		c, err := ParseServeArgs(mediumArgs(tt.util))
		if err != nil {
			t.Fatal(err)
		}
		m, err := PlanMemory(c, Archs["Qwen/Qwen3-32B-AWQ"], gpus)
		if tt.failWith != "" {
			var be *BootError
			if !errors.As(err, &be) || !strings.Contains(err.Error(), tt.failWith) {
				t.Errorf("util %s: got %v, want a BootError with %q", tt.util, err, tt.failWith)
			}
			continue
		}
		if err != nil {
			t.Fatalf("util %s: %v", tt.util, err)
		}
		if math.Abs(m.KVGiB-tt.kvGiB) > 0.01 {
			t.Errorf("util %s: KV %.3f GiB, want %.3f", tt.util, m.KVGiB, tt.kvGiB)
		}
		if m.KVBytesPerToken != 65536 || m.BatchedTokens != 8192 || m.MaxModelLen != 131072 {
			t.Errorf("util %s: per token %v B, batched %d, max len %d", tt.util, m.KVBytesPerToken, m.BatchedTokens, m.MaxModelLen)
		}
		if want := int(m.KVGiB*GiB/(65536*16)) * 16; m.KVTokens != want {
			t.Errorf("util %s: KV tokens %d, want %d (16-token blocks)", tt.util, m.KVTokens, want)
		}
	}
}

func TestMemoryModelFailures(t *testing.T) {
	arch := Archs["Qwen/Qwen3-32B-AWQ"]
	free, _ := ParseGPUs(2, "", "", "")
	tests := []struct {
		name  string
		args  []string
		gpus  []GPU
		phase string
		want  string
	}{
		// Without chunked prefill a whole 131072-token prompt is one forward
		// pass: 8.75 GiB of activations leave too little KV for one sequence.
		{"no chunked prefill", mediumArgs("0.85", "--no-enable-chunked-prefill"), free, "profile", "To serve at least one request"},
		{"tiny budget", mediumArgs("0.40"), free, "profile", "No available memory for the cache blocks"},
		{"desktop grows during boot", mediumArgs("0.90"), mustGPUs(t, "1500,0", "1600,0"), "kv_alloc", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 11.06 GiB. GPU 0"},
		{"max len beyond rope", []string{"--model", "Qwen/Qwen3-32B-AWQ", "--max-model-len", "131072"}, free, "config", "greater than the derived max_model_len (max_position_embeddings=40960"},
		{"TP larger than GPUs", mediumArgs("0.85", "--tensor-parallel-size", "4"), free, "init", "World size (4)"},
	}
	for _, tt := range tests {
		c, err := ParseServeArgs(tt.args)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		_, err = PlanMemory(c, arch, tt.gpus)
		var be *BootError
		if !errors.As(err, &be) || be.Phase != tt.phase || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v (%+v), want phase %s and %q", tt.name, err, be, tt.phase, tt.want)
		}
	}
}

func mustGPUs(t *testing.T, used, growth string) []GPU {
	g, err := ParseGPUs(2, "", used, growth)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestParseServeArgs(t *testing.T) {
	c, err := ParseServeArgs([]string{"--model=m", "--no-enable-prefix-caching", "--kv_cache_dtype", "fp8", "--served-model-name", "a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if c.PrefixCaching || !c.ChunkedPrefill || c.KVCacheDtype != "fp8" || strings.Join(c.ServedNames, ",") != "a,b" {
		t.Errorf("got %+v", c)
	}
	for args, want := range map[string]string{
		"--model m --bogus 1 --other":           "vllm serve: error: unrecognized arguments: --bogus --other",
		"--gpu-memory-utilization abc":          "argument --gpu-memory-utilization: invalid value 'abc'",
		"--enable-auto-tool-choice":             "requires --tool-call-parser",
		"--max-num-seqs":                        "expected one argument",
		"--enable-prefix-caching=yes --model m": "ignored explicit argument",
	} {
		_, err := ParseServeArgs(strings.Fields(args))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", args, err, want)
		}
	}
}

package vllm

import (
	"os"
	"strings"
	"testing"
)

const metricsText = `# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="fp8",enable_prefix_caching="True",gpu_memory_utilization="0.85",num_gpu_blocks="10092"} 1
`

func TestCheckDrift(t *testing.T) {
	e, err := parseEffective(strings.NewReader(metricsText))
	if err != nil {
		t.Fatal(err)
	}
	if e.PrefixCaching != true || e.GPUUtil != 0.85 || e.CacheDtype != "fp8" || e.BlockSize != 16 || e.NumGPUBlocks != 10092 || len(e.Reported) != 5 {
		t.Fatalf("parsed %+v", e)
	}
	flags := func(s string) Flags { return ParseArgs(strings.Fields(s)) }
	tests := []struct {
		flags string
		want  string // "" = no drift
	}{
		{"--gpu-memory-utilization 0.85 --kv-cache-dtype fp8", ""},
		{"--gpu-memory-utilization 0.85 --kv-cache-dtype fp8 --enable-prefix-caching", ""},
		{"--gpu-memory-utilization 0.85 --kv-cache-dtype fp8 --no-enable-prefix-caching", "enable_prefix_caching: server true, flags false"},
		{"--gpu-memory-utilization 0.9 --kv-cache-dtype fp8", "gpu_memory_utilization: server 0.85, flags 0.9"},
		{"--gpu-memory-utilization 0.85", "cache_dtype: server fp8, flags auto"},
	}
	for _, tt := range tests {
		f := CheckDrift(flags(tt.flags), e)
		switch {
		case tt.want == "" && f != "":
			t.Errorf("%s: unexpected drift %v", tt.flags, f)
		case tt.want != "" && !strings.Contains(f, tt.want):
			t.Errorf("%s: got %v, want config_drift with %q", tt.flags, f, tt.want)
		}
	}
	if _, err := parseEffective(strings.NewReader("up 1\n")); err == nil {
		t.Error("metrics without cache_config_info: no error")
	}
}

func TestParseBoot(t *testing.T) {
	b := ParseBoot([]string{
		"INFO Model loading took 8.9873 GiB and 64.333333 seconds",
		"INFO torch.compile takes 40.00 s in total",
		"INFO Graph capturing finished in 25 secs, took 0.40 GiB",
		"INFO init engine (profile, create kv cache, warmup model) took 37.00 seconds",
	})
	if b.Weights != 64.333333 || b.Compile != 40 || b.Graphs != 25 || b.InitEngine != 37 {
		t.Errorf("got %+v", b)
	}
}

// vLLM's label set of vllm:cache_config_info changed between releases: a
// label the server does not report is unknown, never a drift, and shown
// as not reported.
func TestRealCacheConfigInfo(t *testing.T) {
	b, err := os.ReadFile("../benchmark/testdata/metrics/vllm-v0-cache-config-info.txt")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b[:strings.LastIndexByte(string(b), '\n')+1]) // the excerpt ends mid-line
	e, err := parseEffective(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if e.PrefixCaching || e.GPUUtil != 0.9 || e.CacheDtype != "auto" || e.NumGPUBlocks != 81767 {
		t.Errorf("V0 labels: %+v", e)
	}
	if d := CheckDrift(ParseArgs([]string{"--no-enable-prefix-caching"}), e); d != "" {
		t.Errorf("drift on the V0 sample: %s", d)
	}
	// A later label set without enable_prefix_caching and cache_dtype.
	few, err := parseEffective(strings.NewReader(`vllm:cache_config_info{block_size="16",kv_cache_size_tokens="123433",num_gpu_blocks="14835",gpu_memory_utilization="0.9"} 1.0` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := CheckDrift(ParseArgs([]string{"--enable-prefix-caching", "--kv-cache-dtype", "fp8"}), few); d != "" {
		t.Errorf("unreported labels read as drift: %s", d)
	}
	if d := few.Describe(); d != "gpu_memory_utilization=0.9 num_gpu_blocks=14835 block_size=16 (not reported by this vLLM: enable_prefix_caching, cache_dtype)" {
		t.Errorf("Describe: %s", d)
	}
}

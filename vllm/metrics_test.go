package vllm

import (
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
	if *e != (Effective{PrefixCaching: true, GPUUtil: 0.85, CacheDtype: "fp8", BlockSize: 16, NumGPUBlocks: 10092}) {
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

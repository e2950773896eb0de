package vllm

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, value, want string
		wantErr           string // substring of the error
	}{
		{"gpu-memory-utilization", "0.85", "0.85", ""},
		{"gpu_memory_utilization", "1", "1", ""},
		{"gpu-memory-utilization", "1.5", "", "(0, 1]"},
		{"gpu-memory-utilization", "0", "", "(0, 1]"},
		{"gpu-memory-utilization", "abc", "", "a number"},
		{"max-num-seqs", "32", "32", ""},
		{"max-num-seqs", "-1", "", "an integer in [1,"},
		{"max-num-seqs", "3.5", "", "an integer"},
		{"max-model-len", "128K", "128K", ""},
		{"max-model-len", "0", "", "an integer in [1,"},
		{"kv-cache-dtype", "fp8", "fp8", ""},
		{"kv-cache-dtype", "fp9", "", "auto, bfloat16"},
		{"enable-prefix-caching", "false", "false", ""},
		{"enable-prefix-caching", "OFF", "false", ""},
		{"enable-prefix-caching", "maybe", "", "true or false"},
		{"rope-scaling", `{"rope_type":"yarn"}`, `{"rope_type":"yarn"}`, ""},
		{"rope-scaling", `{bad`, "", "JSON"},
		{"some-new-flag", "x", "x", ""},
		{"model", "", "", "non-empty"},
		{"port", "70000", "", "[1, 65535]"},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.name, tt.value)
		if tt.wantErr != "" {
			var ve *ValueError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.value) {
				t.Errorf("Normalize(%s, %q) error = %v, want a ValueError naming the value and %q", tt.name, tt.value, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%s, %q) = %q, %v; want %q", tt.name, tt.value, got, err, tt.want)
		}
	}
}

func TestParseIntHuman(t *testing.T) {
	for in, want := range map[string]int64{"131072": 131072, "128k": 128000, "128K": 131072, "25.6k": 25600, "1M": 1 << 20, "2m": 2000000} {
		got, err := ParseInt(in)
		if err != nil || got != want {
			t.Errorf("ParseInt(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestCanonicalName(t *testing.T) {
	for in, want := range map[string]string{"--kv_cache_dtype": "kv-cache-dtype", "KV-Cache-Dtype": "kv-cache-dtype", "--rope_scaling": "rope-scaling"} {
		if got := CanonicalName(in); got != want {
			t.Errorf("CanonicalName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	words := []string{"--model", "Qwen/Qwen3-32B-AWQ", "--served-model-name", "a", "b", "--no-enable-prefix-caching",
		"--enable-chunked-prefill", "--distributed-executor-backend=mp", "--kv_cache_dtype", "fp8",
		"--unknown-bool", "--unknown-val", "x", "--max-logprobs", "-1", "--api-key", "--port", "5002"}
	got := Flags(ParseArgs(words))
	checks := map[string]string{
		"model": "Qwen/Qwen3-32B-AWQ", "served-model-name": "a b", "enable-prefix-caching": "false",
		"enable-chunked-prefill": "true", "distributed-executor-backend": "mp", "kv-cache-dtype": "fp8",
		"unknown-bool": "", "unknown-val": "x", "max-logprobs": "-1", "api-key": "", "port": "5002",
	}
	for name, want := range checks {
		if v, ok := got.Get(name); !ok || v != want {
			t.Errorf("Get(%s) = %q, %v; want %q", name, v, ok, want)
		}
	}
	if v, _ := Flags(nil).Effective("enable-prefix-caching"); v != "true" {
		t.Errorf("default of enable-prefix-caching = %q, want true (vLLM V1)", v)
	}
	dup := Flags(ParseArgs([]string{"--max-num-seqs", "16", "--max_num_seqs", "32"}))
	if v, _ := dup.Get("max-num-seqs"); v != "32" {
		t.Errorf("duplicate flag: Get = %q, want the last value 32 (argparse)", v)
	}
	if d := dup.Duplicates(); len(d) != 1 || d[0] != "max-num-seqs" {
		t.Errorf("Duplicates() = %v, want [max-num-seqs]", d)
	}
}

func TestNewCandidate(t *testing.T) {
	if _, err := NewCandidate([]string{"max-num-seqs=8", "max_num_seqs=9"}, nil); err == nil {
		t.Error("a flag given twice: got no error")
	}
	if _, err := NewCandidate([]string{"novalue"}, nil); err == nil {
		t.Error("KEY without =VALUE: got no error")
	}
	c, err := NewCandidate([]string{"ENABLE_PREFIX_CACHING=off"}, []string{"--swap-space"})
	if err != nil || len(c) != 2 || c[0] != (Setting{Name: "enable-prefix-caching", Value: "false"}) || c[1] != (Setting{Name: "swap-space", Unset: true}) {
		t.Errorf("NewCandidate = %+v, %v", c, err)
	}
}

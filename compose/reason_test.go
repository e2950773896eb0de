package compose

import "testing"

func TestClassifyLine(t *testing.T) {
	tests := []struct {
		line string
		want Reason
	}{
		{"ValueError: Free memory on device cuda:0 (22.52/23.99 GiB) on startup is less than desired GPU memory utilization (0.95, 22.79 GiB).", ReasonFreeMemory},
		{"ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization`", ReasonNoKVMemory},
		{"ValueError: To serve at least one request with the models's max seq len (131072), (8.00 GiB KV cache is needed", ReasonKVTooSmall},
		{"ValueError: To serve at least one request with the model's max seq len (131072)", ReasonKVTooSmall},
		{"ValueError: The model's max seq len (131072) is larger than the maximum number of tokens that can be stored in KV cache (98304).", ReasonKVTooSmall},
		{"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 686.00 MiB.", ReasonOOM},
		{"vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.", ReasonEngineDead},
		{"vllm serve: error: unrecognized arguments: --bogus", ReasonBadArgs},
		{"api_server.py: error: argument --gpu-memory-utilization: invalid float value: 'x'", ReasonBadArgs},
		{"INFO 10-20 Available KV cache memory: 9.86 GiB", ReasonNone},
		{"WARNING the unhealthy neighbour", ReasonNone},
	}
	for _, tt := range tests {
		got, ok := classifyLine(tt.line)
		if got != tt.want || ok != (tt.want != ReasonNone) {
			t.Errorf("classifyLine(%q) = %v, %v; want %v", tt.line, got, ok, tt.want)
		}
	}
}

func TestReasonNamesRoundTrip(t *testing.T) {
	for r := ReasonNone; r <= ReasonCreate; r++ {
		back, ok := ParseReason(r.String())
		if !ok || back != r {
			t.Errorf("%d -> %q -> %d", r, r.String(), back)
		}
	}
}

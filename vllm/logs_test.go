package vllm

import "testing"

func TestClassifyLine(t *testing.T) {
	tests := []struct {
		line string
		want Cause
	}{
		{"ValueError: Free memory on device cuda:0 (22.52/23.99 GiB) on startup is less than desired GPU memory utilization (0.95, 22.79 GiB).", CauseFreeMemory},
		{"ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization`", CauseNoKVMemory},
		{"ValueError: To serve at least one request with the models's max seq len (131072), (8.00 GiB KV cache is needed", CauseKVTooSmall},
		{"ValueError: To serve at least one request with the model's max seq len (131072)", CauseKVTooSmall},
		{"ValueError: The model's max seq len (131072) is larger than the maximum number of tokens that can be stored in KV cache (98304).", CauseKVTooSmall},
		{"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 686.00 MiB.", CauseOOM},
		{"vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.", CauseEngineDead},
		{"vllm serve: error: unrecognized arguments: --bogus", CauseBadArgs},
		{"api_server.py: error: argument --gpu-memory-utilization: invalid float value: 'x'", CauseBadArgs},
		{"INFO 10-20 Available KV cache memory: 9.86 GiB", ""},
		{"WARNING the unhealthy neighbour", ""},
	}
	for _, tt := range tests {
		got, ok := ClassifyLine(tt.line)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("ClassifyLine(%q) = %q, %v; want %q", tt.line, got, ok, tt.want)
		}
	}
}

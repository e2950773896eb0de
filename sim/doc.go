// Package sim will be the vLLM simulator: the API, memory model, prefix cache
// and timing model behind cmd/vllm-sim.
//
// May import: net/http, profiles (the flag model). Not implemented yet (issue 3).
package sim

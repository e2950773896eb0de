// Package sim is the vLLM simulator behind cmd/vllm-sim and `vgrid sim
// serve`: vLLM's boot sequence with its log lines and failures, a step
// scheduler with a block-hashing prefix cache, the OpenAI-compatible API
// with SSE streaming, reasoning and tool calls, /metrics with vLLM's
// names, and fault injection. Argument parsing and the memory model come
// from package vllm, the same code vgrid's feasibility check uses.
//
// May import: net/http, client_golang, vllm.
package sim

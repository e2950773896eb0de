// Package benchmark measures an OpenAI-compatible server the way vllm
// bench serve defines its metrics: a streaming client with its own SSE
// reader (chunk arrivals from the kernel's receive stamps on Linux),
// scenarios defined as data (kv-cache, long conversations, reasoning,
// tool calling, stability, load, the rate sweep), workloads (built-in,
// synthetic token lengths, ShareGPT files), GPU and /metrics telemetry,
// and the statistics every report is recomputed from. A failed request is
// data in the report, never a Go error.
//
// May import: net/http, x/sys/unix, benchmath, gonum, jsonschema/v6,
// expfmt. Nothing of vgrid.
package benchmark

// Package vllm is what vgrid knows about vLLM itself, with no Docker or
// compose in sight: the `vllm serve` flags (types, ranges, --no- forms,
// vLLM V1 defaults) and how argparse groups the words of a command line;
// the server's configuration as vLLM parses it and the startup memory
// arithmetic that decides whether it boots (with vLLM's own failure
// texts); the log lines that prove a failure (Cause) and mark boot phases;
// the readiness probe (/health, /v1/models, one decoded token); and the
// /metrics names that say what the server really runs.
//
// profiles (where flags are written in a compose file), compose (the
// Docker side), sim (the simulator), the drivers and the orchestrator use
// it; it imports none of them.
//
// May import: the standard library, prometheus/common (expfmt).
package vllm

// Package benchmark will hold the streaming OpenAI-compatible client, the
// scenarios, telemetry samplers and statistics.
//
// May import: net/http and statistics libraries. Not implemented yet (issue 4).
package benchmark

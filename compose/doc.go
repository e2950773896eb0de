// Package compose is vgrid's Docker side: it turns a compose project (as
// compose-go loads it) into container options with docker compose's own
// labels and config hash, recreates one service on one Docker engine
// (creating under a temporary name first, so a refused create changes
// nothing), waits until the server really decodes while following its log
// and Docker's events, and explains a server that did not come up or
// stopped: vLLM's failure lines (from package vllm), exit codes, restarts,
// health checks. Failures are failure.Failure values.
//
// May import: compose-go v2, the Docker Engine SDK, vllm, failure,
// profiles (a slot's override).
package compose

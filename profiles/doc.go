// Package profiles owns the compose profile YAML of a vLLM service: it finds
// the `vllm serve` arguments in every style the user writes them (a folded
// `command: >`, a list, or a `sh -c` script with `exec vllm serve \`), renders
// a candidate flag set into them by editing only the lines that carry changed
// flags, verifies the result by loading it back with compose-go exactly as
// docker compose would, and keeps backups with atomic writes and rollback.
//
// A Kubernetes manifest is read the same way (ParseManifest): its units
// are the containers of its workloads, a container's command and args in
// the roles of a service's entrypoint and command, and a rendering is
// checked by reading the manifest again (no other container or document
// may change).
//
// It holds the typed model of vLLM serve flags (Spec, Normalize): booleans
// are written as --flag / --no-flag, never "off by omission", because vLLM V1
// turns prefix caching and chunked prefill on by default.
//
// May import: vllm (the flag model), internal/yamlerr, internal/atomicfile,
// go.yaml.in/yaml/v3, compose-go v2, go-difflib.
package profiles

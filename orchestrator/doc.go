// Package orchestrator owns the grid search: the grid file, candidate
// expansion, the persisted per-trial state machine (docs/state-machine.md),
// resume after an interruption, metrics from stored samples, champion
// selection with a confidence test, and the end policy. It declares the
// small interfaces it consumes (Driver, Bencher, Store) and never imports
// bbolt or the Docker SDK: adapters depend on it, not the reverse.
//
// May import: vllm (the flag model), failure, benchmark (its result types
// and pure summaries), benchmath, zerolog, internal/yamlerr.
package orchestrator

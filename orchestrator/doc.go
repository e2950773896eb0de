// Package orchestrator will own grid expansion, the persisted per-trial state
// machine, feasibility estimates and champion selection, and the small
// interfaces it consumes (deployer, benchmark runner, store).
//
// May import: profiles, benchmark types. Never bbolt or the Docker SDK:
// adapters depend on the core, not the reverse. Not implemented yet (issue 5).
package orchestrator

// Package driver adapts targets to the orchestrator's Driver interface,
// one type per kind of target: Process here (a vllm serve command run as a
// child process), and the compose driver in driver/composedriver (a
// compose service on a local or remote Docker engine), kept apart so that
// this package, and the process driver, link no Docker code. A driver
// renders a candidate into a Plan, a Plan deploys into a Deployment, and
// the Deployment answers WaitReady, Verify and Diagnose: each keeps its
// own typed data, nothing is kept in the driver between calls but the
// original profile and the running child.
//
// It also holds the adapters the orchestrator's other seams need: the
// Bencher (the grid's benchmark against a ready trial), the memory model's
// feasibility verdict, and the model's duration estimates for plan.
//
// May import: orchestrator (types), failure, benchmark, vllm, internal/proc.
package driver

package orchestrator

import (
	"fmt"
	"slices"
	"time"
)

// Phase is where a trial stands. Values are persisted: never renumber,
// only append.
type Phase int

const (
	PhasePending         Phase = 0
	PhaseRendering       Phase = 1
	PhaseDeploying       Phase = 2
	PhaseWaitingReady    Phase = 3
	PhaseVerifyingConfig Phase = 4
	PhaseBenchmarking    Phase = 5
	PhaseDone            Phase = 6
	PhaseFailed          Phase = 7
	PhaseSkipped         Phase = 8
)

var phaseNames = map[Phase]string{PhasePending: "pending", PhaseRendering: "rendering", PhaseDeploying: "deploying",
	PhaseWaitingReady: "waiting-ready", PhaseVerifyingConfig: "verifying-config", PhaseBenchmarking: "benchmarking",
	PhaseDone: "done", PhaseFailed: "failed", PhaseSkipped: "skipped"}

func (p Phase) String() string {
	if n, ok := phaseNames[p]; ok {
		return n
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// Final reports a phase a trial never leaves.
func (p Phase) Final() bool { return p == PhaseDone || p == PhaseFailed || p == PhaseSkipped }

// transitions is the only place that says which phase may follow which.
// Every non-final phase may fail; a resumed trial goes back to pending.
var transitions = map[Phase][]Phase{
	PhasePending:         {PhaseRendering, PhaseSkipped},
	PhaseRendering:       {PhaseDeploying},
	PhaseDeploying:       {PhaseWaitingReady},
	PhaseWaitingReady:    {PhaseVerifyingConfig},
	PhaseVerifyingConfig: {PhaseBenchmarking},
	PhaseBenchmarking:    {PhaseDone},
}

// CanMove reports whether a trial may go from one phase to another.
func CanMove(from, to Phase) bool {
	if from.Final() {
		return false
	}
	if to == PhaseFailed || to == PhasePending {
		return true // failure from anywhere; pending = redo after an interruption
	}
	return slices.Contains(transitions[from], to)
}

// PhaseStamp records when a trial entered a phase.
type PhaseStamp struct {
	Phase Phase     `json:"phase"`
	At    time.Time `json:"at"`
}

// Failure is why a trial failed or was skipped. Reason is a stable name
// (free_memory, kv_cache_too_small, oom, engine_dead, crash_loop, unhealthy,
// health_timeout, config_drift, benchmark, render, infeasible, ...).
type Failure struct {
	Reason   string   `json:"reason"`
	Detail   string   `json:"detail"`
	Line     string   `json:"line,omitempty"` // the log line that proves it
	ExitCode int      `json:"exit_code,omitempty"`
	Restarts int      `json:"restarts,omitempty"`
	Phase    string   `json:"phase,omitempty"` // the vLLM boot phase reached
	Logs     []string `json:"logs,omitempty"`  // last container/process log lines
}

func (f *Failure) Error() string {
	s := f.Reason + ": " + f.Detail
	if f.Line != "" {
		s += fmt.Sprintf(" (log: %q)", f.Line)
	}
	return s
}

// Boot is the boot breakdown of a trial, in seconds.
type Boot struct {
	Weights    float64 `json:"weights_s,omitempty"`
	Compile    float64 `json:"compile_s,omitempty"`
	InitEngine float64 `json:"init_engine_s,omitempty"`
	Ready      float64 `json:"ready_s"` // start of the deploy to the first decoded token, measured by vgrid
}

// Trial is one candidate's attempt, persisted at every phase change.
type Trial struct {
	RunID      string            `json:"run_id"`
	Seq        int               `json:"seq"`
	Candidate  Candidate         `json:"candidate"`
	Phase      Phase             `json:"phase"`
	Phases     []PhaseStamp      `json:"phases"`
	Attempts   int               `json:"attempts"` // 1 + times it was redone after an interruption
	ConfigHash string            `json:"config_hash,omitempty"`
	Rendered   []string          `json:"rendered_flags,omitempty"` // vLLM's argument words, secrets redacted
	Endpoint   string            `json:"endpoint,omitempty"`
	Boot       *Boot             `json:"boot,omitempty"`
	Effective  map[string]string `json:"effective,omitempty"` // what the server reports (vllm:cache_config_info)
	Failure    *Failure          `json:"failure,omitempty"`
	Predicted  string            `json:"predicted,omitempty"` // pre-flight feasibility verdict
}

// Entered returns when the trial last entered a phase (zero if never).
func (t *Trial) Entered(p Phase) time.Time {
	for i := len(t.Phases) - 1; i >= 0; i-- {
		if t.Phases[i].Phase == p {
			return t.Phases[i].At
		}
	}
	return time.Time{}
}

// RunState is where a run stands. Persisted: never renumber.
type RunState int

const (
	RunQueued      RunState = 0
	RunRunning     RunState = 1
	RunDone        RunState = 2 // every trial final, the end policy applied
	RunFailed      RunState = 3 // a run-level error (not a failed trial)
	RunCancelled   RunState = 4 // cancelled by the user; the original config restored
	RunInterrupted RunState = 5 // the process stopped mid-run; resumable
)

var runNames = map[RunState]string{RunQueued: "queued", RunRunning: "running", RunDone: "done", RunFailed: "failed",
	RunCancelled: "cancelled", RunInterrupted: "interrupted"}

func (s RunState) String() string {
	if n, ok := runNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Run is one grid search.
type Run struct {
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	State     RunState  `json:"state"`
	GridFile  string    `json:"grid_file,omitempty"`
	Grid      Grid      `json:"grid"`
	Target    string    `json:"target"` // the lock key: compose project + service, or the process command
	Backup    string    `json:"backup,omitempty"`
	Champion  *Verdict  `json:"champion,omitempty"`
	EndAction string    `json:"end_action,omitempty"` // what was left running: "champion", "original"
	Error     string    `json:"error,omitempty"`
}

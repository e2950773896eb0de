package orchestrator

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"slices"
	"strings"
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
	PhasePruned          Phase = 9  // benchmark stopped early: worse than the champion with confidence
	PhaseCancelled       Phase = 10 // the user cancelled the run before this trial ended
)

var phaseNames = map[Phase]string{PhasePending: "pending", PhaseRendering: "rendering", PhaseDeploying: "deploying",
	PhaseWaitingReady: "waiting-ready", PhaseVerifyingConfig: "verifying-config", PhaseBenchmarking: "benchmarking",
	PhaseDone: "done", PhaseFailed: "failed", PhaseSkipped: "skipped", PhasePruned: "pruned", PhaseCancelled: "cancelled"}

func (p Phase) String() string {
	if n, ok := phaseNames[p]; ok {
		return n
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// Final reports a phase a trial never leaves.
func (p Phase) Final() bool {
	return p == PhaseDone || p == PhaseFailed || p == PhaseSkipped || p == PhasePruned || p == PhaseCancelled
}

// transitions is the only place that says which phase may follow which.
// Every non-final phase may fail; a resumed trial goes back to pending.
var transitions = map[Phase][]Phase{
	PhasePending:         {PhaseRendering, PhaseSkipped},
	PhaseRendering:       {PhaseDeploying},
	PhaseDeploying:       {PhaseWaitingReady},
	PhaseWaitingReady:    {PhaseVerifyingConfig},
	PhaseVerifyingConfig: {PhaseBenchmarking},
	PhaseBenchmarking:    {PhaseDone, PhasePruned},
}

// CanMove reports whether a trial may go from one phase to another.
func CanMove(from, to Phase) bool {
	if from.Final() {
		return false
	}
	if to == PhaseFailed || to == PhasePending || to == PhaseCancelled {
		return true // failure or the user's cancel from anywhere; pending = redo after an interruption
	}
	return slices.Contains(transitions[from], to)
}

// PhaseStamp records when a trial entered a phase.
type PhaseStamp struct {
	Phase Phase     `json:"phase"`
	At    time.Time `json:"at"`
}

// Trial is one candidate's attempt, persisted at every phase change.
type Trial struct {
	RunID      string            `json:"run_id"`
	Seq        int               `json:"seq"`
	Candidate  Candidate         `json:"candidate"`
	Phase      Phase             `json:"phase"`
	Phases     []PhaseStamp      `json:"phases"`
	Attempts   int               `json:"attempts"`                 // 1 + times it was redone after an interruption
	RenderHash string            `json:"render_hash,omitempty"`    // of the rendered profile bytes, or command line
	Rendered   []string          `json:"rendered_flags,omitempty"` // vLLM's argument words, secrets redacted
	Image      string            `json:"image,omitempty"`          // the server's image (compose) or program (process)
	ImageID    string            `json:"image_id,omitempty"`       // the image's ID on the engine that ran it (compose)
	Endpoint   string            `json:"endpoint,omitempty"`
	Boot       *failure.Boot     `json:"boot,omitempty"`
	Effective  map[string]string `json:"effective,omitempty"` // what the server reports (vllm:cache_config_info)
	Failure    *failure.Failure  `json:"failure,omitempty"`
	Predicted  *Prediction       `json:"predicted,omitempty"` // pre-flight feasibility verdict; nil when none was made
	// Where it ran, when the target has slots (orchestrator.Slot).
	Slot     string `json:"slot,omitempty"`
	Host     string `json:"host,omitempty"`
	Hardware string `json:"hardware,omitempty"`
	// Precision is what benchmark.precision achieved on the objective.
	Precision *Achieved `json:"precision,omitempty"`
	// Confirm numbers a fresh boot of a candidate already measured, run by
	// confirm (confirm.go): 1 for its first re-deployment; 0 for a trial of
	// the search or the grid.
	Confirm int `json:"confirm,omitempty"`
}

// Outcome is the trial's phase with its reason: "done", "failed (oom)",
// "skipped (infeasible)", "pruned".
func (t *Trial) Outcome() string {
	out := t.Phase.String()
	if t.Failure != nil && t.Phase != PhasePruned {
		out += " (" + t.Failure.Reason.String() + ")"
	}
	return out
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
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	State    RunState  `json:"state"`
	Version  string    `json:"vgrid_version,omitempty"` // the vgrid that created the run
	GridFile string    `json:"grid_file,omitempty"`
	// GridSource is the grid file as written and validated when the run was
	// created; GridDir resolves its relative paths. Grid is parsed from
	// them whenever the run is loaded (UnmarshalJSON): the JSON form of
	// Grid is only a view.
	GridSource string   `json:"grid_source,omitempty"`
	GridDir    string   `json:"grid_dir,omitempty"`
	Grid       Grid     `json:"grid"`
	Target     string   `json:"target"` // the lock key: compose project + service, or the process command
	Backup     string   `json:"backup,omitempty"`
	Champion   *Verdict `json:"champion,omitempty"`
	EndAction  string   `json:"end_action,omitempty"` // what was left running: "champion", "original"
	// Deadline is the grid's deadline resolved when the run was created;
	// zero when none.
	Deadline time.Time `json:"deadline,omitzero"`
	// Stop says why the run stopped starting trials: every candidate tried,
	// the search's budget spent, the deadline.
	Stop  string `json:"stop,omitempty"`
	Error string `json:"error,omitempty"`
	// CancelRequested is when the user asked to cancel the run (zero when
	// never). It is final: the store keeps it through every later save, a
	// run that carries it never starts again, and its orchestrator ends it
	// cancelled with the original configuration restored.
	CancelRequested time.Time `json:"cancel_requested,omitzero"`
}

// StateText is the run's state as people read it: "cancelling" between
// the user's cancel and the end of the restore, else the state's name.
func (r *Run) StateText() string {
	if !r.CancelRequested.IsZero() && !r.State.Final() {
		return "cancelling"
	}
	return r.State.String()
}

// Final reports a state a run never leaves by itself: done, failed or
// cancelled (a failed run may be resumed by hand).
func (s RunState) Final() bool { return s == RunDone || s == RunFailed || s == RunCancelled }

// ErrRunCancelled says a run was cancelled by the user: it cannot be
// started or resumed.
var ErrRunCancelled = errors.New("cancelled by the user")

// RequestCancel records the user's cancel on r as stored, at now: a queued
// run is cancelled at once; a running or interrupted one keeps its state,
// marked, until its orchestrator restores the original configuration and
// ends it cancelled. changed is false when r was already cancelled or
// marked. A run that ended (done, failed) cannot be cancelled. Pure.
func RequestCancel(r *Run, now time.Time) (changed bool, err error) {
	switch {
	case r.State == RunCancelled || (!r.CancelRequested.IsZero() && !r.State.Final()):
		return false, nil
	case r.State == RunDone || r.State == RunFailed:
		return false, fmt.Errorf("run %s already ended %s: nothing to cancel", r.ID, r.State)
	}
	r.CancelRequested, r.Updated = now, now
	if r.State == RunQueued {
		r.State = RunCancelled
	}
	return true, nil
}

// CheckSave refuses to store next over prev (the stored run, nil when
// none) when that would undo a user's cancel: a cancelled run stays
// cancelled, and a run whose cancel was requested never starts (again)
// nor ends done (its orchestrator restores the original instead). It
// carries prev's CancelRequested over to next. Pure.
func CheckSave(prev, next *Run) error {
	if prev == nil {
		return nil
	}
	if next.CancelRequested.IsZero() {
		next.CancelRequested = prev.CancelRequested
	}
	switch {
	case prev.State == RunCancelled && next.State != RunCancelled:
		return fmt.Errorf("run %s stays cancelled (not saved as %s): %w", next.ID, next.State, ErrRunCancelled)
	case !next.CancelRequested.IsZero() && next.State == RunRunning && prev.State != RunRunning:
		return fmt.Errorf("run %s was cancelled by the user at %s; it does not start again: %w", next.ID, next.CancelRequested.Format(time.RFC3339), ErrRunCancelled)
	case !next.CancelRequested.IsZero() && next.State == RunDone:
		return fmt.Errorf("run %s was cancelled by the user at %s; it does not end done: %w", next.ID, next.CancelRequested.Format(time.RFC3339), ErrRunCancelled)
	}
	return nil
}

// UnmarshalJSON loads a run and parses its grid from the stored source, so
// that nothing of the grid is lost in a JSON round trip (an empty list is
// not an absent one). Runs stored before the source was kept use the
// JSON form.
func (r *Run) UnmarshalJSON(b []byte) error {
	type plain Run
	if err := json.Unmarshal(b, (*plain)(r)); err != nil {
		return err
	}
	if r.GridSource == "" {
		return nil
	}
	g, err := LoadGrid(r.GridFile, []byte(r.GridSource), r.GridDir)
	if err != nil {
		return fmt.Errorf("run %s: its stored grid does not parse with this vgrid (%s): %w", r.ID, r.Version, err)
	}
	r.Grid = *g
	return nil
}

// Timing is where a trial's time went, from its phase stamps.
type Timing struct {
	Render, Deploy, Boot, Verify, Bench, Total time.Duration
	// FailExtra is, for a trial that failed on a logged line, the time
	// from that line to the recorded failure.
	FailExtra time.Duration
}

// Timing splits a trial's last attempt by phase: each phase lasts until
// the next stamp, whichever it is (a boot that fails lasts until the
// failure).
func (t *Trial) Timing() Timing {
	var tm Timing
	start := len(t.Phases)
	for i := len(t.Phases) - 1; i >= 0; i-- { // the last attempt starts at its last rendering
		if t.Phases[i].Phase == PhaseRendering {
			start = i
			break
		}
	}
	for i := start; i+1 < len(t.Phases); i++ {
		d := t.Phases[i+1].At.Sub(t.Phases[i].At)
		switch t.Phases[i].Phase {
		case PhaseRendering:
			tm.Render += d
		case PhaseDeploying:
			tm.Deploy += d
		case PhaseWaitingReady:
			tm.Boot += d
		case PhaseVerifyingConfig:
			tm.Verify += d
		case PhaseBenchmarking:
			tm.Bench += d
		}
	}
	if start < len(t.Phases) {
		tm.Total = t.Phases[len(t.Phases)-1].At.Sub(t.Phases[start].At)
	}
	if f := t.Failure; f != nil && !f.LineAt.IsZero() && !t.Entered(PhaseFailed).IsZero() {
		tm.FailExtra = t.Entered(PhaseFailed).Sub(f.LineAt)
	}
	return tm
}

// RunWall is the time from the first trial's start to the last trial's end.
func RunWall(trials []*Trial) time.Duration {
	var first, last time.Time
	for _, t := range trials {
		if s := t.Entered(PhaseRendering); !s.IsZero() && (first.IsZero() || s.Before(first)) {
			first = s
		}
		for _, p := range []Phase{PhaseDone, PhaseFailed, PhaseSkipped, PhasePruned} {
			if e := t.Entered(p); e.After(last) {
				last = e
			}
		}
	}
	if first.IsZero() || last.Before(first) {
		return 0
	}
	return last.Sub(first)
}

// Prediction is the memory model's pre-flight verdict on a candidate:
// whether it boots, and why. Stored as the text it reads as ("feasible",
// "infeasible: WHY"), as earlier versions stored it.
type Prediction struct {
	Boots bool
	Why   string
}

// Predict is the verdict of a feasibility check (ok, why).
func Predict(ok bool, why string) *Prediction { return &Prediction{Boots: ok, Why: why} }

// Infeasible reports a prediction that the candidate cannot boot.
func (p *Prediction) Infeasible() bool { return p != nil && !p.Boots }

func (p *Prediction) String() string {
	switch {
	case p == nil:
		return ""
	case p.Boots:
		return "feasible"
	}
	return "infeasible: " + p.Why
}

func (p *Prediction) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

func (p *Prediction) UnmarshalText(b []byte) error {
	s := string(b)
	if why, ok := strings.CutPrefix(s, "infeasible: "); ok || s == "infeasible" {
		*p = Prediction{Why: why}
		return nil
	}
	*p = Prediction{Boots: true}
	return nil
}

package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/benchmark"
)

// Driver brings candidates up on one target (a compose service, a
// process). It renders a candidate into a Plan; a Plan deploys into a
// Deployment, the handle the trial's later phases take. Each driver keeps
// its own data in its own Plan and Deployment types.
type Driver interface {
	// Prepare saves what the run will change (the profile, labelled with
	// the run id) and returns where; it is called once per run.
	Prepare(ctx context.Context, runID string) (backup string, err error)
	// Resume takes up a run prepared earlier: the original is the backup
	// Prepare made, not what is on disk (an interrupted trial's rendering).
	Resume(ctx context.Context, runID, backup string) error
	// Render computes the candidate's configuration without side effects
	// (always from the original profile, never from the previous trial's).
	Render(ctx context.Context, c Candidate) (Plan, error)
	// Restore puts the original configuration back and running.
	Restore(ctx context.Context) error
	// Crown renders, deploys and waits for the champion.
	Crown(ctx context.Context, c Candidate) error
}

// TargetChecker is a Driver that can say, changing nothing, whether any
// candidate can start on its target: the program is installed, the image
// is on the engine with the runtime it needs, the profile reads.
type TargetChecker interface {
	CheckTarget(ctx context.Context) error
}

// CheckTarget asks d, when it can tell, whether any candidate can start.
func CheckTarget(ctx context.Context, d Driver) error {
	if c, ok := d.(TargetChecker); ok {
		return c.CheckTarget(ctx)
	}
	return nil
}

// FlagChecker is a Driver that can ask the vLLM that will run a rendered
// candidate which flags it accepts (its --help).
type FlagChecker interface {
	// CheckFlags returns, described, what that vLLM would refuse in the
	// plan's arguments; an error when it cannot be asked.
	CheckFlags(ctx context.Context, p Plan) ([]string, error)
}

// Plan is a candidate rendered for a target, ready to deploy.
type Plan interface {
	// Rendered is what the trial records of the rendering.
	Rendered() Rendered
	// Deploy applies it: writes the profile, recreates the service (or
	// starts the process). A *Failure says why it could not.
	Deploy(ctx context.Context) (Deployment, error)
}

// Deployment is one candidate deployed on a target.
type Deployment interface {
	// WaitReady waits until the server decodes; a *Failure says why not.
	// The server must be the one this deployment started (foreign_server).
	WaitReady(ctx context.Context, timeout time.Duration) (*Ready, error)
	// Verify reads the configuration the server reports and compares it
	// with the candidate's; a *Failure (config_drift) when it differs.
	Verify(ctx context.Context) (map[string]string, error)
	// Diagnose explains a server that stopped answering (engine_dead,
	// exited, ...) or is not the one measured, or returns nil.
	Diagnose(ctx context.Context) *failure.Failure
}

// Rendered is what a trial records of a candidate's rendering.
type Rendered struct {
	Candidate Candidate
	Hash      string   // of what the driver renders: the profile's bytes, or the command line
	Words     []string // vLLM's arguments, secrets redacted
	Image     string   // the server's image (compose) or program (process)
}

// Ready is a serving deployment.
type Ready struct {
	Endpoint string
	Model    string
	Boot     failure.Boot
	APIKey   string // the key the server was started with, in memory only
	// GPU, when set, samples the GPUs of the host and slot that run the
	// server (nvidia-smi in its container, through its engine); nil: the
	// bencher's own source.
	GPU benchmark.GPUSource
	// ImageID is the ID of the image the server's container runs, on
	// its engine ("" for a process).
	ImageID string
	// Node and Hardware, when set, say where the server runs when the
	// driver learns it only at boot (a cluster's scheduler placed it):
	// they replace the slot's host and hardware for the trial.
	Node     string
	Hardware string
}

type trialKey struct{}

// WithTrial marks ctx as the rendering of trial seq, for drivers that name
// what they create after the trial (the kubernetes driver's
// vgrid-<run>-<trial>); TrialOf reads it.
func WithTrial(ctx context.Context, seq int) context.Context {
	return context.WithValue(ctx, trialKey{}, seq)
}

// TrialOf is the trial a context renders, if WithTrial marked it.
func TrialOf(ctx context.Context) (int, bool) {
	seq, ok := ctx.Value(trialKey{}).(int)
	return seq, ok
}

// Bencher measures a serving endpoint: the grid's scenarios, or only
// these when only is not nil. look, when not nil, is called with the
// report so far after each scenario; its error stops the benchmark, which
// returns the report so far with that error.
type Bencher interface {
	Bench(ctx context.Context, ready *Ready, only []string, look func(sofar *benchmark.Report) error) (*benchmark.Report, error)
}

// Store persists runs, trials, reports and events.
type Store interface {
	PutRun(r *Run) error
	GetRun(id string) (*Run, error)
	PutTrial(t *Trial) error
	Trials(runID string) ([]*Trial, error)
	PutReport(runID string, seq, rep int, r *benchmark.Report) error
	DeleteReports(runID string, seq int) error
	Reports(runID string, seq int) ([]*benchmark.Report, error)
	AddEvent(runID string, e Event) error
	// Lock takes the target for runID; it fails when a live process holds it.
	Lock(target, runID string) (unlock func() error, err error)
}

// Event is one line of a run's history.
type Event struct {
	At    time.Time `json:"at"`
	Kind  EventKind `json:"kind"`
	Trial int       `json:"trial"`
	Phase string    `json:"phase,omitempty"`
	Text  string    `json:"text"`
}

// EventKind says what an event records; the live streams name their
// events after it. Stored by name.
type EventKind string

const (
	EventPhase    EventKind = "phase"    // a trial changed phase
	EventRun      EventKind = "run"      // the run changed state (or a cancel was requested)
	EventChampion EventKind = "champion" // the verdict, at the end or at a cancel
)

// Progress is what a live progress line shows.
type Progress struct {
	Trial, Trials int
	Name          string
	Phase         Phase
	Reason        string        // failed or skipped: the failure reason
	Elapsed       time.Duration // in this trial
	ETA           time.Duration // for the run; 0 when unknown
}

// Orchestrator runs grids.
type Orchestrator struct {
	Store    Store
	Driver   Driver
	Bench    Bencher
	Log      zerolog.Logger
	Now      func() time.Time
	Progress func(Progress)
	// Feasible predicts whether a candidate can boot (pre-flight); nil: not checked.
	Feasible func(Candidate) (bool, string)
	// SkipInfeasible skips candidates Feasible rejects instead of running them to confirm.
	// An adaptive search (random, tpe) always skips them.
	SkipInfeasible bool
	// Estimate is how long a candidate's trial is expected to take (boot and
	// benchmark), for the deadline; nil: unknown (a trial is then started
	// while the deadline has not passed).
	Estimate func(Candidate) time.Duration
	// Slots, when set, are where trials run, as many at once as there
	// are slots (pool.go); Driver remains the target's own, which the run
	// prepares, crowns and restores. Empty: trials run on Driver, one at
	// a time.
	Slots []Slot
	// EngineWait bounds the wait for an engine that stopped answering (a
	// Docker engine restarted): the trial it broke is then redone, and
	// the run goes on; 0: the grid's timeouts.engine. A slot whose engine
	// does not come back is retired.
	EngineWait     time.Duration
	gridEngineWait time.Duration
	// retired are the slots whose Docker engine stopped answering during
	// the run (by name): no trial is handed to them again and the end of
	// the run does not wait for them. Touched by the pool's goroutine only.
	retired map[string]error
	// LeaveOnInterrupt leaves the current candidate running when the run is
	// interrupted, instead of restoring the original (the daemon: it must
	// exit within 30 s, and the resumed run redeploys anyway).
	LeaveOnInterrupt bool
}

var lastRunID struct {
	sync.Mutex
	at time.Time
}

// NewRunID returns a unique run id that sorts in creation order: the UTC
// time to the millisecond (ids made by this process in one millisecond
// take the next ones), then random hex. The store lists runs, and
// resolves "latest", in that order: runs queued in the same second
// (seconds alone, before) came back in a random order.
func NewRunID(now time.Time) string {
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error()) // never fails on supported platforms (Go 1.24+)
	}
	now = now.UTC().Truncate(time.Millisecond)
	lastRunID.Lock()
	if !now.After(lastRunID.at) {
		now = lastRunID.at.Add(time.Millisecond)
	}
	lastRunID.at = now
	lastRunID.Unlock()
	return now.Format("20060102-150405.000") + "-" + hex.EncodeToString(b)
}

// NewRun prepares a run of a grid. The run keeps the grid's bytes as
// written (from LoadGrid), so every later load of the run, a resume or
// the daemon's, reads the same grid.
func NewRun(g *Grid, gridFile string, now time.Time, target, version string) *Run {
	deadline, _ := ParseDeadline(g.Deadline, now) // validated with the grid
	return &Run{ID: NewRunID(now), Created: now, Updated: now, State: RunQueued, Grid: *g, GridFile: gridFile,
		GridSource: string(g.source), GridDir: g.dir, Target: target, Version: version, Deadline: deadline}
}

// move is the only place a trial changes phase: it checks the transition
// table, persists the trial, records an event and logs one line.
func (o *Orchestrator) move(t *Trial, to Phase, detail string) error {
	if !CanMove(t.Phase, to) {
		return fmt.Errorf("trial %d: illegal transition %s -> %s", t.Seq, t.Phase, to)
	}
	now := o.Now()
	from := t.Phase
	t.Phase = to
	t.Phases = append(t.Phases, PhaseStamp{Phase: to, At: now})
	if err := o.Store.PutTrial(t); err != nil {
		return fmt.Errorf("persist trial %d: %w", t.Seq, err)
	}
	text := fmt.Sprintf("%s -> %s", from, to)
	if detail != "" {
		text += ": " + detail
	}
	if err := o.Store.AddEvent(t.RunID, Event{At: now, Kind: EventPhase, Trial: t.Seq, Phase: to.String(), Text: text}); err != nil {
		return fmt.Errorf("persist event: %w", err)
	}
	ev := o.Log.Info()
	if to == PhaseFailed || to == PhaseSkipped || to == PhasePruned {
		ev = o.Log.Warn()
	}
	ev.Str("run_id", t.RunID).Int("trial", t.Seq).Str("candidate", t.Candidate.Name).Str("from", from.String()).Str("phase", to.String())
	if detail != "" {
		ev = ev.Str("detail", detail)
	}
	ev.Msg("trial phase")
	return nil
}

func (o *Orchestrator) fail(t *Trial, f *failure.Failure) error {
	t.Failure = f
	return o.move(t, PhaseFailed, f.Error())
}

func (o *Orchestrator) saveRun(r *Run, state RunState, text string) error {
	r.State, r.Updated = state, o.Now()
	if err := o.Store.PutRun(r); err != nil {
		return fmt.Errorf("persist run %s: %w", r.ID, err)
	}
	o.Log.Info().Str("run_id", r.ID).Str("state", state.String()).Msg(text)
	return o.Store.AddEvent(r.ID, Event{At: r.Updated, Kind: EventRun, Trial: -1, Text: state.String() + ": " + text})
}

// ErrCancelled is the cancellation cause of a run the user cancelled (the
// daemon's API): the original configuration is restored and the run ends
// cancelled. Any other cancellation is an interruption, which a later
// Run resumes.
var ErrCancelled = errors.New("cancelled by the user")

// Run executes a new run or resumes an interrupted one: finished trials are
// kept, an interrupted trial is redone from pending with its samples
// dropped. The orchestrator records how the run ends, whatever ends it:
// done (a champion or none), failed (no candidate measured, or a run-level
// error), cancelled (ctx cancelled with ErrCancelled: the original is
// restored) or interrupted (any other cancellation: the original is
// restored unless LeaveOnInterrupt), so the service is never left stopped.
func (o *Orchestrator) Run(ctx context.Context, r *Run) (err error) {
	o.gridEngineWait = time.Duration(r.Grid.Timeouts.Engine)
	unlock, err := o.Store.Lock(r.Target, r.ID)
	if err != nil {
		return err // another vgrid drives the target: nothing was done
	}
	defer unlock()
	for _, s := range o.slots() {
		if o.own(s) || s.Key == "" {
			continue
		}
		unlockSlot, err := o.Store.Lock(s.Key, r.ID)
		if err != nil {
			return fmt.Errorf("slot %s: %w", s.Name, err)
		}
		defer unlockSlot()
	}
	// The stored run decides whether it may start: another process (the
	// daemon's API) may have ended or cancelled it since r was read.
	if cur, err := o.Store.GetRun(r.ID); err == nil {
		if cur.State == RunDone || cur.State == RunCancelled {
			return fmt.Errorf("run %s is already %s: %w", r.ID, cur.State, ErrRunEnded)
		}
		r.CancelRequested = cur.CancelRequested
	}
	defer func() { err = o.conclude(ctx, r, err) }()
	trials, err := o.Store.Trials(r.ID)
	if err != nil {
		return err
	}
	if len(trials) == 0 {
		if !r.CancelRequested.IsZero() {
			return errCancelRequested
		}
		if err := o.checkSchedule(r); err != nil {
			return err
		}
		if err := CheckTarget(ctx, o.Driver); err != nil {
			return fmt.Errorf("no candidate can start on %s: %w", r.Target, err)
		}
		if err := o.checkFlags(ctx, r); err != nil {
			return err
		}
		var backup string
		err := o.whileEngineDown(ctx, o.Driver, "prepare", func() (err error) {
			backup, err = o.Driver.Prepare(ctx, r.ID)
			return err
		})
		if err != nil {
			return fmt.Errorf("prepare %s: %w", r.Target, err)
		}
		r.Backup = backup
		if err := o.prepareSlots(ctx, r, false); err != nil {
			return err
		}
		space := r.Grid.Expand()
		if r.Grid.Search.Adaptive() {
			space = nil // proposed one at a time (search)
		}
		for i, c := range space {
			t := &Trial{RunID: r.ID, Seq: i, Candidate: c, Phase: PhasePending, Attempts: 1, Phases: []PhaseStamp{{PhasePending, o.Now()}}}
			if o.Feasible != nil {
				t.Predicted = Predict(o.Feasible(c))
			}
			if err := o.Store.PutTrial(t); err != nil {
				return err
			}
			trials = append(trials, t)
		}
	} else {
		if err := o.whileEngineDown(ctx, o.Driver, "resume", func() error { return o.Driver.Resume(ctx, r.ID, r.Backup) }); err != nil {
			return fmt.Errorf("resume %s: %w", r.Target, err)
		}
		if err := o.prepareSlots(ctx, r, true); err != nil {
			return err
		}
		if !r.CancelRequested.IsZero() {
			return errCancelRequested // the cancel's restore and end, nothing redone
		}
		for _, t := range trials {
			if t.Phase.Final() || t.Phase == PhasePending {
				continue
			}
			if err := o.redo(r, t, "interrupted in "+t.Phase.String()); err != nil {
				return err
			}
		}
	}
	r.Error = ""
	if err := o.saveRun(r, RunRunning, fmt.Sprintf("%d trials", len(trials))); err != nil {
		return err
	}

	if r.Grid.Search.Adaptive() {
		trials, err = o.search(ctx, r, trials)
		if err != nil {
			return err
		}
		return o.finish(ctx, r, trials)
	}
	r.Stop = "every candidate was tried"
	i := 0
	err = o.pool(ctx, r, len(trials), func() (*job, error) {
		for ; i < len(trials); i++ {
			t := trials[i]
			if t.Phase.Final() {
				continue
			}
			if why := o.late(r, t.Candidate); why != "" {
				r.Stop = why
				for _, rest := range trials[i:] {
					if rest.Phase.Final() {
						continue
					}
					rest.Failure = &failure.Failure{Reason: failure.ReasonDeadline, Detail: why}
					if err := o.move(rest, PhaseSkipped, why); err != nil {
						return nil, err
					}
				}
				i = len(trials)
				return nil, nil
			}
			i++
			return &job{t: t, pos: t.Seq + 1}, nil
		}
		return nil, nil
	})
	if err != nil {
		return err
	}
	return o.finish(ctx, r, trials)
}

// late says why a candidate's trial should not start: it cannot end
// before the run's deadline, with the time confirm keeps for its boots
// after it. "" when it can, or there is no deadline.
func (o *Orchestrator) late(r *Run, c Candidate) string { return o.lateBy(r, c, true) }

// lateBy is late, keeping confirm's time (keep) or not (confirm's own
// boots).
func (o *Orchestrator) lateBy(r *Run, c Candidate, keep bool) string {
	if r.Deadline.IsZero() {
		return ""
	}
	var need, kept time.Duration
	if o.Estimate != nil {
		need = o.Estimate(c)
	}
	if keep {
		kept = r.Grid.ConfirmReserve(need, len(o.slots()))
	}
	now := o.Now()
	if left := r.Deadline.Sub(now); need+kept >= left {
		also := ""
		if kept > 0 {
			also = fmt.Sprintf(" (and %s kept for confirm's boots)", kept.Round(time.Second))
		}
		return fmt.Sprintf("deadline %s: the next trial needs about %s%s, %s left", r.Deadline.Format("2006-01-02 15:04"), need.Round(time.Second), also, max(left, 0).Round(time.Second))
	}
	return ""
}

// search runs an adaptive search: the sampler proposes the next candidate
// from the stored trials (those running on other slots taken but not yet
// evidence), until the budget of booted trials is spent, the space is
// exhausted or the deadline leaves no room. Trials left unfinished by an
// interruption are finished first; nothing of the search is kept but the
// trials, so a resumed run proposes what the interrupted one would have
// (with one slot; with several, proposals also depend on which trial
// ends first).
func (o *Orchestrator) search(ctx context.Context, r *Run, trials []*Trial) ([]*Trial, error) {
	s := r.Grid.Search
	space := r.Grid.Expand()
	index := make(map[string]int, len(space))
	for i, c := range space {
		index[spaceKey(c)] = i
	}
	sampler := NewSampler(&r.Grid)
	var redo []*job
	pos := 0
	for _, t := range trials {
		if t.Phase != PhaseSkipped {
			pos++ // the trial's place among the booted ones, for the progress line
		}
		if !t.Phase.Final() {
			redo = append(redo, &job{t: t, pos: pos})
		}
	}
	n := len(trials)
	err := o.pool(ctx, r, s.MaxTrials, func() (*job, error) {
		if len(redo) > 0 {
			j := redo[0]
			redo = redo[1:]
			return j, nil
		}
		for {
			// The store's copies: the trials themselves change on their slots.
			stored, err := o.Store.Trials(r.ID)
			if err != nil {
				return nil, err
			}
			booted := 0
			for _, t := range stored {
				if t.Phase != PhaseSkipped && t.Confirm == 0 {
					booted++
				}
			}
			if booted >= s.MaxTrials {
				r.Stop = fmt.Sprintf("the budget of %d trials is spent (%s search)", s.MaxTrials, s.Strategy)
				return nil, nil
			}
			obs, err := o.observe(r, stored, index)
			if err != nil {
				return nil, err
			}
			i, ok := sampler.Next(space, obs)
			if !ok {
				r.Stop = fmt.Sprintf("every candidate of the space was tried (%d)", len(space))
				return nil, nil
			}
			c := space[i]
			t := &Trial{RunID: r.ID, Seq: n, Candidate: c, Phase: PhasePending, Attempts: 1, Phases: []PhaseStamp{{PhasePending, o.Now()}}}
			if o.Feasible != nil {
				t.Predicted = Predict(o.Feasible(c))
			}
			if !t.Predicted.Infeasible() {
				if why := o.late(r, c); why != "" {
					r.Stop = why
					return nil, nil
				}
			}
			if err := o.Store.PutTrial(t); err != nil {
				return nil, err
			}
			n++
			trials = append(trials, t)
			if t.Predicted.Infeasible() {
				// Never booted; the search learns from it as from a failure.
				t.Failure = &failure.Failure{Reason: failure.ReasonInfeasible, Detail: t.Predicted.String()}
				if err := o.move(t, PhaseSkipped, t.Predicted.String()); err != nil {
					return nil, err
				}
				continue
			}
			return &job{t: t, pos: booted + 1}, nil
		}
	})
	return trials, err
}

// observe turns the stored trials into the search's observations: a
// measured trial within the constraints gives its objective; failures,
// infeasible candidates and constraint violations are bad outcomes.
func (o *Orchestrator) observe(r *Run, trials []*Trial, index map[string]int) ([]Observation, error) {
	scored, err := Score(o.Store, r, trials)
	if err != nil {
		return nil, err
	}
	metric, sign := r.Grid.Objective.Minimize, 1.0
	if r.Grid.Objective.Maximize != "" {
		metric, sign = r.Grid.Objective.Maximize, -1
	}
	var cons []Constraint
	for _, c := range r.Grid.Constraints {
		if pc, err := ParseConstraint(c); err == nil {
			cons = append(cons, pc)
		}
	}
	var out []Observation
	for k, t := range trials {
		i, ok := index[spaceKey(t.Candidate)]
		if !ok || t.Confirm > 0 {
			continue // confirm's boots come after the search
		}
		ob := Observation{Index: i, Outcome: t.Phase.String()}
		switch {
		case t.Phase == PhaseDone:
			v, has := scored[k].Values[metric]
			ob.Outcome = "measured"
			if !has || math.IsNaN(v) {
				ob.Outcome = "no " + metric
				break
			}
			ob.Loss, ob.Measured = sign*v, true
			for _, c := range cons {
				if holds, _ := c.Holds(scored[k].Values); !holds {
					ob.Measured, ob.Outcome = false, "constraint"
				}
			}
		case t.Failure != nil:
			ob.Outcome = t.Outcome()
		case !t.Phase.Final():
			ob.Pending, ob.Outcome = true, "running" // on another slot: taken, no evidence yet
		}
		out = append(out, ob)
	}
	return out, nil
}

// checkSchedule refuses a new run whose trials, as estimated, would not
// fit a night (CheckSchedule): every estimate when the grid runs every
// candidate without a deadline, none otherwise.
func (o *Orchestrator) checkSchedule(r *Run) error {
	var perTrial []time.Duration
	if o.Estimate != nil && !r.Grid.Search.Adaptive() && r.Deadline.IsZero() {
		for _, c := range r.Grid.Expand() {
			perTrial = append(perTrial, o.Estimate(c))
		}
	}
	if err := CheckSchedule(&r.Grid, r.Deadline, o.Now(), perTrial); err != nil {
		return err
	}
	if r.Grid.Confirm != nil && o.Estimate != nil && !r.Deadline.IsZero() {
		var per []time.Duration
		for _, c := range r.Grid.Expand() {
			per = append(per, o.Estimate(c))
		}
		return CheckConfirm(&r.Grid, r.Deadline, o.Now(), MedianDuration(per), len(o.slots()))
	}
	return nil
}

// ErrRunEnded says a run cannot be started or resumed: it is done or
// cancelled.
var ErrRunEnded = errors.New("the run has ended")

// errCancelRequested ends a run whose cancel the user requested while no
// process ran it (the daemon's API, before a restart): conclude restores
// the original and ends it cancelled.
var errCancelRequested = errors.New("cancel requested")

// cancelRequested reports whether the user cancelled r: through ctx
// (ErrCancelled), or through the store (the daemon's API records the
// request before it answers; it may arrive while a shutdown stops the run).
func (o *Orchestrator) cancelRequested(ctx context.Context, r *Run) bool {
	if errors.Is(context.Cause(ctx), ErrCancelled) || !r.CancelRequested.IsZero() {
		return true
	}
	if cur, err := o.Store.GetRun(r.ID); err == nil && !cur.CancelRequested.IsZero() {
		r.CancelRequested = cur.CancelRequested
		return true
	}
	return false
}

// conclude records how a run ended and returns the error its caller sees.
// Final writes use a context that outlives a cancellation.
func (o *Orchestrator) conclude(ctx context.Context, r *Run, err error) error {
	var nothing *NothingMeasuredError
	switch {
	case err == nil || errors.As(err, &nothing):
		return err // finish recorded the outcome
	case ctx.Err() != nil || errors.Is(err, errCancelRequested):
		cancelled := errors.Is(err, errCancelRequested) || o.cancelRequested(ctx, r)
		if o.LeaveOnInterrupt && !cancelled {
			r.EndAction = "current candidate (interrupted)"
		} else {
			// Put the original configuration back so the service keeps running.
			restoreCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(r.Grid.Timeouts.Ready)+time.Minute)
			defer cancel()
			r.EndAction = "original"
			rerr := o.releaseSlots(restoreCtx)
			if rerr == nil {
				rerr = o.Driver.Restore(restoreCtx)
			}
			if rerr != nil {
				r.Error = "restore after the run stopped: " + rerr.Error()
			}
		}
		state, text := RunInterrupted, "interrupted; resume with vgrid run --resume "+r.ID
		if o.LeaveOnInterrupt {
			text = "interrupted; the daemon resumes it when it starts again"
		}
		if cancelled {
			state, text = RunCancelled, "cancelled; the original configuration was restored"
			if r.Error != "" {
				text = "cancelled; " + r.Error
			}
			if cerr := o.endCancelled(r); cerr != nil {
				return cerr
			}
		}
		if serr := o.saveRun(r, state, text); serr != nil {
			return serr
		}
		if errors.Is(err, errCancelRequested) {
			return ErrRunCancelled
		}
		return ctx.Err()
	default:
		if !o.stored(r) {
			return err // refused before anything was done or stored: no failed run is left behind
		}
		if r.Error == "" {
			r.Error = err.Error()
		}
		if serr := o.saveRun(r, RunFailed, r.Error); serr != nil {
			return fmt.Errorf("%w (and the run's state was not saved: %v)", err, serr)
		}
		return err
	}
}

// stored reports whether the run or any of its trials is in the store: a
// run refused before its first write (vgrid run's checks) leaves nothing.
func (o *Orchestrator) stored(r *Run) bool {
	if _, err := o.Store.GetRun(r.ID); err == nil {
		return true
	}
	trials, err := o.Store.Trials(r.ID)
	return err != nil || len(trials) > 0
}

// endCancelled ends a cancelled run's trials that had not ended (the one
// in flight, and those never started) as cancelled, and keeps what was
// learned: the best candidate so far, chosen as a finished run's champion
// is, marked as the verdict of a cancelled run.
func (o *Orchestrator) endCancelled(r *Run) error {
	trials, err := o.Store.Trials(r.ID)
	if err != nil {
		return err
	}
	for _, t := range trials {
		if t.Phase.Final() {
			continue
		}
		if err := o.move(t, PhaseCancelled, "the run was cancelled in "+t.Phase.String()); err != nil {
			return err
		}
	}
	scored, err := Score(o.Store, r, trials)
	if err != nil {
		return err
	}
	v := Choose(&r.Grid, scored)
	v.Cancelled = true
	r.Champion = v
	return o.Store.AddEvent(r.ID, Event{At: o.Now(), Kind: EventChampion, Trial: v.Champion, Text: v.Title() + ": " + v.Reason})
}

// Queue records a new run as queued (the daemon runs it when its target is
// free).
func (o *Orchestrator) Queue(r *Run) error {
	return o.saveRun(r, RunQueued, "queued on "+r.Target)
}

// Refuse records a run that could not start (its target could not be
// prepared), with why.
func (o *Orchestrator) Refuse(r *Run, err error) error {
	r.Error = err.Error()
	return o.saveRun(r, RunFailed, r.Error)
}

// trial runs a job's candidate on a slot through its phases. Trial
// failures are recorded and return nil; only run-level errors (store,
// cancellation) are returned. The job's pos and total are the trial's
// place among those the progress line shows (its seq + 1 in a grid, its
// place among the booted trials in a search).
func (o *Orchestrator) trial(ctx context.Context, r *Run, j *job, slot Slot) error {
	t, pos, total := j.t, j.pos, j.total
	begin := o.Now()
	report := func(p Phase) {
		if o.Progress == nil {
			return
		}
		// The trial's place among the trials the run boots (a grid's
		// skipped candidates are not counted), of those planned, and the
		// time left from what remains, from the stored trials.
		at, of, eta := pos, total, time.Duration(0)
		if trials, err := o.Store.Trials(r.ID); err == nil {
			tl := CountTrials(r, trials, o.Now())
			of, eta = tl.Planned, tl.ETA
			if !r.Grid.Search.Adaptive() {
				at = 0
				for _, x := range trials {
					if x.Seq <= t.Seq && x.Phase != PhaseSkipped {
						at++
					}
				}
			}
			at = min(at, of)
		}
		reason := ""
		if t.Failure != nil && p.Final() && p != PhasePruned { // "pruned" says it
			reason = t.Failure.Reason.String()
		}
		o.Progress(Progress{Trial: at, Trials: of, Name: t.Candidate.Name, Phase: p, Reason: reason, Elapsed: o.Now().Sub(begin), ETA: eta})
	}
	step := func(p Phase, detail string) error {
		if err := o.move(t, p, detail); err != nil {
			return err
		}
		report(p)
		return nil
	}
	// failed records a trial failure; a cancellation is not a failure.
	failed := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var f *failure.Failure
		if !errors.As(err, &f) {
			f = &failure.Failure{Reason: failure.ReasonError, Detail: err.Error()}
		}
		if f.Reason != failure.ReasonEngineGone && o.engineWobbled(ctx, slot.Driver, f.Reason) {
			f = &failure.Failure{Reason: failure.ReasonEngineGone, Detail: "the engine stopped answering right after the trial saw: " + f.Error(), Logs: f.Logs}
		}
		if f.Reason == failure.ReasonEngineGone && t.Attempts < maxEngineRedos {
			// Not the candidate's failure: if the engine comes back, the
			// trial is run again (the pool redoes it).
			if werr := o.waitEngine(ctx, slot.Driver, "trial "+t.Candidate.Name); werr == nil {
				return &engineBack{f}
			} else if ctx.Err() != nil {
				return ctx.Err()
			}
			f.Detail += "; it did not answer again within " + o.engineWait().String()
		}
		if ferr := o.fail(t, f); ferr != nil {
			return ferr
		}
		report(PhaseFailed)
		return nil
	}
	if o.SkipInfeasible && t.Predicted.Infeasible() {
		t.Failure = &failure.Failure{Reason: failure.ReasonInfeasible, Detail: t.Predicted.String()}
		if err := o.move(t, PhaseSkipped, t.Predicted.String()); err != nil {
			return err
		}
		report(PhaseSkipped)
		return nil
	}
	if err := step(PhaseRendering, ""); err != nil {
		return err
	}
	t.Slot, t.Host, t.Hardware = slot.Name, slot.Host, slot.Hardware
	plan, err := slot.Driver.Render(WithTrial(ctx, t.Seq), t.Candidate)
	if err != nil {
		var f *failure.Failure
		if !errors.As(err, &f) {
			f = &failure.Failure{Reason: failure.ReasonRender, Detail: err.Error()}
		}
		return failed(f)
	}
	rendered := plan.Rendered()
	t.RenderHash, t.Rendered, t.Image = rendered.Hash, rendered.Words, rendered.Image
	if err := step(PhaseDeploying, "rendering "+short(rendered.Hash)); err != nil {
		return err
	}
	dep, err := plan.Deploy(ctx)
	if err != nil {
		return failed(err)
	}
	if err := step(PhaseWaitingReady, ""); err != nil {
		return err
	}
	ready, err := dep.WaitReady(ctx, time.Duration(r.Grid.Timeouts.Ready))
	if err != nil {
		return failed(err)
	}
	t.Endpoint, t.Boot, t.ImageID = ready.Endpoint, &ready.Boot, ready.ImageID
	if ready.Node != "" {
		t.Host = ready.Node
	}
	if ready.Hardware != "" {
		t.Hardware = ready.Hardware
	}
	if err := step(PhaseVerifyingConfig, fmt.Sprintf("ready at %s after %.1fs", ready.Endpoint, ready.Boot.Ready)); err != nil {
		return err
	}
	eff, err := dep.Verify(ctx)
	t.Effective = eff
	if err != nil {
		return failed(err)
	}
	if err := step(PhaseBenchmarking, ""); err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, time.Duration(r.Grid.Timeouts.Bench))
	defer cancel()
	pr, err := newPruner(o.Store, r)
	if err != nil {
		return err
	}
	if t.Confirm > 0 {
		pr = nil // a contender's fresh boot is measured whole
	}
	metric := r.Grid.Objective.Maximize + r.Grid.Objective.Minimize
	var measured []*benchmark.Report // this attempt's repetitions
	for rep := 0; rep < r.Grid.Benchmark.MaxRepetitions(); rep++ {
		// After the grid's repetitions of the whole suite, benchmark.precision
		// repeats the objective's scenario alone until it is precise.
		var only []string
		if rep >= r.Grid.Benchmark.Repetitions {
			if a := r.Grid.precision(measured, metric); a == nil || a.Met {
				break
			}
			only = []string{objectiveScenario(metric)}
		}
		var look func(*benchmark.Report) error
		if pr != nil {
			look = func(sofar *benchmark.Report) error {
				if f := pr.look(rep, sofar); f != nil {
					return f
				}
				return nil
			}
		}
		res, err := o.Bench.Bench(bctx, ready, only, look)
		if res != nil {
			if perr := o.Store.PutReport(r.ID, t.Seq, rep, res); perr != nil {
				return perr
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if f := dep.Diagnose(ctx); f != nil {
			return failed(f)
		}
		var f *failure.Failure
		if errors.As(err, &f) && f.Reason == failure.ReasonPruned {
			t.Failure = f
			if err := step(PhasePruned, f.Detail); err != nil {
				return err
			}
			return nil
		}
		if st := (*benchmark.StallError)(nil); errors.As(err, &st) {
			return failed(&failure.Failure{Reason: failure.ReasonStalled, Detail: st.Error()})
		}
		if err != nil {
			return failed(&failure.Failure{Reason: failure.ReasonBenchmark, Detail: err.Error()})
		}
		pr.finished(res)
		measured = append(measured, res)
	}
	t.Precision = r.Grid.precision(measured, metric)
	if err := step(PhaseDone, ""); err != nil {
		return err
	}
	return nil
}

// redo puts a trial back to pending for another attempt: what an
// interrupted attempt stored is deleted first, so that no sample is
// counted twice.
func (o *Orchestrator) redo(r *Run, t *Trial, why string) error {
	if err := o.Store.DeleteReports(r.ID, t.Seq); err != nil {
		return err
	}
	t.Attempts++
	t.Failure, t.Boot, t.Effective, t.Endpoint, t.Precision = nil, nil, nil, "", nil
	return o.move(t, PhasePending, fmt.Sprintf("%s, redone (attempt %d)", why, t.Attempts))
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Score loads what the verdict needs for every trial from the store.
func Score(s Store, r *Run, trials []*Trial) ([]Scored, error) {
	metric := r.Grid.Objective.Maximize
	if metric == "" {
		metric = r.Grid.Objective.Minimize
	}
	var out []Scored
	for _, t := range trials {
		sc := Scored{Seq: t.Seq, Name: t.Candidate.Name, Candidate: t.Candidate, Done: t.Phase == PhaseDone, Outcome: t.Outcome(), Hardware: t.Hardware}
		if sc.Done {
			reps, err := s.Reports(r.ID, t.Seq)
			if err != nil {
				return nil, err
			}
			sc.Values, sc.Reps = Metrics(reps)
			sc.Settings, sc.Mixed = SettingsOf(reps)
			sc.Samples = Samples(reps, metric)
			if strings.HasSuffix(metric, "acceleration") {
				sc.CI = AccelerationCI(reps)
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

// NothingMeasuredError ends a run in which every trial ended and none
// was measured: there is no result, and the run's state is failed.
type NothingMeasuredError struct {
	RunID   string
	Summary string // "4 failed (bad_args x4)"
}

func (e *NothingMeasuredError) Error() string {
	return fmt.Sprintf("run %s measured no candidate: %s; see vgrid runs show %s for the evidence", e.RunID, e.Summary, e.RunID)
}

// outcomes summarises how trials ended: "3 failed (free_memory x2, oom), 1 skipped (infeasible)".
func outcomes(trials []*Trial) string {
	type group struct {
		n       int
		reasons map[string]int
		order   []string
	}
	groups := map[Phase]*group{}
	var phases []Phase
	for _, t := range trials {
		g := groups[t.Phase]
		if g == nil {
			g = &group{reasons: map[string]int{}}
			groups[t.Phase] = g
			phases = append(phases, t.Phase)
		}
		g.n++
		if t.Failure != nil {
			name := t.Failure.Reason.String()
			if g.reasons[name] == 0 {
				g.order = append(g.order, name)
			}
			g.reasons[name]++
		}
	}
	var parts []string
	for _, p := range phases {
		g := groups[p]
		var rs []string
		for _, r := range g.order {
			if n := g.reasons[r]; n > 1 {
				rs = append(rs, fmt.Sprintf("%s x%d", r, n))
			} else {
				rs = append(rs, r)
			}
		}
		part := fmt.Sprintf("%d %s", g.n, p)
		if len(rs) > 0 {
			part += " (" + strings.Join(rs, ", ") + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

// finish crowns the champion and applies the end policy: crown deploys the
// champion (the profile rendered from the original, backed up before the
// first trial; tried twice); restore, or no champion, puts the original back. Either
// way the service is left running. A run that measured no candidate ends
// failed, with a NothingMeasuredError.
func (o *Orchestrator) finish(ctx context.Context, r *Run, trials []*Trial) error {
	if o.cancelRequested(ctx, r) {
		return errCancelRequested // no crown: the cancel restores the original
	}
	trials, err := o.confirm(ctx, r, trials)
	if err != nil {
		return err
	}
	if o.cancelRequested(ctx, r) {
		return errCancelRequested
	}
	scored, err := Score(o.Store, r, trials)
	if err != nil {
		return err
	}
	v := Choose(&r.Grid, scored)
	r.Champion = v
	if err := o.Store.AddEvent(r.ID, Event{At: o.Now(), Kind: EventChampion, Trial: v.Champion, Text: v.Reason}); err != nil {
		return fmt.Errorf("persist event: %w", err)
	}
	o.Log.Info().Str("run_id", r.ID).Int("champion", v.Champion).Str("candidate", v.Name).Bool("tie", v.Tie).Msg(v.Reason)
	// The slots' servers stop first: the champion or the original needs
	// their GPUs.
	endErr := o.releaseSlots(ctx)
	switch {
	case endErr != nil:
		r.EndAction = "unknown"
	case v.Champion >= 0 && r.Grid.End == "crown":
		r.EndAction = "champion"
		if cerr := o.endStep(ctx, r, "crown", "the champion", func() error { return o.Driver.Crown(ctx, trials[v.Champion].Candidate) }); cerr != nil {
			// The champion did not come up: the original goes back, and the
			// run fails, since the end policy was not applied.
			r.EndAction = "original"
			endErr = fmt.Errorf("the champion could not be deployed (%v); the original configuration was restored", cerr)
			if rerr := o.endStep(ctx, r, "restore", "the original", func() error { return o.Driver.Restore(ctx) }); rerr != nil {
				endErr = fmt.Errorf("the champion could not be deployed (%v), nor the original restored (%v)", cerr, rerr)
				r.EndAction = "unknown"
			}
		}
	default:
		r.EndAction = "original"
		endErr = o.endStep(ctx, r, "restore", "the original", func() error { return o.Driver.Restore(ctx) })
	}
	if endErr != nil {
		r.Error = "the end policy failed: " + endErr.Error()
		return fmt.Errorf("end of run %s: %w", r.ID, endErr)
	}
	measured := 0
	for _, s := range scored {
		if s.Done {
			measured++
		}
	}
	if measured == 0 {
		nm := &NothingMeasuredError{RunID: r.ID, Summary: outcomes(trials)}
		r.Error = "no candidate was measured: " + nm.Summary
		if err := o.saveRun(r, RunFailed, r.Error+"; left running: "+r.EndAction); err != nil {
			return err
		}
		return nm
	}
	if err := o.saveRun(r, RunDone, "left running: "+r.EndAction); errors.Is(err, ErrRunCancelled) {
		return errCancelRequested // the user cancelled while the end policy ran: the original goes back
	} else if err != nil {
		return err
	}
	return nil
}

// endStep deploys the champion or the original at a run's end, waiting
// for an engine that restarts under it. Either configuration booted
// before (the champion in its trial, the original before the run): a
// start that fails now (a crash, a kill, the engine refusing as it stops)
// is more likely the moment's than the configuration's, so it is deployed
// once more before the step is called failed.
func (o *Orchestrator) endStep(ctx context.Context, r *Run, what, config string, op func() error) error {
	err := o.whileEngineDown(ctx, o.Driver, what, op)
	if err == nil || ctx.Err() != nil {
		return err
	}
	text := config + " did not come up (" + err.Error() + "); deploying it once more"
	o.Log.Warn().Str("run_id", r.ID).Err(err).Msg(config + " did not come up; deploying it once more")
	if aerr := o.Store.AddEvent(r.ID, Event{At: o.Now(), Kind: EventRun, Trial: -1, Text: text}); aerr != nil {
		return fmt.Errorf("persist event: %w", aerr)
	}
	return o.whileEngineDown(ctx, o.Driver, what, op)
}

// FlagsRefusedError says the vLLM that would run a grid refuses some of
// its flags: the run stops before anything is booted.
type FlagsRefusedError struct {
	Refusals map[string][]int // refusal -> the candidates (their places in the grid) it concerns
	total    int              // candidates checked
	order    []string
}

func (e *FlagsRefusedError) Error() string {
	var b strings.Builder
	b.WriteString("the vLLM that would run this grid refuses some of its flags; nothing was booted, fix the grid (or the profile) and run again:")
	for _, r := range e.order {
		fmt.Fprintf(&b, "\n  %s (%s)", r, e.Which(r))
	}
	return b.String()
}

// Which says which candidates a refusal concerns: "all 4 candidates",
// "candidates 0, 2 and 5".
func (e *FlagsRefusedError) Which(refusal string) string {
	seqs := e.Refusals[refusal]
	if len(seqs) == e.total {
		return fmt.Sprintf("all %d candidates", e.total)
	}
	var s []string
	for _, i := range seqs {
		s = append(s, fmt.Sprint(i))
	}
	if len(s) == 1 {
		return "candidate " + s[0]
	}
	return "candidates " + strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// Refused returns, by candidate place, the first refusal that concerns it.
func (e *FlagsRefusedError) Refused() map[int]string {
	out := map[int]string{}
	for _, r := range e.order {
		for _, i := range e.Refusals[r] {
			if _, ok := out[i]; !ok {
				out[i] = r
			}
		}
	}
	return out
}

// CheckFlags renders every candidate and asks the driver's vLLM, when the
// driver can, which flags it would refuse. It returns a
// *FlagsRefusedError, nil, or the error that kept it from asking.
func CheckFlags(ctx context.Context, d Driver, cands []Candidate) error {
	fc, ok := d.(FlagChecker)
	if !ok {
		return nil
	}
	e := &FlagsRefusedError{Refusals: map[string][]int{}, total: len(cands)}
	for i, c := range cands {
		p, err := d.Render(ctx, c)
		if err != nil {
			continue // the trial fails with the rendering's reason
		}
		refusals, err := fc.CheckFlags(ctx, p)
		if err != nil {
			return err
		}
		for _, r := range refusals {
			if _, seen := e.Refusals[r]; !seen {
				e.order = append(e.order, r)
			}
			e.Refusals[r] = append(e.Refusals[r], i)
		}
	}
	if len(e.order) > 0 {
		return e
	}
	return nil
}

// checkFlags refuses a run whose flags its vLLM refuses; when the vLLM
// cannot be asked, the run goes on and says so.
func (o *Orchestrator) checkFlags(ctx context.Context, r *Run) error {
	err := CheckFlags(ctx, o.Driver, r.Grid.Expand())
	var refused *FlagsRefusedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refused):
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	text := "flags not checked against the server's own --help: " + err.Error()
	o.Log.Warn().Str("run_id", r.ID).Msg(text)
	return o.Store.AddEvent(r.ID, Event{At: o.Now(), Kind: EventRun, Trial: -1, Text: text})
}

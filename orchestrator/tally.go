package orchestrator

import (
	"time"

	"github.com/vgrid/vgrid/failure"
)

// Tally counts a run's trials by what happened to them, and estimates the
// time left from what remains: the one count behind the live status
// line, the dashboard's progress and ETA, and the search text.
type Tally struct {
	Candidates int // in the grid's space
	Planned    int // trials the run means to boot: the candidates not skipped (a grid), the budget (a search)
	Started    int // trials that left pending and were not skipped: running or ended
	Running    int
	Measured   int // done or pruned
	Failed     int
	Skipped    int // never booted: infeasible, deadline
	Cancelled  int
	Pruned     int
	Infeasible int
	// ETA is the time left, from the mean wall time of the started trials
	// that ended, for the trials still to start and half of those running,
	// over the slots; 0 when nothing ended yet or the run is final.
	ETA time.Duration
	// Wall is the run's wall time so far: first trial start to now, or to
	// the last end when the run is final.
	Wall time.Duration
}

// Ended is the number of started trials that ended.
func (t Tally) Ended() int { return t.Measured + t.Failed + t.Cancelled }

// Left is the number of trials still to start (never negative).
func (t Tally) Left() int { return max(t.Planned-t.Started, 0) }

// CountTrials tallies a run's trials at now. Pure.
func CountTrials(r *Run, trials []*Trial, now time.Time) Tally {
	var t Tally
	t.Candidates = len(r.Grid.Expand())
	var spent time.Duration
	var first, last time.Time
	for _, tr := range trials {
		started := !tr.Entered(PhaseRendering).IsZero()
		switch {
		case tr.Phase == PhaseSkipped:
			t.Skipped++
			if tr.Failure != nil && tr.Failure.Reason == failure.ReasonInfeasible {
				t.Infeasible++
			}
			continue
		case tr.Phase == PhaseCancelled && !started:
			t.Cancelled++ // never started: counts as neither booted nor left
			continue
		case !started:
			continue // pending
		}
		t.Started++
		begin := tr.Entered(PhaseRendering)
		if first.IsZero() || begin.Before(first) {
			first = begin
		}
		switch tr.Phase {
		case PhaseDone:
			t.Measured++
		case PhasePruned:
			t.Measured++
			t.Pruned++
		case PhaseFailed:
			t.Failed++
		case PhaseCancelled:
			t.Cancelled++
		default:
			t.Running++
		}
		if tr.Phase.Final() {
			end := tr.Phases[len(tr.Phases)-1].At
			spent += end.Sub(begin)
			if end.After(last) {
				last = end
			}
		}
	}
	if r.Grid.Search.Adaptive() {
		t.Planned = min(max(r.Grid.Search.MaxTrials, 0), t.Candidates-t.Skipped)
	} else {
		t.Planned = t.Candidates - t.Skipped
	}
	t.Planned = max(t.Planned, t.Started) // a redone or extra trial never makes "5 / 4"
	if r.State.Final() {
		t.Planned = t.Started
	}
	if !first.IsZero() {
		end := now
		if r.State.Final() && !last.IsZero() {
			end = last
		}
		t.Wall = end.Sub(first)
	}
	if ended := t.Ended(); ended > 0 && !r.State.Final() {
		per := spent / time.Duration(ended)
		slots := time.Duration(max(len(r.Grid.Target.Slots), 1))
		t.ETA = (per*time.Duration(t.Left()) + per*time.Duration(t.Running)/2) / slots
	}
	return t
}

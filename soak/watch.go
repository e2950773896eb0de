package soak

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// TrialState is a trial as a poll of the daemon saw it.
type TrialState struct {
	Seq      int
	Phase    string
	Final    bool
	Attempts int
	Name     string
}

// Watch keeps what the polls of the daemon saw, to judge whether vgrid
// progressed after a fault: any trial's phase or attempt changed, a trial
// added, a run's state changed (started, ended). A fault late in a night
// is followed by the run's end, which is progress; a stall is a night in
// which nothing of this changes.
type Watch struct {
	mu      sync.Mutex
	runs    map[string]*runSeen
	changes []time.Time // when a poll saw progress, in order
}

type runSeen struct {
	state  string
	trials map[int]TrialState
}

// Observe records a poll of run at time at and returns what went
// backwards (a final trial changed, trials disappeared): violations.
func (w *Watch) Observe(at time.Time, run, state string, trials []TrialState) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.runs == nil {
		w.runs = map[string]*runSeen{}
	}
	prev, ok := w.runs[run]
	if !ok {
		prev = &runSeen{trials: map[int]TrialState{}}
		w.runs[run] = prev
	}
	var bad []string
	// A run first seen queued is the soak's submission, not vgrid's step.
	changed := !ok && state != "queued" || ok && state != prev.state || len(trials) != len(prev.trials)
	if len(trials) < len(prev.trials) {
		bad = append(bad, fmt.Sprintf("run %s: %d trials, %d before", run, len(trials), len(prev.trials)))
	}
	for _, tr := range trials {
		before, had := prev.trials[tr.Seq]
		if had && before.Final && (tr.Phase != before.Phase || tr.Attempts != before.Attempts) {
			bad = append(bad, fmt.Sprintf("run %s trial %d (%s): %s after it was %s", run, tr.Seq, tr.Name, tr.Phase, before.Phase))
		}
		if !had || before != tr {
			changed = true
		}
		prev.trials[tr.Seq] = tr
	}
	prev.state = state
	if changed && (len(w.changes) == 0 || !at.Before(w.changes[len(w.changes)-1])) {
		w.changes = append(w.changes, at)
	}
	return bad
}

// ProgressAfter returns the first progress seen at or after t.
func (w *Watch) ProgressAfter(t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, _ := slices.BinarySearchFunc(w.changes, t, func(a, b time.Time) int { return a.Compare(b) })
	if i < len(w.changes) {
		return w.changes[i], true
	}
	return time.Time{}, false
}

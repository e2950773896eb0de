package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"

	"github.com/vgrid/vgrid/benchmark"
)

// Where trials run. The search (or the grid's order) decides what to try
// next; the pool hands each candidate to a free slot and runs the trials
// of all slots at once, each through the one trial state machine.

// Slot is one place a trial runs: a driver of its own (its GPUs, its
// port, its container or process) on one host.
type Slot struct {
	Name     string // as trials record it: "gpus 0,1 port 5002"
	Host     string // the machine or Docker engine
	Hardware string // the GPU model(s), when known
	Key      string // what no other vgrid may drive meanwhile (Target.Key of the slot)
	Driver   Driver
	// GPUs are the slot's GPUs as its host's nvidia-smi saw them when
	// the run started (memory total and used, for the feasibility
	// check); none when unknown.
	GPUs []benchmark.GPUSample
}

// slots are the orchestrator's slots: Slots, or the target's own driver
// as the one slot.
func (o *Orchestrator) slots() []Slot {
	if len(o.Slots) > 0 {
		return o.Slots
	}
	return []Slot{{Driver: o.Driver}}
}

// own reports whether a slot is the target's own driver (which Prepare,
// Crown and Restore use) rather than a slot's.
func (o *Orchestrator) own(s Slot) bool { return s.Driver == o.Driver }

// prepareSlots readies each slot's driver (for a fresh run or a resumed one).
func (o *Orchestrator) prepareSlots(ctx context.Context, r *Run, resume bool) error {
	for _, s := range o.slots() {
		if o.own(s) {
			continue
		}
		var err error
		if resume {
			err = s.Driver.Resume(ctx, r.ID, "")
		} else {
			_, err = s.Driver.Prepare(ctx, r.ID)
		}
		if err != nil {
			return fmt.Errorf("slot %s: %w", s.Name, err)
		}
	}
	return nil
}

// releaseSlots stops what the slots run, so that the champion, or the
// original, has its GPUs back. Every slot is tried; the errors are joined.
func (o *Orchestrator) releaseSlots(ctx context.Context) error {
	var errs []error
	for _, s := range o.slots() {
		if o.own(s) {
			continue
		}
		if why, ok := o.retired[s.Name]; ok {
			o.Log.Warn().Str("slot", s.Name).Str("host", s.Host).Str("why", why.Error()).Msg("slot not released: its Docker engine stopped answering during the run; what it ran there may still be running")
			continue
		}
		if err := s.Driver.Restore(ctx); err != nil {
			errs = append(errs, fmt.Errorf("slot %s: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// maxEngineRedos bounds how many times a trial is run (its attempts) when
// its engine keeps going away under it.
const maxEngineRedos = 4

// job is a trial the pool is to run, and its place for the progress line.
type job struct {
	t     *Trial
	pos   int // its place among the trials the progress line counts
	total int // of how many (filled by the pool)
}

// pool runs the jobs next yields on the free slots, as many at once as
// there are slots, until next has none, a trial returns a run-level error
// (the store, a cancellation) or ctx ends; it waits for every trial it
// started. next is called from one goroutine only, when a slot is free.
func (o *Orchestrator) pool(ctx context.Context, r *Run, total int, next func() (*job, error)) error {
	slots := o.slots()
	free := make([]int, len(slots))
	for i := range free {
		free[i] = i
	}
	type ended struct {
		slot int
		err  error
		gone *failure.Failure // the slot's engine stopped answering and did not come back
		redo *job             // the slot's engine came back: the trial runs again
	}
	endedc := make(chan ended)
	running := 0
	var first error
	var redo []*job
	exhausted := false
	for {
		for (!exhausted || len(redo) > 0) && first == nil && len(free) > 0 && ctx.Err() == nil {
			var j *job
			if len(redo) > 0 {
				j, redo = redo[0], redo[1:]
			} else {
				var err error
				if j, err = next(); err != nil {
					first = err
					break
				}
				if j == nil {
					exhausted = true
					break
				}
			}
			s := free[0]
			free = free[1:]
			running++
			go func(slot Slot) {
				e := ended{slot: s}
				j.total = total
				e.err = o.trial(ctx, r, j, slot)
				var back *engineBack
				switch f := j.t.Failure; {
				case errors.As(e.err, &back):
					// The engine came back (a Docker engine restarted): the
					// trial runs again, what it stored is deleted.
					if e.err = o.redo(r, j.t, "its engine stopped answering ("+back.f.Detail+") and answers again"); e.err == nil {
						e.redo = j
					}
				case e.err == nil && f != nil && f.Reason == failure.ReasonEngineGone && !o.engineAlive(ctx, slot.Driver):
					e.gone = f // it did not come back: the slot is retired
				}
				endedc <- e
			}(slots[s])
		}
		if running == 0 {
			break
		}
		e := <-endedc
		running--
		if e.redo != nil {
			redo = append(redo, e.redo)
		}
		if e.gone != nil {
			// The other slots carry on; this one gets no more trials.
			if o.retired == nil {
				o.retired = map[string]error{}
			}
			o.retired[slots[e.slot].Name] = e.gone
			o.Log.Error().Str("slot", slots[e.slot].Name).Str("host", slots[e.slot].Host).Str("why", e.gone.Detail).Msg("slot retired: its Docker engine stopped answering")
			if len(o.retired) == len(slots) && first == nil && !exhausted {
				first = fmt.Errorf("every slot's Docker engine stopped answering (last: %s); when they are back: vgrid run --resume %s", e.gone.Detail, r.ID)
			}
		} else {
			free = append(free, e.slot)
		}
		if e.err != nil && first == nil {
			first = e.err
		}
	}
	if first == nil {
		first = ctx.Err()
	}
	return first
}

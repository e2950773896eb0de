package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Confirm asks that, when the verdict's leader is not separated from the
// others, the contenders (the leader and the best of those it does not
// beat, Top in all) be deployed again, each a fresh boot measured whole,
// one round at a time, until the leader beats them or is shown
// equivalent to them, or each has had Boots more boots. A boot is the
// unit then: real vLLM varies from boot to boot (CUDA graph capture,
// memory placement), and repetitions on one boot cannot average that
// away.
type Confirm struct {
	Top   int `yaml:"top" json:"top"`
	Boots int `yaml:"boots" json:"boots"`
	// Within is the equivalence margin: two candidates whose difference's
	// 95% interval lies within ±Within percent are equivalent, and the tie
	// rule may choose between them (default DefaultWithin).
	Within Percent `yaml:"within" json:"within,omitempty"`
}

// Bounds of confirm, and the default equivalence margin (the verdict's
// without confirm too).
const (
	MaxConfirmTop   = 8
	MaxConfirmBoots = 8
	DefaultWithin   = 2.0
)

// within is the grid's equivalence margin, in percent.
func (g *Grid) within() float64 {
	if g.Confirm != nil && g.Confirm.Within > 0 {
		return float64(g.Confirm.Within)
	}
	return DefaultWithin
}

// ConfirmBoots is the most boots confirm may add to a run.
func (g *Grid) ConfirmBoots() int {
	if g.Confirm == nil {
		return 0
	}
	return g.Confirm.Top * g.Confirm.Boots
}

// ConfirmReserve is the time a run keeps, before its deadline, for
// confirm's boots: all of them, at the length of a trial (per), shared by
// the slots. The run, CheckConfirm and vgrid plan's deadline column count
// it alike.
func (g *Grid) ConfirmReserve(per time.Duration, slots int) time.Duration {
	return per * time.Duration(g.ConfirmBoots()) / time.Duration(max(slots, 1))
}

// CheckConfirm refuses a confirm that cannot fit before the deadline:
// its boots alone (per: a trial's estimate) would end after it.
func CheckConfirm(g *Grid, deadline, now time.Time, per time.Duration, slots int) error {
	if g.Confirm == nil || deadline.IsZero() || per <= 0 {
		return nil
	}
	need := g.ConfirmReserve(per, slots)
	if left := deadline.Sub(now); need >= left {
		return &ScheduleError{fmt.Sprintf("confirm: {top: %d, boots: %d} needs about %s for its %d boots (about %s each), and the deadline %s leaves %s: lower confirm.top or confirm.boots, or set a later deadline",
			g.Confirm.Top, g.Confirm.Boots, About(need), g.ConfirmBoots(), About(per), deadline.Format("2006-01-02 15:04"), About(max(left, 0)))}
	}
	return nil
}

// confirm runs confirm's rounds after the search or the grid: while the
// verdict names contenders the leader is not separated from, each of them
// that has had fewer than Boots fresh boots gets one more (the slots boot
// them at once), within Top x Boots boots in all (the contenders may
// change from round to round). It returns the trials, its own added. A resumed run
// picks up where the rounds stood: the boots are counted from the
// trials.
func (o *Orchestrator) confirm(ctx context.Context, r *Run, trials []*Trial) ([]*Trial, error) {
	c := r.Grid.Confirm
	if c == nil {
		return trials, nil
	}
	// An interrupted run's unfinished boots first.
	var redo []*Trial
	for _, t := range trials {
		if t.Confirm > 0 && !t.Phase.Final() {
			redo = append(redo, t)
		}
	}
	if err := o.confirmRound(ctx, r, redo); err != nil {
		return trials, err
	}
	for round := 1; ; round++ {
		if o.cancelRequested(ctx, r) || ctx.Err() != nil {
			return trials, nil
		}
		scored, err := Score(o.Store, r, trials)
		if err != nil {
			return trials, err
		}
		v := Choose(&r.Grid, scored)
		if len(v.Open) == 0 {
			return trials, nil // separated, or every contender shown equivalent
		}
		boots, spent := map[string]int{}, 0
		for _, t := range trials {
			if t.Confirm > 0 {
				boots[spaceKey(t.Candidate)]++
				spent++
			}
		}
		bySeq := map[int]*Trial{}
		for _, t := range trials {
			bySeq[t.Seq] = t
		}
		var next []*Trial
		for n, seq := range v.Contenders {
			orig := bySeq[seq]
			if n >= c.Top || orig == nil {
				break
			}
			k := spaceKey(orig.Candidate)
			if boots[k] >= c.Boots {
				continue
			}
			if spent >= r.Grid.ConfirmBoots() {
				break // the contenders changed between rounds: top x boots is the whole budget
			}
			spent++
			if why := o.lateBy(r, orig.Candidate, false); why != "" {
				_ = o.Store.AddEvent(r.ID, Event{At: o.Now(), Kind: EventRun, Trial: -1, Text: "confirm stopped: " + why})
				return trials, o.confirmRound(ctx, r, next)
			}
			t := &Trial{RunID: r.ID, Seq: len(trials), Candidate: orig.Candidate, Phase: PhasePending, Attempts: 1,
				Phases: []PhaseStamp{{PhasePending, o.Now()}}, Confirm: boots[k] + 1, Predicted: orig.Predicted}
			if err := o.Store.PutTrial(t); err != nil {
				return trials, err
			}
			trials = append(trials, t)
			next = append(next, t)
		}
		if len(next) == 0 {
			return trials, nil
		}
		o.Log.Info().Str("run_id", r.ID).Int("round", round).Int("boots", len(next)).Msg("confirm: the leader is not separated from its contenders; booting them again")
		if err := o.confirmRound(ctx, r, next); err != nil {
			return trials, err
		}
	}
}

// confirmRound runs confirm's boots on the slots.
func (o *Orchestrator) confirmRound(ctx context.Context, r *Run, ts []*Trial) error {
	i := 0
	return o.pool(ctx, r, len(ts), func() (*job, error) {
		if i >= len(ts) {
			return nil, nil
		}
		i++
		return &job{t: ts[i-1], pos: i}, nil
	})
}

// MedianDuration is the median of ds (0 for none).
func MedianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/vgrid/vgrid/orchestrator"
)

// searchSummary says how the run will choose and when it will stop.
func searchSummary(g *orchestrator.Grid, deadline, now time.Time, perTrial []time.Duration, fit int) string {
	s := g.Search
	var mean time.Duration
	for _, d := range perTrial {
		mean += d
	}
	if len(perTrial) > 0 {
		mean /= time.Duration(len(perTrial))
	}
	var out string
	if s.Adaptive() {
		out = fmt.Sprintf("search: %s, seed %d, at most %d booted trials of %d candidates (about %s at %s a trial); infeasible candidates are skipped unbooted",
			s.Strategy, s.Seed, s.MaxTrials, len(perTrial), orchestrator.About(mean*time.Duration(s.MaxTrials)), orchestrator.About(mean))
	} else {
		out = "search: grid, every candidate in order"
	}
	if n := len(g.Target.Slots); n > 0 {
		var names []string
		for _, d := range g.Target.Slots {
			names = append(names, d.Name())
		}
		out += fmt.Sprintf("\nslots: %d trials at once (%s)", n, strings.Join(names, "; "))
	}
	if s.Prune {
		out += fmt.Sprintf("\nprune: on: a trial worse than the champion by the prune test (one-sided) stops early (error rate at most %g); the champion is still crowned by its own two-sided test", s.PruneAlpha)
	}
	if c := g.Confirm; c != nil {
		out += fmt.Sprintf("\nconfirm: when the leader is not separated, its %d best contenders are booted again, up to %d more boots each (at most %d boots, about %s)",
			c.Top, c.Boots, g.ConfirmBoots(), orchestrator.About(orchestrator.MedianDuration(perTrial)*time.Duration(g.ConfirmBoots())))
	}
	if deadline.IsZero() {
		return out
	}
	left := deadline.Sub(now)
	out += fmt.Sprintf("\ndeadline: %s (in %s): ", deadline.Format("2006-01-02 15:04"), orchestrator.About(left))
	if s.Adaptive() {
		n := 0
		if mean > 0 {
			n = int(left / mean)
		}
		return out + fmt.Sprintf("about %d trials fit at %s a trial; the run starts none that cannot end by then", min(n, s.MaxTrials), mean.Round(time.Second))
	}
	return out + fmt.Sprintf("%d of %d candidates fit; the rest will be skipped (deadline)", fit, len(perTrial))
}

package daemon

import (
	"slices"

	"github.com/vgrid/vgrid/orchestrator"
)

// pick chooses the runs to start now: for each target not busy, the
// oldest run a previous daemon left running or interrupted, else the
// oldest queued one; one run per target. A run holds its target and its
// slots (Target.Keys): it waits while any of them is busy. runs are
// newest first, as the store lists them. Pure.
func pick(runs []*orchestrator.Run, busy map[string]bool) []*orchestrator.Run {
	taken := map[string]bool{}
	for t := range busy {
		taken[t] = true
	}
	var out []*orchestrator.Run
	for pass := 0; pass < 2; pass++ {
		for i := len(runs) - 1; i >= 0; i-- {
			r := runs[i]
			waiting := r.State == orchestrator.RunQueued
			if pass == 0 {
				waiting = r.State == orchestrator.RunRunning || r.State == orchestrator.RunInterrupted
			}
			keys := append([]string{r.Target}, r.Grid.Target.Keys()[1:]...)
			if !waiting || slices.ContainsFunc(keys, func(k string) bool { return taken[k] }) {
				continue
			}
			for _, k := range keys {
				taken[k] = true
			}
			out = append(out, r)
		}
	}
	return out
}

package orchestrator

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/vgrid/vgrid/vllm"
)

// Class groups trials whose boots and benchmarks take alike: the same
// image (or program), model and tensor-parallel size.
type Class struct {
	Image string `json:"image,omitempty"`
	Model string `json:"model"`
	TP    int    `json:"tp"`
}

func (c Class) String() string {
	s := fmt.Sprintf("%s TP%d", c.Model, c.TP)
	if c.Image != "" {
		s += " on " + c.Image
	}
	return s
}

// ClassOf reads a trial's class from its image and vLLM words.
func ClassOf(image string, words []string) Class {
	flags := vllm.Flags(vllm.ParseArgs(words))
	c := Class{Image: image, TP: 1}
	if m, ok := flags.Get("model"); ok {
		c.Model = m
	} else {
		for _, a := range flags {
			if a.Name == "" {
				c.Model = a.Value()
				break
			}
		}
	}
	if v, ok := flags.Get("tensor-parallel-size"); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			c.TP = n
		}
	}
	return c
}

// Durations is what one trial takes: its boot (deploy to ready, or to the
// failure of a boot that fails) and one benchmark repetition.
type Durations struct {
	Boot, Bench time.Duration
	Failed      bool // the boot failed (Bench is 0)
}

// History is what past trials took, by class. Built from stored trials,
// it is the estimate vgrid trusts first.
type History struct {
	boots, benches, failures map[Class][]float64 // seconds
}

// NewHistory learns from runs and their trials.
func NewHistory() *History {
	return &History{boots: map[Class][]float64{}, benches: map[Class][]float64{}, failures: map[Class][]float64{}}
}

// Add learns from one run's trials.
func (h *History) Add(r *Run, trials []*Trial) {
	for _, t := range trials {
		reps := max(r.Grid.Benchmark.Repetitions, 1)
		if t.Precision != nil && t.Precision.Reps > 0 {
			reps = t.Precision.Reps // benchmark.precision's added ones counted
		}
		tm := t.Timing()
		c := ClassOf(t.Image, t.Rendered)
		switch { // pruned trials are left out: their benchmark was cut short
		case t.Phase == PhaseDone:
			h.boots[c] = append(h.boots[c], (tm.Deploy + tm.Boot + tm.Verify).Seconds())
			h.benches[c] = append(h.benches[c], tm.Bench.Seconds()/float64(reps))
		case t.Phase == PhaseFailed && t.Failure != nil && !t.Entered(PhaseDeploying).IsZero() && t.Entered(PhaseBenchmarking).IsZero():
			h.failures[c] = append(h.failures[c], (tm.Deploy + tm.Boot).Seconds())
		}
	}
}

// Samples is how many measured trials of a class the history holds.
func (h *History) Samples(c Class) int { return len(h.boots[c]) }

func medianSeconds(v []float64) time.Duration {
	s := slices.Clone(v)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return time.Duration(m * float64(time.Second))
}

// Estimate predicts a trial of class c: the median of past trials of the
// same class when there are any, else the model's figures. fails says the
// memory model predicts a failed boot. The string says where the figures
// come from.
func (h *History) Estimate(c Class, fails bool, model Durations) (Durations, string) {
	if fails {
		if f := h.failures[c]; len(f) > 0 {
			return Durations{Boot: medianSeconds(f), Failed: true}, fmt.Sprintf("median of %d failed boot(s)", len(f))
		}
		return Durations{Boot: model.Boot, Failed: true}, "model"
	}
	if b := h.boots[c]; len(b) > 0 {
		return Durations{Boot: medianSeconds(b), Bench: medianSeconds(h.benches[c])}, fmt.Sprintf("median of %d trial(s)", len(b))
	}
	return model, "model"
}

// Total is a trial's wall time with reps repetitions.
func (d Durations) Total(reps int) time.Duration {
	if d.Failed {
		return d.Boot
	}
	return d.Boot + time.Duration(max(reps, 1))*d.Bench
}

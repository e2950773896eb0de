// Package assemble builds, from a grid, everything that runs it: the
// target's driver (with its flag-help cache), the slots, the benchmark,
// the feasibility verdict and the estimates. vgrid run, vgrid plan and
// vgrid serve all build through it, so what runs a grid does not depend
// on the command that started it.
//
// May import: orchestrator, driver, driver/composedriver,
// driver/kubedriver, zerolog.
package assemble

import (
	"context"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/driver"
	"github.com/vgrid/vgrid/driver/composedriver"
	"github.com/vgrid/vgrid/driver/kubedriver"
	"github.com/vgrid/vgrid/orchestrator"
)

// Options are what the caller brings: its environment, log, the store's
// flag-help cache and its history of trials (both optional).
type Options struct {
	Environ []string
	Getenv  func(string) string
	Log     zerolog.Logger
	Help    driver.HelpCache      // nil: --help is asked each time
	History *orchestrator.History // nil: estimates from the model alone
}

// Parts run a grid. Close stops what they started (the slots' servers).
type Parts struct {
	Driver   driver.Closer
	Slots    []orchestrator.Slot
	Bench    orchestrator.Bencher
	Feasible func(orchestrator.Candidate) (bool, string)
	// Estimate is a candidate's trial (boot and every repetition) and where
	// the figure comes from; nil when nothing can be estimated.
	Estimate func(ctx context.Context, c orchestrator.Candidate) (time.Duration, string)
	closers  []driver.Closer
}

// Close stops the slots' drivers and the target's.
func (p *Parts) Close() error {
	for _, c := range p.closers {
		c.Close()
	}
	if p.Driver != nil {
		return p.Driver.Close()
	}
	return nil
}

// Target builds the target's driver alone (plan, and the daemon's check
// of a submitted grid); runDir is where the run keeps its files.
func Target(ctx context.Context, g *orchestrator.Grid, runDir string, opt Options) (driver.Closer, error) {
	var d driver.Closer
	var err error
	switch g.Target.Driver {
	case "compose":
		d, err = composedriver.NewCompose(ctx, g.Target, opt.Environ, opt.Log)
	case "kubernetes":
		var k *kubedriver.Kube
		if k, err = kubedriver.New(g.Target, opt.Log); err == nil {
			if s := time.Duration(g.Timeouts.Schedule); s > 0 {
				k.ReadyTimeoutSchedule = s
			}
			k.Parallel = g.Target.Parallel
			k.Connect = g.Target.Connect
			d = k
		}
	default:
		d, err = driver.NewProcess(g.Target, opt.Environ, filepath.Join(runDir, "logs"), opt.Log)
	}
	if err != nil {
		return nil, err
	}
	if opt.Help != nil {
		driver.SetHelpCache(d, opt.Help)
	}
	return d, nil
}

// Build builds every part of a grid's run.
func Build(ctx context.Context, g *orchestrator.Grid, runDir string, opt Options) (*Parts, error) {
	d, err := Target(ctx, g, runDir, opt)
	if err != nil {
		return nil, err
	}
	p := &Parts{Driver: d}
	switch g.Target.Driver {
	case "compose":
		p.Slots, p.closers, err = composedriver.Slots(ctx, g.Target, opt.Environ, opt.Log)
	case "kubernetes":
		if k, ok := d.(*kubedriver.Kube); ok && g.Target.Parallel > 1 {
			p.Slots = k.Slots(g.Target.Parallel)
		}
	default:
		p.Slots, p.closers, err = driver.ProcessSlots(ctx, g.Target, opt.Environ, filepath.Join(runDir, "logs"), opt.Log)
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	p.Bench = &driver.Bencher{Grid: g, Getenv: opt.Getenv, GPU: driver.GPUTelemetry(g)}
	p.Feasible = driver.Feasibility(ctx, g, d, p.Slots...)
	hist := opt.History
	if hist == nil {
		hist = orchestrator.NewHistory()
	}
	env := driver.ServerEnv(d)
	p.Estimate = func(ctx context.Context, c orchestrator.Candidate) (time.Duration, string) {
		pl, err := d.Render(ctx, c)
		if err != nil {
			return 0, ""
		}
		r := pl.Rendered()
		ok, _ := p.Feasible(c)
		dur, src := hist.Estimate(orchestrator.ClassOf(r.Image, r.Words), !ok, driver.ModelDurations(g, r.Words, env))
		// With benchmark.precision, the most repetitions a trial may run:
		// the deadline planner counts them all.
		return dur.Total(g.Benchmark.MaxRepetitions()), src
	}
	return p, nil
}

// Orchestrator is the orchestrator these parts make, on a store.
func (p *Parts) Orchestrator(ctx context.Context, st orchestrator.Store, log zerolog.Logger, now func() time.Time) *orchestrator.Orchestrator {
	o := &orchestrator.Orchestrator{Store: st, Driver: p.Driver, Bench: p.Bench, Slots: p.Slots, Log: log, Now: now, Feasible: p.Feasible}
	if p.Estimate != nil {
		o.Estimate = func(c orchestrator.Candidate) time.Duration { d, _ := p.Estimate(ctx, c); return d }
	}
	return o
}

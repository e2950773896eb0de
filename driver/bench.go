package driver

import (
	"context"
	"time"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
)

// Bencher runs the grid's benchmark (exactly Grid.Benchmark.Resolve())
// against a ready trial. The API key comes from the grid's api_key_env,
// else from the server's own --api-key; it is never stored.
type Bencher struct {
	Grid   *orchestrator.Grid
	Getenv func(string) string
	GPU    benchmark.GPUSource // nil: no GPU telemetry; else this, or the trial's own (Ready.GPU)
}

func (b *Bencher) Bench(ctx context.Context, ready *orchestrator.Ready, only []string, look func(*benchmark.Report) error) (*benchmark.Report, error) {
	keyEnv := b.Grid.Target.APIKeyEnv
	c := benchmark.NewClient(ready.Endpoint, ready.Model, keyEnv, b.Getenv)
	if b.Getenv(keyEnv) == "" && ready.APIKey != "" {
		c.SetKey(ready.APIKey)
	}
	gpu := b.GPU
	if gpu != nil && ready.GPU != nil {
		gpu = ready.GPU
	}
	r := &benchmark.Runner{Client: c, Config: b.Grid.Benchmark.Resolve(), GPU: gpu, Look: look, Stall: time.Duration(b.Grid.Timeouts.Stall)}
	scenarios := b.Grid.Benchmark.Scenarios
	if only != nil {
		scenarios = only
	}
	return r.Run(ctx, scenarios)
}

// GPUTelemetry is where a grid's benchmark reads GPU telemetry: this
// host's nvidia-smi, or none when the target runs without GPUs
// (target.gpus: off). The CLI and the daemon both ask it.
func GPUTelemetry(g *orchestrator.Grid) benchmark.GPUSource {
	if g.Target.GPUs == "off" {
		return nil
	}
	return benchmark.LocalNvidiaSMI
}

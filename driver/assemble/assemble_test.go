package assemble

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/driver"
	"github.com/vgrid/vgrid/orchestrator"
)

// Build assembles a process grid's run: its driver, its benchmark (GPU
// telemetry off with gpus: off), the memory model's verdict on each
// candidate, and the model's estimates; the orchestrator it makes carries
// them all.
func TestBuild(t *testing.T) {
	src, err := os.ReadFile("../../examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g, err := orchestrator.LoadGrid("quickstart.yaml", src, "../../examples")
	if err != nil {
		t.Fatal(err)
	}
	g.Target.GPUs = "off"
	ctx := context.Background()
	p, err := Build(ctx, g, t.TempDir(), Options{Environ: os.Environ(), Getenv: os.Getenv, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, ok := p.Driver.(*driver.Process); !ok {
		t.Errorf("driver %T, want the process driver", p.Driver)
	}
	if b, ok := p.Bench.(*driver.Bencher); !ok || b.GPU != nil {
		t.Errorf("bencher %#v, want no GPU telemetry with gpus: off", p.Bench)
	}
	var verdicts []string
	for _, c := range g.Expand() {
		ok, _ := p.Feasible(c)
		d, src := p.Estimate(ctx, c)
		if (ok && d <= 0) || src == "" {
			t.Errorf("%s: estimate %s from %q", c.Name, d, src)
		}
		verdicts = append(verdicts, map[bool]string{true: "boots", false: "fails"}[ok])
	}
	// The quickstart's hardware: 0.95 of GPU 0 exceeds its free memory.
	if got := strings.Join(verdicts, " "); got != "boots boots fails fails" {
		t.Errorf("verdicts %s", got)
	}
	o := p.Orchestrator(ctx, nil, zerolog.Nop(), nil)
	if o.Driver != p.Driver || o.Bench != p.Bench || o.Feasible == nil || o.Estimate == nil {
		t.Errorf("the orchestrator does not carry the parts: %+v", o)
	}
}

package driver

import (
	"context"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/orchestrator"
)

// Closer is a Driver that holds resources (a Docker client, a child
// process) and must be closed.
type Closer interface {
	orchestrator.Driver
	Close() error
}

// New builds the driver of a grid's target. runDir is where the run keeps
// its files (the process driver's server logs go to runDir/logs).
func New(ctx context.Context, g *orchestrator.Grid, environ []string, runDir string, log zerolog.Logger) (Closer, error) {
	if g.Target.Driver == "compose" {
		return NewCompose(ctx, g.Target, environ, log)
	}
	return NewProcess(g.Target, environ, filepath.Join(runDir, "logs"), log)
}

// ServerEnv is the environment the target's server runs with, when the
// driver knows it (the simulator's time scale is read from it).
func ServerEnv(d orchestrator.Driver) map[string]string {
	if e, ok := d.(interface{ ServerEnv() map[string]string }); ok {
		return e.ServerEnv()
	}
	return nil
}

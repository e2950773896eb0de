package driver

import (
	"github.com/vgrid/vgrid/orchestrator"
)

// Closer is a Driver that holds resources (a Docker client, a child
// process) and must be closed.
type Closer interface {
	orchestrator.Driver
	Close() error
}

// ServerEnv is the environment the target's server runs with, when the
// driver knows it (the simulator's time scale is read from it).
func ServerEnv(d orchestrator.Driver) map[string]string {
	if e, ok := d.(interface{ ServerEnv() map[string]string }); ok {
		return e.ServerEnv()
	}
	return nil
}

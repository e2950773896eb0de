//go:build unix

package driver

import (
	"os"
	"syscall"
	"time"
)

// terminate asks the server to stop (SIGTERM, as vLLM expects), and kills
// it when it has not exited after grace.
func terminate(p *os.Process, exited <-chan struct{}, grace time.Duration) {
	p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		p.Kill()
		<-exited
	}
}

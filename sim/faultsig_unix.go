//go:build unix

package sim

import (
	"os"
	"os/signal"
	"syscall"
)

// faultSignals delivers SIGUSR1 (the engine dies) and SIGUSR2 (decoding
// stalls) so that a test can inject a fault into a running container
// with `docker kill -s USR1`; stop stops the delivery.
func faultSignals() (sigs <-chan os.Signal, stop func()) {
	c := make(chan os.Signal, 4)
	signal.Notify(c, syscall.SIGUSR1, syscall.SIGUSR2)
	return c, func() { signal.Stop(c) }
}

func isDieSignal(s os.Signal) bool { return s == syscall.SIGUSR1 }

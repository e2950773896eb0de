package sim

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the engine starts (scheduler loop, HTTP server, fault
// timers) must be gone when Serve returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"), goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

package compose

import (
	"testing"

	"go.uber.org/goleak"
)

// WaitReady owns a log follower, an event stream and probes: none may
// outlive it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

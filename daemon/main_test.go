package daemon

import (
	"testing"

	"go.uber.org/goleak"
)

// The daemon starts a goroutine per run and per SSE stream: none may
// outlive Serve.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

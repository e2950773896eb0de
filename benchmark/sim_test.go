package benchmark

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/vgrid/vgrid/sim"
	"github.com/vgrid/vgrid/vllm"
)

// startSim serves a simulated vLLM on a loopback port for the test.
func startSim(t testing.TB, args []string, env map[string]string) string {
	t.Helper()
	c, err := vllm.ParseServeArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"VLLM_SIM_TIME_SCALE": "0.2", "VLLM_SIM_BOOT_SLOWDOWN": "0"}
	for k, v := range env {
		base[k] = v
	}
	ev, err := sim.EnvFromGetenv(c, func(k string) string { return base[k] })
	if err != nil {
		t.Fatal(err)
	}
	e, err := sim.Boot(context.Background(), c, ev, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

package driver

import (
	"context"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/sim"
)

// The process driver runs `vgrid sim serve`: in tests, this test binary
// plays vgrid's simulator.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "sim" && os.Args[2] == "serve" {
		os.Exit(sim.Main(context.Background(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// The second line of defence against two vgrids on one target (issue 18,
// item 2): a server that answers on the trial's endpoint but is not the
// process the trial started is refused at ready, whatever store started it.
func TestProcessDriverRefusesAForeignServer(t *testing.T) {
	port := freePort(t)
	foreign := exec.Command(os.Args[0], "sim", "serve", "--model", "m", "--host", "127.0.0.1", "--port", fmt.Sprint(port))
	foreign.Env = append(os.Environ(), "VLLM_SIM_TIME_SCALE=0.001")
	if err := foreign.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { foreign.Process.Kill(); foreign.Wait() }()
	ep := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; i < 100 && !answers(context.Background(), ep); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	tgt := orchestrator.Target{Driver: "process", Endpoint: ep,
		Command: []string{"vgrid", "sim", "serve", "--model", "m", "--host", "127.0.0.1", "--port", fmt.Sprint(port)},
		Env:     map[string]string{"VLLM_SIM_TIME_SCALE": "0.05"}}
	drv, err := NewProcess(tgt, os.Environ(), t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	drv.SetProgram(os.Args[0]) // this test binary acts as vgrid (TestMain)
	ctx := context.Background()
	plan, err := drv.Render(ctx, orchestrator.Candidate{})
	if err != nil {
		t.Fatal(err)
	}
	dep, err := plan.Deploy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dep.WaitReady(ctx, 30*time.Second)
	f, ok := err.(*failure.Failure)
	if !ok || f.Reason != failure.ReasonForeignServer {
		t.Fatalf("WaitReady with another server on the port: %v, want foreign_server", err)
	}
	if !strings.Contains(f.Detail, "is not the process this trial started") {
		t.Errorf("detail %q does not say what was observed", f.Detail)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Command vllm-sim is a stand-in for `vllm serve`: it boots, fails and
// serves the way vLLM does, from a documented physical model (docs/sim.md),
// so vgrid can be tested and demonstrated without GPUs.
//
//	vllm-sim serve --model Qwen/Qwen3-32B-AWQ --tensor-parallel-size 2 ...
//	vllm serve ...            (the same binary installed as "vllm")
//	python3 -m vllm.entrypoints.openai.api_server ...   (installed as "python3" and "python")
//	vllm serve --help[=all], vllm --version   (argparse's help; VLLM_SIM_VERSION picks the release played)
//	curl -f http://localhost:8000/health   (installed as "curl", for health checks)
//	find DIR -type f -printf '%s\n'        (installed as "find": BusyBox's has no -printf)
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/vgrid/vgrid/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch filepath.Base(os.Args[0]) {
	case "curl":
		os.Exit(curl(os.Args[1:], os.Stdout, os.Stderr))
	case "find":
		os.Exit(find(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is sim.Main: the simulator's command line.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return sim.Main(ctx, args, getenv, stdout, stderr)
}

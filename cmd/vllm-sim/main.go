// Command vllm-sim is a stand-in for `vllm serve`: it boots, fails and
// serves the way vLLM does, from a documented physical model (docs/sim.md),
// so vgrid can be tested and demonstrated without GPUs.
//
//	vllm-sim serve --model Qwen/Qwen3-32B-AWQ --tensor-parallel-size 2 ...
//	vllm serve ...            (the same binary installed as "vllm")
//	curl -f http://localhost:8000/health   (installed as "curl", for health checks)
//	find DIR -type f -printf '%s\n'        (installed as "find": BusyBox's has no -printf)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
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

const usage = "usage: vllm serve [model_tag] [options]"

// run returns vLLM's exit status: 0 after a clean shutdown, 2 for argument
// errors (argparse), 1 when the engine fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(stderr, usage)
		fmt.Fprintln(stderr, "vllm: error: the only command is serve")
		return 2
	}
	c, err := sim.ParseServeArgs(args[1:])
	if err != nil {
		var ae *sim.ArgError
		if errors.As(err, &ae) {
			fmt.Fprintln(stderr, usage)
			fmt.Fprintln(stderr, ae.Error())
			return 2
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	env, err := sim.EnvFromGetenv(c, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "vllm-sim:", err)
		return 2
	}
	e, err := sim.Boot(ctx, c, env, stdout)
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		var be *sim.BootError
		if !errors.As(err, &be) {
			fmt.Fprintln(stderr, err)
		}
		return 1
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
	if err != nil {
		fmt.Fprintf(stdout, "ERROR [vllm-sim] OSError: [Errno 98] error while attempting to bind on address (%s, %d): %v\n", c.Host, c.Port, err)
		return 1
	}
	fmt.Fprintln(stdout, "INFO:     Application startup complete.")
	if err := e.Serve(ctx, ln); err != nil {
		var dead *sim.EngineDeadError
		if errors.As(err, &dead) {
			return 1
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, "INFO:     Shutting down")
	return 0
}

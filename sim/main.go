package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/vgrid/vgrid/vllm"
)

const usage = "usage: vllm serve [model_tag] [options]"

// Main runs `vllm serve ARGS` (args[0] == "serve") and returns vLLM's exit status: 0 after a clean shutdown, 2 for argument
// errors (argparse), 1 when the engine fails.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(stderr, usage)
		fmt.Fprintln(stderr, "vllm: error: the only command is serve")
		return 2
	}
	c, err := vllm.ParseServeArgs(args[1:])
	if err != nil {
		var ae *vllm.ArgError
		if errors.As(err, &ae) {
			fmt.Fprintln(stderr, usage)
			fmt.Fprintln(stderr, ae.Error())
			return 2
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	env, err := EnvFromGetenv(c, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "vllm-sim:", err)
		return 2
	}
	e, err := Boot(ctx, c, env, stdout)
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		var be *vllm.BootError
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
		var dead *EngineDeadError
		if errors.As(err, &dead) {
			return 1
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, "INFO:     Shutting down")
	return 0
}

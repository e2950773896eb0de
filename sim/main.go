package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/vgrid/vgrid/vllm"
)

// errBootCrash ends a boot that an injected SIGUSR1 crashed.
var errBootCrash = errors.New("injected: the engine core crashed while starting (SIGUSR1)")

// Main runs `vllm serve ARGS` (args[0] == "serve") or `python -m
// vllm.entrypoints.openai.api_server ARGS` (args[0:2] == -m, the module)
// and returns vLLM's exit status: 0 after a clean shutdown or --help, 2 for
// argument errors (argparse), 1 when the engine fails. `vllm --version`
// prints the version played (VLLM_SIM_VERSION).
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	p, err := PersonalityOf(getenv("VLLM_SIM_VERSION"))
	if err != nil {
		fmt.Fprintln(stderr, "vllm-sim:", err)
		return 2
	}
	var prog string
	switch {
	case len(args) > 0 && (args[0] == "--version" || args[0] == "-v"):
		fmt.Fprintln(stdout, p.Version)
		return 0
	case len(args) > 0 && args[0] == "serve":
		prog, args = "vllm serve", args[1:]
	case len(args) > 1 && args[0] == "-m" && args[1] == "vllm.entrypoints.openai.api_server":
		prog, args = "api_server.py", args[2:]
	default:
		fmt.Fprintln(stderr, "usage: vllm [-h] [-v] {serve} ...")
		fmt.Fprintln(stderr, "vllm: error: the only command is serve (or python -m vllm.entrypoints.openai.api_server)")
		return 2
	}
	for _, a := range args {
		if a == "-h" || a == "--help" || strings.HasPrefix(a, "--help=") {
			topic, _ := strings.CutPrefix(a, "--help=")
			if topic == a {
				topic = ""
			}
			text, ok := Help(p, prog, topic)
			if !ok {
				fmt.Fprint(stderr, text)
				return 2
			}
			fmt.Fprint(stdout, text)
			return 0
		}
	}
	c, err := vllm.ParseServeArgs(args)
	if err != nil {
		var ae *vllm.ArgError
		if errors.As(err, &ae) {
			fmt.Fprintf(stderr, "usage: %s [model_tag] [options]\n", prog)
			fmt.Fprintln(stderr, strings.Replace(ae.Error(), "vllm serve", prog, 1))
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
	// Injected faults by signal (docker kill -s USR1|USR2): during the
	// boot, USR1 is a crash of the engine core's start; once serving, the
	// engine dies (USR1) or stalls (USR2).
	sigs, stopSigs := faultSignals()
	bootCtx, crash := context.WithCancelCause(ctx)
	defer crash(nil)
	var serving atomic.Pointer[Engine]
	stallAtStart := atomic.Bool{}
	watching, watched := make(chan struct{}), make(chan struct{})
	defer func() { stopSigs(); close(watching); <-watched }()
	go func() {
		defer close(watched)
		for {
			var s os.Signal
			select {
			case s = <-sigs:
			case <-watching:
				return
			}
			e := serving.Load()
			switch {
			case e != nil && isDieSignal(s):
				e.Die("signal " + s.String())
			case e != nil:
				e.Stall()
			case isDieSignal(s):
				crash(errBootCrash)
			default:
				stallAtStart.Store(true)
			}
		}
	}()
	e, err := Boot(bootCtx, c, env, stdout)
	if err != nil {
		if errors.Is(context.Cause(bootCtx), errBootCrash) && ctx.Err() == nil {
			logf(stdout, "ERROR", "EngineCore failed to start.")
			fmt.Fprintln(stdout, "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}")
			return 1
		}
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
	serving.Store(e)
	if stallAtStart.Load() {
		e.Stall()
	}
	if errors.Is(context.Cause(bootCtx), errBootCrash) { // a USR1 as the boot ended
		e.Die("signal " + errBootCrash.Error())
	}
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

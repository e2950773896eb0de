// Command vgrid tunes vLLM deployments run with Docker Compose: it renders
// candidate `vllm serve` flag sets into compose profiles, deploys them,
// benchmarks them and crowns a champion. See README.md.
//
// main only wires the process (signals, exit code); everything else is in
// run, which tests call directly.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/orchestrator"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
)

func main() {
	ctx, stop := signalContext()
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}

// signalContext cancels on the first SIGINT/SIGTERM and exits at once on
// the second (the channel is buffered so the second one is not lost).
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
			return
		}
		<-ch
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitInterrupted is 128 + SIGINT, as shells report a Ctrl-C.
	exitInterrupted = 130
)

// usageError marks a command-line mistake (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// run executes one vgrid command line and returns the exit code.
func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// compose-go logs through the global logrus logger ("variable is not
	// set" warnings); vgrid reports unset variables itself, in context.
	logrus.SetOutput(io.Discard)
	app := &app{environ: environ, stdin: stdin, stdout: stdout, stderr: stderr}
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code) // the simulator printed its own error
	}
	if errors.Is(err, errInterrupted) || (ctx.Err() != nil && errors.Is(err, context.Canceled)) {
		fmt.Fprintln(stderr, "vgrid: interrupted")
		return exitInterrupted
	}
	fmt.Fprintln(stderr, "vgrid:", err)
	var u usageError
	var refused *orchestrator.FlagsRefusedError
	var schedule *orchestrator.ScheduleError
	if errors.As(err, &u) || errors.As(err, &refused) || errors.As(err, &schedule) {
		return exitUsage // the grid is wrong: a key or a flag vLLM does not know
	}
	return exitError
}

package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"time"
)

// EngineChecker is a Driver whose servers run on an engine that can stop
// answering for a while and come back (a Docker engine restarted, a host
// rebooted): EngineAlive says whether it answers now.
type EngineChecker interface {
	EngineAlive(ctx context.Context) error
}

// DefaultEngineWait is how long a run waits for an engine that stopped
// answering before it gives up on it.
const DefaultEngineWait = 10 * time.Minute

func (o *Orchestrator) engineWait() time.Duration {
	switch {
	case o.EngineWait > 0:
		return o.EngineWait
	case o.gridEngineWait > 0:
		return o.gridEngineWait
	}
	return DefaultEngineWait
}

// waitEngine waits until drv's engine answers again, polling every
// second: nil once it does (or when drv has no engine to wait for), an
// error after EngineWait or when ctx ends.
func (o *Orchestrator) waitEngine(ctx context.Context, drv Driver, why string) error {
	ec, ok := drv.(EngineChecker)
	if !ok {
		return nil
	}
	err := ec.EngineAlive(ctx)
	if err == nil {
		return nil
	}
	o.Log.Warn().Err(err).Str("during", why).Stringer("for_up_to", o.engineWait()).Msg("the engine stopped answering: waiting for it to come back")
	start := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err = ec.EngineAlive(ctx); err == nil {
			o.Log.Warn().Stringer("after", time.Since(start).Round(time.Millisecond)).Str("during", why).Msg("the engine answers again")
			return nil
		}
		if time.Since(start) >= o.engineWait() {
			return fmt.Errorf("the engine did not answer for %s: %w", o.engineWait(), err)
		}
	}
}

// whileEngineDown runs op, and when it fails while drv's engine does not
// answer, or with a failure that an engine going away explains and the
// engine stops answering within EngineGrace (a stopping dockerd still
// answers, and refuses to create or start containers), waits for the
// engine and runs op again (three times at most): a run does not fail at
// its start or its end because the Docker engine was being restarted.
func (o *Orchestrator) whileEngineDown(ctx context.Context, drv Driver, what string, op func() error) error {
	_, ok := drv.(EngineChecker)
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || !ok || attempt == 3 || ctx.Err() != nil {
			return err
		}
		// Only a failure the engine reported (a container not created or
		// started, a server that exited) is watched: a plain error (a
		// profile that does not parse) is not the engine's, and is
		// returned at once.
		if !engineGone(err) && o.engineAlive(ctx, drv) && (reasonOf(err) == failure.ReasonError || !o.engineWobbled(ctx, drv, reasonOf(err))) {
			return err
		}
		if werr := o.waitEngine(ctx, drv, what); werr != nil {
			return fmt.Errorf("%w (then %v)", err, werr)
		}
	}
}

// reasonOf is err's failure reason (ReasonError when it carries none).
func reasonOf(err error) failure.Reason {
	var f *failure.Failure
	if errors.As(err, &f) {
		return f.Reason
	}
	return failure.ReasonError
}

func engineGone(err error) bool {
	var f *failure.Failure
	return errors.As(err, &f) && f.Reason == failure.ReasonEngineGone
}

// engineBack ends a trial whose engine stopped answering and came back
// within EngineWait: the pool runs the trial again.
type engineBack struct{ f *failure.Failure }

func (e *engineBack) Error() string { return "the engine came back after: " + e.f.Error() }

// engineAlive reports whether drv's engine answers (true for a driver
// without an engine).
func (o *Orchestrator) engineAlive(ctx context.Context, drv Driver) bool {
	ec, ok := drv.(EngineChecker)
	return !ok || ec.EngineAlive(ctx) == nil
}

// EngineGrace is how long a failure that an engine going away also
// explains is watched before it is blamed on the candidate.
var EngineGrace = 3 * time.Second

// engineWobbled reports whether drv's engine stops answering within
// EngineGrace after a failure of a reason that its going away also
// explains. A Docker engine being stopped keeps answering its API while
// it stops the containers (the trial then sees its container exit, or a
// refused create or start), and goes away a moment later: that is not the
// candidate's failure.
func (o *Orchestrator) engineWobbled(ctx context.Context, drv Driver, r failure.Reason) bool {
	ec, ok := drv.(EngineChecker)
	if !ok {
		return false
	}
	switch r {
	case failure.ReasonExited, failure.ReasonCreate, failure.ReasonUnreachable, failure.ReasonBenchmark, failure.ReasonError, failure.ReasonCrashLoop:
	default:
		return false
	}
	deadline := time.Now().Add(EngineGrace)
	for {
		if ec.EngineAlive(ctx) != nil {
			return ctx.Err() == nil
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

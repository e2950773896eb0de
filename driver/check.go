package driver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"syscall"
	"time"

	"github.com/vgrid/vgrid/failure"

	"github.com/vgrid/vgrid/vllm"
)

// Redacted hides the values of secret flags (--api-key).
func Redacted(words []string) []string {
	out := append([]string(nil), words...)
	for i := 1; i < len(out); i++ {
		if spec, _ := vllm.Lookup(out[i-1]); spec.Secret && vllm.IsFlagToken(out[i-1]) {
			out[i] = "<redacted>"
		}
	}
	return out
}

// SameServer compares the endpoint's server start time with the one
// recorded at ready.
func SameServer(ctx context.Context, endpoint string, recorded time.Time) *failure.Failure {
	if recorded.IsZero() || endpoint == "" {
		return nil
	}
	start, err := vllm.ServerStart(ctx, endpoint)
	if err != nil || start.IsZero() {
		return nil // unreachable or silent: the other checks say why
	}
	if d := start.Sub(recorded); d > time.Millisecond || d < -time.Millisecond {
		return failure.Fail(failure.ReasonForeignServer, "the server at %s is not the one this trial measured: it started at %s, the trial's at %s",
			endpoint, start.Format(time.RFC3339Nano), recorded.Format(time.RFC3339Nano))
	}
	return nil
}

// connectionLost reports an error of the connection itself (refused,
// reset, cut mid-answer, timed out), as opposed to an answer vgrid could
// read.
func connectionLost(err error) bool {
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &oe) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// VerifyEndpoint scrapes what the server reports and checks it against
// the flags it should run with.
func VerifyEndpoint(ctx context.Context, endpoint string, flags vllm.Flags) (map[string]string, error) {
	eff, err := vllm.ScrapeEffective(ctx, endpoint)
	if err != nil {
		// A server that stops answering while vgrid reads it (its engine
		// or its Docker engine stopping) is unreachable, not drifted: the
		// orchestrator then asks whether the engine went away.
		if connectionLost(err) {
			return nil, failure.Fail(failure.ReasonUnreachable, "the server stopped answering while vgrid read its configuration: %v", err)
		}
		return nil, failure.Fail(failure.ReasonConfigDrift, "cannot read the effective configuration: %v", err)
	}
	m := eff.Map()
	if drift := vllm.CheckDrift(flags, eff); drift != "" {
		return m, failure.Fail(failure.ReasonConfigDrift, "%s", drift)
	}
	return m, nil
}

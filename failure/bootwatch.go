package failure

import (
	"fmt"
	"time"

	"github.com/vgrid/vgrid/vllm"
)

// BootWatch follows one server's boot from what its driver observes (log
// lines, readiness probes, the end of its process, the clock) to "it
// decodes" or a reason with its proof. It does no I/O: each driver only
// feeds it (the compose driver from Docker's log stream, events and
// inspections; the process driver from its child's log file and exit).
type BootWatch struct {
	phase   string
	phaseAt time.Time
	logs    []string // the last MaxLogs lines
	cls     vllm.Classifier
	// UnreachableAfter is how long probes may be refused after the log
	// says the API server is up before the boot fails unreachable.
	UnreachableAfter time.Duration
	refusedSince     time.Time
	// OnPhase, optional, hears each boot phase as it begins.
	OnPhase func(phase string)
}

// MaxLogs is how many of the last log lines a failure carries.
const MaxLogs = 200

// NewBootWatch starts a watch in its first phase ("starting the
// container", "starting the process") at now.
func NewBootWatch(first string, now time.Time) *BootWatch {
	return &BootWatch{phase: first, phaseAt: now, UnreachableAfter: 10 * time.Second}
}

// Phase is the boot phase the log has reached.
func (w *BootWatch) Phase() string { return w.phase }

// Logs are the last log lines seen (a copy).
func (w *BootWatch) Logs() []string { return append([]string(nil), w.logs...) }

// Fail is a failure of reason r at now, with the phase and the log.
func (w *BootWatch) Fail(r Reason, detail, line string, now time.Time) *Failure {
	return &Failure{Reason: r, Detail: detail, Line: line, Phase: w.phase, Logs: w.Logs(), DetectedAt: now}
}

// Line takes one log line (at: when the server wrote it, zero when
// unknown): it may begin a phase, or prove a failure.
func (w *BootWatch) Line(text string, at, now time.Time) *Failure {
	w.logs = append(w.logs, text)
	if len(w.logs) > MaxLogs {
		w.logs = w.logs[len(w.logs)-MaxLogs:]
	}
	if p, ok := vllm.PhaseOf(text); ok && p != w.phase {
		w.phase, w.phaseAt = p, now
		if w.OnPhase != nil {
			w.OnPhase(p)
		}
	}
	if c, ok := w.cls.Line(text); ok {
		f := w.Fail(FromCause(c.Cause), "vLLM failed while "+w.phase, text, now)
		f.LineAt = at
		return f
	}
	return nil
}

// Probe takes a readiness probe of endpoint: ready when a token decoded;
// a failure when the probe's answer is final (a model not served, a
// configuration other than the rendered one) or the API stays refused
// after the log says it is up.
func (w *BootWatch) Probe(p vllm.ProbeResult, endpoint string, now time.Time) (ready bool, f *Failure) {
	switch {
	case p.Final != "":
		r := ReasonUnreachable
		if p.Drift {
			r = ReasonConfigDrift
		}
		return false, w.Fail(r, p.Final, "", now)
	case p.Ready:
		return true, nil
	case p.Refused && w.phase == "serving":
		if w.refusedSince.IsZero() {
			w.refusedSince = now
		}
		if now.Sub(w.refusedSince) > w.UnreachableAfter {
			return false, w.Fail(ReasonUnreachable, fmt.Sprintf("the log says the API server is up, but %s refused connections for %s: is the port published (ports:) and the endpoint right?", endpoint, w.UnreachableAfter), "", now)
		}
	default:
		w.refusedSince = time.Time{}
	}
	return false, nil
}

// Ended is what the log proves once it ended, beyond its lines (an engine
// that died without a root cause), or nil.
func (w *BootWatch) Ended(now time.Time) *Failure {
	if c, ok := w.cls.Result(); ok {
		return w.Fail(FromCause(c.Cause), "vLLM failed while "+w.phase, c.Line, now)
	}
	return nil
}

// Died explains a server whose process ended, once its last lines were
// fed: what its log proves (Ended), else exited with what the driver
// observed (how it ended).
func (w *BootWatch) Died(observed string, now time.Time) *Failure {
	if f := w.Ended(now); f != nil {
		return f
	}
	last := ""
	for i := len(w.logs) - 1; i >= 0; i-- {
		if w.logs[i] != "" {
			last = w.logs[i]
			break
		}
	}
	return w.Fail(ReasonExited, fmt.Sprintf("%s while %s", observed, w.phase), last, now)
}

// Timeout is the failure of a boot not ready after timeout.
func (w *BootWatch) Timeout(timeout time.Duration, now time.Time) *Failure {
	return w.Fail(ReasonHealthTimeout, fmt.Sprintf("not ready after %s; still %s for %s", timeout, w.phase, now.Sub(w.phaseAt).Round(time.Second)), "", now)
}

// Boot is the boot breakdown: the phases vLLM logged, and ready, the time
// vgrid measured from the deploy to the first decoded token.
func (w *BootWatch) Boot(ready time.Duration) Boot {
	return Boot{Boot: vllm.ParseBoot(w.logs), Ready: ready.Seconds()}
}

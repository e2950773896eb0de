package failure

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/vllm"
)

// The boot watch on the real vLLM logs of vllm/testdata/logs (their
// sources in its INDEX.md): each log fed line by line ends in the reason
// the index gives, proven by a line of the log, at the phase vLLM had
// reached; a log that ends in EngineDeadError alone is explained when the
// process dies; a successful startup proves nothing and is ready when its
// probe decodes.
func TestBootWatchOnRealLogs(t *testing.T) {
	index, err := os.ReadFile("../vllm/testdata/logs/INDEX.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`(?m)^\| ([\w.-]+\.log) \| .* \| (\w+) \| \S+ \|$`).FindAllStringSubmatch(string(index), -1)
	if len(rows) < 20 {
		t.Fatalf("%d logs in the index", len(rows))
	}
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	for _, r := range rows {
		file, cause := r[1], r[2]
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("../vllm/testdata/logs", file))
			if err != nil {
				t.Fatal(err)
			}
			w := NewBootWatch("starting the container", t0)
			var phases []string
			w.OnPhase = func(p string) { phases = append(phases, p) }
			var f *Failure
			for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
				if f = w.Line(line, t0.Add(time.Duration(i)*time.Millisecond), t0.Add(time.Second)); f != nil {
					break
				}
			}
			switch {
			case cause == "none":
				if f != nil {
					t.Fatalf("a successful startup proved %s: %q", f.Reason, f.Line)
				}
				if ready, f := w.Probe(vllm.ProbeResult{Ready: true}, "http://x", t0); !ready || f != nil {
					t.Errorf("a decoding probe: ready %v, %v", ready, f)
				}
				if boot := w.Boot(90 * time.Second); boot.Ready != 90 {
					t.Errorf("boot %+v", boot)
				}
				return
			case cause == string(vllm.CauseEngineDead) && f == nil:
				f = w.Died("the process exited (exit status 1)", t0.Add(time.Minute))
			}
			if f == nil {
				t.Fatalf("nothing proven, want %s", cause)
			}
			if want := FromCause(vllm.Cause(cause)); f.Reason != want || f.Line == "" || !strings.Contains(string(b), f.Line) {
				t.Fatalf("got %s (line %q), want %s proven by a line of the log", f.Reason, f.Line, want)
			}
			if f.Phase != w.Phase() || len(f.Logs) == 0 || len(f.Logs) > MaxLogs {
				t.Errorf("phase %q (watch %q), %d log lines", f.Phase, w.Phase(), len(f.Logs))
			}
		})
	}
}

// Probes: refused while the log says the API is up fails unreachable after
// UnreachableAfter; a final answer fails at once, drift as config_drift;
// no answer past the timeout is health_timeout.
func TestBootWatchProbesAndTime(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	w := NewBootWatch("starting the process", t0)
	if _, f := w.Probe(vllm.ProbeResult{Refused: true}, "http://x", t0); f != nil {
		t.Fatalf("refused before the API is up: %v", f)
	}
	w.phase = "serving"
	w.Probe(vllm.ProbeResult{Refused: true}, "http://x", t0)
	if _, f := w.Probe(vllm.ProbeResult{Refused: true}, "http://x", t0.Add(5*time.Second)); f != nil {
		t.Fatalf("refused 5 s: %v", f)
	}
	if _, f := w.Probe(vllm.ProbeResult{Refused: true}, "http://x", t0.Add(11*time.Second)); f == nil || f.Reason != ReasonUnreachable {
		t.Errorf("refused 11 s: %v", f)
	}
	if _, f := w.Probe(vllm.ProbeResult{Final: "serves another model", Drift: true}, "http://x", t0); f == nil || f.Reason != ReasonConfigDrift {
		t.Errorf("drift: %v", f)
	}
	if f := w.Timeout(30*time.Minute, t0.Add(30*time.Minute)); f.Reason != ReasonHealthTimeout || !strings.Contains(f.Detail, "still serving") {
		t.Errorf("timeout: %v", f)
	}
	if f := NewBootWatch("starting the process", t0).Died("the process exited (signal: killed)", t0); f.Reason != ReasonExited || !strings.Contains(f.Detail, "(signal: killed) while starting the process") {
		t.Errorf("died: %v", f)
	}
}

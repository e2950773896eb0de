package compose

import (
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/vllm"
)

// replayImage builds a FROM-scratch image holding logreplay and the real
// vLLM logs of vllm/testdata/logs.
func replayImage(t *testing.T) string {
	t.Helper()
	const tag = "vgrid-logreplay:test"
	ctx := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctx, "logreplay"), "../internal/dockertest/logreplay")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build logreplay: %v\n%s", err, out)
	}
	os.MkdirAll(filepath.Join(ctx, "logs"), 0o755)
	logs, _ := filepath.Glob("../vllm/testdata/logs/*.log")
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		os.WriteFile(filepath.Join(ctx, "logs", filepath.Base(l)), b, 0o644)
	}
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM scratch\nCOPY logreplay /logreplay\nCOPY logs/ /logs/\nENTRYPOINT [\"/logreplay\"]\n"), 0o644)
	cmd := exec.Command("docker", "build", "-q", "-t", tag, ctx)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	return tag
}

// TestRealLogsReplayedFromAContainer replays the real vLLM logs of
// vllm/testdata/logs from a container and checks that WaitReady, following
// the container's log stream (stdout and stderr), names the cause the
// index gives, from the log line itself, while the container still runs.
// It reports how long after Docker stamped the proving line vgrid
// concluded. A log that ends in EngineDeadError alone is replayed by a
// process that exits: the cause comes when the stream ends.
func TestRealLogsReplayedFromAContainer(t *testing.T) {
	d := connect(t)
	img := replayImage(t)
	index, err := os.ReadFile("../vllm/testdata/logs/INDEX.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`(?m)^\| ([\w.-]+\.log) \| .* \| (\w+) \| \S+ \|$`).FindAllStringSubmatch(string(index), -1)
	var latencies []time.Duration
	successes := 0
	for _, r := range rows {
		file, cause := r[1], r[2]
		if cause == "none" {
			if successes++; successes > 2 {
				continue // two successful startups are enough here
			}
		}
		t.Run(file, func(t *testing.T) {
			args := fmt.Sprintf("[/logs/%s, \"2\"]", file)
			if cause == string(vllm.CauseEngineDead) {
				args = fmt.Sprintf("[/logs/%s, \"2\", exit, \"1\"]", file)
			}
			dir := t.TempDir()
			compose := filepath.Join(dir, "replay.yml")
			os.WriteFile(compose, []byte(fmt.Sprintf("services:\n  replay:\n    image: %s\n    command: %s\n    ports: [\"127.0.0.1:%d:8000\"]\n", img, args, freePort(t))), 0o644)
			s := load(t, profiles.Project{Files: []string{compose}, Name: "myia_vllm"}, "replay", ConvertOptions{})
			timeout := 30 * time.Second
			if cause == "none" {
				timeout = 3 * time.Second
			}
			_, _, err := deploy(t, d, s, ReadyOptions{Timeout: timeout})
			var f *failure.Failure
			if !errors.As(err, &f) {
				t.Fatalf("got %v, want a failure", err)
			}
			if cause == "none" {
				if f.Reason != failure.ReasonHealthTimeout {
					t.Errorf("a successful startup read as %s: %q", f.Reason, f.Line)
				}
				return
			}
			want := failure.FromCause(vllm.Cause(cause))
			if f.Reason != want || f.Line == "" {
				t.Fatalf("got %s (line %q), want %s", f.Reason, f.Line, want)
			}
			if cause == string(vllm.CauseEngineDead) {
				return // concluded at the stream's end, not at a line
			}
			if f.LineAt.IsZero() {
				t.Fatalf("no Docker timestamp for the proving line: the cause did not come from the log stream")
			}
			lat := f.DetectedAt.Sub(f.LineAt)
			latencies = append(latencies, lat)
			t.Logf("%s: %s detected %v after Docker stamped the line", file, f.Reason, lat.Round(10*time.Microsecond))
		})
	}
	if len(latencies) < 20 {
		t.Fatalf("%d logs replayed to a cause, want at least 20", len(latencies))
	}
	slices.Sort(latencies)
	t.Logf("detection latency over %d real logs: median %v, max %v", len(latencies), latencies[len(latencies)/2].Round(10*time.Microsecond), latencies[len(latencies)-1].Round(10*time.Microsecond))
}

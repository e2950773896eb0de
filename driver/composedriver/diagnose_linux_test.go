//go:build linux

package composedriver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/orchestrator"
)

// A server whose engine dies as a benchmark ends: its container still
// runs for a moment while vLLM shuts down, and /health answers 503.
// Diagnose says engine_dead then, never "measured" (the night soak saw a
// trial done with 19 of its 22 requests failed that way).
func TestDiagnoseSeesADyingServer(t *testing.T) {
	// The readiness probe is request 1; the engine dies after request 2.
	dep, ready := simServer(t, "", "      - VLLM_SIM_DIE_AFTER_REQUESTS=2\n")
	chat(ready)
	f := dep.Diagnose(context.Background())
	if f == nil || f.Reason != failure.ReasonEngineDead || !strings.Contains(f.Line, "EngineDeadError") {
		t.Fatalf("Diagnose after the engine died: %+v", f)
	}
}

// simServer deploys the user's service on the simulator's image with
// extra service keys and environment lines, and waits until it serves.
func simServer(t *testing.T, keys, env string) (orchestrator.Deployment, *orchestrator.Ready) {
	t.Helper()
	img := dockertest.BuildSimImage(t)
	dir, target := userProject(t, img)
	os.WriteFile(filepath.Join(dir, "sim.override.yml"), []byte("services:\n  vllm-medium-qwen3:\n    image: "+img+"\n"+keys+
		"    ports: !override\n      - \"127.0.0.1:"+fmt.Sprint(freePort(t))+":5002\"\n    environment:\n      - VLLM_SIM_TIME_SCALE=0.02\n"+env), 0o644)
	c, err := NewCompose(context.Background(), target, os.Environ(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Cleanup(func() { dockertest.Docker(t, "rm", "-f", "myia_vllm-medium-qwen3") })
	return deployReady(t, c, "run-diagnose", nil)
}

// chat sends one short chat request and ignores its answer.
func chat(ready *orchestrator.Ready) {
	body, _ := json.Marshal(map[string]any{"model": ready.Model, "max_tokens": 4, "messages": []map[string]string{{"role": "user", "content": "hi"}}})
	req, _ := http.NewRequest("POST", ready.Endpoint+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ready.APIKey)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

// The same under `restart: unless-stopped`, with the server's process
// ending as the kernel or a crash ends it (not `docker kill`, after which
// Docker does not restart): by the time Diagnose looks, Docker has
// restarted the container and a new vLLM boots. Diagnose still says why
// the server that was measured stopped, from its exit and its log.
func TestDiagnoseAfterTheRestartPolicyRestarted(t *testing.T) {
	for _, c := range []struct {
		name string
		env  string // the simulator's fault, if any
		kill bool   // SIGKILL to the server's process from this host
		want failure.Reason
		line string
		code int // the exit code of the server that was measured
	}{
		{"engine death", "      - VLLM_SIM_DIE_AFTER_REQUESTS=2\n", false, failure.ReasonEngineDead, "EngineDeadError", 1},
		{"killed", "", true, failure.ReasonCrashLoop, "", 137},
	} {
		t.Run(c.name, func(t *testing.T) {
			dep, ready := simServer(t, "    restart: unless-stopped\n", c.env)
			if c.kill {
				pid, _ := strconv.Atoi(dockertest.Docker(t, "inspect", "-f", "{{.State.Pid}}", "myia_vllm-medium-qwen3"))
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			} else {
				chat(ready)
			}
			// Wait until the restarted container runs (Docker then reports
			// exit code 0 and the dead server's health), as a benchmark's
			// last requests could.
			for i := 0; dockertest.Docker(t, "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "myia_vllm-medium-qwen3") != "1 running"; i++ {
				if i == 100 {
					t.Fatal("Docker did not restart the container within 10 s")
				}
				time.Sleep(100 * time.Millisecond)
			}
			f := dep.Diagnose(context.Background())
			if f == nil || f.Reason != c.want || !strings.Contains(f.Line, c.line) || f.Restarts < 1 || f.ExitCode != c.code ||
				strings.Contains(f.Line, "Starting to load model") { // the restarted server's boot, not the dead one's end
				t.Fatalf("Diagnose: %+v, want %s with %q, exit code %d and the restart", f, c.want, c.line, c.code)
			}
			t.Logf("%s: %s; last line %q", f.Reason, f.Detail, f.Line)
		})
	}
}

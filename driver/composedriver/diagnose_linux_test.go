//go:build linux

package composedriver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/orchestrator"
)

// A server whose engine dies as a benchmark ends: its container still
// runs for a moment while vLLM shuts down, and /health answers 503.
// Diagnose says engine_dead then, never "measured" (the night soak saw a
// trial done with 19 of its 22 requests failed that way).
func TestDiagnoseSeesADyingServer(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	dir, target := userProject(t, img)
	port := freePort(t)
	// The readiness probe is request 1; the engine dies after request 2.
	os.WriteFile(filepath.Join(dir, "sim.override.yml"), []byte("services:\n  vllm-medium-qwen3:\n    image: "+img+
		"\n    ports: !override\n      - \"127.0.0.1:"+fmt.Sprint(port)+":5002\"\n    environment:\n      - VLLM_SIM_TIME_SCALE=0.02\n      - VLLM_SIM_DIE_AFTER_REQUESTS=2\n"), 0o644)
	ctx := context.Background()
	c, err := NewCompose(ctx, target, os.Environ(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Cleanup(func() { dockertest.Docker(t, "rm", "-f", "myia_vllm-medium-qwen3") })
	dep, ready := deployReady(t, c, "run-diagnose", nil)
	body, _ := json.Marshal(map[string]any{"model": ready.Model, "max_tokens": 4, "messages": []map[string]string{{"role": "user", "content": "hi"}}})
	req, _ := http.NewRequest("POST", ready.Endpoint+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ready.APIKey)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	f := dep.Diagnose(ctx)
	if f == nil || f.Reason != orchestrator.ReasonEngineDead || !strings.Contains(f.Line, "EngineDeadError") {
		t.Fatalf("Diagnose after the engine died: %+v", f)
	}
}

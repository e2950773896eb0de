//go:build linux

package kubedriver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/internal/kubetest"
	"github.com/vgrid/vgrid/orchestrator"
)

// The ways to a trial's pod on a real cluster: a port-forward that
// outlives the refusals of a server not listening yet and carries
// concurrent streaming requests, and exec, which streams a command's
// output until vgrid stops it.
func TestForwardAndExec(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	c := kubetest.Start(t, []int{2}, img)
	dir := t.TempDir()
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: sim, labels: {app: sim}}
spec:
  containers:
    - name: vllm
      image: %s
      imagePullPolicy: Never
      command: [/bin/sh, -c]
      args: ["sleep 3; exec vllm serve --model Qwen/Qwen3-8B --port 8000"]
      env: [{name: VLLM_SIM_TIME_SCALE, value: "0.01"}]
`, img)
	mf := filepath.Join(dir, "pod.yaml")
	os.WriteFile(mf, []byte(manifest), 0o644)
	k, err := New(orchestrator.Target{Driver: "kubernetes", Manifest: mf, Kubeconfig: c.Kubeconfig}, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel))
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(manifest)
	c.Kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/sim", "--timeout=60s")
	ctx := context.Background()
	// The server is not listening yet: the first requests are refused
	// through the tunnel, which stays open.
	addr, stop, err := k.forward(ctx, "sim", 8000)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	base := "http://" + addr
	refused := 0
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		} else if strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "EOF") {
			refused++
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never answered through the port-forward: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if refused == 0 {
		t.Error("no request was refused before the server listened; the test proves nothing about the tunnel outliving refusals")
	}
	// Concurrent streaming completions, each as fast as on the pod's IP.
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := `{"model":"Qwen/Qwen3-8B","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
			resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(b), "data: [DONE]") {
				errs <- fmt.Errorf("stream: %q", b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("8 concurrent streams through the port-forward: %v", time.Since(start))
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("8 short streams took %v through the port-forward", d)
	}

	// exec streams a command's output until it is closed; closing ends
	// it at once and is not an error.
	rc, err := k.exec(ctx, "sim", []string{"sh", "-c", "while :; do echo tick; sleep 0.1; done"})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 15)
	if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != "tick\ntick\ntick\n" {
		t.Errorf("exec output %q %v", buf, err)
	}
	closed := time.Now()
	if err := rc.Close(); err != nil {
		t.Errorf("closing a stream vgrid stops: %v", err)
	}
	if d := time.Since(closed); d > 5*time.Second {
		t.Errorf("closing the exec stream took %v", d)
	}
	// A command that fails says how, with its standard error.
	if out, err := k.execOutput(ctx, "sim", []string{"sh", "-c", "echo out; echo broken >&2; exit 3"}); err == nil || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "3") || out != "out\n" {
		t.Errorf("a failing command: %q, %v", out, err)
	}
	// No GPU label on the node, no nvidia-smi in the container: unknown
	// hardware, and the error says why.
	if hw, err := k.hardware(ctx, nil, "sim", 2); hw != "" || err == nil || !strings.Contains(err.Error(), "nvidia-smi in pod sim") {
		t.Errorf("hardware without label or nvidia-smi: %q, %v", hw, err)
	}
}

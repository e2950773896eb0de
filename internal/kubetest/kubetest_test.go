//go:build linux

package kubetest

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/internal/dockertest"
)

// The harness gives a cluster the driver can trust: two nodes of 4 GPUs
// each take four 2-GPU pods of the simulator, two on each, and keep a
// fifth Pending for want of GPUs (the scheduler says so); the pods' IPs
// answer vLLM's API from this machine; their logs read; the API server
// comes back after a restart.
func TestClusterSchedulesGPUs(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	c := Start(t, []int{4, 4}, img)
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: sim}
spec:
  replicas: 5
  selector: {matchLabels: {app: sim}}
  template:
    metadata: {labels: {app: sim}}
    spec:
      containers:
        - name: vllm
          image: %s
          imagePullPolicy: Never
          args: [--model, Qwen/Qwen3-8B, --port, "8000", --tensor-parallel-size, "2"]
          env: [{name: VLLM_SIM_TIME_SCALE, value: "0.01"}]
          resources: {limits: {nvidia.com/gpu: 2}}
`, img)
	c.Apply(manifest)
	var ips []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out := c.Kubectl("get", "pods", "-l", "app=sim", "-o", `jsonpath={range .items[*]}{.spec.nodeName}{" "}{.status.phase}{" "}{.status.podIP}{"\n"}{end}`)
		perNode, pending := map[string]int{}, 0
		ips = nil
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[1] == "Running":
				perNode[f[0]]++
				ips = append(ips, f[2])
			case len(f) >= 1 && strings.Contains(l, "Pending"):
				pending++
			}
		}
		if perNode["127.0.0.1"] == 2 && perNode["127.0.0.2"] == 2 && pending == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want 2 running pods per node and 1 pending; got\n%s\n%s", out, c.Kubectl("describe", "pods", "-l", "app=sim"))
		}
		time.Sleep(time.Second)
	}
	if ev := c.Kubectl("get", "events", "--field-selector", "reason=FailedScheduling", "-o", "jsonpath={.items[*].message}"); !strings.Contains(ev, "Insufficient nvidia.com/gpu") {
		t.Errorf("the pending pod's events: %q", ev)
	}
	for _, ip := range ips {
		var body string
		for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
			resp, err := http.Get("http://" + ip + ":8000/v1/models")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if body = string(b); resp.StatusCode == 200 {
					break
				}
			}
		}
		if !strings.Contains(body, "Qwen/Qwen3-8B") {
			t.Errorf("pod %s: /v1/models answered %q", ip, body)
		}
	}
	if logs := c.Kubectl("logs", "deployment/sim", "--tail=50"); !strings.Contains(logs, "Qwen/Qwen3-8B") {
		t.Errorf("kubectl logs: %q", logs)
	}
	c.StopAPIServer()
	if _, err := c.kubectl("get", "ns"); err == nil {
		t.Error("the API server answered after it was stopped")
	}
	c.StartAPIServer()
	c.Kubectl("get", "pods")
}

// The cluster's binaries are there (built from the module proxy the first
// time) and run. .ci/run builds them through this test in the background
// while it vets and lints, so that the cluster tests find them ready.
func TestBuildsTheBinaries(t *testing.T) {
	dir := BinDir(t)
	for _, c := range components {
		args := []string{"--version"}
		if c == "kubectl" {
			args = []string{"version", "--client"}
		}
		out, err := exec.Command(filepath.Join(dir, c), args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Kubernetes v") && !strings.Contains(string(out), "Client Version: v") {
			t.Errorf("%s %v: %v\n%s", c, args, err, out)
		}
	}
}

package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/profiles"
)

var testImage = dockertest.SimImage

func simImage(t *testing.T) { dockertest.BuildSimImage(t) }

func docker(t *testing.T, args ...string) string { return dockertest.Docker(t, args...) }

// runProfile starts a fixture's vLLM service the way compose would (its
// interpolated entrypoint, command and health check), with the sim image.
func runProfile(t *testing.T, name string, extra ...string) (id string, hostPort string) {
	t.Helper()
	p := profiles.Project{Files: []string{fixtures + name}, EnvFiles: []string{fixtures + "env.example"}}
	l, err := p.Load(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	svcName, _, _, err := p.Show(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	svc := l.Services[svcName]
	args := []string{"run", "-d", "--label", "vgrid-test=1", "-e", "VLLM_SIM_TIME_SCALE=0.005",
		"-p", "127.0.0.1::5002", "--health-interval", "500ms", "--health-start-period", "60s", "--health-retries", "3"}
	hc := svc.HealthCheck.Test
	if len(hc) > 1 && hc[0] == "CMD" {
		args = append(args, "--health-cmd", strings.Join(hc[1:], " "))
	}
	if len(svc.Entrypoint) > 0 {
		args = append(args, "--entrypoint", svc.Entrypoint[0])
	}
	args = append(args, extra...)
	args = append(args, testImage)
	if len(svc.Entrypoint) > 1 {
		args = append(args, svc.Entrypoint[1:]...)
	}
	args = append(args, svc.Command...)
	id = docker(t, args...)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	port := docker(t, "port", id, "5002/tcp")
	return id, port[strings.LastIndex(port, ":")+1:]
}

func waitHealthy(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		switch s := docker(t, "inspect", "-f", "{{.State.Health.Status}}", id); s {
		case "healthy":
			return
		case "unhealthy":
			t.Fatalf("container unhealthy:\n%s", docker(t, "logs", id))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("not healthy after 60s:\n%s", docker(t, "logs", id))
}

func TestImageRunsMediumProfile(t *testing.T) {
	simImage(t)
	id, port := runProfile(t, "medium.yml")
	waitHealthy(t, id)
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+port+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("models through the published port: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestImageRunsOrnithShellScript(t *testing.T) {
	simImage(t)
	// The profile's guard waits for a >4 GB blob in the HF cache: give it a
	// sparse one, as a real cache would have.
	hf := t.TempDir()
	blobs := filepath.Join(hf, "hub", "models--ulkaa--Ornith-1.5-35B-A3B-AWQ-INT4", "blobs")
	os.MkdirAll(blobs, 0o755)
	f, _ := os.Create(filepath.Join(blobs, "model-00001"))
	f.Truncate(5 << 30)
	f.Close()
	id, _ := runProfile(t, "medium-ornith15-awq.yml", "-v", hf+":/root/.cache/huggingface")
	waitHealthy(t, id)
	logs := docker(t, "logs", id)
	if strings.Contains(logs, "PHANTOM") || strings.Contains(logs, "largest blob") || !strings.Contains(logs, "Application startup complete") {
		t.Errorf("the guard or vllm serve did not run as in the profile:\n%s", logs)
	}
}

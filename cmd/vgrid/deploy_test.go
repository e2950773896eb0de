package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vgrid/vgrid/internal/dockertest"
)

func TestDeployCommand(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	dockertest.Exclusive(t)
	dir := t.TempDir()
	for _, f := range []string{"medium.yml", "medium.grid-baseline.yml"} {
		b, _ := os.ReadFile(fixtures + f)
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	env, _ := os.ReadFile(fixtures + "env.example")
	os.WriteFile(filepath.Join(dir, ".env"), env, 0o600) // the default env file, next to the profile
	over := filepath.Join(dir, "sim.yml")
	port := fmt.Sprint(freePortT(t))
	os.WriteFile(over, []byte("services:\n  vllm-medium-qwen3:\n    image: "+img+"\n    ports: !override\n      - \"127.0.0.1:"+port+":5002\"\n    environment:\n      - VLLM_SIM_TIME_SCALE=0.005\n      - VLLM_SIM_GPU_USED_MIB=1500,0\n"), 0o644)
	clean := func() { exec.Command("docker", "rm", "-f", "myia_vllm-medium-qwen3").Run() }
	clean()
	t.Cleanup(clean)

	code, out, errs := vgrid(t, "deploy", "-f", filepath.Join(dir, "medium.yml"), "-f", over, "-p", "myia_vllm", "--gpus=off")
	if code != 0 || !strings.Contains(out, "ready at http://127.0.0.1:"+port) || !strings.Contains(out, "gpu_memory_utilization=0.85") {
		t.Fatalf("deploy medium.yml: code %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = vgrid(t, "deploy", "status", "-f", filepath.Join(dir, "medium.yml"), "-f", over, "-p", "myia_vllm", "--gpus=off")
	if code != 0 || !strings.Contains(out, "matches the file") || !strings.Contains(out, "running") {
		t.Errorf("status: %d\n%s", code, out)
	}
	// The grid baseline (0.9999 of GPU 0, a desktop using 1500 MiB) fails with vLLM's line.
	code, out, _ = vgrid(t, "deploy", "-f", filepath.Join(dir, "medium.grid-baseline.yml"), "-f", over, "-p", "myia_vllm", "--gpus=off")
	if code != 1 || !strings.Contains(out, "FAILED free_memory") || !strings.Contains(out, "proof: ValueError: Free memory on device cuda:0") {
		t.Errorf("grid baseline: code %d\n%s", code, out)
	}
	if code, _, errs := vgrid(t, "deploy", "-f", filepath.Join(dir, "medium.yml"), "--gpus=maybe"); code != 2 || !strings.Contains(errs, "--gpus=maybe") {
		t.Errorf("bad --gpus: %d %s", code, errs)
	}
}

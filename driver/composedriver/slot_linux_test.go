//go:build linux

package composedriver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/vllm"
)

const fixtures = "../../profiles/testdata/fixtures/"

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// userProject writes the user's medium.yml and .env, and an override
// that runs the simulator image in its place, into a fresh folder. The
// test holds the user's project (and container names) until it ends.
func userProject(t *testing.T, img string) (dir string, target orchestrator.Target) {
	t.Helper()
	dockertest.Exclusive(t)
	dir = t.TempDir()
	orig, err := os.ReadFile(fixtures + "medium.yml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "medium.yml"), orig, 0o644)
	env, _ := os.ReadFile(fixtures + "env.example")
	os.WriteFile(filepath.Join(dir, ".env"), env, 0o600)
	os.WriteFile(filepath.Join(dir, "sim.override.yml"), []byte("services:\n  vllm-medium-qwen3:\n    image: "+img+
		"\n    ports: !override\n      - \"127.0.0.1:"+fmt.Sprint(freePort(t))+":5002\"\n    environment:\n      - VLLM_SIM_TIME_SCALE=0.02\n"), 0o644)
	return dir, orchestrator.Target{Driver: "compose", Files: []string{filepath.Join(dir, "medium.yml"), filepath.Join(dir, "sim.override.yml")},
		EnvFile: filepath.Join(dir, ".env"), Project: "myia_vllm", Service: "vllm-medium-qwen3", GPUs: "off"}
}

// deployReady prepares a run on c, renders and deploys the candidate and
// waits until it serves.
func deployReady(t *testing.T, c *Compose, runID string, set vllm.Candidate) (orchestrator.Deployment, *orchestrator.Ready) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Prepare(ctx, runID); err != nil {
		t.Fatal(err)
	}
	plan, err := c.Render(ctx, orchestrator.Candidate{Name: "a", Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	dep, err := plan.Deploy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ready, err := dep.WaitReady(ctx, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return dep, ready
}

// A slot runs a candidate in its own project and container, on its port,
// from generated files beside the profile; the user's profile and
// service are not touched; docker-compose sees the slot's container; the
// end of the run removes the container and the files.
func TestComposeSlotContainer(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	dir, target := userProject(t, img)
	port := freePort(t)
	target.Slots = []orchestrator.SlotDef{{GPUs: "0,1", Port: freePort(t)}, {GPUs: "2,3", Port: port}}
	before, _ := os.ReadFile(filepath.Join(dir, "medium.yml"))
	ctx := context.Background()
	c, err := NewComposeSlot(ctx, target, 1, os.Environ(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Cleanup(func() { c.Restore(context.Background()) })
	set, err := vllm.NewCandidate([]string{"max-num-seqs=24"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dep, ready := deployReady(t, c, "run-slot", set)
	if ready.Endpoint != fmt.Sprintf("http://127.0.0.1:%d", port) {
		t.Errorf("endpoint %s, want the slot's port %d", ready.Endpoint, port)
	}
	if _, err := dep.Verify(ctx); err != nil {
		t.Errorf("verify: %v", err)
	}
	// GPU telemetry comes from the trial's container, through its engine:
	// here an nvidia-smi that replays real H100 output of vgrid's query.
	smi, err := os.ReadFile("../../benchmark/testdata/h100_query_gpu_noheader_nounits.csv")
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nwhile :; do printf '%s\\n' '" + strings.Split(strings.TrimSpace(string(smi)), "\n")[0] + "'; sleep 0.1; done\n"
	install := exec.Command("docker", "exec", "-i", "myia_vllm-medium-qwen3-vgrid-slot2", "sh", "-c", "cat > /usr/local/bin/nvidia-smi && chmod +x /usr/local/bin/nvidia-smi")
	install.Stdin = strings.NewReader(script)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("install a stand-in nvidia-smi: %v\n%s", err, out)
	}
	if ready.GPU == nil {
		t.Fatal("a slot's trial has no GPU source of its own")
	}
	g := benchmark.StartGPU(ctx, ready.GPU, 100*time.Millisecond)
	time.Sleep(600 * time.Millisecond)
	rep := g.Stop()
	if !rep.Available || len(rep.GPUs) != 1 || rep.GPUs[0].MemTotalMiB != 81559 || rep.GPUs[0].UUID != "GPU-5675a971-1c67-8b90-88cc-d36993190cbb" {
		t.Errorf("telemetry through the engine: %+v", rep)
	}

	// The state of the world.
	out := dockertest.Docker(t, "ps", "--filter", "label=com.docker.compose.project=myia_vllm-vgrid-slot2", "--filter", "label=io.vgrid.slot=2",
		"--format", "{{.Names}} {{.Label \"com.docker.compose.service\"}} {{.Ports}}")
	if !strings.HasPrefix(out, "myia_vllm-medium-qwen3-vgrid-slot2 vllm-medium-qwen3 ") || !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d->5002/tcp", port)) {
		t.Errorf("the slot's container, by compose labels: %q", out)
	}
	env := dockertest.Docker(t, "inspect", "myia_vllm-medium-qwen3-vgrid-slot2", "--format", "{{range .Config.Env}}{{println .}}{{end}}")
	if !strings.Contains(env, "NVIDIA_VISIBLE_DEVICES=2,3\n") {
		t.Errorf("the slot's container environment:\n%s", env)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "medium.yml")); string(after) != string(before) {
		t.Errorf("a slot's trial wrote the user's profile")
	}
	if b := dockertest.Docker(t, "ps", "-a", "--filter", "name=^myia_vllm-medium-qwen3$", "--format", "{{.Names}}"); b != "" {
		t.Errorf("the user's service has a container after a slot's trial: %q", b)
	}
	rendering := filepath.Join(dir, "medium.vgrid-slot2.yml")
	override := filepath.Join(dir, "medium.vgrid-slot2.override.yml")
	if r, err := os.ReadFile(rendering); err != nil || !strings.Contains(string(r), "--max-num-seqs 24") {
		t.Errorf("the slot's rendering %s: %v\n%s", rendering, err, r)
	}
	if cli, err := exec.LookPath("docker-compose"); err == nil {
		// docker-compose 1.x does not read !override; the project and
		// service labels are what it lists by.
		cmd := exec.Command(cli, "-p", "myia_vllm-vgrid-slot2", "-f", rendering, "--env-file", filepath.Join(dir, ".env"), "ps")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "myia_vllm-medium-qwen3-vgrid-slot2") {
			t.Errorf("docker-compose ps of the slot's project: %v\n%s", err, out)
		}
	}
	if err := c.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if b := dockertest.Docker(t, "ps", "-a", "--filter", "label=io.vgrid.slot", "--filter", "label=com.docker.compose.project=myia_vllm-vgrid-slot2", "--format", "{{.Names}}"); b != "" {
		t.Errorf("the slot's container is left after release: %q", b)
	}
	for _, f := range []string{rendering, override} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s is left after release (%v)", f, err)
		}
	}
}

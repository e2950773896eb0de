package compose

import (
	"context"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/vllm"
)

// stage copies a fixture to dir/configs/docker/profiles/ (the user's layout,
// so ../../../ in its volumes stays inside dir) and writes an override file
// next to it. It returns the project to load.
func stage(t testing.TB, fixture, override string, environ ...string) profiles.Project {
	t.Helper()
	dir, err := os.MkdirTemp("", "vgrid-compose-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pdir := filepath.Join(dir, "configs", "docker", "profiles")
	os.MkdirAll(pdir, 0o755)
	src, err := os.ReadFile(fixtures + fixture)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{filepath.Join(pdir, fixture)}
	os.WriteFile(files[0], src, 0o644)
	if override != "" {
		files = append(files, filepath.Join(pdir, "override.yml"))
		os.WriteFile(files[1], []byte(override), 0o644)
	}
	return profiles.Project{Files: files, EnvFiles: []string{fixtures + "env.example"}, Name: "myia_vllm", Environ: environ}
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func connect(t *testing.T) *Deployer {
	t.Helper()
	dockertest.BuildSimImage(t)
	dockertest.Exclusive(t)
	d, err := Connect(context.Background(), "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	cleanupProject("myia_vllm")
	t.Cleanup(func() { cleanupProject("myia_vllm") })
	return d
}

// cleanupProject removes what a test left of a compose project.
func cleanupProject(project string) {
	ids, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+LabelProject+"="+project).Output()
	for _, id := range strings.Fields(string(ids)) {
		exec.Command("docker", "rm", "-f", id).Run()
	}
	exec.Command("docker", "network", "rm", project+"_default").Run()
}

func load(t testing.TB, p profiles.Project, service string, opts ConvertOptions) *Spec {
	t.Helper()
	l, err := p.Load(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Convert(l.Project, service, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// simOverride swaps the image for the simulator and speeds it up.
func simOverride(service string, port int, env ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "services:\n  %s:\n    image: %s\n    environment:\n      - VLLM_SIM_TIME_SCALE=0.005\n", service, dockertest.SimImage)
	for _, e := range env {
		fmt.Fprintf(&b, "      - %s\n", e)
	}
	if port > 0 {
		fmt.Fprintf(&b, "    ports: !override\n      - \"127.0.0.1:%d:5002\"\n", port)
	}
	b.WriteString("    healthcheck:\n      interval: 1s\n      start_period: 60s\n")
	return b.String()
}

const medium = "vllm-medium-qwen3"

func deploy(t *testing.T, d *Deployer, s *Spec, opts ReadyOptions) (*Result, *Ready, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := d.Recreate(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	ready, err := d.WaitReady(ctx, s, res, opts)
	return res, ready, err
}

func TestDeployMediumIdempotentAndVisibleToCompose(t *testing.T) {
	d := connect(t)
	p := stage(t, "medium.yml", simOverride(medium, freePort(t)))
	s := load(t, p, medium, ConvertOptions{GPUsOff: true, APIVersion: d.APIVersion()})
	res, ready, err := deploy(t, d, s, ReadyOptions{})
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if res.Action != ActionCreated || ready.Boot.Weights == 0 || ready.Boot.Ready <= 0 {
		t.Errorf("action %s, boot %+v", res.Action, ready.Boot)
	}
	// The state of the world: docker compose's labels, running, healthy.
	out := dockertest.Docker(t, "ps", "--filter", "label=com.docker.compose.project=myia_vllm", "--filter", "label=com.docker.compose.service="+medium, "--format", "{{.Names}} {{.Status}}")
	if !strings.HasPrefix(out, "myia_vllm-medium-qwen3 Up") {
		t.Errorf("docker ps by compose labels: %q", out)
	}
	eff, err := vllm.ScrapeEffective(context.Background(), ready.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if f := vllm.CheckDrift(s.Flags, eff); f != "" {
		t.Errorf("drift on a correct deploy: %v", f)
	}
	// A server running other settings than the rendered flags is config_drift.
	other := append(vllm.Flags{}, s.Flags...)
	other = other.Apply(vllm.Candidate{{Name: "enable-prefix-caching", Value: "false"}})
	if f := vllm.CheckDrift(other, eff); !strings.Contains(f, "enable_prefix_caching: server true, flags false") {
		t.Errorf("want config_drift for prefix caching, got %v", f)
	}
	// Same config again: nothing is done.
	res2, err := d.Recreate(context.Background(), s)
	if err != nil || res2.Action != ActionUnchanged || res2.ContainerID != res.ContainerID {
		t.Errorf("second deploy: %+v, %v; want unchanged, same container", res2, err)
	}
	// A changed flag recreates it.
	p2 := stage(t, "medium.chunked_only_safe.yml", simOverride(medium, freePort(t)))
	s2 := load(t, p2, medium, ConvertOptions{GPUsOff: true})
	res3, _, err := deploy(t, d, s2, ReadyOptions{})
	if err != nil || res3.Action != ActionRecreated || res3.Replaced != res.ContainerID {
		t.Errorf("changed config: %+v, %v", res3, err)
	}
	// docker compose itself recognises the container (Debian ships compose
	// v1, which reads the same labels; .ci/run installs it).
	composeCLI, err := exec.LookPath("docker-compose")
	switch {
	case err != nil && os.Getenv("CI") != "":
		t.Fatal("docker-compose is not installed in CI")
	case err != nil:
		t.Log("docker-compose not installed: compose ps check not run")
	default:
		for _, sub := range []string{"ps", "logs"} {
			out, err := exec.Command(composeCLI, "-p", "myia_vllm", "-f", p2.Files[0], "--env-file", fixtures+"env.example", sub).CombinedOutput()
			want := "myia_vllm-medium-qwen3"
			if sub == "logs" {
				want = "Application startup complete"
			}
			if err != nil || !strings.Contains(string(out), want) {
				t.Errorf("docker-compose %s: %v\n%s", sub, err, out)
			}
		}
	}
}

func TestDesktopMemoryFailsFastWithVLLMLine(t *testing.T) {
	d := connect(t)
	p := stage(t, "medium.grid-baseline.yml", simOverride(medium, freePort(t), "VLLM_SIM_GPU_USED_MIB=1500,0"))
	s := load(t, p, medium, ConvertOptions{GPUsOff: true})
	start := time.Now()
	_, _, err := deploy(t, d, s, ReadyOptions{})
	var f *failure.Failure
	if !errors.As(err, &f) || f.Reason != failure.ReasonFreeMemory || !strings.Contains(f.Line, "Free memory on device cuda:0") {
		t.Fatalf("got %v, want free_memory with vLLM's line", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v to explain a boot failure", took)
	}
	if f.LineAt.IsZero() || f.DetectedAt.Sub(f.LineAt) > time.Second {
		t.Errorf("detected %v after the line was logged, want < 1s", f.DetectedAt.Sub(f.LineAt))
	}
	if len(f.Logs) == 0 || !strings.Contains(strings.Join(f.Logs, "\n"), "Traceback") && !strings.Contains(strings.Join(f.Logs, "\n"), "non-default args") {
		t.Errorf("log excerpt %q", f.Logs)
	}
}

// looper is a service whose shell script runs and exits, restarted by
// its policy (unless-stopped), with vLLM's port published.
func looper(t *testing.T, script string) *Spec {
	t.Helper()
	file := filepath.Join(t.TempDir(), "loop.yml")
	os.WriteFile(file, []byte(fmt.Sprintf(`services:
  looper:
    image: %s
    entrypoint: ["/bin/sh", "-c"]
    command: [%q]
    restart: unless-stopped
    ports: ["127.0.0.1:%d:8000"]
`, dockertest.SimImage, script, freePort(t))), 0o644)
	return load(t, profiles.Project{Files: []string{file}, Name: "myia_vllm"}, "looper", ConvertOptions{})
}

func TestCrashLoopDetectedByRestartCount(t *testing.T) {
	d := connect(t)
	s := looper(t, "echo booting; echo boom; exit 3")
	_, _, err := deploy(t, d, s, ReadyOptions{Timeout: 60 * time.Second})
	var f *failure.Failure
	if !errors.As(err, &f) || f.Reason != failure.ReasonCrashLoop || f.Restarts < 1 || f.ExitCode != 3 || f.Line != "boom" {
		t.Fatalf("got %+v (%v), want crash_loop, restarts >= 1, exit 3, line boom", f, err)
	}
}

// The ticker's inspect may see a restarted container before the die event
// reaches the live stream (CI saw "exit code not seen" once): the exit code
// is then read from the engine's event history.
func TestExitCodeReadFromEventHistory(t *testing.T) {
	d := connect(t)
	s := looper(t, "exit 3")
	since := time.Now()
	res, err := d.Recreate(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		out, _ := exec.Command("docker", "inspect", "-f", "{{.RestartCount}}", res.ContainerID).Output()
		if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); n >= 1 {
			break
		}
		if i == 100 {
			t.Fatalf("the container was not restarted within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	w := &watch{d: d, s: s, id: res.ContainerID, since: since}
	if code, ok := w.lastDie(context.Background()); !ok || code != 3 {
		t.Fatalf("lastDie = %d, %v; want 3, true", code, ok)
	}
}

func TestOrnithSidecarsUntouchedAndPhantomMountRefused(t *testing.T) {
	d := connect(t)
	sidecars := `services:
  watchdog-ornith15:
    image: %[1]s
    command: ["sleep 3600"]
    volumes: !reset []
  wedge-telemetry:
    image: %[1]s
    entrypoint: ["/bin/sh", "-c"]
    command: ["sleep 3600"]
    volumes: !reset []
`
	over := fmt.Sprintf(sidecars, dockertest.SimImage) + strings.TrimPrefix(simOverride("vllm-medium-ornith15", freePort(t)), "services:\n")
	// env.example's HF_CACHE_PATH is a Windows path that does not exist
	// here: create_host_path: false must make the engine refuse, loudly.
	p := stage(t, "medium-ornith15-awq.yml", over)
	side := map[string]string{}
	for _, svc := range []string{"watchdog-ornith15", "wedge-telemetry"} {
		res, err := d.Recreate(context.Background(), load(t, p, svc, ConvertOptions{}))
		if err != nil {
			t.Fatalf("sidecar %s: %v", svc, err)
		}
		side[svc] = res.ContainerID
	}
	vllm := load(t, p, "vllm-medium-ornith15", ConvertOptions{GPUsOff: true})
	_, err := d.Recreate(context.Background(), vllm)
	var f *failure.Failure
	if !errors.As(err, &f) || f.Reason != failure.ReasonCreate || !strings.Contains(f.Detail, "does not exist") {
		t.Fatalf("phantom HF mount: got %v, want the engine's refusal", err)
	}
	// With a real cache (a sparse 5 GiB blob satisfies the profile's guard).
	hf := t.TempDir()
	blobs := filepath.Join(hf, "hub", "models--ulkaa--Ornith-1.5-35B-A3B-AWQ-INT4", "blobs")
	os.MkdirAll(blobs, 0o755)
	fh, _ := os.Create(filepath.Join(blobs, "b"))
	fh.Truncate(5 << 30)
	fh.Close()
	p.Environ = []string{"HF_CACHE_PATH=" + hf}
	vllm = load(t, p, "vllm-medium-ornith15", ConvertOptions{GPUsOff: true})
	if _, _, err := deploy(t, d, vllm, ReadyOptions{}); err != nil {
		t.Fatalf("ornith15 deploy: %v", err)
	}
	for svc, id := range side {
		state := dockertest.Docker(t, "inspect", "-f", "{{.Id}} {{.State.Status}} {{.RestartCount}}", id)
		if state != id+" running 0" {
			t.Errorf("sidecar %s changed: %s", svc, state)
		}
	}
}

func TestUnreachableEngineAndEndpoints(t *testing.T) {
	d := connect(t)
	// Port not published.
	p := stage(t, "medium.yml", simOverride(medium, 0)+"    ports: !reset []\n")
	s := load(t, p, medium, ConvertOptions{GPUsOff: true})
	_, _, err := deploy(t, d, s, ReadyOptions{})
	var f *failure.Failure
	if !errors.As(err, &f) || f.Reason != failure.ReasonUnreachable || !strings.Contains(f.Detail, "not published") {
		t.Errorf("unpublished port: %v", err)
	}
	// Wrong endpoint: running and serving, but not where vgrid looks.
	p = stage(t, "medium.yml", simOverride(medium, freePort(t)))
	s = load(t, p, medium, ConvertOptions{GPUsOff: true})
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	_, _, err = deploy(t, d, s, ReadyOptions{UnreachableAfter: time.Second})
	if !errors.As(err, &f) || f.Reason != failure.ReasonUnreachable || !strings.Contains(f.Detail, "refused connections") {
		t.Errorf("wrong endpoint: %v", err)
	}
	// No engine at all.
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	var down *EngineDownError // a daemon's queued run waits for such an engine
	if _, err := Connect(context.Background(), "", zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "does not answer") || !errors.As(err, &down) {
		t.Errorf("no engine: %v", err)
	}
}

func TestMissingImageChangesNothing(t *testing.T) {
	d := connect(t)
	p := stage(t, "medium.yml", simOverride(medium, freePort(t)))
	s := load(t, p, medium, ConvertOptions{GPUsOff: true})
	res, _, err := deploy(t, d, s, ReadyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p = stage(t, "medium.yml", strings.Replace(simOverride(medium, freePort(t)), dockertest.SimImage, "vgrid-no-such-image:1", 1))
	bad := load(t, p, medium, ConvertOptions{GPUsOff: true})
	_, err = d.Recreate(context.Background(), bad)
	var f *failure.Failure
	if !errors.As(err, &f) || f.Reason != failure.ReasonImageMissing || !strings.Contains(f.Detail, "vgrid-no-such-image:1") {
		t.Fatalf("missing image: %v", err)
	}
	if state := dockertest.Docker(t, "inspect", "-f", "{{.State.Status}}", res.ContainerID); state != "running" {
		t.Errorf("the running service was touched: %s", state)
	}
	// A bad compose file and an unknown service fail before Docker is asked anything.
	broken := stage(t, "medium.yml", "services:\n  vllm-medium-qwen3:\n    ports: [unclosed\n")
	if _, err := broken.Load(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "override.yml") {
		t.Errorf("bad compose file: %v, want an error naming the file", err)
	}
	l, err := p.Load(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(l.Project, "nope", ConvertOptions{}); err == nil || !strings.Contains(err.Error(), `no service "nope"`) || !strings.Contains(err.Error(), medium) {
		t.Errorf("unknown service: %v", err)
	}
	// Without --gpus=off on a host without the NVIDIA runtime: a clear error, nothing changed.
	_, err = d.Recreate(context.Background(), load(t, stage(t, "medium.yml", simOverride(medium, freePort(t))), medium, ConvertOptions{}))
	if !errors.As(err, &f) || f.Reason != failure.ReasonNoGPURuntime || !strings.Contains(f.Detail, "--gpus=off") {
		t.Errorf("no NVIDIA runtime: %v", err)
	}
	if state := dockertest.Docker(t, "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", res.ContainerID); state != "running 0" {
		t.Errorf("the running service was touched: %s", state)
	}
	if n := dockertest.Docker(t, "ps", "-aq", "--filter", "label="+LabelProject+"=myia_vllm"); len(strings.Fields(n)) != 1 {
		t.Errorf("containers of the project: %q, want only the running service", n)
	}
}

//go:build linux

package main

import (
	"bufio"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/orchestrator"
)

// composeSlotsGrid writes the user's medium.yml (the simulator image in
// place of vLLM, boots scaled) and a grid of 8 candidates on it with the
// given slots (YAML flow entries; "" for none), and returns the grid's
// path and the profile's original bytes.
func composeSlotsGrid(t testing.TB, img, scale string, slots []string) (grid string, orig []byte) {
	t.Helper()
	dir := t.TempDir()
	orig, _ = os.ReadFile(fixtures + "medium.yml")
	os.WriteFile(filepath.Join(dir, "medium.yml"), orig, 0o644)
	env, _ := os.ReadFile(fixtures + "env.example")
	os.WriteFile(filepath.Join(dir, ".env"), env, 0o600)
	os.WriteFile(filepath.Join(dir, "sim.override.yml"), []byte("services:\n  vllm-medium-qwen3:\n    image: "+img+
		"\n    ports: !override\n      - \"127.0.0.1:"+fmt.Sprint(freePortT(t))+":5002\"\n    environment:\n      - VLLM_SIM_TIME_SCALE="+scale+"\n"), 0o644)
	slotsLine := ""
	if len(slots) > 0 {
		slotsLine = "\n  slots: [" + strings.Join(slots, ", ") + "]"
	}
	g := `name: slots
target:
  driver: compose
  files: [medium.yml, sim.override.yml]
  env_file: .env
  project: myia_vllm
  service: vllm-medium-qwen3
  gpus: "off"` + slotsLine + `
space:
  axes:
    gpu-memory-utilization: [0.85, 0.88, 0.90, 0.92]
    enable-prefix-caching: [true, false]
benchmark: {scenarios: [kv-cache], requests: 6}
objective: {maximize: kv-cache.acceleration}
tie: prefer lower gpu-memory-utilization
end: restore
`
	grid = filepath.Join(dir, "grid.yaml")
	os.WriteFile(grid, []byte(g), 0o644)
	return grid, orig
}

// userService gives a test the simulator image and the user's compose
// project (serialised with the other tests that use it), its service's
// container removed before and after.
func userService(t testing.TB) (img string) {
	t.Helper()
	img = dockertest.BuildSimImage(t)
	dockertest.Exclusive(t)
	clean := func() { exec.Command("docker", "rm", "-f", "myia_vllm-medium-qwen3").Run() }
	clean()
	t.Cleanup(clean)
	return img
}

// twoEngineSlots are 2 slots on the first engine and 2 on the second.
func twoEngineSlots(t testing.TB, second string) []string {
	return []string{
		fmt.Sprintf(`{gpus: "0,1", port: %d}`, freePortT(t)),
		fmt.Sprintf(`{gpus: "2,3", port: %d}`, freePortT(t)),
		fmt.Sprintf(`{gpus: "4,5", port: %d, docker_host: "%s"}`, freePortT(t), second),
		fmt.Sprintf(`{gpus: "6,7", port: %d, docker_host: "%s"}`, freePortT(t), second),
	}
}

// slotContainers lists the containers of vgrid's slots on an engine.
func slotContainers(t testing.TB, host string) string {
	out, err := exec.Command("docker", "-H", host, "ps", "-a", "--filter", "label=io.vgrid.slot", "--format", "{{.Names}}").CombinedOutput()
	if err != nil {
		t.Fatalf("docker -H %s ps: %v\n%s", host, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestComposeSlotsOnTwoEngines: the user's profile, 8 candidates, two
// slots on each of two real Docker engines. Every trial is measured, on
// both engines, each recording its slot and engine; the user's profile
// is the original at the end and its service runs again (end: restore)
// on its own engine; no slot container or generated file is left.
func TestComposeSlotsOnTwoEngines(t *testing.T) {
	img := userService(t)
	e2 := dockertest.SecondEngine(t, img)
	grid, orig := composeSlotsGrid(t, img, "0.02", twoEngineSlots(t, e2.Host))
	db := filepath.Join(t.TempDir(), "vgrid.db")
	code, out, errs := vgrid(t, "plan", grid, "--store", db)
	if code != 0 || !strings.Contains(out, "slots: 4 trials at once") || !strings.Contains(out, "on "+e2.Host) {
		t.Fatalf("plan: code %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = vgrid(t, "run", grid, "--store", db, "--quiet")
	// A champion is crowned; which one is not asserted: four simulated
	// slots share this machine's two cores, and the kv-cache intervals of
	// 6 requests overlap (a run in CI crowned caching off in a tie). The
	// benchmark compares champions with longer boots.
	if code != 0 || !regexp.MustCompile(`champion: gpu-memory-utilization=0\.\d+ enable-prefix-caching=(true|false)`).MatchString(out) ||
		!regexp.MustCompile(`time: [\d.]+s for the trials on 4 slots; recreate \+ boot \+ benchmark [\d.]+s in all \([\d.]+× the wall time\)`).MatchString(out) {
		t.Fatalf("run: code %d\n%s\n%s", code, out, errs)
	}
	st := openStore(t, db)
	run, _ := st.GetRun("latest")
	trials, _ := st.Trials(run.ID)
	st.Close()
	hosts := map[string]int{}
	for _, tr := range trials {
		if tr.Phase != orchestrator.PhaseDone {
			t.Errorf("trial %d %s: %s %v", tr.Seq, tr.Candidate.Name, tr.Phase, tr.Failure)
		}
		hosts[tr.Host]++
		if !strings.HasPrefix(tr.ImageID, "sha256:") {
			t.Errorf("trial %d records image ID %q", tr.Seq, tr.ImageID)
		}
	}
	if len(trials) != 8 || hosts[e2.Host] == 0 || hosts[e2.Host] == 8 {
		t.Errorf("%d trials; by host %v: want both engines used", len(trials), hosts)
	}
	if code, rep, errs := vgrid(t, "report", run.ID, "--store", db); code != 0 || !strings.Contains(rep, "## Where the trials ran") || !strings.Contains(rep, "| "+e2.Host+" |") {
		t.Errorf("report: code %d\n%s\n%s", code, rep, errs)
	}
	if got, _ := os.ReadFile(filepath.Join(filepath.Dir(grid), "medium.yml")); string(got) != string(orig) {
		t.Errorf("the profile is not the original after the run")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(grid), "*vgrid-slot*")); len(left) > 0 {
		t.Errorf("generated files left: %v", left)
	}
	if s := dockertest.Docker(t, "ps", "--filter", "name=^myia_vllm-medium-qwen3$", "--format", "{{.Status}}"); !strings.HasPrefix(s, "Up") {
		t.Errorf("the user's service after end: restore: %q", s)
	}
	for _, h := range []string{"unix:///var/run/docker.sock", e2.Host} {
		if c := slotContainers(t, h); c != "" {
			t.Errorf("slot containers left on %s: %s", h, c)
		}
	}
}

// TestComposeSlotEngineDies: the second engine is killed (SIGKILL, as a
// host that goes away) while its slots run trials: those trials end
// engine_unreachable, its slots get no more trials, and the first
// engine's slots measure every other candidate; the run ends with a
// champion and nothing on the first engine is left behind.
func TestComposeSlotEngineDies(t *testing.T) {
	img := userService(t)
	e2 := dockertest.SecondEngine(t, img)
	grid, _ := composeSlotsGrid(t, img, "0.02", twoEngineSlots(t, e2.Host))
	// The run waits 3 s for the killed engine to come back, then retires it.
	g, _ := os.ReadFile(grid)
	os.WriteFile(grid, append(g, "timeouts: {engine: 3s}\n"...), 0o644)
	db := filepath.Join(t.TempDir(), "vgrid.db")
	cmd := exec.Command(vgridBinary(t), "run", grid, "--store", db)
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Trials 3 and 4 start on the second engine's slots.
	sc := bufio.NewScanner(stdout)
	var out strings.Builder
	killed := false
	var killedAt time.Time
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if !killed && strings.HasPrefix(sc.Text(), "[3/8] benchmarking") {
			killedAt = time.Now()
			e2.Kill(t)
			killed = true
		}
	}
	err := cmd.Wait()
	if !killed {
		t.Fatalf("never saw trial 3 benchmarking:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, out.String(), stderr.String())
	}
	st := openStore(t, db)
	run, _ := st.GetRun("latest")
	trials, _ := st.Trials(run.ID)
	st.Close()
	// On the dead engine: trials that ended before the kill are
	// measured, the others end engine_unreachable, and none starts after
	// it. On the live one every trial is measured.
	gone := 0
	for _, tr := range trials {
		switch {
		case tr.Host == e2.Host && tr.Failure != nil && tr.Failure.Reason == failure.ReasonEngineGone:
			gone++
			if tr.Entered(orchestrator.PhaseRendering).After(killedAt) {
				t.Errorf("trial %d started on the dead engine after it died", tr.Seq)
			}
		case tr.Host == e2.Host && tr.Phase == orchestrator.PhaseDone:
			if endOf(tr).After(killedAt) {
				t.Errorf("trial %d on the dead engine measured after it died (ended %s, killed %s)", tr.Seq, endOf(tr), killedAt)
			}
		case tr.Phase != orchestrator.PhaseDone:
			t.Errorf("trial %d on %s: %s %v", tr.Seq, tr.Host, tr.Phase, tr.Failure)
		}
	}
	if len(trials) != 8 || gone == 0 || gone > 2 {
		t.Errorf("%d trials, %d engine_unreachable: want 8, one or two (the dead engine's slots)\n%s", len(trials), gone, out.String())
	}
	if run.State != orchestrator.RunDone || run.Champion == nil || run.Champion.Champion < 0 {
		t.Errorf("run %s, champion %+v", run.State, run.Champion)
	}
	if !strings.Contains(out.String(), "engine_unreachable") {
		t.Errorf("the live view does not say engine_unreachable:\n%s", out.String())
	}
	if c := slotContainers(t, "unix:///var/run/docker.sock"); c != "" {
		t.Errorf("slot containers left on the first engine: %s", c)
	}
}

// BenchmarkComposeSlotsWallTime runs the 8-candidate grid of the user's
// profile on the simulator image (boots at 1/10 of real time: ~17 s)
// once on the target alone (serial) and once on 2 engines × 2 slots, and
// reports the trials' wall time of the second against the first, and
// both champions. Both engines share this machine's cores.
//
//	go test ./cmd/vgrid -run '^$' -bench ComposeSlotsWallTime -benchtime 1x
func BenchmarkComposeSlotsWallTime(b *testing.B) {
	img := userService(b)
	e2 := dockertest.SecondEngine(b, img)
	for i := 0; i < b.N; i++ {
		var serial time.Duration
		var champs []string
		for _, slots := range [][]string{nil, twoEngineSlots(b, e2.Host)} {
			grid, _ := composeSlotsGrid(b, img, "0.1", slots)
			db := filepath.Join(b.TempDir(), "vgrid.db")
			code, out, errs := vgrid(b, "run", grid, "--store", db, "--quiet")
			if code != 0 {
				b.Fatalf("%d slots: code %d\n%s\n%s", len(slots), code, out, errs)
			}
			st := openStore(b, db)
			run, _ := st.GetRun("latest")
			trials, _ := st.Trials(run.ID)
			st.Close()
			wall := orchestrator.RunWall(trials)
			if slots == nil {
				serial = wall
			}
			champ := "none"
			if run.Champion != nil && run.Champion.Champion >= 0 {
				champ = run.Champion.Name
			}
			champs = append(champs, champ)
			b.Logf("%d slot(s): %d trials in %.1fs, %.2f of the serial wall time; champion %s", max(len(slots), 1), len(trials), wall.Seconds(), wall.Seconds()/serial.Seconds(), champ)
			b.ReportMetric(wall.Seconds()/serial.Seconds(), fmt.Sprintf("wall_vs_serial_%dslots", max(len(slots), 1)))
		}
		if champs[0] != champs[1] {
			b.Logf("champions differ: serial %s, slots %s (see the ties in each run's verdict)", champs[0], champs[1])
		}
	}
}

// TestComposeSlotsBadInput: an engine that does not answer, and an engine
// without the image, are refused before anything starts, naming the
// host; the profile is untouched and no container created.
func TestComposeSlotsBadInput(t *testing.T) {
	img := userService(t)
	bare := dockertest.SecondEngine(t) // no image loaded
	for _, c := range []struct{ host, want string }{
		{"unix:///nonexistent/docker.sock", "the Docker engine at unix:///nonexistent/docker.sock (the address given) does not answer"},
		{bare.Host, `is not on the Docker host ` + bare.Host},
	} {
		slots := []string{fmt.Sprintf(`{gpus: "0,1", port: %d}`, freePortT(t)), fmt.Sprintf(`{gpus: "2,3", port: %d, docker_host: "%s"}`, freePortT(t), c.host)}
		grid, orig := composeSlotsGrid(t, img, "0.02", slots)
		db := filepath.Join(t.TempDir(), "vgrid.db")
		code, out, errs := vgrid(t, "run", grid, "--store", db, "--quiet")
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("slot on %s: code %d, want an error saying %q\n%s\n%s", c.host, code, c.want, out, errs)
		}
		if got, _ := os.ReadFile(filepath.Join(filepath.Dir(grid), "medium.yml")); string(got) != string(orig) {
			t.Errorf("slot on %s: the profile changed", c.host)
		}
		if left := slotContainers(t, "unix:///var/run/docker.sock"); left != "" {
			t.Errorf("slot on %s: containers created: %s", c.host, left)
		}
		if s := dockertest.Docker(t, "ps", "-a", "--filter", "name=^myia_vllm-medium-qwen3$", "--format", "{{.Names}}"); s != "" {
			t.Errorf("slot on %s: the user's service was started: %s", c.host, s)
		}
		if _, err := os.Stat(db); err == nil {
			st := openStore(t, db)
			if run, err := st.GetRun("latest"); err == nil {
				if trials, _ := st.Trials(run.ID); len(trials) > 0 {
					t.Errorf("slot on %s: %d trials started", c.host, len(trials))
				}
			}
			st.Close()
		}
	}
}

// TestDaemonRunsComposeSlots: `vgrid serve` runs a compose grid on a slot
// of each of two engines: both serve trials, every trial is measured,
// and no slot container is left on either engine.
func TestDaemonRunsComposeSlots(t *testing.T) {
	img := userService(t)
	e2 := dockertest.SecondEngine(t, img)
	slots := []string{fmt.Sprintf(`{gpus: "0,1", port: %d}`, freePortT(t)), fmt.Sprintf(`{gpus: "2,3", port: %d, docker_host: "%s"}`, freePortT(t), e2.Host)}
	gridFile, _ := composeSlotsGrid(t, img, "0.02", slots)
	src, _ := os.ReadFile(gridFile)
	dir := filepath.Dir(gridFile)
	// The daemon reads the grid's text: its paths are absolute.
	grid := strings.NewReplacer("files: [medium.yml, sim.override.yml]", fmt.Sprintf("files: [%s, %s]", filepath.Join(dir, "medium.yml"), filepath.Join(dir, "sim.override.yml")),
		"env_file: .env", "env_file: "+filepath.Join(dir, ".env")).Replace(string(src))
	d := startDaemon(t, t.TempDir(), freePortT(t))
	id := d.submit(t, grid)
	state, trials := d.waitRun(t, id, 3*time.Minute, func(s string, _ []orchestrator.Trial) bool { return s != "queued" && s != "running" })
	hosts := map[string]int{}
	for _, tr := range trials {
		if tr.Phase != orchestrator.PhaseDone {
			t.Errorf("trial %d: %s %v", tr.Seq, tr.Phase, tr.Failure)
		}
		hosts[tr.Host]++
	}
	if state != "done" || len(trials) != 8 || hosts[e2.Host] == 0 || hosts[e2.Host] == 8 {
		t.Errorf("run %s, %d trials, by host %v", state, len(trials), hosts)
	}
	for _, h := range []string{"unix:///var/run/docker.sock", e2.Host} {
		if c := slotContainers(t, h); c != "" {
			t.Errorf("slot containers left on %s: %s", h, c)
		}
	}
}

// TestComposeSlotsSurviveKill9: vgrid killed with SIGKILL while two
// compose slots benchmark, then resumed: each slot's interrupted trial is
// redone once in its slot's container (the dead vgrid's owner label does
// not block it), every trial ends measured once, and the end leaves no
// slot container or generated file, and the original profile.
func TestComposeSlotsSurviveKill9(t *testing.T) {
	img := userService(t)
	grid, orig := composeSlotsGrid(t, img, "0.02", []string{fmt.Sprintf(`{gpus: "0,1", port: %d}`, freePortT(t)), fmt.Sprintf(`{gpus: "2,3", port: %d}`, freePortT(t))})
	t.Cleanup(func() {
		if c := slotContainers(t, "unix:///var/run/docker.sock"); c != "" {
			exec.Command("docker", append([]string{"rm", "-f"}, strings.Fields(c)...)...).Run()
		}
	})
	killAndResume(t, grid, "[3/8] benchmarking", 8)
	if c := slotContainers(t, "unix:///var/run/docker.sock"); c != "" {
		t.Errorf("slot containers left: %s", c)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(grid), "*vgrid-slot*")); len(left) > 0 {
		t.Errorf("generated files left: %v", left)
	}
	if got, _ := os.ReadFile(filepath.Join(filepath.Dir(grid), "medium.yml")); string(got) != string(orig) {
		t.Errorf("the profile is not the original after the run")
	}
}

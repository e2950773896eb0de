package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"github.com/vgrid/vgrid/internal/golden"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
)

// Tests of "every trial measured under the same conditions": they run the
// vgrid binary as real processes, the way a user does.

// quickGrid is the quickstart grid on a free port: load with rates: []
// (closed-loop levels only), 4 candidates, 2 of which fail to boot.
func quickGrid(t *testing.T, port int, scale string) string {
	t.Helper()
	g := fmt.Sprintf(`name: conditions
target:
  driver: process
  command: [vgrid, sim, serve, --model, Qwen/Qwen3-32B-AWQ, --host, 127.0.0.1, --port, "%d",
            --tensor-parallel-size, "2", --max-model-len, "32768", --kv-cache-dtype, fp8, --enable-prompt-tokens-details]
  endpoint: http://127.0.0.1:%d
  env: {VLLM_SIM_TIME_SCALE: "%s", VLLM_SIM_GPU_USED_MIB: "1500,0"}
space:
  axes:
    gpu-memory-utilization: [0.85, 0.95]
    enable-prefix-caching: [true, false]
benchmark:
  scenarios: [kv-cache, load]
  requests: 6
  concurrency: [1, 4]
  rates: []
constraints: [errors == 0]
objective: {maximize: kv-cache.acceleration}
tie: prefer lower gpu-memory-utilization
end: restore
hardware: {gpu_memory_mib: 24564, gpu_used_mib: [1500, 0]}
`, port, port, scale)
	p := filepath.Join(t.TempDir(), "grid.yaml")
	if err := os.WriteFile(p, []byte(g), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// binEnv is the environment of a vgrid process in these tests: its own
// home, so that nothing lands in the real user's data directory.
func binEnv(t *testing.T) []string {
	home := t.TempDir()
	return append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"), "VGRID_SERVER=", "VGRID_STORE=")
}

// runBin runs the vgrid binary to its end.
func runBin(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(vgridBinary(t), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// waitStore polls a store (read-only, as a user would during a run) until
// cond holds.
func waitStore(t *testing.T, db string, timeout time.Duration, cond func(r *orchestrator.Run, trials []*orchestrator.Trial) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if st, err := store.OpenReadOnly(db); err == nil {
			r, err := st.GetRun("latest")
			if err == nil {
				trials, _ := st.Trials(r.ID)
				if cond(r, trials) {
					st.Close()
					return
				}
			}
			st.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("store %s: condition not met within %s", db, timeout)
}

type export struct {
	Run     orchestrator.Run               `json:"run"`
	Trials  []*orchestrator.Trial          `json:"trials"`
	Reports map[string][]*benchmark.Report `json:"reports"`
}

// checkSameConditions asserts that every measured trial ran exactly the
// grid's benchmark: kv-cache, then load at concurrency 1 (6 requests) and
// 4 (8 requests), and no Poisson rate, since the grid says rates: [].
func checkSameConditions(t *testing.T, e export) {
	t.Helper()
	measured := 0
	var first *benchmark.Settings
	for _, tr := range e.Trials {
		if tr.Phase != orchestrator.PhaseDone {
			continue
		}
		measured++
		reps := e.Reports[fmt.Sprint(tr.Seq)]
		if len(reps) != 1 {
			t.Fatalf("trial %d: %d reports, want 1", tr.Seq, len(reps))
		}
		rep := reps[0]
		if rep.Settings == nil {
			t.Fatalf("trial %d: the report does not record its settings", tr.Seq)
		}
		if first == nil {
			first = rep.Settings
		} else if d := first.Diff(*rep.Settings); d != "" {
			t.Errorf("trial %d measured under other settings: %s", tr.Seq, d)
		}
		if len(rep.Settings.Config.Load.Rates) != 0 {
			t.Errorf("trial %d: rates %v, want none (the grid says rates: [])", tr.Seq, rep.Settings.Config.Load.Rates)
		}
		for _, s := range rep.Scenarios {
			if s.Name != "load" {
				continue
			}
			tags := map[string]int{}
			for _, r := range s.Results {
				tags[r.Tag]++
			}
			if len(s.Results) != 14 || tags["concurrency-1"] != 6 || tags["concurrency-4"] != 8 {
				t.Errorf("trial %d: load sent %d requests %v, want 14 (6 at concurrency 1, 8 at 4) and no rate", tr.Seq, len(s.Results), tags)
			}
		}
	}
	if measured != 2 {
		t.Errorf("%d trials measured, want 2", measured)
	}
	for _, rk := range e.Run.Champion.Ranking {
		if strings.Contains(rk.Why, "not comparable") {
			t.Errorf("verdict excludes trial %d: %s", rk.Seq, rk.Why)
		}
	}
}

// Issue 18 item 1: a grid's `rates: []` survives Ctrl-C and --resume; every
// trial, before and after the interruption, ran the same benchmark.
func TestResumedRunKeepsTheGridAsWritten(t *testing.T) {
	port := freePortT(t)
	grid := quickGrid(t, port, "0.02")
	db := filepath.Join(t.TempDir(), "vgrid.db")
	env := binEnv(t)
	cmd := exec.Command(vgridBinary(t), "run", grid, "--store", db)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitStore(t, db, 60*time.Second, func(_ *orchestrator.Run, trials []*orchestrator.Trial) bool {
		return len(trials) == 4 && trials[0].Phase == orchestrator.PhaseDone
	})
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("after Ctrl-C: %v, want exit status 130\n%s", err, out.String())
	}
	st, _ := store.OpenReadOnly(db)
	r, _ := st.GetRun("latest")
	st.Close()
	if r.State != orchestrator.RunInterrupted || r.GridSource == "" || !strings.Contains(r.GridSource, "rates: []") {
		t.Fatalf("interrupted run: state %s, grid source %q", r.State, r.GridSource)
	}
	if code, o, e := runBin(t, env, "run", "--resume", "latest", "--store", db); code != 0 {
		t.Fatalf("resume: exit %d\n%s%s", code, o, e)
	}
	code, js, e := runBin(t, env, "runs", "export", "latest", "--format", "json", "--store", db)
	if code != 0 {
		t.Fatalf("export: %d %s", code, e)
	}
	var ex export
	if err := json.Unmarshal([]byte(js), &ex); err != nil {
		t.Fatal(err)
	}
	if ex.Trials[1].Attempts < 1 || ex.Trials[1].Entered(orchestrator.PhaseRendering).Before(r.Updated) {
		t.Errorf("trial 1 was not measured after the resume (the test would not cover a resumed trial)")
	}
	checkSameConditions(t, ex)
	// The report names the settings it compared under.
	_, md, _ := runBin(t, env, "report", "latest", "--store", db)
	if !strings.Contains(md, "- benchmark: scenarios kv-cache, load;") || !strings.Contains(md, "Poisson rates none") {
		t.Errorf("report does not show the benchmark settings:\n%s", md)
	}
}

// Issue 18 items 1 and 5: through the daemon, the grid as written is what
// runs, and runs export --server reads the daemon's store, creating no
// local one.
func TestDaemonRunKeepsTheGridAsWritten(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, freePortT(t))
	grid := quickGrid(t, freePortT(t), "0.01")
	env := binEnv(t)
	tokenFile := filepath.Join(dir, "token")
	code, o, e := runBin(t, env, "run", grid, "--server", d.url, "--server-token-file", tokenFile)
	if code != 0 {
		t.Fatalf("run --server: exit %d\n%s%s", code, o, e)
	}
	code, js, e := runBin(t, env, "runs", "export", "latest", "--format", "json", "--server", d.url, "--server-token-file", tokenFile)
	if code != 0 {
		t.Fatalf("export --server: exit %d: %s", code, e)
	}
	var ex export
	if err := json.Unmarshal([]byte(js), &ex); err != nil {
		t.Fatalf("export --server is not the run's JSON: %v\n%.300s", err, js)
	}
	checkSameConditions(t, ex)
	home := strings.TrimPrefix(env[len(env)-4], "HOME=")
	if _, err := os.Stat(filepath.Join(home, "data", "vgrid")); err == nil {
		t.Error("export --server created a local store")
	}
}

// Issue 18 item 2: two vgrids on different stores cannot drive the same
// target: the second is refused before it touches anything, and the first
// measures only its own servers.
func TestTwoStoresOneTarget(t *testing.T) {
	port := freePortT(t)
	grid := quickGrid(t, port, "0.02")
	dir := t.TempDir()
	env := binEnv(t)
	a := exec.Command(vgridBinary(t), "run", grid, "--store", filepath.Join(dir, "a.db"))
	a.Env = env
	var aout bytes.Buffer
	a.Stdout, a.Stderr = &aout, &aout
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	waitStore(t, filepath.Join(dir, "a.db"), 30*time.Second, func(r *orchestrator.Run, _ []*orchestrator.Trial) bool {
		return r.State == orchestrator.RunRunning
	})
	start := time.Now()
	code, o, e := runBin(t, env, "run", grid, "--store", filepath.Join(dir, "b.db"))
	if code != 1 || !strings.Contains(e, "is driven by run ") || !strings.Contains(e, "a.db") {
		t.Errorf("second vgrid on the same target: exit %d\n%s%s", code, o, e)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refusal took %s", d)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("first vgrid: %v\n%s", err, aout.String())
	}
	st, _ := store.OpenReadOnly(filepath.Join(dir, "a.db"))
	defer st.Close()
	r, _ := st.GetRun("latest")
	trials, _ := st.Trials(r.ID)
	for _, tr := range trials {
		// A boot of this model at time scale 0.02 takes 3.3 s: a trial
		// "ready" sooner measured someone else's server.
		if tr.Phase == orchestrator.PhaseDone && tr.Boot.Ready < 2.5 {
			t.Errorf("trial %d ready after %.1fs, faster than any boot", tr.Seq, tr.Boot.Ready)
		}
	}
	if b, err := store.OpenReadOnly(filepath.Join(dir, "b.db")); err == nil {
		runs, _ := b.Runs()
		b.Close()
		if len(runs) != 0 {
			t.Errorf("the refused vgrid recorded %d run(s)", len(runs))
		}
	}
}

// Issue 18 items 3 and 4: read-only commands work while a run writes,
// change nothing in the file, and a damaged store is an error (never a
// panic) with vgrid store check to say what is damaged.
func TestStoreReadersAndDamage(t *testing.T) {
	port := freePortT(t)
	grid := quickGrid(t, port, "0.02")
	db := filepath.Join(t.TempDir(), "vgrid.db")
	env := binEnv(t)
	run := exec.Command(vgridBinary(t), "run", grid, "--store", db)
	run.Env = env
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	waitStore(t, db, 30*time.Second, func(r *orchestrator.Run, trials []*orchestrator.Trial) bool {
		return r.State == orchestrator.RunRunning && len(trials) > 0
	})
	// While the run writes: list, show and report answer.
	for _, args := range [][]string{{"runs", "list"}, {"runs", "show", "latest"}, {"report", "latest"}} {
		code, o, e := runBin(t, env, append(args, "--store", db)...)
		if code != 0 || (args[0] == "runs" && args[1] == "list" && !strings.Contains(o, "running")) {
			t.Errorf("vgrid %v during a run: exit %d\n%s%s", args, code, o, e)
		}
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	hash := func(p string) [32]byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	before := hash(db)
	for _, args := range [][]string{{"runs", "list"}, {"runs", "show", "latest"}, {"report", "latest", "--format", "csv"}, {"store", "check"}} {
		if code, _, e := runBin(t, env, append(args, "--store", db)...); code != 0 {
			t.Errorf("vgrid %v: exit %d: %s", args, code, e)
		}
	}
	if hash(db) != before {
		t.Error("read-only commands changed the store file")
	}
	missing := filepath.Join(t.TempDir(), "nope.db")
	if code, _, e := runBin(t, env, "runs", "list", "--store", missing); code != 1 || !strings.Contains(e, "no store at "+missing) {
		t.Errorf("missing store: exit %d: %s", code, e)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("runs list created a missing store")
	}

	// The damage: dd if=/dev/urandom of=half.db bs=4096 seek=8 count=8 conv=notrunc.
	half := filepath.Join(t.TempDir(), "half.db")
	b, _ := os.ReadFile(db)
	os.WriteFile(half, b, 0o600)
	dd := exec.Command("dd", "if=/dev/urandom", "of="+half, "bs=4096", "seek=8", "count=8", "conv=notrunc")
	if o, err := dd.CombinedOutput(); err != nil {
		t.Fatalf("dd: %v %s", err, o)
	}
	damaged := hash(half)
	for _, args := range [][]string{{"runs", "list"}, {"runs", "show", "latest"}, {"report", "latest"}, {"runs", "export", "latest"}} {
		code, _, e := runBin(t, env, append(args, "--store", half)...)
		if strings.Contains(e, "panic") || strings.Contains(e, "goroutine ") || code > 1 {
			t.Errorf("vgrid %v on a damaged store: exit %d\n%s", args, code, e)
		}
	}
	code, o, e := runBin(t, env, "store", "check", "--store", half)
	if code != 1 || !strings.Contains(o, "damaged:") || !strings.Contains(e, "is damaged") {
		t.Errorf("store check on a damaged store: exit %d\n%s%s", code, o, e)
	}
	if hash(half) != damaged {
		t.Error("reading a damaged store changed it")
	}
	// vgrid run kept a backup when it closed the store: the damaged store's
	// messages point to it (never from one command to another and back),
	// plan does not call the damaged file "no store yet", restore puts the
	// backup back and keeps the damaged file.
	os.WriteFile(half+".backup", mustRead(t, db+".backup"), 0o600)
	code, o, e = runBin(t, env, "store", "check", "--store", half)
	if code != 1 || !strings.Contains(e, "vgrid store restore --store "+half) || strings.Contains(e, "runs list") {
		t.Errorf("store check with a backup: exit %d\n%s%s", code, o, e)
	}
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, []byte("not a bbolt file, not a store: 100 bytes of something else, written over the real one by mistake......"), 0o600)
	for _, args := range [][]string{{"runs", "list"}, {"store", "check"}} {
		code, o, e := runBin(t, env, append(args, "--store", junk)...)
		if code != 1 || !strings.Contains(o+e, "start a new store with --store") || strings.Contains(o+e, "runs list") || strings.Contains(o+e, "nil pointer") {
			t.Errorf("vgrid %v on a file that is no store: exit %d\n%s%s", args, code, o, e)
		}
	}
	if code, o, _ := runBin(t, env, "plan", grid, "--store", junk); code != 0 || strings.Contains(o, "no store yet") || !strings.Contains(o, "the store was not read") {
		t.Errorf("plan with a damaged store: exit %d\n%s", code, o)
	}
	code, o, e = runBin(t, env, "store", "restore", "--store", half)
	if code != 0 || !strings.Contains(o, "kept as "+half+".damaged-") {
		t.Fatalf("store restore: exit %d\n%s%s", code, o, e)
	}
	if code, o, e := runBin(t, env, "store", "check", "--store", half); code != 0 || !strings.Contains(o, "no problem found") {
		t.Errorf("after restore: exit %d\n%s%s", code, o, e)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Issue 18 item 7: usage errors exit 2, a run that measured nothing exits
// 1 (TestEngineDeathMidBenchmark), Ctrl-C exits 130 (above).
func TestUsageExitCodes(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"report"}, {"runs", "bogus"}, {"runs", "show"}, {"run"}, {"plan"}, {"runs", "list", "--nope"}} {
		code, _, errs := vgrid(t, args...)
		if code != 2 {
			t.Errorf("vgrid %v: exit %d (%s), want 2", args, code, strings.TrimSpace(errs))
		}
	}
	if _, _, errs := vgrid(t, "runz"); !strings.Contains(errs, `did you mean run, runs?`) {
		t.Errorf("unknown command without a suggestion: %s", errs)
	}
	// A command without a daemon form refuses --server instead of ignoring it.
	if code, _, errs := vgrid(t, "plan", "x.yaml", "--server", "http://127.0.0.1:1"); code != 2 || !strings.Contains(errs, "runs here, not on a daemon") {
		t.Errorf("plan --server: exit %d %s", code, errs)
	}
}

// Issue 18 item 6: every --flag an error message names exists.
func TestErrorsNameRealFlags(t *testing.T) {
	root := (&app{}).rootCommand()
	known := map[string]bool{"help": true, "version": true}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	flagRe := regexp.MustCompile(`--[a-z][a-z0-9-]+`)
	cases := [][]string{
		{"runs", "list", "--server", "http://127.0.0.1:1"},
		{"run", "x.yaml", "--server", "http://127.0.0.1:1", "--server-token-file", "/nonexistent"},
		{"runs", "cancel", "x"},
		{"bench"},
		{"bench", "--endpoint", "http://x", "--workload", "sharegpt"},
		{"report", "x", "--table", "nope"},
		{"run", "x.yaml", "--resume", "latest"},
	}
	for _, args := range cases {
		_, _, errs := vgrid(t, args...)
		for _, m := range flagRe.FindAllString(errs, -1) {
			if !known[strings.TrimPrefix(m, "--")] {
				t.Errorf("vgrid %v names %s, which is no flag of vgrid: %s", args, m, errs)
			}
		}
		if errs == "" {
			t.Errorf("vgrid %v: no error", args)
		}
	}
}

// Issue 18 item 8: the version, from the build information, everywhere.
func TestVersion(t *testing.T) {
	env := binEnv(t)
	code, o, _ := runBin(t, env, "version")
	if code != 0 || !strings.HasPrefix(o, "vgrid ") || !strings.Contains(o, " go1.") {
		t.Errorf("vgrid version: %d %q", code, o)
	}
	code, o2, _ := runBin(t, env, "--version")
	if code != 0 || strings.TrimSpace(o2) != strings.TrimSpace(o) {
		t.Errorf("--version %q differs from version %q", o2, o)
	}
	dir := t.TempDir()
	d := startDaemon(t, dir, freePortT(t))
	if c, body := d.call(t, "GET", "/healthz", d.token, ""); c != 200 || !strings.Contains(body, strings.TrimSpace(strings.TrimPrefix(o, "vgrid "))) {
		t.Errorf("healthz with the token %s does not report %q", body, o)
	}
	if c, body := d.call(t, "GET", "/healthz", "", ""); c != 200 || strings.Contains(body, "version") {
		t.Errorf("healthz without the token says more than ok: %s", body)
	}
	id := d.submit(t, simGrid(freePortT(t), "0.005", 1))
	_, _ = d.waitRun(t, id, 60*time.Second, func(state string, _ []orchestrator.Trial) bool { return state == "done" })
	_, js := d.call(t, "GET", "/v1/runs/"+id, d.token, "")
	if !strings.Contains(js, `"vgrid_version":"`+strings.TrimSpace(strings.TrimPrefix(o, "vgrid "))) {
		t.Errorf("the stored run does not record the vgrid version: %.400s", js)
	}
}

// Issue 18 item 9: in a terminal, one live view: each trial's outcome
// once, no log lines on the screen; the log goes to the run's vgrid.log.
func TestTerminalShowsOneLiveView(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatalf("script(1) (util-linux) runs vgrid in a pseudo-terminal: %v", err)
	}
	port := freePortT(t)
	grid := quickGrid(t, port, "0.01")
	db := filepath.Join(t.TempDir(), "vgrid.db")
	cmd := exec.Command("script", "-qefc", vgridBinary(t)+" run "+grid+" --store "+db, "/dev/null")
	cmd.Env = binEnv(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vgrid run in a terminal: %v\n%s", err, out)
	}
	screen := string(out)
	if strings.Contains(screen, "trial phase") || strings.Contains(screen, "INF ") {
		t.Errorf("log lines on the terminal:\n%s", screen)
	}
	for _, want := range []string{"[1/4] done", "[2/4] done", "[3/4] failed (free_memory)", "[4/4] failed (free_memory)", "log: "} {
		if n := strings.Count(screen, want); n != 1 {
			t.Errorf("%q appears %d times, want once:\n%s", want, n, screen)
		}
	}
	st, _ := store.OpenReadOnly(db)
	r, _ := st.GetRun("latest")
	logPath := filepath.Join(st.RunDir(r.ID), "vgrid.log")
	st.Close()
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), "trial phase") {
		t.Errorf("run log %s: %v\n%.300s", logPath, err, b)
	}
}

// Issue 18 items 12 and 13: plan estimates from the target's own time
// scale, then from the store's history; the process driver's logs live
// with the run and go with vgrid runs delete.
func TestPlanEstimateAndRunFiles(t *testing.T) {
	port := freePortT(t)
	grid := quickGrid(t, port, "0.02")
	db := filepath.Join(t.TempDir(), "vgrid.db")
	env := binEnv(t)
	code, o, e := runBin(t, env, "plan", grid, "--store", db)
	if code != 0 || !strings.Contains(o, "4 from model") || !strings.Contains(o, "simulator time scale 0.02") {
		t.Fatalf("plan without history: %d\n%s%s", code, o, e)
	}
	est := estimated(t, o)
	if est > time.Minute || est < 2*time.Second {
		t.Errorf("plan estimates %s for a run of about 8 s at time scale 0.02", est)
	}
	start := time.Now()
	if code, o, e := runBin(t, env, "run", grid, "--store", db); code != 0 {
		t.Fatalf("run: %d\n%s%s", code, o, e)
	}
	took := time.Since(start)
	code, o, _ = runBin(t, env, "plan", grid, "--store", db)
	if code != 0 || !strings.Contains(o, "from median of 2 trial(s)") || !strings.Contains(o, "from median of 2 failed boot(s)") {
		t.Errorf("plan with history:\n%s", o)
	}
	if est := estimated(t, o); est < took/3 || est > 3*took {
		t.Errorf("plan from history estimates %s; the run took %s", est, took)
	}
	st, _ := store.OpenReadOnly(db)
	r, _ := st.GetRun("latest")
	logs := filepath.Join(st.RunDir(r.ID), "logs")
	st.Close()
	ls, err := os.ReadDir(logs)
	if err != nil || len(ls) < 4 {
		t.Fatalf("the run's server logs in %s: %v (%d files)", logs, err, len(ls))
	}
	for _, e := range ls { // a server's log may quote prompts and keys: the store's user only
		if fi, err := e.Info(); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("server log %s has mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	if code, _, e := runBin(t, env, "runs", "delete", "latest", "--store", db); code != 2 || !strings.Contains(e, "--yes") {
		t.Errorf("runs delete latest without --yes: %d %s", code, e)
	}
	if code, o, e := runBin(t, env, "runs", "delete", r.ID, "--store", db); code != 0 || !strings.Contains(o, "deleted "+r.ID) {
		t.Fatalf("runs delete: %d %s%s", code, o, e)
	}
	if _, err := os.Stat(logs); err == nil {
		t.Error("runs delete left the run's logs")
	}
	if code, _, e := runBin(t, env, "runs", "show", r.ID, "--store", db); code != 1 || !strings.Contains(e, "not found") {
		t.Errorf("deleted run still shows: %d %s", code, e)
	}
}

// estimated reads "estimated 7s" from plan's last line.
func estimated(t *testing.T, out string) time.Duration {
	t.Helper()
	_, rest, ok := strings.Cut(out, "; estimated ")
	if !ok {
		t.Fatalf("no estimate in:\n%s", out)
	}
	d, err := time.ParseDuration(strings.Fields(rest)[0])
	if err != nil {
		t.Fatalf("estimate %q: %v", rest, err)
	}
	return d
}

// Issue 18 item 14: completion offers run IDs, scenarios and vLLM flags.
func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "vgrid.db")
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	r := orchestrator.NewRun(&orchestrator.Grid{Name: "g"}, "g.yaml", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "t", "test")
	st.PutRun(r)
	st.Close()
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "runs", "show", "--store", db, ""}, []string{"latest", r.ID}},
		{[]string{"__complete", "report", "--store", db, "2026"}, []string{r.ID}},
		{[]string{"__complete", "bench", "--scenario", ""}, []string{"kv-cache", "sweep"}},
		{[]string{"__complete", "profile", "set", "-f", "x.yml", "gpu-mem"}, []string{"gpu-memory-utilization="}},
		{[]string{"__complete", "profile", "set", "-f", "x.yml", "kv-cache-dtype="}, []string{"kv-cache-dtype=fp8"}},
	}
	for _, c := range cases {
		code, out, errs := vgrid(t, c.args...)
		for _, w := range c.want {
			if code != 0 || !strings.Contains(out, w) {
				t.Errorf("vgrid %v: %d, want %q among\n%s%s", c.args, code, w, out, errs)
			}
		}
	}
}

// Issue 12 item 6: grid import writes no one user's setup by default, and
// the examples are exactly what their documented import command writes.
func TestGridImport(t *testing.T) {
	for _, c := range []struct{ json, example string }{
		{"testdata/grid_search_configs.json", "../../examples/mission14.yaml"},
		{"testdata/grid_search_configs_validation.json", "../../examples/mission14-validation.yaml"},
	} {
		code, out, errs := vgrid(t, "grid", "import", c.json, "--service", "vllm-medium-qwen3", "--api-key-env", "VLLM_API_KEY_MEDIUM",
			"--gpu-memory-mib", "24564", "--gpu-used-mib", "1500,0")
		want, _ := os.ReadFile(c.example)
		if code != 0 || out != string(want) {
			t.Errorf("%s: exit %d %s\n%s", c.json, code, errs, golden.FirstDiff(string(want), out))
		}
	}
	// Without flags and without nvidia-smi: no hardware, no key variable,
	// no service, and a warning that says so.
	code, out, errs := vgrid(t, "grid", "import", "testdata/grid_search_configs.json")
	if code != 0 || strings.Contains(out, "hardware:") || strings.Contains(out, "api_key_env") || strings.Contains(out, "service:") ||
		!strings.Contains(errs, "no hardware section") {
		t.Errorf("import without flags: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, errs := vgrid(t, "grid", "import", "testdata/grid_search_configs.json", "--gpu-used-mib", "1500,0"); code != 2 || !strings.Contains(errs, "needs --gpu-memory-mib") {
		t.Errorf("used without total: %d %s", code, errs)
	}
}

// vgrid plan and vgrid run refuse a grid no candidate of which can start
// (the server's program is not installed), instead of failing every trial.
func TestNothingCanStart(t *testing.T) {
	dir := t.TempDir()
	grid := filepath.Join(dir, "g.yaml")
	os.WriteFile(grid, []byte(`name: nothing
target: {driver: process, command: [vllm-not-installed-here, serve, --model, m], endpoint: "http://127.0.0.1:1"}
space: {axes: {max-num-seqs: [8, 16]}}
benchmark: {scenarios: [kv-cache], requests: 4}
objective: {maximize: kv-cache.acceleration}
end: restore
`), 0o644)
	db := filepath.Join(dir, "vgrid.db")
	env := append(os.Environ(), "VGRID_STORE="+db)
	code, o, e := runBin(t, env, "plan", grid)
	if code != 1 || !strings.Contains(e, `no candidate can start`) || !strings.Contains(e, `"vllm-not-installed-here"`) {
		t.Errorf("plan: exit %d\n%s%s", code, o, e)
	}
	code, o, e = runBin(t, env, "run", grid)
	if code != 1 || !strings.Contains(e, "no candidate can start") {
		t.Errorf("run: exit %d\n%s%s", code, o, e)
	}
	// The store exists (vgrid run opened it) but holds no run.
	code, o, e = runBin(t, env, "runs", "list")
	if code != 0 || strings.Contains(o, "nothing") {
		t.Errorf("run: exit %d\n%s%s", code, o, e)
	}
	st, err := store.OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if r, err := st.GetRun("latest"); err == nil {
		t.Errorf("the refused run was stored (%s)", r.State)
	}
}

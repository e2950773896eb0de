package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vgrid/vgrid/orchestrator"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// vgridBinary builds cmd/vgrid once per test process.
func vgridBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vgrid-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "vgrid")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type daemonProc struct {
	cmd   *exec.Cmd
	url   string
	token string
	done  chan error
	log   *strings.Builder
}

func startDaemon(t *testing.T, dir string, port int) *daemonProc {
	t.Helper()
	cmd := exec.Command(vgridBinary(t), "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--store", filepath.Join(dir, "vgrid.db"))
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &syncWriter{b: &log}, &syncWriter{b: &log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan error, 1), log: &log}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); <-d.done })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(d.url + "/healthz"); err == nil {
			resp.Body.Close()
			b, _ := os.ReadFile(filepath.Join(dir, "token"))
			d.token = strings.TrimSpace(string(b))
			return d
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("daemon did not start:\n%s", log.String())
	return nil
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (d *daemonProc) call(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, d.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (d *daemonProc) submit(t *testing.T, grid string) string {
	t.Helper()
	code, body := d.call(t, "POST", "/v1/runs?name=g.yaml", d.token, grid)
	if code != 202 {
		t.Fatalf("submit: %d %s", code, body)
	}
	var r struct{ ID string }
	json.Unmarshal([]byte(body), &r)
	return r.ID
}

// state polls a run until cond holds or the timeout passes.
func (d *daemonProc) waitRun(t *testing.T, id string, timeout time.Duration, cond func(state string, trials []orchestrator.Trial) bool) (string, []orchestrator.Trial) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := d.call(t, "GET", "/v1/runs/"+id, d.token, "")
		var v struct {
			State  string               `json:"state"`
			Trials []orchestrator.Trial `json:"trials"`
		}
		json.Unmarshal([]byte(body), &v)
		if code == 200 && cond(v.State, v.Trials) {
			return v.State, v.Trials
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: condition not met after %s: state %s\n%s", id, timeout, v.State, d.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func simGrid(port int, scale string, candidates int) string {
	cands := ""
	for i := 0; i < candidates; i++ {
		pc := "true"
		if i%2 == 1 {
			pc = "false"
		}
		cands += fmt.Sprintf("    - {name: c%d, flags: {enable-prefix-caching: %q, max-num-seqs: \"%d\"}}\n", i, pc, 8+i)
	}
	return fmt.Sprintf(`name: daemon-test
target:
  driver: process
  command: [vgrid, sim, serve, --model, m, --host, 127.0.0.1, --port, "%d", --max-model-len, "8192", --gpu-memory-utilization, "0.5", --enable-prompt-tokens-details]
  endpoint: http://127.0.0.1:%d
  env: {VLLM_SIM_TIME_SCALE: "%s"}
space:
  candidates:
%sbenchmark:
  scenarios: [kv-cache]
  requests: 4
objective: {maximize: kv-cache.acceleration}
end: restore
`, port, port, scale, cands)
}

func TestDaemonAPI(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, freePortT(t))
	if info, err := os.Stat(filepath.Join(dir, "token")); err != nil || info.Mode().Perm() != 0o600 || len(d.token) < 32 {
		t.Fatalf("token file: %v %v", info, err)
	}
	if code, _ := d.call(t, "GET", "/v1/runs", "", ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := d.call(t, "GET", "/v1/runs", "wrong-token-wrong-token", ""); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	if code, body := d.call(t, "GET", "/healthz", "", ""); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("healthz: %d %s", code, body)
	}
	if code, body := d.call(t, "POST", "/v1/runs?name=bad.yaml", d.token, "name: x\nbogus: 1\n"); code != 400 || !strings.Contains(body, "bad.yaml:2: unknown key `bogus` in the grid") {
		t.Errorf("bad grid: %d %s", code, body)
	}
	// A flag the server does not know is refused as a key typo is: 400, nothing queued.
	typo := strings.Replace(simGrid(freePortT(t), "0.005", 2), "max-num-seqs: \"8\"", "max-num-sqs: \"8\"", 1)
	if code, body := d.call(t, "POST", "/v1/runs?name=typo.yaml", d.token, typo); code != 400 || !strings.Contains(body, "--max-num-sqs is not a flag") {
		t.Errorf("a flag typo: %d %s", code, body)
	}
	if _, body := d.call(t, "GET", "/v1/runs", d.token, ""); body != "[]\n" {
		t.Errorf("refused grids were queued: %s", body)
	}
	// The CLI against the daemon: submit, follow the SSE events, read the verdict.
	grid := filepath.Join(dir, "grid.yaml")
	os.WriteFile(grid, []byte(simGrid(freePortT(t), "0.005", 2)), 0o644)
	tokFile := filepath.Join(dir, "token")
	out, err := exec.Command(vgridBinary(t), "run", grid, "--server", d.url, "--server-token-file", tokFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "trial 1: benchmarking -> done") || !strings.Contains(string(out), "champion: c0") {
		t.Fatalf("vgrid run --server: %v\n%s", err, out)
	}
	id := strings.Fields(string(out))[1]
	out, err = exec.Command(vgridBinary(t), "report", id, "--server", d.url, "--server-token-file", tokFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "## Champion: c0") {
		t.Errorf("report --server: %v\n%s", err, out)
	}
	// runs show: the same human table from the daemon and from the store,
	// with each trial's objective and its interval; hints carry the source.
	remote, err := exec.Command(vgridBinary(t), "runs", "show", id, "--server", d.url, "--server-token-file", tokFile).CombinedOutput()
	if err != nil {
		t.Fatalf("runs show --server: %v\n%s", err, remote)
	}
	local, err := exec.Command(vgridBinary(t), "runs", "show", id, "--store", filepath.Join(dir, "vgrid.db")).CombinedOutput()
	if err != nil {
		t.Fatalf("runs show --store: %v\n%s", err, local)
	}
	cut := func(b []byte) string { s, _, _ := strings.Cut(string(b), "report: "); return s }
	if cut(remote) != cut(local) || !regexp.MustCompile(`done\s+\d+\.\ds\s+\d[\d.]* \[[\d.]+, [\d.]+\]\s+c0`).Match(local) ||
		!strings.Contains(string(remote), "--server "+d.url) || !strings.Contains(string(local), "--store "+filepath.Join(dir, "vgrid.db")) {
		t.Errorf("runs show, from the daemon:\n%s\nfrom the store:\n%s", remote, local)
	}
	// SSE resumes after Last-Event-ID.
	req, _ := http.NewRequest("GET", d.url+"/v1/runs/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Last-Event-ID", "3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(events), "id: 3\n") || !strings.Contains(string(events), "id: 4\n") || !strings.Contains(string(events), "event: end") {
		t.Errorf("events after 3:\n%s", events)
	}
	// Cancel: a slow run is stopped and marked cancelled.
	slow := d.submit(t, simGrid(freePortT(t), "0.1", 3))
	d.waitRun(t, slow, 20*time.Second, func(s string, tr []orchestrator.Trial) bool { return s == "running" })
	if code, body := d.call(t, "POST", "/v1/runs/"+slow+"/cancel", d.token, ""); code != 202 {
		t.Fatalf("cancel: %d %s", code, body)
	}
	d.waitRun(t, slow, 30*time.Second, func(s string, tr []orchestrator.Trial) bool { return s == "cancelled" })
	if code, body := d.call(t, "GET", "/metrics", d.token, ""); code != 200 || !strings.Contains(body, `vgrid_runs{state="cancelled"} 1`) || !strings.Contains(body, "vgrid_trial_phase_duration_seconds_bucket") {
		t.Errorf("metrics: %d\n%s", code, body)
	}
}

func TestDaemonKill9ResumesAndKeepsTheQueue(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, freePortT(t))
	port := freePortT(t)
	first := d.submit(t, simGrid(port, "0.02", 3))
	second := d.submit(t, simGrid(port, "0.005", 1)) // same target: waits for the first
	d.waitRun(t, first, 30*time.Second, func(s string, tr []orchestrator.Trial) bool {
		return len(tr) == 3 && tr[1].Phase >= orchestrator.PhaseDeploying && !tr[1].Phase.Final()
	})
	if state, _ := d.waitRun(t, second, time.Second, func(string, []orchestrator.Trial) bool { return true }); state != "queued" {
		t.Errorf("second run %s while the first runs on the same target", state)
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d.done <- nil // for Cleanup
	// The killed daemon's server dies with it (parent-death signal): the
	// next daemon's resume must find its endpoint free.
	waitUntil(t, 10*time.Second, "the killed daemon's server to let go of its endpoint", func() bool { return !httpAnswers(fmt.Sprintf("http://127.0.0.1:%d", port)) })
	d2 := startDaemon(t, dir, freePortT(t))
	_, trials := d2.waitRun(t, first, 60*time.Second, func(s string, tr []orchestrator.Trial) bool { return s == "done" })
	for _, tr := range trials {
		if tr.Phase != orchestrator.PhaseDone {
			t.Errorf("trial %d: %s", tr.Seq, tr.Phase)
		}
	}
	if trials[1].Attempts != 2 {
		t.Errorf("interrupted trial attempts %d, want 2", trials[1].Attempts)
	}
	_, strials := d2.waitRun(t, second, 60*time.Second, func(s string, tr []orchestrator.Trial) bool { return s == "done" })
	if !strials[0].Entered(orchestrator.PhaseRendering).After(trials[2].Entered(orchestrator.PhaseDone)) {
		t.Error("the queued run started before the first one finished")
	}
}

func TestDaemonSIGTERMLeavesTheRunResumable(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, freePortT(t))
	id := d.submit(t, simGrid(freePortT(t), "0.05", 2))
	d.waitRun(t, id, 30*time.Second, func(s string, tr []orchestrator.Trial) bool {
		return len(tr) > 0 && tr[0].Phase == orchestrator.PhaseWaitingReady
	})
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		d.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not exit within 30 s of SIGTERM")
	}
	t.Logf("exited %v after SIGTERM", time.Since(start))
	d2 := startDaemon(t, dir, freePortT(t))
	d2.waitRun(t, id, 60*time.Second, func(s string, tr []orchestrator.Trial) bool { return s == "done" })
	if !strings.Contains(d2.log.String(), "resuming a run left by the previous daemon") {
		t.Errorf("the restarted daemon did not say it resumed:\n%s", d2.log.String())
	}
}

func TestDaemonRunsDifferentTargetsInParallel(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, freePortT(t))
	a := d.submit(t, simGrid(freePortT(t), "0.05", 2))
	b := d.submit(t, simGrid(freePortT(t), "0.05", 2))
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, sa := d.call(t, "GET", "/v1/runs/"+a, d.token, "")
		_, sb := d.call(t, "GET", "/v1/runs/"+b, d.token, "")
		if strings.Contains(sa, `"state":"running"`) && strings.Contains(sb, `"state":"running"`) {
			break // both targets busy at once
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two targets never ran at the same time:\n%s\n%s", sa, sb)
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.waitRun(t, a, 60*time.Second, func(s string, _ []orchestrator.Trial) bool { return s == "done" })
	d.waitRun(t, b, 60*time.Second, func(s string, _ []orchestrator.Trial) bool { return s == "done" })
}

// TestDaemonRunsSlots: a grid with two slots submitted to vgrid serve runs
// its trials on both slots and ends done, the slots' servers stopped.
func TestDaemonRunsSlots(t *testing.T) {
	d := startDaemon(t, t.TempDir(), freePortT(t))
	port, p1, p2 := freePortT(t), freePortT(t), freePortT(t)
	grid := strings.Replace(simGrid(port, "0.05", 4), "  env:", fmt.Sprintf("  slots: [{gpus: \"0\", port: %d}, {gpus: \"1\", port: %d}]\n  env:", p1, p2), 1)
	id := d.submit(t, grid)
	_, trials := d.waitRun(t, id, 60*time.Second, func(s string, _ []orchestrator.Trial) bool { return s == "done" })
	used := map[string]int{}
	for _, tr := range trials {
		used[tr.Slot]++
	}
	if len(trials) != 4 || used[fmt.Sprintf("gpus 0 port %d", p1)] == 0 || used[fmt.Sprintf("gpus 1 port %d", p2)] == 0 {
		t.Errorf("%d trials, slots used %v", len(trials), used)
	}
	for _, p := range []int{p1, p2} {
		if httpAnswers(fmt.Sprintf("http://127.0.0.1:%d", p)) {
			t.Errorf("something still answers on slot port %d", p)
		}
	}
}

// vgrid run --server rides out a daemon restart (the stream is taken up
// from the last event); runs watch follows a run; a daemon that does not
// come back gets a re-attach hint, not "unexpected EOF".
func TestRunServerReattaches(t *testing.T) {
	dir := t.TempDir()
	port := freePortT(t)
	d := startDaemon(t, dir, port)
	grid := filepath.Join(dir, "grid.yaml")
	os.WriteFile(grid, []byte(simGrid(freePortT(t), "0.02", 3)), 0o644)
	tokFile := filepath.Join(dir, "token")
	cli := exec.Command(vgridBinary(t), "run", grid, "--server", d.url, "--server-token-file", tokFile, "--reconnect", "30s")
	var out, errOut strings.Builder
	cli.Stdout, cli.Stderr = &syncWriter{b: &out}, &syncWriter{b: &errOut}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	cliDone := make(chan error, 1)
	go func() { cliDone <- cli.Wait() }()
	var id string
	for i := 0; i < 200 && id == ""; i++ {
		if _, body := d.call(t, "GET", "/v1/runs", d.token, ""); strings.Contains(body, `"id"`) {
			var runs []struct{ ID string }
			json.Unmarshal([]byte(body), &runs)
			id = runs[0].ID
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.waitRun(t, id, 30*time.Second, func(s string, tr []orchestrator.Trial) bool {
		return len(tr) == 3 && tr[1].Phase >= orchestrator.PhaseDeploying
	})
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d.done <- nil
	// The same address for the next daemon: wait until it can be taken.
	waitUntil(t, 10*time.Second, "the killed daemon's address to be free", func() bool {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
		}
		return err == nil
	})
	d = startDaemon(t, dir, port)
	select {
	case err := <-cliDone:
		if err != nil || !strings.Contains(out.String(), "champion: c") || !strings.Contains(errOut.String(), "lost the daemon") {
			t.Fatalf("vgrid run --server across a daemon restart: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
		}
	case <-time.After(90 * time.Second):
		cli.Process.Kill()
		t.Fatalf("vgrid run --server did not end after the daemon came back:\n%s\n%s", out.String(), errOut.String())
	}
	// runs watch on a run that runs: its events, then the table.
	slow := d.submit(t, simGrid(freePortT(t), "0.01", 2))
	watched, err := exec.Command(vgridBinary(t), "runs", "watch", slow, "--server", d.url, "--server-token-file", tokFile).CombinedOutput()
	if err != nil || !strings.Contains(string(watched), "trial 1: benchmarking -> done") || !strings.Contains(string(watched), "run "+slow+": done") {
		t.Errorf("runs watch --server: %v\n%s", err, watched)
	}
	// A daemon that does not come back: the hint to re-attach.
	third := d.submit(t, simGrid(freePortT(t), "0.05", 3))
	d.waitRun(t, third, 30*time.Second, func(s string, tr []orchestrator.Trial) bool { return s == "running" })
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d.done <- nil
	lost, err := exec.Command(vgridBinary(t), "runs", "watch", third, "--server", d.url, "--server-token-file", tokFile, "--reconnect", "2s").CombinedOutput()
	if err == nil || !strings.Contains(string(lost), "re-attach with vgrid runs watch "+third+" --server "+d.url) || strings.Contains(string(lost), "unexpected EOF\n") {
		t.Errorf("runs watch with the daemon gone: %v\n%s", err, lost)
	}
}

// vgrid serve on a port in use says so, hints at another daemon and
// --listen, and writes nothing (no store, no token).
func TestServeOnABusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	out, err := exec.Command(vgridBinary(t), "serve", "--listen", ln.Addr().String(), "--store", filepath.Join(dir, "vgrid.db")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") || !strings.Contains(string(out), "--listen") {
		t.Errorf("serve on a busy port: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("serve wrote %d file(s) before failing", len(entries))
	}
}

// waitUntil polls cond (every 50 ms) until it holds, or fails the test
// after timeout saying what it waited for.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

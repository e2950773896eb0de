package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/driver/assemble"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
)

// gateTarget is an in-memory target whose benchmarks wait at a gate the
// test opens, so a run can be observed, cancelled or stopped mid-trial.
type gateTarget struct {
	mu      sync.Mutex
	serving string
	deploys []string
	gate    chan struct{}
}

func (g *gateTarget) set(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.serving = name
	g.deploys = append(g.deploys, name)
}

func (g *gateTarget) now() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.serving
}

func (g *gateTarget) Prepare(context.Context, string) (string, error) { return "backup", nil }
func (g *gateTarget) Resume(context.Context, string, string) error    { return nil }
func (g *gateTarget) Restore(context.Context) error                   { g.set("original"); return nil }
func (g *gateTarget) Crown(_ context.Context, c orchestrator.Candidate) error {
	g.set("champion " + c.Name)
	return nil
}
func (g *gateTarget) Close() error { return nil }
func (g *gateTarget) Render(_ context.Context, c orchestrator.Candidate) (orchestrator.Plan, error) {
	return &gatePlan{g: g, c: c}, nil
}

type gatePlan struct {
	g *gateTarget
	c orchestrator.Candidate
}

func (p *gatePlan) Rendered() orchestrator.Rendered {
	return orchestrator.Rendered{Candidate: p.c, Hash: "h-" + p.c.Name}
}
func (p *gatePlan) Deploy(context.Context) (orchestrator.Deployment, error) {
	p.g.set(p.c.Name)
	return p, nil
}
func (p *gatePlan) WaitReady(context.Context, time.Duration) (*orchestrator.Ready, error) {
	return &orchestrator.Ready{Endpoint: "mem://" + p.c.Name, Model: "m"}, nil
}
func (p *gatePlan) Verify(context.Context) (map[string]string, error) { return nil, nil }
func (p *gatePlan) Diagnose(context.Context) *failure.Failure         { return nil }

// gateBench waits at the gate (or for cancellation), then measures a
// kv-cache acceleration of 2.
type gateBench struct {
	g    *gateTarget
	grid *orchestrator.Grid
}

func (b *gateBench) Bench(ctx context.Context, ready *orchestrator.Ready, _ []string, _ func(*benchmark.Report) error) (*benchmark.Report, error) {
	select {
	case <-b.g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	settings := b.grid.Benchmark.Settings()
	rep := &benchmark.Report{Model: "m", Settings: &settings}
	kv := benchmark.ScenarioReport{Name: "kv-cache"}
	for i := 0; i < 4; i++ {
		kv.Results = append(kv.Results, benchmark.Result{Tag: "miss", TTFT: 80 * time.Millisecond, Chunks: 2, OutputTokens: 2},
			benchmark.Result{Tag: "hit", TTFT: 40 * time.Millisecond, Chunks: 2, OutputTokens: 2})
	}
	rep.Scenarios = []benchmark.ScenarioReport{kv}
	return rep, nil
}

const daemonGrid = `name: gate
target: {driver: process, command: [vllm, serve, --model, m], endpoint: "http://127.0.0.1:%d"}
space: {axes: {max-num-seqs: [8, 16]}}
benchmark: {scenarios: [kv-cache]}
objective: {maximize: kv-cache.acceleration}
end: restore
`

type testDaemon struct {
	d      *Daemon
	t      *testing.T
	url    string
	token  string
	target *gateTarget
	st     *store.Store
	cancel context.CancelFunc
	done   chan error
}

func startTestDaemon(t *testing.T, dir string, target *gateTarget, opts ...func(*Config)) *testDaemon {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, "vgrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Listen: "127.0.0.1:0", TokenFile: filepath.Join(dir, "token"), Store: st, Log: zerolog.Nop(), Version: "test",
		Assemble: func(_ context.Context, g *orchestrator.Grid, _ string) (*assemble.Parts, error) {
			return &assemble.Parts{Driver: target, Bench: &gateBench{g: target, grid: g}}, nil
		}}
	for _, o := range opts {
		o(&cfg)
	}
	d, _, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &testDaemon{d: d, t: t, url: "http://" + ln.Addr().String(), token: d.token, target: target, st: st, cancel: cancel, done: make(chan error, 1)}
	go func() { td.done <- d.Serve(ctx, ln) }()
	return td
}

// stop shuts the daemon down as SIGTERM does, and closes its store.
func (td *testDaemon) stop() {
	td.cancel()
	if err := <-td.done; err != nil {
		td.t.Errorf("Serve: %v", err)
	}
	td.st.Close()
}

func (td *testDaemon) call(method, path, body string) (int, string) {
	td.t.Helper()
	req, _ := http.NewRequest(method, td.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+td.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		td.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (td *testDaemon) submit() string {
	td.t.Helper()
	return td.submitGrid(fmt.Sprintf(daemonGrid, 8000))
}

func (td *testDaemon) submitGrid(grid string) string {
	td.t.Helper()
	code, body := td.call("POST", "/v1/runs?name=g.yaml", grid)
	var v struct{ ID string }
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &v) != nil {
		td.t.Fatalf("submit: %d %s", code, body)
	}
	return v.ID
}

// wait polls the run until cond holds.
func (td *testDaemon) wait(id string, cond func(r *orchestrator.Run, trials []*orchestrator.Trial) bool) {
	td.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, err := td.st.GetRun(id)
		if err == nil {
			trials, _ := td.st.Trials(id)
			if cond(r, trials) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r, _ := td.st.GetRun(id)
	td.t.Fatalf("run %s: condition not met, state %v", id, r)
}

func benchmarking(r *orchestrator.Run, trials []*orchestrator.Trial) bool {
	return len(trials) == 2 && trials[0].Phase == orchestrator.PhaseBenchmarking
}

// A run submitted over the API is run to its end; its events stream over
// SSE to the end event; the report is computed from its samples.
func TestDaemonRunsAGrid(t *testing.T) {
	target := &gateTarget{gate: make(chan struct{})}
	close(target.gate)
	td := startTestDaemon(t, t.TempDir(), target)
	defer td.stop()
	id := td.submit()
	req, _ := http.NewRequest("GET", td.url+"/v1/runs/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+td.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var kinds []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if k, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) < 10 || kinds[len(kinds)-1] != "end" || kinds[0] != "run" {
		t.Errorf("SSE event kinds %v", kinds)
	}
	r, _ := td.st.GetRun(id)
	if r.State != orchestrator.RunDone || r.Champion == nil || target.now() != "original" {
		t.Errorf("run %s, champion %+v, serving %q", r.State, r.Champion, target.now())
	}
	if code, md := td.call("GET", "/v1/runs/"+id+"/report", ""); code != 200 || !strings.Contains(md, "## ") {
		t.Errorf("report: %d %.200s", code, md)
	}
}

// The dashboard's first view of a run nobody watched is served from its
// cache: the daemon has it compute each trial's measurements as it ends.
func TestDaemonWarmsTheDashboard(t *testing.T) {
	target := &gateTarget{gate: make(chan struct{})}
	close(target.gate)
	td := startTestDaemon(t, t.TempDir(), target)
	defer td.stop()
	id := td.submit()
	for i := 0; ; i++ {
		r, _ := td.st.GetRun(id)
		trials, _ := td.st.Trials(id)
		td.d.mu.Lock()
		dash := td.d.dash
		td.d.mu.Unlock()
		if r != nil && r.State == orchestrator.RunDone && dash != nil && dash.Cached(id) == len(trials) {
			break
		}
		if i == 100 {
			n := -1
			if dash != nil {
				n = dash.Cached(id)
			}
			t.Fatalf("run %v: %d trials, %d of them cached for the dashboard", r.State, len(trials), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Cancel through the API: the trial in flight stops, the original is
// restored, the run ends cancelled; a queued run behind it is cancelled
// before it starts.
func TestDaemonCancel(t *testing.T) {
	target := &gateTarget{gate: make(chan struct{})}
	td := startTestDaemon(t, t.TempDir(), target)
	defer td.stop()
	first := td.submit()
	second := td.submit()
	td.wait(first, benchmarking)
	if code, body := td.call("POST", "/v1/runs/"+second+"/cancel", ""); code != http.StatusAccepted {
		t.Fatalf("cancel queued: %d %s", code, body)
	}
	if code, body := td.call("POST", "/v1/runs/"+first+"/cancel", ""); code != http.StatusAccepted {
		t.Fatalf("cancel running: %d %s", code, body)
	}
	td.wait(first, func(r *orchestrator.Run, _ []*orchestrator.Trial) bool { return r.State == orchestrator.RunCancelled })
	if target.now() != "original" {
		t.Errorf("after cancel, serving %q", target.now())
	}
	if r, _ := td.st.GetRun(second); r.State != orchestrator.RunCancelled {
		t.Errorf("queued run: %s", r.State)
	}
	if code, body := td.call("POST", "/v1/runs/"+first+"/cancel", ""); code != http.StatusAccepted || !strings.Contains(body, `"cancelled":true`) {
		t.Errorf("cancelling a cancelled run: %d %s, want it still cancelled", code, body)
	}
	r, _ := td.st.GetRun(first)
	trials, _ := td.st.Trials(first)
	if r.Champion == nil || !r.Champion.Cancelled || trials[0].Phase != orchestrator.PhaseCancelled {
		t.Errorf("cancelled run: verdict %+v, trial in flight %s", r.Champion, trials[0].Phase)
	}
}

// A daemon stopped mid-trial leaves the run interrupted on the current
// candidate; the next daemon on the store resumes it to the end.
func TestDaemonShutdownAndResume(t *testing.T) {
	dir := t.TempDir()
	target := &gateTarget{gate: make(chan struct{})}
	td := startTestDaemon(t, dir, target)
	id := td.submit()
	td.wait(id, benchmarking)
	td.stop()
	st, err := store.OpenReadOnly(filepath.Join(dir, "vgrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := st.GetRun(id)
	st.Close()
	if r.State != orchestrator.RunInterrupted || target.now() != "max-num-seqs=8" {
		t.Fatalf("after shutdown: %s, serving %q (want interrupted, left on the current candidate)", r.State, target.now())
	}
	close(target.gate)
	td = startTestDaemon(t, dir, target)
	defer td.stop()
	td.wait(id, func(r *orchestrator.Run, _ []*orchestrator.Trial) bool { return r.State == orchestrator.RunDone })
	trials, _ := td.st.Trials(id)
	if trials[0].Attempts != 2 || trials[1].Attempts != 1 {
		t.Errorf("attempts %d %d, want the interrupted trial redone once", trials[0].Attempts, trials[1].Attempts)
	}
}

// TestDaemonSearchAndDeadline: the daemon runs an adaptive search within
// its budget, stops at the deadline with the estimates it is given, and
// refuses at submission a deadline already passed and a grid too large
// for a night, storing nothing.
func TestDaemonSearchAndDeadline(t *testing.T) {
	target := &gateTarget{gate: make(chan struct{})}
	close(target.gate)
	// The estimates: 1 h for max-num-seqs 8, 9 h for the others.
	td := startTestDaemon(t, t.TempDir(), target, func(c *Config) {
		c.Assemble = func(_ context.Context, g *orchestrator.Grid, _ string) (*assemble.Parts, error) {
			return &assemble.Parts{Driver: target, Bench: &gateBench{g: target, grid: g},
				Estimate: func(_ context.Context, c orchestrator.Candidate) (time.Duration, string) {
					if v, _ := c.Get("max-num-seqs"); v == "8" {
						return time.Hour, "test"
					}
					return 9 * time.Hour, "test"
				}}, nil
		}
	})
	defer td.stop()
	grid := strings.Replace(fmt.Sprintf(daemonGrid, 8000), "[8, 16]", "[8, 16, 32, 64]", 1)
	ended := func(r *orchestrator.Run, _ []*orchestrator.Trial) bool { return r.State == orchestrator.RunDone }

	id := td.submitGrid(grid + "search: {strategy: tpe, max_trials: 3, seed: 4}\n")
	td.wait(id, ended)
	r, _ := td.st.GetRun(id)
	trials, _ := td.st.Trials(id)
	if len(trials) != 3 || !strings.Contains(r.Stop, "the budget of 3 trials is spent") {
		t.Errorf("tpe: %d trials, stop %q", len(trials), r.Stop)
	}

	// 8 h to go: the first trial fits, the next does not; the rest are
	// skipped (deadline).
	id = td.submitGrid(grid + "deadline: 8h\n")
	td.wait(id, ended)
	r, _ = td.st.GetRun(id)
	trials, _ = td.st.Trials(id)
	var phases []string
	for _, tr := range trials {
		phases = append(phases, tr.Outcome())
	}
	if got := strings.Join(phases, ", "); got != "done, skipped (deadline), skipped (deadline), skipped (deadline)" || !strings.Contains(r.Stop, "the next trial needs about 9h0m0s") {
		t.Errorf("deadline: %s; stop %q", got, r.Stop)
	}

	// No deadline, 1 h + 3 x 9 h: more than a night; refused when the run
	// starts, before any trial.
	id = td.submitGrid(grid)
	td.wait(id, func(r *orchestrator.Run, _ []*orchestrator.Trial) bool { return r.State == orchestrator.RunFailed })
	r, _ = td.st.GetRun(id)
	if trials, _ := td.st.Trials(id); len(trials) != 0 || !strings.Contains(r.Error, "about 28h of trials (4 candidates, about 7h each), more than the 12h a grid may plan without a deadline") {
		t.Errorf("too long: %d trials, error %q", len(trials), r.Error)
	}

	runs, _ := td.st.Runs()
	for _, tc := range []struct{ grid, want string }{
		{grid + "deadline: \"2020-01-01 07:00\"\n", `(2020-01-01 07:00) has passed`},
		{strings.Replace(grid, "max-num-seqs: [8, 16, 32, 64]", "max-num-seqs: [8, 16, 32, 64, 128, 256], max-model-len: [4096, 8192, 16384, 32768, 65536], block-size: [8, 16, 32, 64, 128]", 1),
			"150 candidates, more than the 128 a grid runs without a deadline or a search"},
		{grid + "confirm: {top: 1, boots: 2}\n", "confirm.top 1: want at least 2"},
	} {
		code, body := td.call("POST", "/v1/runs?name=g.yaml", tc.grid)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("submit: %d %s, want 400 and %q", code, body, tc.want)
		}
	}
	if after, _ := td.st.Runs(); len(after) != len(runs) {
		t.Errorf("%d runs stored by refused submissions", len(after)-len(runs))
	}

	// A confirm whose boots (6 of about 9 h) cannot end by the deadline:
	// refused when the run starts, before any trial.
	id = td.submitGrid(grid + "deadline: 8h\nconfirm: {top: 3, boots: 2}\n")
	td.wait(id, func(r *orchestrator.Run, _ []*orchestrator.Trial) bool { return r.State == orchestrator.RunFailed })
	r, _ = td.st.GetRun(id)
	if trials, _ := td.st.Trials(id); len(trials) != 0 || !strings.Contains(r.Error, "confirm: {top: 3, boots: 2} needs about 54h for its 6 boots (about 9h each)") {
		t.Errorf("confirm past the deadline: %d trials, error %q", len(trials), r.Error)
	}
}

// TestDaemonConfirm: the daemon runs a grid with confirm; two candidates
// that measure alike are shown equivalent (their difference's interval
// within ±2%), so confirm boots nothing more, and the tie rule chooses
// between them.
func TestDaemonConfirm(t *testing.T) {
	target := &gateTarget{gate: make(chan struct{})}
	close(target.gate)
	td := startTestDaemon(t, t.TempDir(), target)
	defer td.stop()
	id := td.submitGrid(fmt.Sprintf(daemonGrid, 8000) + "confirm: {top: 2, boots: 2}\ntie: prefer higher max-num-seqs\n")
	td.wait(id, func(r *orchestrator.Run, _ []*orchestrator.Trial) bool { return r.State == orchestrator.RunDone })
	r, _ := td.st.GetRun(id)
	trials, _ := td.st.Trials(id)
	if len(trials) != 2 || r.Champion == nil || r.Champion.Name != "max-num-seqs=16" || len(r.Champion.Equivalent) != 2 ||
		!strings.Contains(r.Champion.Reason, "are equivalent within 0.0%") || !strings.Contains(r.Champion.Reason, "decided by prefer higher max-num-seqs") {
		t.Errorf("%d trials; verdict %+v", len(trials), r.Champion)
	}
}

// engineDown is an error that marks a Docker engine not answering.
type engineDown struct{}

func (engineDown) Error() string {
	return "the Docker engine at unix:///run/docker.sock does not answer"
}
func (engineDown) EngineDown() bool { return true }

// A run whose engine does not answer when it starts (restarting between
// two runs) waits for it, then runs; one whose engine stays away past
// timeouts.engine is refused with the engine's error.
func TestQueuedRunWaitsForTheEngine(t *testing.T) {
	target := &gateTarget{gate: make(chan struct{})}
	close(target.gate)
	var mu sync.Mutex
	down := 2 // the engine misses this many calls
	td := startTestDaemon(t, t.TempDir(), target, func(c *Config) {
		c.Assemble = func(_ context.Context, g *orchestrator.Grid, _ string) (*assemble.Parts, error) {
			mu.Lock()
			defer mu.Unlock()
			if down > 0 {
				down--
				return nil, fmt.Errorf("connect: %w", engineDown{})
			}
			return &assemble.Parts{Driver: target, Bench: &gateBench{g: target, grid: g}}, nil
		}
	})
	defer td.stop()
	id := td.submit()
	td.wait(id, func(r *orchestrator.Run, _ []*orchestrator.Trial) bool { return r.State == orchestrator.RunDone })

	mu.Lock()
	down = 1 << 30
	mu.Unlock()
	id = td.submitGrid(strings.Replace(fmt.Sprintf(daemonGrid, 8000), "end: restore", "end: restore\ntimeouts: {engine: 2s}", 1))
	td.wait(id, func(r *orchestrator.Run, _ []*orchestrator.Trial) bool {
		return r.State == orchestrator.RunFailed && strings.Contains(r.Error, "does not answer") && strings.Contains(r.Error, "waited 2s")
	})
}

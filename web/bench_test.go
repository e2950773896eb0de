package web_test

import (
	"fmt"
	"github.com/vgrid/vgrid/failure"
	reportpkg "github.com/vgrid/vgrid/report"
	"github.com/vgrid/vgrid/store"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/internal/browsertest"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/vllm"
	"github.com/vgrid/vgrid/web"
)

// fill stores a running grid run of n trials: n-1 measured (a kv-cache
// and a load scenario each, 24 requests) and one benchmarking.
func fill(t testing.TB, s *server, n int) *orchestrator.Run {
	t.Helper()
	var axis string
	for i := range n {
		axis += fmt.Sprintf("%d, ", 8+i)
	}
	src := fmt.Sprintf(`name: five-hundred
target: {driver: process, command: [vllm, serve, --model, m], endpoint: "http://127.0.0.1:8000"}
space: {axes: {max-num-seqs: [%s]}}
benchmark: {scenarios: [kv-cache, load], requests: 6, concurrency: [1, 4]}
objective: {maximize: kv-cache.acceleration}
`, axis[:len(axis)-2])
	g, err := orchestrator.LoadGrid("five.yaml", []byte(src), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	r := orchestrator.NewRun(g, "five.yaml", start, g.Target.Key(), "test")
	r.State = orchestrator.RunRunning
	if err := s.st.PutRun(r); err != nil {
		t.Fatal(err)
	}
	for i, c := range g.Expand() {
		at := start.Add(time.Duration(i) * 5 * time.Second)
		tr := &orchestrator.Trial{RunID: r.ID, Seq: i, Candidate: c, Attempts: 1,
			Boot: &failure.Boot{Boot: vllm.Boot{Weights: 8, Compile: 40, InitEngine: 37, Graphs: 25}, Ready: 4.5}}
		for p := orchestrator.PhaseRendering; p <= orchestrator.PhaseBenchmarking; p++ {
			tr.Phases = append(tr.Phases, orchestrator.PhaseStamp{Phase: p, At: at.Add(time.Duration(p) * 500 * time.Millisecond)})
			tr.Phase = p
		}
		if i < n-1 {
			tr.Phase = orchestrator.PhaseDone
			tr.Phases = append(tr.Phases, orchestrator.PhaseStamp{Phase: orchestrator.PhaseDone, At: at.Add(4 * time.Second)})
			if err := s.st.PutReport(r.ID, i, 0, report(at, i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.st.PutTrial(tr); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// report is a measured trial: kv-cache pairs and two load levels.
func report(at time.Time, i int) *benchmark.Report {
	var kv, load []benchmark.Result
	for k := range 6 {
		miss := time.Duration(40+i%7) * time.Millisecond
		kv = append(kv,
			benchmark.Result{Scenario: "kv-cache", Tag: "miss", Seq: 2 * k, Sent: at, TTFT: miss, E2EL: 10 * miss, Chunks: 32, OutputTokens: 32, PromptTokens: 3000, Status: 200, FinishReason: "length"},
			benchmark.Result{Scenario: "kv-cache", Tag: "hit", Seq: 2*k + 1, Sent: at, TTFT: miss / 4, E2EL: 9 * miss, Chunks: 32, OutputTokens: 32, PromptTokens: 3000, CachedTokens: 2900, Status: 200, FinishReason: "length"})
	}
	for k := range 12 {
		tag, class := "c1", "concurrency"
		if k >= 6 {
			tag = "c4"
		}
		load = append(load, benchmark.Result{Scenario: "load", Tag: tag, Class: class, Seq: k, Sent: at.Add(time.Duration(k) * time.Second),
			TTFT: time.Duration(60+k) * time.Millisecond, E2EL: time.Duration(900+10*k) * time.Millisecond, Chunks: 128, OutputTokens: 128, PromptTokens: 512, Status: 200, FinishReason: "length"})
	}
	return &benchmark.Report{Started: at, Scenarios: []benchmark.ScenarioReport{{Name: "kv-cache", Results: kv}, {Name: "load", Results: load}}}
}

// BenchmarkRunPage500 renders the page of a run with 500 trials (the
// server's time, from request to the last byte). Target: under 200 ms.
// Each ended trial's measurements (bootstrap intervals) are computed once:
// by the daemon as the trial ends (Follow), by the dashboard at start for
// stored runs, or else by the first view; later views, and the live
// updates, reuse them.
//
//	go test ./web -run '^$' -bench RunPage500
func BenchmarkRunPage500(b *testing.B) {
	s := newServer(b, false)
	c := s.client()
	s.login(b, c)
	r := fill(b, s, 500)
	first := time.Now()
	resp, err := c.Get(s.URL + "/runs/" + r.ID)
	if err != nil {
		b.Fatal(err)
	}
	body(b, resp)
	b.Logf("first view with nothing cached (every trial's measurements computed): %d ms", time.Since(first).Milliseconds())

	// The daemon has its dashboard follow a running run (Follow, as its
	// trials end): the first view of a run nobody watched is then served
	// from the cache. Here a dashboard of its own over the same store.
	dash := web.New(viewOnly{token: s.token, Store: s.st}, b.TempDir(), time.Now)
	hs := httptest.NewServer(dash)
	defer hs.Close()
	s2 := &server{Server: hs, token: s.token, st: s.st}
	c2 := s2.client()
	s2.login(b, c2)
	r2 := fill(b, s, 500)
	dash.Follow(r2.ID)
	first = time.Now()
	resp, err = c2.Get(hs.URL + "/runs/" + r2.ID)
	if err != nil {
		b.Fatal(err)
	}
	body(b, resp)
	b.Logf("first view of a run the daemon followed (%d trials cached): %d ms", dash.Cached(r2.ID), time.Since(first).Milliseconds())
	for b.Loop() {
		resp, err := c.Get(s.URL + "/runs/" + r.ID)
		if err != nil {
			b.Fatal(err)
		}
		if page := body(b, resp); resp.StatusCode != http.StatusOK || len(page) < 100_000 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, len(page))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
}

// viewOnly is a backend for a dashboard that only shows pages.
// viewOnly reads a store (its embedded Store answers Runs, GetRun,
// Trials and Reports) and changes nothing.
type viewOnly struct {
	token string
	*store.Store
}

func (viewOnly) Submit([]byte, string, string) (*orchestrator.Run, error) {
	return nil, fmt.Errorf("view only")
}
func (viewOnly) Cancel(string) (*orchestrator.Run, error)                                    { return nil, fmt.Errorf("view only") }
func (viewOnly) TokenFile() string                                                           { return "" }
func (v viewOnly) ValidToken(tok string) bool                                                { return tok == v.token }
func (viewOnly) ProfileFiles() ([]string, error)                                             { return nil, nil }
func (viewOnly) Download(http.ResponseWriter, *http.Request, string, reportpkg.Output, bool) {}
func (viewOnly) Profile(string) ([]byte, string, []profiles.Backup, error) {
	return nil, "", nil, fmt.Errorf("view only")
}
func (viewOnly) Rollback(string, string, string) (profiles.Backup, string, error) {
	return profiles.Backup{}, "", fmt.Errorf("view only")
}
func (viewOnly) ServeEvents(w http.ResponseWriter, _ *http.Request, _ string) {
	http.Error(w, "view only", http.StatusNotFound)
}

// BenchmarkSSEToPage measures, in chromium, the time from a trial's phase
// change written to the store (with its event) to the run's page showing
// it without a reload: the daemon's stream notices the event, the page's
// script fetches and swaps in the live part. Target: under 500 ms.
//
//	go test ./web -run '^$' -bench SSEToPage -benchtime 20x
func BenchmarkSSEToPage(b *testing.B) {
	s := newServer(b, false) // before the browser: cleanups run in reverse, and the server waits for the browser's stream to close
	ctx := browsertest.Start(b, 5*time.Minute)
	r := fill(b, s, 40)
	tr, _ := s.st.Trials(r.ID)
	last := tr[len(tr)-1]
	login := s.URL + "/login"
	if err := chromedp.Run(ctx, chromedp.Navigate(login), chromedp.SetValue("#token", s.token, chromedp.ByID), chromedp.Submit("#token", chromedp.ByID),
		chromedp.WaitVisible("#grid", chromedp.ByID), chromedp.Navigate(s.URL+"/runs/"+url.PathEscape(r.ID)), chromedp.WaitVisible("#trials", chromedp.ByID)); err != nil {
		b.Fatal(err)
	}
	var lat []float64
	phases := []orchestrator.Phase{orchestrator.PhaseVerifyingConfig, orchestrator.PhaseBenchmarking}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p := phases[i%2]
		last.Phase = p
		last.Phases = append(last.Phases, orchestrator.PhaseStamp{Phase: p, At: time.Now()})
		t0 := time.Now()
		if err := s.st.PutTrial(last); err != nil {
			b.Fatal(err)
		}
		if err := s.st.AddEvent(r.ID, orchestrator.Event{At: t0, Kind: "phase", Trial: last.Seq, Text: p.String()}); err != nil {
			b.Fatal(err)
		}
		var seen float64
		js := fmt.Sprintf(`new Promise(ok => { const want = %q; const check = () => { const r = document.getElementById("trial-%d"); if (r && r.dataset.phase === want) { ok(Date.now()); return true } return false };
		  if (check()) return; const o = new MutationObserver(() => { if (check()) o.disconnect() }); o.observe(document.getElementById("live"), {childList: true, subtree: true}) })`, p.String(), last.Seq)
		if err := chromedp.Run(ctx, chromedp.Evaluate(js, &seen, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) })); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, seen-float64(t0.UnixMilli()))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "ms_median")
	b.ReportMetric(lat[len(lat)-1], "ms_max")
}

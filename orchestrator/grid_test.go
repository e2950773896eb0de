package orchestrator

import (
	"encoding/json"
	"errors"
	"github.com/vgrid/vgrid/failure"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const gridOK = `name: demo
target:
  driver: process
  command: [vgrid, sim, serve, --model, m, --port, "8011"]
  endpoint: http://127.0.0.1:8011
space:
  axes:
    gpu-memory-utilization: [0.80, 0.90]
    enable-prefix-caching: [true, false, null]
  candidates:
    - name: baseline
      flags: {gpu-memory-utilization: "0.95", max-num-seqs: null}
benchmark:
  scenarios: [kv-cache]
constraints:
  - errors == 0
objective:
  maximize: kv-cache.acceleration
tie: prefer lower gpu-memory-utilization
`

func TestParseGridAndExpand(t *testing.T) {
	g, err := ParseGrid("g.yaml", []byte(gridOK))
	if err != nil {
		t.Fatal(err)
	}
	cs := g.Expand()
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	want := []string{"baseline",
		"gpu-memory-utilization=0.80 enable-prefix-caching=true", "gpu-memory-utilization=0.80 enable-prefix-caching=false", "gpu-memory-utilization=0.80",
		"gpu-memory-utilization=0.90 enable-prefix-caching=true", "gpu-memory-utilization=0.90 enable-prefix-caching=false", "gpu-memory-utilization=0.90"}
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Errorf("candidates:\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	if v, ok := cs[0].Get("gpu-memory-utilization"); !ok || v != "0.95" {
		t.Errorf("baseline gmu %q %v", v, ok)
	}
	if _, ok := cs[0].Get("max-num-seqs"); ok {
		t.Error("null means leave as in the profile")
	}
	if g.End != "crown" || g.Benchmark.Repetitions != 1 || g.Target.APIKeyEnv != "VLLM_API_KEY" {
		t.Errorf("defaults: %+v", g)
	}
}

func TestGridErrorsHaveLines(t *testing.T) {
	tests := []struct{ src, want string }{
		{strings.Replace(gridOK, "name: demo", "name: demo\nbogus: 1", 1), "g.yaml:2: unknown key `bogus` in the grid (keys: name, target,"},
		{strings.Replace(gridOK, "objective:", "objectve:", 1), "unknown key `objectve` in the grid (did you mean `objective`?)"},
		{strings.Replace(gridOK, "  scenarios: [kv-cache]", "  scenarios: [kv-cache]\n  requets: 3", 1), "g.yaml:15: unknown key `requets` in benchmark (did you mean `requests`?)"},
		{strings.Replace(gridOK, "  scenarios: [kv-cache]", "  scenarios: [kv-cache]\n  workload: {kind: synthetic, input_tokens: 0, output_tokens: 8}", 1), "benchmark.workload: input_tokens: want a length of at least 1 token"},
		{strings.Replace(gridOK, "  scenarios: [kv-cache]", "  scenarios: [kv-cache, lode]", 1), `unknown scenario "lode"`},
		{strings.Replace(gridOK, "endpoint: http://127.0.0.1:8011", "endpoint: 127.0.0.1:18099", 1), `target.endpoint: "127.0.0.1:18099" has no scheme: write http://127.0.0.1:18099`},
		{strings.Replace(gridOK, "endpoint: http://127.0.0.1:8011", "endpoint: http://127.0.0.1:8011/v1", 1), "without a path"},
		{"", "the file is empty"},
		{"name: x\n", "target.driver is missing"},
		{strings.Replace(gridOK, "[0.80, 0.90]", "[0.80, 1.5]", 1), "g.yaml:8: space.axes.gpu-memory-utilization: invalid value \"1.5\""},
		{strings.Replace(gridOK, "driver: process", "driver: kubernetes", 1), "target.manifest: the kubernetes driver needs the manifest"},
		{strings.Replace(gridOK, "driver: process", "driver: kubernetes\n  manifest: vllm.yaml\n  workload: vllm", 1), `target.workload "vllm": want KIND/NAME`},
		{strings.Replace(gridOK, "driver: process", "driver: nomad", 1), `target.driver "nomad": want compose, process or kubernetes`},
		{strings.Replace(gridOK, "driver: process", "driver: process\n  workload: deployment/vllm", 1), "target.workload applies to the kubernetes driver, not process"},
		{strings.Replace(gridOK, "driver: process", "driver: kubernetes\n  manifest: vllm.yaml\n  connect: ssh", 1), `target.connect "ssh": want auto`},
		{strings.Replace(gridOK, "driver: process", "driver: process\n  connect: port-forward", 1), "target.connect applies to the kubernetes driver"},
		{strings.Replace(gridOK, "errors == 0", "errors about 0", 1), "want METRIC OP NUMBER"},
		{strings.Replace(gridOK, "maximize: kv-cache.acceleration", "", 1), "objective: set maximize"},
		{strings.Replace(gridOK, "prefer lower", "prefer cheaper", 1), "prefer lower FLAG"},
	}
	for _, tt := range tests {
		_, err := ParseGrid("g.yaml", []byte(tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("got %v, want %q", err, tt.want)
		}
	}
}

// A Kubernetes target: its paths resolve against the grid's folder, and
// its key (one run at a time) is the context, namespace and workload.
func TestKubernetesTarget(t *testing.T) {
	src := strings.Replace(gridOK, "driver: process", "driver: kubernetes\n  manifest: k8s/vllm.yaml\n  workload: Deployment/vllm\n  namespace: lab\n  parallel: 2", 1)
	src = strings.Replace(src, "  endpoint: http://127.0.0.1:8011\n", "", 1)
	dir := t.TempDir()
	g, err := LoadGrid("g.yaml", []byte(src), dir)
	if err != nil {
		t.Fatal(err)
	}
	if g.Target.Manifest != filepath.Join(dir, "k8s", "vllm.yaml") || g.Target.Parallel != 2 {
		t.Errorf("target %+v", g.Target)
	}
	if k := g.Target.Key(); k != "kubernetes:(current context)/lab/deployment/vllm" {
		t.Errorf("key %q", k)
	}
}

func TestConstraints(t *testing.T) {
	m := map[string]float64{"errors": 0, "load.ttft_p95_ms": 1600, "tool_call_success": 1}
	for s, want := range map[string]bool{"errors == 0": true, "load.ttft_p95_ms < 1500": false, "tool_call_success >= 1": true, "quality > 0.5": false} {
		c, err := ParseConstraint(s)
		if err != nil {
			t.Fatal(err)
		}
		if ok, why := c.Holds(m); ok != want || (!ok && why == "") {
			t.Errorf("%s: %v %q", s, ok, why)
		}
	}
}

func TestTransitions(t *testing.T) {
	for _, tt := range []struct {
		from, to Phase
		ok       bool
	}{
		{PhasePending, PhaseRendering, true}, {PhaseRendering, PhaseDeploying, true}, {PhaseDeploying, PhaseBenchmarking, false},
		{PhaseWaitingReady, PhaseFailed, true}, {PhaseBenchmarking, PhasePending, true}, {PhaseDone, PhasePending, false},
		{PhaseFailed, PhaseRendering, false}, {PhasePending, PhaseSkipped, true},
	} {
		if CanMove(tt.from, tt.to) != tt.ok {
			t.Errorf("%s -> %s: %v, want %v", tt.from, tt.to, !tt.ok, tt.ok)
		}
	}
}

func scored(seq int, gmu string, obj float64, samples ...float64) Scored {
	c := Candidate{Name: "gmu=" + gmu}
	c.Settings = append(c.Settings, settingOf("gpu-memory-utilization", gmu))
	return Scored{Seq: seq, Name: c.Name, Candidate: c, Done: true,
		Values: map[string]float64{"load.ttft_p50_ms": obj, "errors": 0, "throughput": obj}, Samples: samples,
		Reps: map[string][]float64{"throughput": samples}}
}

func TestChoose(t *testing.T) {
	fast := []float64{100, 101, 102, 103, 104, 105, 106, 107, 108, 109}
	slow := []float64{200, 201, 202, 203, 204, 205, 206, 207, 208, 209}
	close1, close2 := spread(110, 60, 4), spread(110.3, 60, 4) // 60 requests each within ±4%
	wide1, wide2 := []float64{100, 120, 101, 119, 102, 118}, []float64{103, 117, 104, 116, 105, 115}
	minTTFT := &Grid{Objective: Objective{Minimize: "load.ttft_p50_ms"}, Constraints: []string{"errors == 0"}, Tie: "prefer lower gpu-memory-utilization"}
	maxTput := &Grid{Objective: Objective{Maximize: "throughput"}, Tie: "prefer lower gpu-memory-utilization"}
	broken := scored(3, "0.80", 50, fast...)
	broken.Values["errors"] = 2
	failed := Scored{Seq: 4, Name: "failed"}

	tests := []struct {
		name     string
		g        *Grid
		in       []Scored
		champion int
		tie      bool
		reason   string
	}{
		{"clear winner", minTTFT, []Scored{scored(0, "0.90", 204.5, slow...), scored(1, "0.85", 104.5, fast...), broken, failed}, 1, false, "by the champion test"},
		{"equivalent: the tie rule decides", minTTFT, []Scored{scored(0, "0.90", 110, close1...), scored(1, "0.85", 110.3, close2...)}, 1, true, "are equivalent within"},
		{"not separated, not shown equivalent: the leader", minTTFT, []Scored{scored(0, "0.90", 110, wide1...), scored(1, "0.85", 110.5, wide2...)}, 0, true, "crowned on its point estimate"},
		{"one repetition: no test, the leader, never the tie rule", maxTput, []Scored{scored(0, "0.90", 500, 500), scored(1, "0.85", 450, 450)}, 0, true, "no repeated measurements"},
		{"nobody eligible", minTTFT, []Scored{broken, failed}, -1, false, "no candidate"},
		{"only one", minTTFT, []Scored{scored(2, "0.9", 100, fast...), failed}, 2, false, "only candidate"},
	}
	for _, tt := range tests {
		v := Choose(tt.g, tt.in)
		if v.Champion != tt.champion || v.Tie != tt.tie || !strings.Contains(v.Reason, tt.reason) {
			t.Errorf("%s: champion %d tie %v reason %q; want %d %v %q", tt.name, v.Champion, v.Tie, v.Reason, tt.champion, tt.tie, tt.reason)
		}
	}
	v := Choose(minTTFT, []Scored{broken, failed, scored(0, "0.9", 100, fast...)})
	if v.Ranking[0].Seq != 0 || v.Ranking[1].Why != "errors = 2, constraint errors == 0" || !strings.Contains(v.Ranking[2].Why, "not measured") || !math.IsNaN(v.Ranking[2].Objective) {
		t.Errorf("ranking %+v", v.Ranking)
	}
}

func TestTimingCountsABootThatFails(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := &Trial{Phases: []PhaseStamp{{PhasePending, at(0)}, {PhaseRendering, at(10)}, {PhaseDeploying, at(30)},
		{PhaseWaitingReady, at(330)}, {PhaseFailed, at(1330)}},
		Failure: &failure.Failure{Reason: failure.ReasonFreeMemory, LineAt: at(1328)}}
	tm := tr.Timing()
	if tm.Render != 20*time.Millisecond || tm.Deploy != 300*time.Millisecond || tm.Boot != time.Second || tm.Total != 1320*time.Millisecond || tm.FailExtra != 2*time.Millisecond {
		t.Errorf("%+v", tm)
	}
}

// spread is n per-request samples around m, evenly within ±pct percent.
func spread(m float64, n int, pct float64) []float64 {
	var out []float64
	for i := range n {
		out = append(out, m*(1+pct/100*(2*float64(i)/float64(n-1)-1)))
	}
	return out
}

// TestTieAmongEquivalents: when the leader is not separated from the
// others, the tie rule chooses only among those shown equivalent to it
// (the 95% interval of the difference within ±2%), not among every
// candidate noise left undecided: one that may be 10% worse is never
// crowned by the rule; one beaten with confidence is out.
func TestTieAmongEquivalents(t *testing.T) {
	g := &Grid{Objective: Objective{Minimize: "load.ttft_p50_ms"}, Tie: "prefer lower gpu-memory-utilization"}
	in := []Scored{
		scored(0, "0.80", 108, spread(108, 60, 4)...),
		scored(1, "0.75", 108.3, spread(108.3, 60, 4)...),
		scored(2, "0.70", 111, 100, 120, 101, 119, 102, 118, 103, 117, 104, 116, 100, 122, 98, 121, 99, 123, 97, 120, 99, 124, 96), // undecided: wide
		scored(3, "0.60", 205, spread(205, 40, 1)...), // beaten with confidence
	}
	v := Choose(g, in)
	if !v.Tie || v.Champion != 1 || !strings.Contains(v.Reason, "gmu=0.80 (108) and gmu=0.75 (108.3) are equivalent within") ||
		!strings.Contains(v.Reason, "nor shown equivalent (the tie rule does not choose them): gmu=0.70 (111") || strings.Contains(v.Reason, "0.60") {
		t.Errorf("champion %d, tie %v: %s", v.Champion, v.Tie, v.Reason)
	}
	if !slices.Equal(v.Equivalent, []int{0, 1}) || !slices.Equal(v.Contenders, []int{0, 1, 2}) || v.Within <= 0 || v.Within > 2 {
		t.Errorf("equivalent %v within %g, contenders %v", v.Equivalent, v.Within, v.Contenders)
	}
}

func TestKnownMetric(t *testing.T) {
	for name, ok := range map[string]bool{
		"acceleration": true, "kv-cache.acceleration": true, "load.max_output_throughput_tok_s": true, "load.ttft_p95_ms": true,
		"sweep.capacity_rps": true, "long-conversation.degradation": true, "errors": true, "tool_call_success": true,
		"kv-cache.acceleratoin": false, "lod.ttft_p95_ms": false, "throughput": false, "load.degradation": false,
	} {
		if err := KnownMetric(name); (err == nil) != ok {
			t.Errorf("KnownMetric(%q) = %v, want known %v", name, err, ok)
		}
	}
}

func TestAbout(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{0, "0s"}, {300 * time.Millisecond, "1s"}, {40 * time.Second, "40s"}, {59 * time.Second, "59s"}, {90 * time.Second, "2m"},
		{25 * time.Minute, "25m"}, {2*time.Hour + 10*time.Minute, "2h10m"}, {28 * time.Hour, "28h"}} {
		if got := About(tc.d); got != tc.want {
			t.Errorf("About(%s) = %s, want %s", tc.d, got, tc.want)
		}
	}
}

// The tally never shows more trials than planned, counts skipped trials
// apart and estimates only from ended ones.
func TestCountTrials(t *testing.T) {
	g, err := LoadGrid("g.yaml", []byte(`name: g
target: {driver: process, command: [vllm, serve, --model, m], endpoint: "http://127.0.0.1:1"}
space: {axes: {max-num-seqs: [1, 2, 3, 4, 5, 6, 7, 8]}}
benchmark: {scenarios: [kv-cache]}
objective: {maximize: kv-cache.acceleration}
end: restore
`), "")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	mk := func(seq int, phases ...Phase) *Trial {
		tr := &Trial{Seq: seq, Phases: []PhaseStamp{{Phase: PhasePending, At: t0}}}
		for i, p := range phases {
			tr.Phases = append(tr.Phases, PhaseStamp{Phase: p, At: t0.Add(time.Duration(seq*100+i*10) * time.Second)})
			tr.Phase = p
		}
		if tr.Phase == PhaseSkipped {
			tr.Failure = &failure.Failure{Reason: failure.ReasonInfeasible}
		}
		return tr
	}
	run := &Run{State: RunRunning, Grid: *g}
	trials := []*Trial{mk(0, PhaseRendering, PhaseDone), mk(1, PhaseRendering, PhaseFailed), mk(2, PhaseSkipped),
		mk(3, PhaseRendering, PhaseDeploying), mk(4), mk(5), mk(6), mk(7)}
	// A trial redone after an interruption went back to pending and on.
	trials[0].Phases = append(trials[0].Phases[:1], append([]PhaseStamp{{Phase: PhasePending, At: t0}}, trials[0].Phases[1:]...)...)
	tl := CountTrials(run, trials, t0.Add(400*time.Second))
	if tl.Started != 3 || tl.Planned != 7 || tl.Skipped != 1 || tl.Measured != 1 || tl.Failed != 1 || tl.Running != 1 || tl.Left() != 4 || tl.Ended() != 2 {
		t.Errorf("mid-run: %+v", tl)
	}
	if tl.ETA != 45*time.Second { // 10 s a trial: 4 to start, one half done
		t.Errorf("ETA %s", tl.ETA)
	}
	if s := run.SearchText(trials); !strings.Contains(s, "3 of 8 candidates booted so far (1 measured, 1 failed, 1 running, 4 to go), 1 skipped as infeasible") {
		t.Errorf("search text mid-run: %s", s)
	}
	run.State = RunDone
	for _, tr := range trials[3:] {
		if tr.Phase != PhaseSkipped {
			tr.Phase = PhaseDone
			tr.Phases = append(tr.Phases, PhaseStamp{Phase: PhaseRendering, At: t0}, PhaseStamp{Phase: PhaseDone, At: t0})
		}
	}
	if tl := CountTrials(run, trials, t0); tl.Started != 7 || tl.Planned != 7 || tl.ETA != 0 {
		t.Errorf("at the end: %+v", tl)
	}
}

// Every mistake of a grid file is said at once, each with its line:
// constraints, the objective and the tie rule included.
func TestGridErrorsAllAtOnce(t *testing.T) {
	src := `name: multi
target:
  driver: process
  command: [vllm, serve, --model, m]
  endpoint: http://127.0.0.1:8011
space:
  axes:
    max-num-seqs: [8, sixteen]
benchmark: {scenarios: [kv-cache]}
constraints: [errors === 0, "tok/s > 5"]
objective: {maximize: kv-cache.accelration}
tie: prefer nothing
end: never
`
	_, err := ParseGrid("multi.yaml", []byte(src))
	var errs GridErrors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want every error", err)
	}
	want := []string{"multi.yaml:8: space.axes.max-num-seqs", "multi.yaml:10: constraints: \"errors === 0\"", "multi.yaml:10: constraints: \"tok/s > 5\"",
		"multi.yaml:11: objective: ", "multi.yaml:12: tie: ", "multi.yaml:13: end \"never\""}
	if len(errs) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d: %q, want it to start %q", i, errs[i].Error(), w)
		}
	}
}

// A prediction is stored as the text earlier versions stored, and read
// back from it.
func TestPredictionStoredAsText(t *testing.T) {
	for _, tc := range []struct {
		p    *Prediction
		json string
	}{{Predict(true, "9.9 GiB KV"), `{"predicted":"feasible"}`}, {Predict(false, "Free memory on device"), `{"predicted":"infeasible: Free memory on device"}`}, {nil, `{}`}} {
		b, _ := json.Marshal(struct {
			P *Prediction `json:"predicted,omitempty"`
		}{tc.p})
		if string(b) != tc.json {
			t.Errorf("%v: %s, want %s", tc.p, b, tc.json)
		}
		var back struct {
			P *Prediction `json:"predicted"`
		}
		json.Unmarshal(b, &back)
		if back.P.Infeasible() != tc.p.Infeasible() {
			t.Errorf("%s read back as %v", b, back.P)
		}
	}
}

func TestStateTextSaysCancelling(t *testing.T) {
	r := &Run{State: RunRunning}
	if r.StateText() != "running" {
		t.Error(r.StateText())
	}
	r.CancelRequested = time.Now()
	if r.StateText() != "cancelling" {
		t.Error(r.StateText())
	}
	r.State = RunCancelled
	if r.StateText() != "cancelled" {
		t.Error(r.StateText())
	}
}

package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/vllm"
)

// This file holds small in-memory implementations of the orchestrator's
// interfaces, for its package tests: a store, a target that runs
// candidates as a simulated server, and a benchmark. They are real
// implementations with state, not mocks of call order: tests assert the
// state they end in.

// memStore is an orchestrator.Store in memory. Values are JSON round-tripped
// as the bbolt store does, so nothing is shared with the caller.
type memStore struct {
	mu      sync.Mutex
	runs    map[string][]byte
	trials  map[string]map[int][]byte
	reports map[string]map[int]map[int][]byte
	events  map[string][]Event
	locks   map[string]string
}

func newMemStore() *memStore {
	return &memStore{runs: map[string][]byte{}, trials: map[string]map[int][]byte{}, reports: map[string]map[int]map[int][]byte{},
		events: map[string][]Event{}, locks: map[string]string{}}
}

// PutRun keeps the user's cancel as the bbolt store does (CheckSave).
func (s *memStore) PutRun(r *Run) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.runs[r.ID]; ok {
		var prev Run
		json.Unmarshal(old, &prev)
		if err := CheckSave(&prev, r); err != nil {
			return err
		}
	}
	b, err := json.Marshal(r)
	s.runs[r.ID] = b
	return err
}

func (s *memStore) GetRun(id string) (*Run, error) {
	s.mu.Lock()
	b, ok := s.runs[id]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("run %s not found", id)
	}
	var r Run
	return &r, json.Unmarshal(b, &r)
}

func (s *memStore) PutTrial(t *Trial) error {
	b, err := json.Marshal(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trials[t.RunID] == nil {
		s.trials[t.RunID] = map[int][]byte{}
	}
	s.trials[t.RunID][t.Seq] = b
	return err
}

func (s *memStore) Trials(runID string) ([]*Trial, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Trial
	for _, b := range s.trials[runID] {
		var t Trial
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, err
		}
		out = append(out, &t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

func (s *memStore) PutReport(runID string, seq, rep int, r *benchmark.Report) error {
	b, err := json.Marshal(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reports[runID] == nil {
		s.reports[runID] = map[int]map[int][]byte{}
	}
	if s.reports[runID][seq] == nil {
		s.reports[runID][seq] = map[int][]byte{}
	}
	s.reports[runID][seq][rep] = b
	return err
}

func (s *memStore) DeleteReports(runID string, seq int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.reports[runID], seq)
	return nil
}

func (s *memStore) Reports(runID string, seq int) ([]*benchmark.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var reps []int
	for rep := range s.reports[runID][seq] {
		reps = append(reps, rep)
	}
	sort.Ints(reps)
	var out []*benchmark.Report
	for _, rep := range reps {
		var r benchmark.Report
		if err := json.Unmarshal(s.reports[runID][seq][rep], &r); err != nil {
			return nil, err
		}
		out = append(out, &r)
	}
	return out, nil
}

func (s *memStore) AddEvent(runID string, e Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events[runID] = append(s.events[runID], e)
	return nil
}

func (s *memStore) Lock(target, runID string) (func() error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if holder, ok := s.locks[target]; ok {
		return nil, fmt.Errorf("target %s is driven by run %s", target, holder)
	}
	s.locks[target] = runID
	return func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.locks, target)
		return nil
	}, nil
}

// behaviour is how the simulated server of a candidate behaves, by the
// candidate's max-num-seqs value.
type behaviour struct {
	bootFails failure.Reason // fails to boot with this reason
	dies      bool           // dies during its benchmark (engine_dead)
	accel     float64        // the kv-cache acceleration it measures
	// engineGoes: its first boot meets the engine going away, which then
	// answers no health check for this many polls.
	engineGoes int
	// engineGoesAs is what that boot reports: engine_unreachable when the
	// engine is already gone, or create_failed, as a stopping engine that
	// still answers says.
	engineGoesAs failure.Reason
}

// memTarget is a target whose "server" is the configuration deployed.
type memTarget struct {
	mu           sync.Mutex
	behaviours   map[string]behaviour // by max-num-seqs
	running      string               // the configuration that serves now: "original" or a candidate's name
	deploys      []string             // every configuration deployed, in order
	prepared     int
	resumed      int
	crownFails   int             // the crown's next attempts that fail
	restoreFails int             // the restore's next attempts that fail
	crownStops   int             // the crown meets an engine stopping (create_failed until it is back)
	engineDown   int             // EngineAlive fails this many more times
	engineLate   int             // ... after answering this many more times (an engine stopping)
	engineWent   map[string]bool // candidates whose boot met the engine going away
}

func (m *memTarget) EngineAlive(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.engineLate > 0 {
		m.engineLate--
		return nil
	}
	if m.engineDown > 0 {
		m.engineDown--
		return errors.New("Cannot connect to the Docker daemon")
	}
	return nil
}

func newTarget(b map[string]behaviour) *memTarget {
	return &memTarget{behaviours: b, running: "original"}
}

func (m *memTarget) Prepare(ctx context.Context, runID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prepared++
	return "backup-of-original", nil
}

func (m *memTarget) Resume(ctx context.Context, runID, backup string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if backup != "backup-of-original" {
		return fmt.Errorf("resume from %q, want the run's backup", backup)
	}
	m.resumed++
	return nil
}

func (m *memTarget) Render(ctx context.Context, c Candidate) (Plan, error) {
	v, _ := c.Get("max-num-seqs")
	return &memPlan{m: m, c: c, b: m.behaviours[v], words: vllm.Flags(nil).Apply(c.Settings).Words()}, nil
}

func (m *memTarget) deploy(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running = name
	m.deploys = append(m.deploys, name)
}

func (m *memTarget) Restore(ctx context.Context) error {
	m.mu.Lock()
	fail := m.restoreFails > 0
	m.restoreFails--
	m.mu.Unlock()
	if fail {
		return failure.Fail(failure.ReasonCrashLoop, "exited with code 137 (SIGKILL) while loading weights")
	}
	m.deploy("original")
	return nil
}

func (m *memTarget) Crown(ctx context.Context, c Candidate) error {
	m.mu.Lock()
	fail := m.crownFails > 0
	m.crownFails--
	if m.crownStops > 0 { // the engine starts stopping: it answers twice more, then not twice
		m.engineLate, m.engineDown, m.crownStops = 2, 2, 0
	}
	if m.engineLate > 0 || m.engineDown > 0 { // until it is back, it refuses to start containers
		m.mu.Unlock()
		return failure.Fail(failure.ReasonCreate, "the engine refused to start it: Error response from daemon: failed to update store for object type *libnetwork.endpoint")
	}
	m.mu.Unlock()
	if fail {
		return errors.New("the champion did not come back")
	}
	m.deploy("champion " + c.Name)
	return nil
}

func (m *memTarget) serving() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running
}

type memPlan struct {
	m     *memTarget
	c     Candidate
	b     behaviour
	words []string
}

func (p *memPlan) Rendered() Rendered {
	return Rendered{Candidate: p.c, Hash: "hash-" + p.c.Name, Words: p.words, Image: "vllm/vllm-openai:test"}
}

func (p *memPlan) Deploy(ctx context.Context) (Deployment, error) {
	p.m.deploy(p.c.Name)
	return &memDeployment{p: p}, nil
}

type memDeployment struct{ p *memPlan }

func (d *memDeployment) WaitReady(ctx context.Context, timeout time.Duration) (*Ready, error) {
	if n := d.p.b.engineGoes; n > 0 {
		m := d.p.m
		m.mu.Lock()
		first := !m.engineWent[d.p.c.Name]
		if first {
			if m.engineWent == nil {
				m.engineWent = map[string]bool{}
			}
			m.engineWent[d.p.c.Name], m.engineDown = true, n
		}
		m.mu.Unlock()
		if first && d.p.b.engineGoesAs != failure.ReasonNone {
			return nil, &failure.Failure{Reason: d.p.b.engineGoesAs, Detail: "the engine refused to start it: failed to update store for object type *libnetwork.endpoint: open : no such file or directory"}
		}
		if first {
			return nil, &failure.Failure{Reason: failure.ReasonEngineGone, Detail: "the Docker engine at unix:///var/run/docker.sock stopped answering"}
		}
	}
	if r := d.p.b.bootFails; r != failure.ReasonNone {
		return nil, &failure.Failure{Reason: r, Detail: "the simulated server failed to boot", Line: "ValueError: simulated " + r.String()}
	}
	return &Ready{Endpoint: "mem://" + d.p.c.Name, Model: "m", Boot: failure.Boot{Ready: 1}}, nil
}

func (d *memDeployment) Verify(ctx context.Context) (map[string]string, error) {
	return map[string]string{"enable_prefix_caching": "true"}, nil
}

func (d *memDeployment) Diagnose(ctx context.Context) *failure.Failure {
	if d.p.b.dies {
		return &failure.Failure{Reason: failure.ReasonEngineDead, Detail: "the simulated server died", Line: "EngineDeadError"}
	}
	return nil
}

// memBench measures the server that runs: the grid's scenarios in order,
// kv-cache as 6 miss/hit pairs whose TTFTs give the behaviour's
// acceleration, the others as one request each; it looks after each
// scenario as the benchmark runner does. Its hook runs before each
// benchmark (tests use it to interrupt a run at that point).
type memBench struct {
	m     *memTarget
	g     *Grid
	mu    sync.Mutex
	calls []string
	ran   []string // candidate: scenario, as each ends
	hook  func(name string)
	slots []*memTarget // the slots' targets, when the run has slots
	// jitter multiplies a candidate's kv-cache misses (its acceleration),
	// a value per benchmark of it in turn: repetitions that disagree.
	jitter map[string][]float64

	inFlight, maxInFlight int
}

// serves reports whether the target or one of the slots serves name.
func (b *memBench) serves(name string) (bool, string) {
	now := b.m.serving()
	if now == name {
		return true, now
	}
	for _, s := range b.slots {
		if s.serving() == name {
			return true, name
		}
	}
	return false, now
}

func (b *memBench) Bench(ctx context.Context, ready *Ready, only []string, look func(*benchmark.Report) error) (*benchmark.Report, error) {
	name := strings.TrimPrefix(ready.Endpoint, "mem://")
	b.mu.Lock()
	nth := 0
	for _, c := range b.calls {
		if c == name {
			nth++
		}
	}
	jitter := 1.0
	if j := b.jitter[name]; len(j) > 0 {
		jitter = j[nth%len(j)]
	}
	b.calls = append(b.calls, name)
	hook := b.hook
	b.inFlight++
	b.maxInFlight = max(b.maxInFlight, b.inFlight)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.inFlight--
		b.mu.Unlock()
	}()
	if hook != nil {
		hook(name)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if ok, got := b.serves(name); !ok {
		return nil, fmt.Errorf("benchmarked %s while %s serves", name, got)
	}

	var accel float64
	for k, beh := range b.m.behaviours {
		if strings.Contains(name, "max-num-seqs="+k) {
			accel = beh.accel
		}
	}
	settings := b.g.Benchmark.Settings()
	if only != nil {
		settings.Scenarios = only // as benchmark.Runner records what it ran
	}
	rep := &benchmark.Report{Endpoint: ready.Endpoint, Model: "m", Settings: &settings}
	t0 := time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)
	names, _ := benchmark.CheckNames(b.g.Benchmark.Scenarios)
	if only != nil {
		names = only
	}
	for _, scen := range names {
		sr := benchmark.ScenarioReport{Name: scen}
		if scen == "kv-cache" {
			for i := 0; i < 6; i++ {
				hit := 40 + float64(i%3)
				sr.Results = append(sr.Results,
					benchmark.Result{Tag: "miss", Sent: t0, TTFT: time.Duration(hit * accel * jitter * float64(time.Millisecond)), E2EL: time.Second, Chunks: 4, OutputTokens: 4},
					benchmark.Result{Tag: "hit", Sent: t0, TTFT: time.Duration(hit * float64(time.Millisecond)), E2EL: time.Second, Chunks: 4, OutputTokens: 4})
			}
		} else {
			sr.Results = []benchmark.Result{{Sent: t0, TTFT: 50 * time.Millisecond, E2EL: time.Second, Chunks: 4, OutputTokens: 4}}
		}
		rep.Scenarios = append(rep.Scenarios, sr)
		b.mu.Lock()
		b.ran = append(b.ran, name+": "+scen)
		b.mu.Unlock()
		if look != nil {
			if err := look(rep); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// clock is a deterministic Now: each call is one second later.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"github.com/vgrid/vgrid/internal/golden"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const runGrid = `name: fake
target:
  driver: process
  command: [vllm, serve, --model, m]
  endpoint: http://127.0.0.1:8000
space:
  axes:
    max-num-seqs: [8, 16, 32, 64]
benchmark:
  scenarios: [kv-cache]
constraints: [errors == 0]
objective: {maximize: kv-cache.acceleration}
end: %s
`

// setup builds a run of the four candidates max-num-seqs 8, 16, 32, 64:
// 8 measures 2x, 16 fails to boot (free_memory), 32 dies in its benchmark,
// 64 measures 6x.
func setup(t *testing.T, end string) (*Orchestrator, *Run, *memStore, *memTarget, *memBench) {
	t.Helper()
	return fakeRun(t, fmt.Sprintf(runGrid, end), map[string]behaviour{"8": {accel: 2}, "16": {bootFails: failure.ReasonFreeMemory}, "32": {dies: true, accel: 9}, "64": {accel: 6}})
}

// fakeRun builds a run of a grid on the in-memory target, store and
// benchmark, with a clock that ticks a second a reading.
func fakeRun(t *testing.T, src string, b map[string]behaviour) (*Orchestrator, *Run, *memStore, *memTarget, *memBench) {
	t.Helper()
	g, err := LoadGrid("g.yaml", []byte(src), "")
	if err != nil {
		t.Fatal(err)
	}
	target := newTarget(b)
	st := newMemStore()
	bench := &memBench{m: target, g: g}
	c := &clock{t: time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)}
	run := NewRun(g, "g.yaml", c.Now(), g.Target.Key(), "test")
	run.ID = "20261122-180000-000000"
	o := &Orchestrator{Store: st, Driver: target, Bench: bench, Log: zerolog.Nop(), Now: c.Now}
	return o, run, st, target, bench
}

func phasesOf(t *testing.T, st *memStore, id string) string {
	t.Helper()
	trials, err := st.Trials(id)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, tr := range trials {
		p := tr.Phase.String()
		if tr.Failure != nil {
			p += ":" + tr.Failure.Reason.String()
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

// Every trial goes through its phases in order, failures carry their
// reason, the champion is chosen from stored samples, and the end policy
// leaves the service running; the whole history is the golden trace.
func TestRunStateTrace(t *testing.T) {
	o, run, st, target, _ := setup(t, "crown")
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if got := phasesOf(t, st, run.ID); got != "done failed:free_memory failed:engine_dead done" {
		t.Errorf("trials: %s", got)
	}
	r, _ := st.GetRun(run.ID)
	if r.State != RunDone || r.Champion.Champion != 3 || r.EndAction != "champion" || target.serving() != "champion max-num-seqs=64" {
		t.Errorf("run %s, champion %d, left %q, serving %q", r.State, r.Champion.Champion, r.EndAction, target.serving())
	}
	var trace strings.Builder
	for _, e := range st.events[run.ID] {
		fmt.Fprintf(&trace, "%s trial=%d %s: %s\n", e.At.Format("15:04:05"), e.Trial, e.Kind, e.Text)
	}
	golden.Check(t, "state-trace.txt", []byte(trace.String()))
}

// A run interrupted mid-benchmark restores the original, ends interrupted,
// and resumes: the interrupted trial is redone once, its samples of the
// interrupted attempt dropped, the finished trials kept.
func TestInterruptAndResume(t *testing.T) {
	o, run, st, target, bench := setup(t, "restore")
	ctx, cancel := context.WithCancel(context.Background())
	bench.hook = func(name string) {
		if name == "max-num-seqs=64" {
			cancel()
		}
	}
	err := o.Run(ctx, run)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	r, _ := st.GetRun(run.ID)
	if r.State != RunInterrupted || target.serving() != "original" || r.EndAction != "original" {
		t.Fatalf("after the interruption: %s, serving %q, left %q", r.State, target.serving(), r.EndAction)
	}
	trials, _ := st.Trials(run.ID)
	if trials[3].Phase != PhaseBenchmarking {
		t.Fatalf("trial 3 in %s, want benchmarking (interrupted there)", trials[3].Phase)
	}
	bench.hook = nil
	if err := o.Run(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	trials, _ = st.Trials(run.ID)
	if got := phasesOf(t, st, run.ID); got != "done failed:free_memory failed:engine_dead done" {
		t.Errorf("after resume: %s", got)
	}
	if trials[0].Attempts != 1 || trials[3].Attempts != 2 || target.prepared != 1 || target.resumed != 1 {
		t.Errorf("attempts %d/%d, prepared %d, resumed %d", trials[0].Attempts, trials[3].Attempts, target.prepared, target.resumed)
	}
	if reps, _ := st.Reports(run.ID, 3); len(reps) != 1 {
		t.Errorf("trial 3 has %d reports, want the redone attempt's only", len(reps))
	}
	if n := strings.Count(strings.Join(bench.calls, ","), "max-num-seqs=8"); n != 1 {
		t.Errorf("trial 0 benchmarked %d times, want once", n)
	}
	r, _ = st.GetRun(run.ID)
	if r.State != RunDone || target.serving() != "original" {
		t.Errorf("resumed run: %s, serving %q", r.State, target.serving())
	}
}

// A cancellation by the user restores the original and ends cancelled,
// keeping what was measured: the trial in flight ends cancelled, the
// verdict names the best so far; a queued run cancelled never starts.
func TestCancel(t *testing.T) {
	o, run, st, target, bench := setup(t, "crown")
	ctx, cancel := context.WithCancelCause(context.Background())
	calls := 0
	bench.hook = func(string) {
		if calls++; calls == 3 { // in the second trial's benchmark
			cancel(ErrCancelled)
		}
	}
	if err := o.Run(ctx, run); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	r, _ := st.GetRun(run.ID)
	if r.State != RunCancelled || target.serving() != "original" {
		t.Errorf("cancelled run: %s, serving %q", r.State, target.serving())
	}
	if got := phasesOf(t, st, run.ID); got != "done failed:free_memory failed:engine_dead cancelled" {
		t.Errorf("trials after the cancel: %s, want the ended ones kept and the one in flight cancelled", got)
	}
	if v := r.Champion; v == nil || !v.Cancelled || v.Champion != 0 || !strings.HasPrefix(v.Title(), "Best so far (run cancelled): ") {
		t.Errorf("verdict of a cancelled run: %+v", v)
	}
	if _, err := RequestCancel(r, time.Now()); err != nil {
		t.Errorf("cancelling a cancelled run again: %v, want nothing to do", err)
	}
	if err := st.PutRun(&Run{ID: r.ID, State: RunRunning}); !errors.Is(err, ErrRunCancelled) {
		t.Errorf("saving a cancelled run as running: %v, want refused", err)
	}
	if err := o.Run(context.Background(), r); !errors.Is(err, ErrRunEnded) || target.serving() != "original" {
		t.Errorf("running a cancelled run again: %v, serving %q", err, target.serving())
	}

	queued := &Run{ID: "q", State: RunQueued, Target: run.Target}
	if changed, err := RequestCancel(queued, time.Now()); err != nil || !changed || queued.State != RunCancelled {
		t.Errorf("cancelled queued run: %s %v", queued.State, err)
	}
	done := &Run{ID: "d", State: RunDone}
	if _, err := RequestCancel(done, time.Now()); err == nil {
		t.Error("a done run was cancelled")
	}
}

// A cancel recorded in the store while no process ran the run (a daemon
// stopped mid-run, or its shutdown raced the cancel) is honoured at the
// next start: nothing is redone, the original is restored, the run ends
// cancelled.
func TestCancelRecordedWhileInterrupted(t *testing.T) {
	o, run, st, target, bench := setup(t, "crown")
	o.LeaveOnInterrupt = true
	ctx, stop := context.WithCancel(context.Background())
	calls := 0
	bench.hook = func(string) {
		if calls++; calls == 3 {
			stop() // the daemon shuts down
		}
	}
	if err := o.Run(ctx, run); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	r, _ := st.GetRun(run.ID)
	if r.State != RunInterrupted || target.serving() == "original" {
		t.Fatalf("interrupted: %s, serving %q", r.State, target.serving())
	}
	if changed, err := RequestCancel(r, time.Now()); err != nil || !changed || r.State != RunInterrupted {
		t.Fatalf("cancel of an interrupted run: %v %v %s", changed, err, r.State)
	}
	st.PutRun(r)
	deploys := len(target.deploys)
	stale := *run // what a scheduler read before the cancel
	stale.CancelRequested = time.Time{}
	if err := o.Run(context.Background(), &stale); !errors.Is(err, ErrRunCancelled) {
		t.Fatalf("resumed: %v, want the cancel honoured", err)
	}
	r, _ = st.GetRun(run.ID)
	if r.State != RunCancelled || target.serving() != "original" || fmt.Sprint(target.deploys[deploys:]) != "[original]" {
		t.Errorf("after the cancel: %s, serving %q, deployed %v since, want the original only", r.State, target.serving(), target.deploys[deploys:])
	}
	if got := phasesOf(t, st, run.ID); got != "done failed:free_memory failed:engine_dead cancelled" {
		t.Errorf("trials: %s", got)
	}
}

// A run in which nothing was measured ends failed and says why; a crown
// that fails restores the original and fails the run.
func TestRunOutcomes(t *testing.T) {
	o, run, st, target, _ := setup(t, "crown")
	target.behaviours = map[string]behaviour{"8": {bootFails: failure.ReasonBadArgs}, "16": {bootFails: failure.ReasonBadArgs}, "32": {bootFails: failure.ReasonOOM}, "64": {bootFails: failure.ReasonBadArgs}}
	var nothing *NothingMeasuredError
	if err := o.Run(context.Background(), run); !errors.As(err, &nothing) || nothing.Summary != "4 failed (bad_args x3, oom)" {
		t.Fatalf("nothing measured: %v", err)
	}
	r, _ := st.GetRun(run.ID)
	if r.State != RunFailed || r.Error != "no candidate was measured: 4 failed (bad_args x3, oom)" || target.serving() != "original" {
		t.Errorf("run %s %q, serving %q", r.State, r.Error, target.serving())
	}

	o, run, st, target, _ = setup(t, "crown")
	target.crownFails = 2
	if err := o.Run(context.Background(), run); err == nil || !strings.Contains(err.Error(), "the champion did not come back") {
		t.Fatalf("failed crown: %v", err)
	}
	r, _ = st.GetRun(run.ID)
	if r.State != RunFailed || r.EndAction != "original" || target.serving() != "original" {
		t.Errorf("failed crown: %s, left %q, serving %q", r.State, r.EndAction, target.serving())
	}

	// A crown that meets a stopping Docker engine (it still answers, and
	// refuses to create containers) waits for the engine and deploys the
	// champion: the run is not failed, the original not needed.
	o, run, st, target, _ = setup(t, "crown")
	target.crownStops = 1
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatalf("a crown during an engine restart: %v", err)
	}
	r, _ = st.GetRun(run.ID)
	if r.State != RunDone || r.EndAction != "champion" || !strings.HasPrefix(target.serving(), "champion ") {
		t.Errorf("a crown during an engine restart: %s, left %q, serving %q", r.State, r.EndAction, target.serving())
	}

	// An original whose start fails once at the restore (killed as it
	// boots) is deployed once more; twice, and the run says so.
	for fails, want := range map[int]RunState{1: RunDone, 2: RunFailed} {
		o, run, st, target, _ = setup(t, "restore")
		target.restoreFails = fails
		err := o.Run(context.Background(), run)
		r, _ = st.GetRun(run.ID)
		if r.State != want || (want == RunDone) != (err == nil) || want == RunDone && target.serving() != "original" {
			t.Errorf("a restore that fails %d times: %s (%v), serving %q", fails, r.State, err, target.serving())
		}
	}

	// A champion whose start fails once at the crown (a crash of the
	// moment: it booted in its trial) is deployed once more.
	o, run, st, target, _ = setup(t, "crown")
	target.crownFails = 1
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatalf("a crown that fails once: %v", err)
	}
	r, _ = st.GetRun(run.ID)
	st.mu.Lock()
	events := slices.Clone(st.events[run.ID])
	st.mu.Unlock()
	again := false
	for _, e := range events {
		again = again || strings.Contains(e.Text, "deploying it once more")
	}
	if r.State != RunDone || r.EndAction != "champion" || !strings.HasPrefix(target.serving(), "champion ") || !again {
		t.Errorf("a crown that fails once: %s, left %q, serving %q, the retry in the events: %v", r.State, r.EndAction, target.serving(), again)
	}
}

// One run per target: a second is refused before it does anything.
func TestOneRunPerTarget(t *testing.T) {
	o, run, st, target, _ := setup(t, "restore")
	unlock, _ := st.Lock(run.Target, "other")
	defer unlock()
	if err := o.Run(context.Background(), run); err == nil || !strings.Contains(err.Error(), "driven by run other") {
		t.Fatalf("second run on a held target: %v", err)
	}
	if target.prepared != 0 || len(target.deploys) != 0 {
		t.Errorf("the refused run prepared %d and deployed %v", target.prepared, target.deploys)
	}
}

// Run ids sort in creation order, also within one second or one
// millisecond: the store lists runs and resolves "latest" by id.
func TestRunIDsSortInCreationOrder(t *testing.T) {
	// After every id this process made (ids never go backwards, so a
	// fixed clock would fail on a second -count).
	lastRunID.Lock()
	now := lastRunID.at.Add(time.Hour).Truncate(time.Second).Add(558137 * time.Microsecond)
	lastRunID.Unlock()
	var ids []string
	for i := range 50 {
		ids = append(ids, NewRunID(now.Add(time.Duration(i)*100*time.Microsecond)))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("id %d %s does not sort after %s", i, ids[i], ids[i-1])
		}
	}
	if want := now.Format("20060102-150405") + ".558-"; !strings.HasPrefix(ids[0], want) {
		t.Errorf("id %s", ids[0])
	}
}

// The Docker engine restarted under a trial (engine_unreachable) is not
// the candidate's failure: the run waits for the engine, runs the trial
// again and goes on; the trial never shows a final phase before its last.
func TestEngineRestartRedoesTheTrial(t *testing.T) {
	o, run, st, target, _ := setup(t, "crown")
	target.behaviours["64"] = behaviour{accel: 6, engineGoes: 2}
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if got := phasesOf(t, st, run.ID); got != "done failed:free_memory failed:engine_dead done" {
		t.Errorf("phases %s", got)
	}
	trials, _ := st.Trials(run.ID)
	tr := trials[3]
	if tr.Attempts != 2 || tr.Failure != nil {
		t.Errorf("the trial met by the restart: attempts %d, failure %v", tr.Attempts, tr.Failure)
	}
	for i, p := range tr.Phases[:len(tr.Phases)-1] {
		if p.Phase.Final() {
			t.Errorf("phase %d of %d is final: %s", i, len(tr.Phases), p.Phase)
		}
	}
	if reps, _ := st.Reports(run.ID, 3); len(reps) != 1 {
		t.Errorf("%d reports", len(reps))
	}
	r, _ := st.GetRun(run.ID)
	if r.State != RunDone || r.Champion == nil || r.Champion.Champion != 3 {
		t.Errorf("run %s, champion %+v", r.State, r.Champion)
	}

	// A Docker engine being stopped still answers, and refuses to start
	// the container (create_failed) before it goes away: not the
	// candidate's failure either.
	o, run, st, target, _ = setup(t, "crown")
	target.behaviours["64"] = behaviour{accel: 6, engineGoes: 2, engineGoesAs: failure.ReasonCreate}
	if err := o.Run(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	if got := phasesOf(t, st, run.ID); got != "done failed:free_memory failed:engine_dead done" {
		t.Errorf("create_failed as the engine stops: phases %s", got)
	}

	// An engine that does not come back within EngineWait: the trial
	// fails engine_unreachable, saying so, and the run stops there with
	// how to resume.
	o, run, st, target, _ = setup(t, "crown")
	target.behaviours["16"] = behaviour{engineGoes: 1000}
	o.EngineWait = 1500 * time.Millisecond
	err := o.Run(context.Background(), run)
	if err == nil || !strings.Contains(err.Error(), "vgrid run --resume") {
		t.Fatalf("run: %v", err)
	}
	trials, _ = st.Trials(run.ID)
	if f := trials[1].Failure; f == nil || f.Reason != failure.ReasonEngineGone || !strings.Contains(f.Detail, "did not answer again within 1.5s") {
		t.Errorf("trial 1: %s %+v", trials[1].Phase, f)
	}
}

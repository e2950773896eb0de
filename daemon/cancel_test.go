package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/driver/assemble"
	"github.com/vgrid/vgrid/orchestrator"
)

// sleepBench measures after a short random time, so runs are in every
// state while cancels arrive.
type sleepBench struct {
	grid *orchestrator.Grid
	rnd  func() time.Duration
}

func (b *sleepBench) Bench(ctx context.Context, ready *orchestrator.Ready, only []string, look func(*benchmark.Report) error) (*benchmark.Report, error) {
	select {
	case <-time.After(b.rnd()):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	g := &gateTarget{gate: make(chan struct{})}
	close(g.gate)
	return (&gateBench{g: g, grid: b.grid}).Bench(ctx, ready, only, look)
}

// Hundreds of cancels race the scheduler, queued and running runs alike,
// and the daemon is restarted halfway: every run whose cancel was
// answered 202 ends cancelled, none is redone or started after the cancel
// was recorded, and every target is left on its original configuration.
func TestCancelIsFinalUnderRace(t *testing.T) {
	const targets, perTarget = 6, 40
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	rnd := func(max time.Duration) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return time.Duration(rng.Int64N(int64(max)))
	}
	dir := t.TempDir()
	target := &gateTarget{gate: make(chan struct{})}
	opt := func(c *Config) {
		c.Assemble = func(_ context.Context, g *orchestrator.Grid, _ string) (*assemble.Parts, error) {
			return &assemble.Parts{Driver: target, Bench: &sleepBench{grid: g, rnd: func() time.Duration { return 2*time.Millisecond + rnd(20*time.Millisecond) }}}, nil
		}
	}
	var live sync.RWMutex // held for writing while the daemon restarts
	td := startTestDaemon(t, dir, target, opt)
	defer func() { td.stop() }()

	type answer struct {
		id        string
		code      int
		cancelled bool // queued: cancelled at once
	}
	ids := make(chan string, targets*perTarget)
	answers := make(chan answer, targets*perTarget)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				time.Sleep(rnd(40 * time.Millisecond))
				live.RLock()
				code, body := td.call("POST", "/v1/runs/"+id+"/cancel", "")
				live.RUnlock()
				var v struct{ Cancelled bool }
				json.Unmarshal([]byte(body), &v)
				answers <- answer{id, code, v.Cancelled}
			}
		}()
	}
	for i := 0; i < targets*perTarget; i++ {
		if i == targets*perTarget/2 { // restart the daemon halfway
			live.Lock()
			td.stop()
			td = startTestDaemon(t, dir, target, opt)
			live.Unlock()
		}
		live.RLock()
		id := td.submitGrid(fmt.Sprintf(daemonGrid, 8001+i%targets))
		live.RUnlock()
		if i%3 != 2 { // a third of the runs are left to run to their end
			ids <- id
		}
	}
	close(ids)
	wg.Wait()
	close(answers)

	// Every run ends.
	deadline := time.Now().Add(60 * time.Second)
	for {
		runs, err := td.st.Runs()
		if err != nil {
			t.Fatal(err)
		}
		left := 0
		for _, r := range runs {
			if !r.State.Final() {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs not ended after 60 s", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var accepted, queued, running, undone, late int
	for a := range answers {
		if a.code != http.StatusAccepted {
			if a.code != http.StatusConflict {
				t.Errorf("cancel %s: %d", a.id, a.code)
			}
			continue // the run had ended
		}
		accepted++
		if a.cancelled {
			queued++
		} else {
			running++
		}
		r, err := td.st.GetRun(a.id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != orchestrator.RunCancelled {
			undone++
			t.Errorf("run %s: cancel answered 202, ended %s", a.id, r.State)
		}
		trials, _ := td.st.Trials(a.id)
		for _, tr := range trials {
			for _, st := range tr.Phases {
				// A trial that had just started when the cancel came is
				// allowed the time to persist its start.
				if (st.Phase == orchestrator.PhaseRendering || st.Phase == orchestrator.PhasePending && st.At.After(tr.Phases[0].At)) &&
					st.At.After(r.CancelRequested.Add(100*time.Millisecond)) {
					late++
					t.Errorf("run %s trial %d entered %s at %s, after the cancel at %s", a.id, tr.Seq, st.Phase, st.At.Format(time.StampMicro), r.CancelRequested.Format(time.StampMicro))
				}
			}
		}
	}
	t.Logf("%d cancels answered 202 (%d queued, %d running or interrupted): %d undone, %d trials started after the cancel", accepted, queued, running, undone, late)
	if queued < 10 || running < 10 {
		t.Errorf("the race did not cover both cases: %d queued, %d running cancels", queued, running)
	}
	if s := target.now(); s != "original" {
		t.Errorf("the target serves %q at the end, want the original", s)
	}
}

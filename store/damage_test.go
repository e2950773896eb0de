package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
)

// filledStore writes a store of several runs with trials, events and
// reports carrying raw samples, like a real run does, and closes it.
func filledStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "real.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for r := 0; r < 4; r++ {
		run := orchestrator.NewRun(&orchestrator.Grid{Name: fmt.Sprint("grid", r)}, "g.yaml", base.Add(time.Duration(r)*time.Hour), "process:x", "test")
		run.State = orchestrator.RunDone
		s.PutRun(run)
		for seq := 0; seq < 4; seq++ {
			s.PutTrial(&orchestrator.Trial{RunID: run.ID, Seq: seq, Phase: orchestrator.PhaseDone, Rendered: []string{"--max-num-seqs", fmt.Sprint(seq)}})
			rep := &benchmark.Report{Model: "m", Scenarios: []benchmark.ScenarioReport{{Name: "kv-cache"}}}
			for i := 0; i < 60; i++ {
				rep.Scenarios[0].Results = append(rep.Scenarios[0].Results, benchmark.Result{Tag: "miss", TTFT: time.Duration(i) * time.Millisecond, OutputTokens: 16, FinishReason: "length"})
			}
			s.PutReport(run.ID, seq, 0, rep)
			for e := 0; e < 8; e++ {
				s.AddEvent(run.ID, orchestrator.Event{Kind: "phase", Trial: seq, Text: "pending -> rendering"})
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// damage does what `dd if=/dev/urandom of=F bs=4096 seek=8 count=8
// conv=notrunc` does, with a seeded source.
func damage(t *testing.T, src, dst string, seed uint64) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 16*4096 {
		t.Fatalf("store of %d bytes: too small to damage pages 8-15", len(b))
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := 8 * 4096; i < 16*4096; i++ {
		b[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A damaged store never panics vgrid: every read returns an error that
// says so (or still-readable data), the file is left as it was, and Check
// reports the damage.
func TestDamagedStore(t *testing.T) {
	good := filledStore(t)
	if res, err := Check(good); err != nil || len(res.Problems) != 0 || res.Runs != 4 {
		t.Fatalf("healthy store: %+v %v", res, err)
	}
	damagedSeen := 0
	for seed := uint64(1); seed <= 12; seed++ {
		path := filepath.Join(t.TempDir(), "half.db")
		damage(t, good, path, seed)
		before := fileHash(t, path)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("seed %d: panic escaped the store: %v", seed, r)
				}
			}()
			s, err := OpenReadOnly(path)
			if err != nil {
				checkDamaged(t, seed, err)
				damagedSeen++
				return
			}
			defer s.Close()
			var errs []error
			runs, err := s.Runs()
			errs = append(errs, err)
			for _, id := range []string{"20261101-000000", "latest"} {
				_, err := s.GetRun(id)
				if !errors.Is(err, ErrNotFound) {
					errs = append(errs, err)
				}
			}
			for _, r := range runs {
				_, err := s.Trials(r.ID)
				errs = append(errs, err)
				for seq := 0; seq < 4; seq++ {
					_, err := s.Reports(r.ID, seq)
					errs = append(errs, err)
				}
				_, _, err = s.Events(r.ID, 0)
				errs = append(errs, err)
			}
			for _, err := range errs {
				if err != nil {
					checkDamaged(t, seed, err)
					damagedSeen++
					break
				}
			}
		}()
		res, err := Check(path)
		if err != nil {
			t.Fatalf("seed %d: check: %v", seed, err)
		}
		if len(res.Problems) == 0 {
			t.Errorf("seed %d: check found nothing in a store with 32 KiB of random bytes", seed)
		}
		if fileHash(t, path) != before {
			t.Errorf("seed %d: reading a damaged store changed it", seed)
		}
	}
	if damagedSeen == 0 {
		t.Error("no seed produced a read error: the damage did not reach what vgrid reads")
	}
}

func checkDamaged(t *testing.T, seed uint64, err error) {
	t.Helper()
	var d *DamagedError
	msg := err.Error()
	if errors.As(err, &d) {
		if !strings.Contains(msg, "vgrid store check") || !strings.Contains(msg, "was not changed") {
			t.Errorf("seed %d: damage message lacks what to do: %s", seed, msg)
		}
		return
	}
	// A record that is not JSON any more reads as a decode error naming the store.
	if !strings.Contains(msg, ".db") {
		t.Errorf("seed %d: error does not say which store: %s", seed, msg)
	}
}

package store

import (
	"encoding/binary"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "vgrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigrationFromEmptyAndNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	// A version-0 file: bbolt with nothing in it.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bRoot)
		for _, b := range [][]byte{bMeta, bRuns, bTrials, bReports, bEvents, bLocks} {
			if root.Bucket(b) == nil {
				t.Errorf("bucket %s missing after migration", b)
			}
		}
		if v := binary.BigEndian.Uint64(root.Bucket(bMeta).Get(kSchema)); v != SchemaVersion {
			t.Errorf("schema %d, want %d", v, SchemaVersion)
		}
		return nil
	})
	// Mark it as written by a newer vgrid: refused, not misread.
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bRoot).Bucket(bMeta).Put(kSchema, u64(SchemaVersion+1)) })
	s.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer than this vgrid") {
		t.Errorf("newer schema: %v", err)
	}
}

func TestSecondProcessFailsFast(t *testing.T) {
	s := open(t)
	start := time.Now()
	_, err := Open(s.Path())
	if err == nil || !strings.Contains(err.Error(), "held by another vgrid process") || time.Since(start) > 3*time.Second {
		t.Errorf("got %v after %v", err, time.Since(start))
	}
}

func TestRoundTrips(t *testing.T) {
	s := open(t)
	g := &orchestrator.Grid{Name: "g", End: "crown"}
	r1 := orchestrator.NewRun(g, "g.yaml", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "t")
	r2 := orchestrator.NewRun(g, "g.yaml", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), "t")
	for _, r := range []*orchestrator.Run{r2, r1} {
		if err := s.PutRun(r); err != nil {
			t.Fatal(err)
		}
	}
	latest, err := s.GetRun("latest")
	if err != nil || latest.ID != r2.ID {
		t.Errorf("latest = %v, %v; want %s", latest, err, r2.ID)
	}
	if _, err := s.GetRun("nope"); err == nil || !strings.Contains(err.Error(), "vgrid runs list") {
		t.Errorf("unknown run: %v", err)
	}
	for i := 2; i >= 0; i-- {
		s.PutTrial(&orchestrator.Trial{RunID: r1.ID, Seq: i, Phase: orchestrator.PhaseDone})
	}
	trials, _ := s.Trials(r1.ID)
	if len(trials) != 3 || trials[0].Seq != 0 || trials[2].Seq != 2 {
		t.Errorf("trials %+v", trials)
	}
	rep := &benchmark.Report{Model: "m", Scenarios: []benchmark.ScenarioReport{{Name: "kv-cache", Results: []benchmark.Result{{Tag: "miss", TTFT: time.Second}}}}}
	s.PutReport(r1.ID, 1, 0, rep)
	s.PutReport(r1.ID, 1, 0, rep) // the same repetition again replaces it
	s.PutReport(r1.ID, 1, 1, rep)
	got, _ := s.Reports(r1.ID, 1)
	if len(got) != 2 || got[0].Scenarios[0].Results[0].TTFT != time.Second {
		t.Errorf("reports %d", len(got))
	}
	s.DeleteReports(r1.ID, 1)
	if got, _ := s.Reports(r1.ID, 1); len(got) != 0 {
		t.Error("reports survive DeleteReports")
	}
	for i := 0; i < 3; i++ {
		s.AddEvent(r1.ID, orchestrator.Event{Kind: "phase", Trial: i})
	}
	seqs, evs, _ := s.Events(r1.ID, 1)
	if len(evs) != 2 || seqs[0] != 2 || evs[1].Trial != 2 {
		t.Errorf("events after 1: %v %+v", seqs, evs)
	}
}

func TestLocks(t *testing.T) {
	s := open(t)
	unlock, err := s.Lock("compose:myia_vllm/vllm", "run-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock("compose:myia_vllm/vllm", "run-b"); err == nil || !strings.Contains(err.Error(), "driven by run run-a") {
		t.Errorf("second run on the same target: %v", err)
	}
	if _, err := s.Lock("compose:other/vllm", "run-b"); err != nil {
		t.Errorf("another target: %v", err)
	}
	unlock()
	if _, err := s.Lock("compose:myia_vllm/vllm", "run-b"); err != nil {
		t.Errorf("after unlock: %v", err)
	}
	// A lock left by a process killed with -9 is taken over.
	dead := exec.Command("true")
	dead.Run()
	s.db.Update(func(tx *bolt.Tx) error {
		b, _ := json.Marshal(lock{RunID: "run-c", PID: dead.Process.Pid, Host: s.host, Since: time.Now()})
		return bucket(tx, bLocks).Put([]byte("compose:x/y"), b)
	})
	if _, err := s.Lock("compose:x/y", "run-c"); err != nil {
		t.Errorf("stale lock of a dead pid: %v", err)
	}
}

package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vgrid/vgrid/failure"
	"io"
	"os"
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
	s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bRoot)
		for _, b := range [][]byte{bMeta, bRuns, bTrials, bReports, bEvents} {
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
	s.update(func(tx *bolt.Tx) error { return tx.Bucket(bRoot).Bucket(bMeta).Put(kSchema, u64(SchemaVersion+1)) })
	s.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer than this vgrid") {
		t.Errorf("newer schema: %v", err)
	}
	if _, err := OpenReadOnly(path); err == nil || !strings.Contains(err.Error(), "newer than this vgrid") {
		t.Errorf("newer schema, read-only: %v", err)
	}
}

// Schema 1 kept target locks in a bucket; schema 2 drops it (they are
// host-wide lock files) and keeps every run.
func TestMigrationFromSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		root, _ := tx.CreateBucket(bRoot)
		for _, b := range [][]byte{bMeta, bRuns, bTrials, bReports, bEvents, bLocks} {
			root.CreateBucket(b)
		}
		root.Bucket(bMeta).Put(kSchema, u64(1))
		root.Bucket(bLocks).Put([]byte("compose:x/y"), []byte(`{"run_id":"r"}`))
		return root.Bucket(bRuns).Put([]byte("20260101-000000-aaaaaa"), []byte(`{"id":"20260101-000000-aaaaaa","state":2}`))
	})
	db.Close()
	if _, err := OpenReadOnly(path); err == nil || !strings.Contains(err.Error(), "migrates it") {
		t.Errorf("a reader on schema 1: got %v, want a message that a writer migrates it", err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bRoot).Bucket(bLocks) != nil {
			t.Error("locks/ survived the migration to schema 2")
		}
		return nil
	})
	if r, err := s.GetRun("latest"); err != nil || r.ID != "20260101-000000-aaaaaa" {
		t.Errorf("run after migration: %v %v", r, err)
	}
}

// Schema 3: config_hash is render_hash, and a reason the enum does not know
// becomes "error" with the old name kept in the detail.
func TestMigrationToSchema3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v2.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		root, _ := tx.CreateBucket(bRoot)
		for _, b := range [][]byte{bMeta, bRuns, bTrials, bReports, bEvents} {
			root.CreateBucket(b)
		}
		root.Bucket(bMeta).Put(kSchema, u64(2))
		tb, _ := root.Bucket(bTrials).CreateBucket([]byte("r1"))
		tb.Put(u64(0), []byte(`{"run_id":"r1","seq":0,"phase":7,"config_hash":"abc","failure":{"reason":"free_memory","detail":"d0"}}`))
		tb.Put(u64(1), []byte(`{"run_id":"r1","seq":1,"phase":7,"config_hash":"def","failure":{"reason":"gremlins","detail":"d1"}}`))
		tb.Put(u64(2), []byte(`{"run_id":"r1","seq":2,"phase":6}`))
		return nil
	})
	db.Close()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	trials, err := s.Trials("r1")
	if err != nil {
		t.Fatal(err)
	}
	if trials[0].RenderHash != "abc" || trials[0].Failure.Reason != failure.ReasonFreeMemory || trials[0].Failure.Detail != "d0" {
		t.Errorf("trial 0: %+v %+v", trials[0], trials[0].Failure)
	}
	if trials[1].RenderHash != "def" || trials[1].Failure.Reason != failure.ReasonError || trials[1].Failure.Detail != "gremlins: d1" {
		t.Errorf("trial 1: %+v %+v", trials[1], trials[1].Failure)
	}
	if trials[2].Failure != nil || trials[2].Phase != orchestrator.PhaseDone {
		t.Errorf("trial 2: %+v", trials[2])
	}
}

func TestSecondWriterFailsFast(t *testing.T) {
	s := open(t)
	start := time.Now()
	_, err := Open(s.Path())
	if err == nil || !strings.Contains(err.Error(), "held by another vgrid process (pid ") || time.Since(start) > time.Second {
		t.Errorf("got %v after %v", err, time.Since(start))
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// Readers open read-only while a writer holds the store, and reading
// changes nothing in the file.
func TestReaderDuringWriter(t *testing.T) {
	w := open(t)
	r0 := orchestrator.NewRun(&orchestrator.Grid{Name: "g"}, "g.yaml", time.Now(), "t", "test")
	if err := w.PutRun(r0); err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, w.Path())
	r, err := OpenReadOnly(w.Path())
	if err != nil {
		t.Fatalf("read-only open while a writer holds the store: %v", err)
	}
	defer r.Close()
	runs, err := r.Runs()
	if err != nil || len(runs) != 1 || runs[0].ID != r0.ID {
		t.Fatalf("reader: %v %v", runs, err)
	}
	if err := r.PutRun(r0); err == nil {
		t.Error("a read-only store accepted a write")
	}
	if fileHash(t, w.Path()) != before {
		t.Error("reading changed the file")
	}
	// The writer keeps writing while the reader is open.
	r0.State = orchestrator.RunDone
	if err := w.PutRun(r0); err != nil {
		t.Fatalf("write while a reader is open: %v", err)
	}
	if got, _ := r.GetRun(r0.ID); got.State != orchestrator.RunDone {
		t.Errorf("reader sees state %s, want done", got.State)
	}
}

func TestReadOnlyMissingStore(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope", "vgrid.db")
	_, err := OpenReadOnly(p)
	if err == nil || !strings.Contains(err.Error(), "no store at "+p) {
		t.Errorf("got %v", err)
	}
	if _, serr := os.Stat(filepath.Dir(p)); serr == nil {
		t.Error("a reader created the store's directory")
	}
}

func TestRoundTrips(t *testing.T) {
	s := open(t)
	g := &orchestrator.Grid{Name: "g", End: "crown"}
	r1 := orchestrator.NewRun(g, "g.yaml", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "t", "test")
	r2 := orchestrator.NewRun(g, "g.yaml", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), "t", "test")
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

func TestLocksAreHostWide(t *testing.T) {
	dir := t.TempDir()
	a, b := open(t), open(t)
	a.lockDir, b.lockDir = dir, dir
	unlock, err := a.Lock("compose:myia_vllm/vllm", "run-a")
	if err != nil {
		t.Fatal(err)
	}
	// Another store, same target: refused, and told who holds it.
	if _, err := b.Lock("compose:myia_vllm/vllm", "run-b"); err == nil || !strings.Contains(err.Error(), "driven by run run-a (pid ") {
		t.Errorf("second run on the same target: %v", err)
	}
	if u, err := b.Lock("compose:other/vllm", "run-b"); err != nil {
		t.Errorf("another target: %v", err)
	} else {
		u()
	}
	unlock()
	if u, err := b.Lock("compose:myia_vllm/vllm", "run-b"); err != nil {
		t.Errorf("after unlock: %v", err)
	} else {
		u()
	}
}

// A lock held by a process killed with -9 is free again.
func TestLockOfKilledProcess(t *testing.T) {
	if d := os.Getenv("STORE_HOLD_LOCK"); d != "" {
		s, err := Open(filepath.Join(d, "child.db"))
		if err != nil {
			os.Exit(3)
		}
		s.lockDir = d
		if _, err := s.Lock("process:x", "child-run"); err != nil {
			os.Exit(4)
		}
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Minute)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockOfKilledProcess$")
	cmd.Env = append(os.Environ(), "STORE_HOLD_LOCK="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "held" {
		t.Fatalf("child: %q %v", buf, err)
	}
	s := open(t)
	s.lockDir = dir
	if _, err := s.Lock("process:x", "run"); err == nil || !strings.Contains(err.Error(), "child-run") {
		t.Fatalf("while the child lives: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	unlock, err := s.Lock("process:x", "run")
	if err != nil {
		t.Fatalf("after kill -9: %v", err)
	}
	unlock()
}

func TestDeleteRun(t *testing.T) {
	s := open(t)
	s.lockDir = t.TempDir()
	keep := orchestrator.NewRun(&orchestrator.Grid{Name: "g"}, "g.yaml", time.Now(), "t1", "test")
	gone := orchestrator.NewRun(&orchestrator.Grid{Name: "g"}, "g.yaml", time.Now().Add(time.Second), "t2", "test")
	gone.State = orchestrator.RunDone
	for _, r := range []*orchestrator.Run{keep, gone} {
		s.PutRun(r)
		s.PutTrial(&orchestrator.Trial{RunID: r.ID, Seq: 0})
		s.PutReport(r.ID, 0, 0, &benchmark.Report{Model: "m"})
		s.AddEvent(r.ID, orchestrator.Event{Kind: "run"})
		os.MkdirAll(filepath.Join(s.RunDir(r.ID), "logs"), 0o755)
	}
	if err := s.DeleteRun(gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRun(gone.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted run still there: %v", err)
	}
	for _, id := range []string{gone.ID, keep.ID} {
		trials, _ := s.Trials(id)
		reps, _ := s.Reports(id, 0)
		_, evs, _ := s.Events(id, 0)
		_, derr := os.Stat(s.RunDir(id))
		n := len(trials) + len(reps) + len(evs)
		if id == gone.ID && (n != 0 || derr == nil) {
			t.Errorf("deleted run left %d records, dir err %v", n, derr)
		}
		if id == keep.ID && (n != 3 || derr != nil) {
			t.Errorf("kept run has %d records, dir err %v", n, derr)
		}
	}
	// A run whose target a live process holds is refused.
	keep.State = orchestrator.RunRunning
	s.PutRun(keep)
	unlock, _ := s.Lock(keep.Target, keep.ID)
	if err := s.DeleteRun(keep.ID); err == nil || !strings.Contains(err.Error(), "target is held") {
		t.Errorf("deleting a running run: %v", err)
	}
	unlock()
}

// Schema 4 adds the cache of vLLM's --help per image; a schema-3 store
// gains the bucket when a writer opens it, and the cache survives reopening.
func TestHelpCacheAndSchema4(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		root, _ := tx.CreateBucket(bRoot)
		for _, b := range [][]byte{bMeta, bRuns, bTrials, bReports, bEvents} {
			root.CreateBucket(b)
		}
		return root.Bucket(bMeta).Put(kSchema, u64(3))
	})
	db.Close()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	key := "image sha256:1f2e\x00vllm serve"
	if _, ok, err := s.Help(key); ok || err != nil {
		t.Fatalf("empty cache: %v %v", ok, err)
	}
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	want := HelpEntry{Text: "usage: vllm serve [model_tag] [options]\n", Args: []string{"vllm", "serve", "--help=all"}, At: at}
	if err := s.PutHelp(key, want); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, ok, err := r.Help(key)
	if !ok || err != nil || got.Text != want.Text || !got.At.Equal(at) || strings.Join(got.Args, " ") != "vllm serve --help=all" {
		t.Errorf("got %+v %v %v", got, ok, err)
	}
}

// The package doc draws the schema it has.
func TestDocSchemaVersion(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("Schema (version %d", SchemaVersion); !strings.Contains(string(b), want) {
		t.Errorf("store/doc.go does not say %q", want)
	}
	for _, bucket := range [][]byte{bMeta, bRuns, bTrials, bReports, bEvents, bHelp} {
		if !strings.Contains(string(b), "//	  "+string(bucket)+"/") {
			t.Errorf("store/doc.go does not draw the bucket %s/", bucket)
		}
	}
}

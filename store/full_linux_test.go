//go:build linux

package store

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/orchestrator"
)

// A store on a file system that fills up: a write waits (the run does not
// fail, nothing is half-written) and goes through once space is freed;
// the file is then healthy and holds every record.
func TestWriteWaitsForAFullDisk(t *testing.T) {
	dockertest.NeedRoot(t, "mounting a size-limited tmpfs")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	path := filepath.Join(dir, "vgrid.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	waits := make(chan error, 1)
	s.OnWait = func(err error) { waits <- err }
	run := orchestrator.NewRun(&orchestrator.Grid{Name: "g"}, "g.yaml", time.Now(), "t", "test")
	if err := s.PutRun(run); err != nil {
		t.Fatal(err)
	}
	// Fill the file system.
	filler := filepath.Join(dir, "filler")
	f, _ := os.Create(filler)
	chunk := bytes.Repeat([]byte{1}, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	// A report bigger than what is left: the write waits.
	rep := &benchmark.Report{Scenarios: []benchmark.ScenarioReport{{Name: "kv-cache", Results: make([]benchmark.Result, 2000)}}}
	for i := range rep.Scenarios[0].Results {
		rep.Scenarios[0].Results[i] = benchmark.Result{Scenario: "kv-cache", Seq: i, Err: strings.Repeat("x", 200)}
	}
	done := make(chan error, 1)
	go func() { done <- s.PutReport(run.ID, 0, 0, rep) }()
	select {
	case err := <-waits:
		if !strings.Contains(err.Error(), "no space left") {
			t.Errorf("the refusal: %v", err)
		}
	case err := <-done:
		t.Fatalf("the write returned on a full disk: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the write neither waited nor returned")
	}
	select {
	case err := <-done:
		t.Fatalf("the write returned while the disk is full: %v", err)
	case <-time.After(1500 * time.Millisecond):
	}
	os.Remove(filler)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after space came back: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write did not go through after space came back")
	}
	got, err := s.Reports(run.ID, 0)
	if err != nil || len(got) != 1 || len(got[0].Scenarios[0].Results) != 2000 {
		t.Fatalf("reports after the wait: %v", err)
	}
	s.Close()
	res, err := Check(path)
	if err != nil || len(res.Problems) > 0 {
		t.Fatalf("check: %v %v", err, res)
	}
}

// Close ends a write that waits for the file system.
func TestCloseEndsAWaitingWrite(t *testing.T) {
	dockertest.NeedRoot(t, "mounting a size-limited tmpfs")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	s, err := Open(filepath.Join(dir, "vgrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(filepath.Join(dir, "filler"))
	for {
		if _, err := f.Write(make([]byte, 64<<10)); err != nil {
			break
		}
	}
	f.Close()
	run := orchestrator.NewRun(&orchestrator.Grid{Name: strings.Repeat("g", 1<<20)}, "g.yaml", time.Now(), "t", "test")
	waiting := make(chan struct{})
	s.OnWait = func(error) { close(waiting) } // the write was refused and waits
	done := make(chan error, 1)
	go func() { done <- s.PutRun(run) }()
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("the write on a full disk returned at once: %v", err)
	}
	s.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "stopped") {
			t.Errorf("the waiting write after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the waiting write")
	}
}

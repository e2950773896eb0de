package store

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/orchestrator"
)

// A writer keeps a checked copy of the store when it closes; a damaged
// store never replaces it; Restore puts it back and keeps the damaged file.
func TestBackupAndRestore(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("skipped: the damage is made with dd")
	}
	path := filepath.Join(t.TempDir(), "vgrid.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ { // enough pages for the damage to land in records
		s.PutRun(&orchestrator.Run{ID: orchestrator.NewRunID(time.Now()), State: orchestrator.RunDone, Error: strings.Repeat("x", 500)})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(BackupPath(path))
	if err != nil {
		t.Fatalf("no backup after a writer closed: %v", err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// The file is damaged under an open writer (between its operations):
	// its backup is refused, and closing it keeps the good copy.
	if o, err := exec.Command("dd", "if=/dev/urandom", "of="+path, "bs=4096", "seek=8", "count=8", "conv=notrunc").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v %s", err, o)
	}
	if _, err := s.Backup(); err == nil {
		t.Error("a damaged store was backed up")
	}
	s.Close()
	if b, _ := os.ReadFile(BackupPath(path)); string(b) != string(good) {
		t.Fatal("the good backup was replaced")
	}
	if !strings.Contains(Remedy(path), "vgrid store restore --store "+path) {
		t.Errorf("remedy: %s", Remedy(path))
	}
	kept, err := Restore(path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("the damaged store was not kept: %v", err)
	}
	if res, err := Check(path); err != nil || len(res.Problems) != 0 || res.Runs != 200 {
		t.Errorf("after restore: %+v %v", res, err)
	}
}

// The daemon backs the store up after each run while other runs keep
// writing: the backup's consistency check reads bbolt's freelist, which a
// concurrent commit changes, so the check must not overlap a commit (it
// once crashed the daemon with "concurrent map iteration and map write").
func TestBackupWhileWriting(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "vgrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop := make(chan struct{})
	wrote := make(chan int)
	go func() {
		n := 0
		defer func() { wrote <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := &orchestrator.Run{ID: orchestrator.NewRunID(time.Now()), State: orchestrator.RunDone, Error: strings.Repeat("x", 3000)}
			if err := s.PutRun(r); err != nil {
				t.Error(err)
				return
			}
			if n%3 == 0 { // freed pages enter the freelist's pending map
				s.DeleteRun(r.ID)
			}
			n++
		}
	}()
	for i := 0; i < 100; i++ {
		if _, err := s.Backup(); err != nil {
			t.Errorf("backup %d: %v", i, err)
			break
		}
	}
	close(stop)
	if n := <-wrote; n == 0 {
		t.Fatal("no write ran during the backups")
	}
	res, err := Check(BackupPath(s.Path()))
	if err != nil || len(res.Problems) > 0 {
		t.Fatalf("the last backup: %v %v", err, res)
	}
}

// A backup Close cannot keep is told, not dropped, and leaves nothing
// half-written beside the store.
func TestBackupFailureIsTold(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vgrid.db")
	if err := os.Mkdir(BackupPath(path), 0o700); err != nil { // no file can replace it
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var told error
	s.OnBackupFailed = func(err error) { told = err }
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if told == nil || !strings.Contains(told.Error(), "back up store "+path) {
		t.Fatalf("OnBackupFailed was told %v", told)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "vgrid.db" && e.Name() != "vgrid.db.backup" && !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("left beside the store: %s", e.Name())
		}
	}
}

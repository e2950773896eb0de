package profiles

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vgrid/vgrid/vllm"
)

func TestBackupsListsUserNaming(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "medium.yml")
	write := func(name string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644)
	}
	write("medium.yml")
	write("medium.yml.backup_grid_20251020_234054")     // the user's scripts
	write("medium.yml.backup_20251019_101010")          // no label
	write("backups/medium_20251021_221124.yml")         // their backups/ folder
	write("medium.yml.backup_vgrid_20251022_080000_2")  // vgrid, same second
	write("mini-solo.yml.backup_vgrid_20251022_080000") // another profile
	write("medium.yml.backup_notatime")                 // not a backup
	bs, err := Backups(p)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bs {
		rel, _ := filepath.Rel(dir, b.Path)
		got = append(got, filepath.ToSlash(rel)+"|"+b.Label)
	}
	want := []string{
		"medium.yml.backup_20251019_101010|",
		"medium.yml.backup_grid_20251020_234054|grid",
		"backups/medium_20251021_221124.yml|",
		"medium.yml.backup_vgrid_20251022_080000_2|vgrid",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	latest, err := FindBackup(p, "latest")
	if err != nil || filepath.Base(latest.Path) != "medium.yml.backup_vgrid_20251022_080000_2" {
		t.Errorf("latest = %v, %v", latest.Path, err)
	}
	if _, err := FindBackup(p, "nope"); err == nil || !strings.Contains(err.Error(), "vgrid profile backups") {
		t.Errorf("unknown backup: %v", err)
	}
}

func TestRollbackCanBeUndone(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "medium.yml")
	os.WriteFile(p, []byte("v1\n"), 0o640)
	now := time.Date(2025, 10, 21, 22, 0, 0, 0, time.Local)
	b1, err := WriteBackup(p, "", now)
	if err != nil || filepath.Base(b1) != "medium.yml.backup_vgrid_20251021_220000" {
		t.Fatalf("WriteBackup = %s, %v", b1, err)
	}
	os.WriteFile(p, []byte("v2\n"), 0o640)
	restored, saved, err := Rollback(p, filepath.Base(b1), now.Add(time.Second))
	if err != nil || restored.Path != b1 {
		t.Fatalf("Rollback = %v, %v", restored, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "v1\n" {
		t.Errorf("after rollback: %q, want v1", b)
	}
	want := os.FileMode(0o640)
	if runtime.GOOS == "windows" {
		want = 0o666 // Windows keeps no permission bits, only read-only (Go reports 0444 or 0666)
	}
	if info, _ := os.Stat(p); info.Mode().Perm() != want {
		t.Errorf("mode %v, want %v kept", info.Mode().Perm(), want)
	}
	// Undo: the pre-rollback backup is the latest.
	if _, _, err := Rollback(p, "latest", now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "v2\n" {
		t.Errorf("after undo: %q, want v2 (saved as %s)", b, saved)
	}
}

func planFor(t *testing.T, path string) *Plan {
	t.Helper()
	cand, _ := vllm.NewCandidate([]string{"max-num-seqs=32"}, nil)
	plan, err := Project{Files: []string{path}, EnvFiles: []string{envExample}}.Render(context.Background(), "", cand)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestWriteRefusesConcurrentEdit(t *testing.T) {
	path := copyFixture(t, "testdata/fixtures/medium.yml")
	plan := planFor(t, path)
	os.WriteFile(path, []byte("edited by hand\n"), 0o644)
	if _, err := plan.Write("", fixedTime); err == nil || !strings.Contains(err.Error(), "changed on disk") {
		t.Fatalf("got %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "edited by hand\n" {
		t.Error("the hand edit was overwritten")
	}
}

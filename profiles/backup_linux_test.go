package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Full disks and read-only mounts, made real with tmpfs (Linux, root).

// mountTmpfs mounts a size-limited tmpfs (a real full disk / read-only
// filesystem). It needs root; CI runs as root, so it does not skip there.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a size-limited tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func TestWriteOnFullDisk(t *testing.T) {
	dir := mountTmpfs(t, "16k")
	src, _ := os.ReadFile("testdata/fixtures/medium.yml")
	path := filepath.Join(dir, "medium.yml")
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	plan := planFor(t, path)
	// Fill the disk, then free exactly one page: room for the backup, none
	// for the new profile.
	var fillers []string
	for i := 0; ; i++ {
		f := filepath.Join(dir, "filler"+string(rune('a'+i)))
		if err := os.WriteFile(f, make([]byte, 4096), 0o644); err != nil {
			os.Remove(f)
			break
		}
		fillers = append(fillers, f)
	}
	os.Remove(fillers[len(fillers)-1])
	_, err := plan.Write("", fixedTime)
	if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "unchanged") && !strings.Contains(err.Error(), "disk not full") {
		t.Fatalf("got %v, want ENOSPC saying the file is unchanged", err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(src) {
		t.Error("the profile changed on a full disk")
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".medium.yml.tmp-*")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestWriteReadOnlyDirectory(t *testing.T) {
	src, _ := os.ReadFile("testdata/fixtures/medium.yml")
	var dir string
	if os.Geteuid() == 0 {
		dir = mountTmpfs(t, "1m")
	} else {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "medium.yml")
	os.WriteFile(path, src, 0o644)
	plan := planFor(t, path)
	if os.Geteuid() == 0 {
		if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			t.Fatal(err)
		}
	} else {
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	_, err := plan.Write("", fixedTime)
	if err == nil || !strings.Contains(err.Error(), "writable") {
		t.Fatalf("got %v, want an error about the directory", err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(src) {
		t.Error("the profile changed")
	}
}

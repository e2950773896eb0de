package profiles

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holdOpen opens path the way many Windows programs do: sharing reads and
// writes, not deletion, so that a rename over it fails while it is open.
func holdOpen(t *testing.T, path string) syscall.Handle {
	t.Helper()
	p, err := syscall.UTF16PtrFromString(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := syscall.CreateFile(p, syscall.GENERIC_READ, syscall.FILE_SHARE_READ|syscall.FILE_SHARE_WRITE, nil, syscall.OPEN_EXISTING, syscall.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestAtomicWriteWaitsForABriefHold: an editor or scanner holding the
// profile for a moment does not fail the write; a hold that lasts is an
// error that says so, and the profile keeps its old content.
func TestAtomicWriteWaitsForABriefHold(t *testing.T) {
	path := filepath.Join(t.TempDir(), "medium.yml")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := holdOpen(t, path)
	time.AfterFunc(300*time.Millisecond, func() { syscall.CloseHandle(h) })
	if err := WriteFileAtomic(path, []byte("new\n"), 0o644); err != nil {
		t.Fatalf("a 300 ms hold: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Fatalf("after the write: %q", b)
	}

	h = holdOpen(t, path)
	defer syscall.CloseHandle(h)
	err := WriteFileAtomic(path, []byte("newer\n"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "another program kept") {
		t.Fatalf("a lasting hold: got %v, want an error naming the hold", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("after the failed write: %q, want the old content", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".medium.yml.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

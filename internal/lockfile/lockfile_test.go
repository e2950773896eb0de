package lockfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTryLockExcludesAndReleases(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "x.lock")
	l, err := TryLock(p, "pid 1: first")
	if err != nil {
		t.Fatal(err)
	}
	_, err = TryLock(p, "pid 2: second")
	var held *HeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrLocked) || held.Holder != "pid 1: first" {
		t.Fatalf("second lock: got %v, want a HeldError naming the first holder", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := TryLock(p, "pid 2: second")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}

// A lock dies with its process, even when the process is killed.
func TestLockDiesWithProcess(t *testing.T) {
	if os.Getenv("LOCKFILE_HOLD") != "" {
		if _, err := TryLock(os.Getenv("LOCKFILE_HOLD"), "child"); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Minute)
		return
	}
	p := filepath.Join(t.TempDir(), "x.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockDiesWithProcess$")
	cmd.Env = append(os.Environ(), "LOCKFILE_HOLD="+p)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || !strings.HasPrefix(string(buf), "held") {
		t.Fatalf("child: %q %v", buf, err)
	}
	if _, err := TryLock(p, "parent"); !errors.Is(err, ErrLocked) {
		t.Fatalf("while the child holds it: got %v, want ErrLocked", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := TryLock(p, "parent")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Release()
}

func TestName(t *testing.T) {
	if got := Name("process:http://127.0.0.1:8011"); got != "process_http___127.0.0.1_8011.lock" {
		t.Errorf("got %q", got)
	}
}

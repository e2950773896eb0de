package lockfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the unprivileged user the attacker's commands run as.
const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("the planted-file tests need root in CI (they run commands as another user)")
	}
	t.Skip("skipped: the planted-file tests need root (they run commands as another user)")
}

// asNobody runs a shell script as an unprivileged user, with args as $1...
func asNobody(script string, args ...string) (string, error) {
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sharedDir makes a folder like /tmp (root's, mode 1777) that nobody can
// reach, with a root-owned file beside it for the attacker to aim at.
func sharedDir(t *testing.T) (shared, victim string) {
	t.Helper()
	base, err := os.MkdirTemp("", "vgrid-lock-planted-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	shared = filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	victim = filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("precious root data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return shared, victim
}

// What another user plants in the shared lock folder is never followed,
// written or truncated, and never taken for a lock.
func TestPlantedLockFilesTouchNothing(t *testing.T) {
	needRoot(t)
	shared, victim := sharedDir(t)
	script := `set -e; cd "$1"
ln -s "$2" link.lock
printf 'pid 1 \033[2J\033]0;owned\007 evil\n' > foreign.lock
mkfifo fifo.lock`
	if out, err := asNobody(script, shared, victim); err != nil {
		t.Fatalf("planting as nobody: %v: %s", err, out)
	}
	foreignBefore, _ := os.ReadFile(filepath.Join(shared, "foreign.lock"))

	for _, tc := range []struct{ name, want string }{
		{"link.lock", "symbolic link"},
		{"foreign.lock", "belongs to user nobody"},
		{"fifo.lock", "not a plain file"},
	} {
		done := make(chan error, 1)
		go func() {
			l, err := TryLock(filepath.Join(shared, tc.name), "root's run")
			if err == nil {
				l.Release()
			}
			done <- err
		}()
		select {
		case err := <-done:
			var u *UntrustedError
			if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: got %v, want an UntrustedError saying %q", tc.name, err, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: TryLock hung", tc.name)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious root data\n" {
		t.Errorf("the link's target was changed: %q", b)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o644 {
		t.Errorf("the link's target's mode was changed: %v", fi.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(shared, "foreign.lock")); string(b) != string(foreignBefore) {
		t.Errorf("the foreign file was written: %q", b)
	}
}

// A lock root holds in the shared folder cannot be removed or replaced by
// another user, and a second vgrid is refused while it is held.
func TestOthersCannotRemoveALock(t *testing.T) {
	needRoot(t)
	shared, _ := sharedDir(t)
	p := filepath.Join(shared, "target.lock")
	l, err := TryLock(p, "run A (pid 1)")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	before, _ := os.Stat(p)
	for _, script := range []string{`rm -f "$1"`, `mv "$1" "$1.old"`, `echo x > "$1.new" && mv -f "$1.new" "$1"`, `: > "$1"`} {
		if out, err := asNobody(script, p); err == nil {
			t.Errorf("nobody ran %q: succeeded (%s), want refused", script, out)
		}
	}
	after, err := os.Stat(p)
	if err != nil || !os.SameFile(before, after) {
		t.Fatalf("the lock file was removed or replaced: %v", err)
	}
	if _, err := TryLock(p, "run B"); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "run A (pid 1)") {
		t.Fatalf("second vgrid: got %v, want held by run A", err)
	}
}

// A lock folder another user owns, or one anyone may write without the
// sticky bit, is refused.
func TestUnsafeLockFolderRefused(t *testing.T) {
	needRoot(t)
	shared, _ := sharedDir(t)
	theirs := filepath.Join(shared, "theirs")
	if out, err := asNobody(`mkdir -m 0755 "$1"`, theirs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if _, err := TryLock(filepath.Join(theirs, "x.lock"), "root"); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "belongs to user nobody") {
		t.Errorf("a folder of nobody's: got %v, want refused", err)
	}
	open := filepath.Join(filepath.Dir(shared), "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if _, err := TryLock(filepath.Join(open, "x.lock"), "root"); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "sticky") {
		t.Errorf("a world-writable folder without the sticky bit: got %v, want refused", err)
	}
	if _, err := os.Stat(filepath.Join(theirs, "x.lock")); err == nil {
		t.Error("a lock file was created in a refused folder")
	}
}

// A holder line written by another user is shown without its control
// characters.
func TestHolderLineCleaned(t *testing.T) {
	if got := clean("pid 1 \x1b[2J\x1b]0;owned\x07 evil\nsecond line"); got != "pid 1 [2J]0;owned evil" {
		t.Errorf("got %q", got)
	}
}

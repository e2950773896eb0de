// Package lockfile holds advisory, exclusive, whole-process file locks: the
// kernel drops them when the holder exits, kill -9 included, so a lock is
// never left behind by a dead vgrid.
//
// Lock files may live in a folder that other users can write (the host's
// temporary folder): each one is opened as if another user had planted
// it. A folder is used only when it belongs to root or to this user and,
// when others may write it, has the sticky bit (so nobody else can remove
// or replace a lock held in it); a file is opened without following a
// symbolic link, and used only when it is a plain file with one link that
// belongs to root or to this user. A lock is a flock(2) on a file that is
// never removed or replaced, so nobody can take it from under its holder.
// Platform code is in lock_unix.go and lock_windows.go.
//
// May import: the standard library and golang.org/x/sys.
package lockfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
)

// ErrLocked is returned when another process (or another Lock in this
// process) holds the lock.
var ErrLocked = errors.New("locked by another process")

// ErrUntrusted is returned when a lock folder or file could have been
// planted or could be removed by another user: vgrid does not use it.
var ErrUntrusted = errors.New("not safe to use")

// Lock is a held lock. Release it, or exit.
type Lock struct {
	f    *os.File
	path string
	own  bool // the file is this user's: the holder line may be written
}

// HeldError says who holds a lock, as its holder wrote it in the file.
type HeldError struct {
	Path   string
	Holder string // what the holder wrote: "pid 1234: vgrid run ..."; "" if unknown
}

func (e *HeldError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("%s is locked by another process", e.Path)
	}
	return fmt.Sprintf("%s is locked by %s", e.Path, e.Holder)
}

func (e *HeldError) Unwrap() error { return ErrLocked }

// UntrustedError says why a lock folder or file is not used.
type UntrustedError struct {
	Path string
	Why  string // what was observed
	Do   string // what to do
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("lock %s: %s; vgrid does not use it: %s", e.Path, e.Why, e.Do)
}

func (e *UntrustedError) Unwrap() error { return ErrUntrusted }

// TryLock takes the lock on path without waiting (its folder is created
// when absent, private to this user), and writes holder into the file for
// whoever finds it taken. It fails with a *HeldError when the lock is
// held, and with an *UntrustedError when the folder or the file could have
// been planted by another user.
func TryLock(path, holder string) (*Lock, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock directory: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	f, own, err := open(path)
	if err != nil {
		return nil, err
	}
	if err := lock(f); err != nil {
		defer f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, &HeldError{Path: path, Holder: readHolder(f)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The holder line is information for others; the lock does not depend
	// on it. Only a file of this user's, opened and checked above, is
	// written: never one reached through a link.
	if own {
		if err := f.Truncate(0); err == nil {
			f.WriteAt([]byte(clean(holder)+"\n"), 0)
		}
	}
	return &Lock{f: f, path: path, own: own}, nil
}

// maxHolder bounds what is read of, and written to, a holder line.
const maxHolder = 512

// readHolder reads the holder line from the open lock file (never again by
// its path), bounded and with control characters removed: another user may
// have written it.
func readHolder(f *os.File) string {
	b := make([]byte, maxHolder)
	n, _ := f.ReadAt(b, 0)
	return clean(string(b[:n]))
}

// clean keeps a holder line printable: one line, no control characters
// (a planted file must not write escape sequences to a terminal).
func clean(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, s)
	if len(s) > maxHolder {
		s = s[:maxHolder]
	}
	return strings.TrimSpace(s)
}

// Wait takes the lock, waiting (polling every 50 ms) while another holds it,
// until ctx ends.
func Wait(ctx context.Context, path, holder string) (*Lock, error) {
	for {
		l, err := TryLock(path, holder)
		if !errors.Is(err, ErrLocked) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (waited until %v)", err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Path is the lock file.
func (l *Lock) Path() string { return l.path }

// Release drops the lock. The file stays: removing it would race with a
// process that has just opened it.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	if l.own {
		l.f.Truncate(0)
	}
	err := unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// Name turns a free-form key ("process:http://127.0.0.1:8011") into a
// file name that every platform accepts.
func Name(key string) string {
	var b strings.Builder
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String() + ".lock"
}

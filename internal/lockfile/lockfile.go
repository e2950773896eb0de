// Package lockfile holds advisory, exclusive, whole-process file locks: the
// kernel drops them when the holder exits, kill -9 included, so a lock is
// never left behind by a dead vgrid. Platform code is in lock_unix.go and
// lock_windows.go.
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
)

// ErrLocked is returned when another process (or another Lock in this
// process) holds the lock.
var ErrLocked = errors.New("locked by another process")

// Lock is a held lock. Release it, or exit.
type Lock struct {
	f    *os.File
	path string
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

// TryLock takes the lock on path (created with its directories when
// absent) without waiting, and writes holder into the file for whoever
// finds it taken. It fails with a *HeldError when the lock is held.
func TryLock(path, holder string) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := lock(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			b, _ := os.ReadFile(path)
			return nil, &HeldError{Path: path, Holder: strings.TrimSpace(string(b))}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The holder line is information for others; the lock does not depend on it.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(holder+"\n"), 0)
	}
	return &Lock{f: f, path: path}, nil
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
	l.f.Truncate(0)
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

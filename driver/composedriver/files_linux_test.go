//go:build linux

package composedriver

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/vgrid/vgrid/internal/dockertest"
)

// A profile directory that turns read-only for a while (a remount; chmod
// does not stop root): the trial's write waits, the file on disk stays the
// original meanwhile, and the rendering lands once it is writable again.
func TestWriteWaitsForAReadOnlyProfileDirectory(t *testing.T) {
	dockertest.NeedRoot(t, "a read-only bind mount")
	dir := t.TempDir()
	profile := filepath.Join(dir, "medium.yml")
	os.WriteFile(profile, []byte("original\n"), 0o644)
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("bind mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
	// The driver's log says when the write was refused and waits.
	waiting := make(chan struct{}, 1)
	c := &Compose{log: zerolog.New(io.Discard).Hook(zerolog.HookFunc(func(e *zerolog.Event, l zerolog.Level, msg string) {
		if strings.Contains(msg, "refused the write") {
			select {
			case waiting <- struct{}{}:
			default:
			}
		}
	})), mode: 0o644}
	done := make(chan error, 1)
	go func() { done <- c.writeFiles(context.Background(), map[string][]byte{profile: []byte("rendering\n")}) }()
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("the write returned on a read-only directory: %v", err)
	}
	if b, _ := os.ReadFile(profile); string(b) != "original\n" {
		t.Fatalf("the profile while read-only: %q", b)
	}
	if out, err := exec.Command("mount", "-o", "remount,bind,rw", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-write: %v %s", err, out)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write did not go through once the directory was writable")
	}
	if b, _ := os.ReadFile(profile); string(b) != "rendering\n" {
		t.Fatalf("the profile after: %q", b)
	}
	// A cancelled trial stops waiting.
	exec.Command("mount", "-o", "remount,bind,ro", dir).Run()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := c.writeFiles(ctx, map[string][]byte{profile: []byte("other\n")}); err == nil {
		t.Error("a cancelled wait returned no error")
	}
}

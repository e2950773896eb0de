// Package dockertest gives tests a real Docker engine and the simulator
// image. Outside CI a test without an engine skips and says why; in CI
// (CI set) it fails, because .ci/run starts dockerd.
package dockertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vgrid/vgrid/internal/lockfile"
)

// SimImage is the tag the tests build the simulator image under.
const SimImage = "vllm-sim:test"

// Engine requires a Docker engine that answers.
func Engine(t testing.TB) {
	t.Helper()
	out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("no Docker engine answers in CI: %v\n%s", err, out)
	}
	t.Skipf("skipped: no Docker engine answers (%v %s); .ci/run installs and starts dockerd", err, strings.TrimSpace(string(out)))
}

var (
	buildOnce sync.Once
	buildErr  error
)

// BuildSimImage builds SimImage with the documented script, once per test
// process, and returns its tag.
func BuildSimImage(t testing.TB) string {
	t.Helper()
	Engine(t)
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		out, err := exec.Command(filepath.Join(root, "scripts", "build-sim-image.sh"), SimImage).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("scripts/build-sim-image.sh: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return SimImage
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Docker runs the docker CLI and fails the test on error.
func Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

var (
	lockMu   sync.Mutex
	lockHeld *lockfile.Lock
	lockRefs int
)

// Exclusive serialises the tests that use the user's compose project
// (myia_vllm, container myia_vllm-medium-qwen3) across test processes:
// go test runs packages in parallel, and two such tests would remove each
// other's container. Re-entrant within a process; released when the last
// holder's test ends.
func Exclusive(t testing.TB) {
	t.Helper()
	lockMu.Lock()
	defer lockMu.Unlock()
	if lockRefs == 0 {
		l, err := lockfile.Wait(context.Background(), filepath.Join(os.TempDir(), "vgrid-dockertest.lock"), fmt.Sprintf("pid %d: %s", os.Getpid(), t.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lockHeld = l
	}
	lockRefs++
	t.Cleanup(func() {
		lockMu.Lock()
		defer lockMu.Unlock()
		if lockRefs--; lockRefs == 0 {
			lockHeld.Release()
		}
	})
}

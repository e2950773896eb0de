package benchmark

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// exe is a program's file name on this platform.
func exe(name string) string {
	if runtime.GOOS == "windows" {
		return name + ".exe"
	}
	return name
}

func writeProgram(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestFindNvidiaSMI: PATH first (nvidia-smi.exe through PATHEXT on
// Windows), then where the driver installs it, in order.
func TestFindNvidiaSMI(t *testing.T) {
	onPath := t.TempDir()
	writeProgram(t, filepath.Join(onPath, exe("nvidia-smi")))
	elsewhere := filepath.Join(t.TempDir(), "lib", exe("nvidia-smi"))
	writeProgram(t, elsewhere)
	missing := filepath.Join(t.TempDir(), exe("nvidia-smi"))

	t.Setenv("PATH", onPath)
	if got, err := findProgram("nvidia-smi", []string{elsewhere}); err != nil || !strings.EqualFold(got, filepath.Join(onPath, exe("nvidia-smi"))) {
		t.Errorf("on PATH: got %q, %v", got, err)
	}
	t.Setenv("PATH", t.TempDir())
	if got, err := findProgram("nvidia-smi", []string{missing, elsewhere}); err != nil || got != elsewhere {
		t.Errorf("not on PATH: got %q, %v; want %s", got, err, elsewhere)
	}
	_, err := findProgram("nvidia-smi", []string{missing})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("nowhere: got %v, want the places tried", err)
	}
}

// TestNvidiaSMIPlaces: WSL2 exposes the Windows driver's nvidia-smi under
// /usr/lib/wsl/lib, which is not on PATH in every distribution; Windows
// drivers put nvidia-smi.exe in System32 (older ones in NVSMI).
func TestNvidiaSMIPlaces(t *testing.T) {
	root := t.TempDir()
	env := map[string]string{"SystemRoot": root, "ProgramFiles": filepath.Join(root, "Program Files")}
	places := nvidiaSMIPlaces(func(k string) string { return env[k] })
	if runtime.GOOS != "windows" {
		if !slices.Contains(places, "/usr/lib/wsl/lib/nvidia-smi") {
			t.Errorf("places %v: want WSL2's /usr/lib/wsl/lib/nvidia-smi", places)
		}
		return
	}
	sys32 := filepath.Join(root, "System32", "nvidia-smi.exe")
	if want := []string{sys32, filepath.Join(root, "Program Files", "NVIDIA Corporation", "NVSMI", "nvidia-smi.exe")}; !slices.Equal(places, want) {
		t.Fatalf("places %v, want %v", places, want)
	}
	writeProgram(t, sys32)
	t.Setenv("PATH", t.TempDir())
	if got, err := findProgram("nvidia-smi", places); err != nil || got != sys32 {
		t.Errorf("got %q, %v; want %s", got, err, sys32)
	}
	if d := nvidiaSMIPlaces(func(string) string { return "" }); !strings.HasPrefix(d[0], `C:\Windows\System32`) {
		t.Errorf("without SystemRoot: %v", d)
	}
}

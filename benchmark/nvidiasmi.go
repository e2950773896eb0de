package benchmark

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// NvidiaSMI finds the nvidia-smi program: on PATH, else where the driver
// installs it on this platform (nvidiaSMIPlaces: WSL2's /usr/lib/wsl/lib,
// Windows' System32 and NVSMI folders). It returns "nvidia-smi" when none
// is found, so that running it says it is missing.
func NvidiaSMI() string {
	if p, err := findNvidiaSMI(); err == nil {
		return p
	}
	return "nvidia-smi"
}

func findNvidiaSMI() (string, error) {
	return findProgram("nvidia-smi", nvidiaSMIPlaces(os.Getenv))
}

// findProgram looks name up on PATH (with PATHEXT on Windows), then tries
// each of places in order.
func findProgram(name string, places []string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, p := range places {
		if info, err := os.Stat(p); err == nil && !info.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not on PATH nor in %s", name, strings.Join(places, ", "))
}

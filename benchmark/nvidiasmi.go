package benchmark

import (
	"errors"
	"os"
	"os/exec"
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
	if p, err := exec.LookPath("nvidia-smi"); err == nil {
		return p, nil
	}
	for _, p := range nvidiaSMIPlaces(os.Getenv) {
		if info, err := os.Stat(p); err == nil && !info.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("nvidia-smi is not on PATH nor where the NVIDIA driver installs it")
}

//go:build windows

package benchmark

import "path/filepath"

// nvidiaSMIPlaces are where Windows NVIDIA drivers put nvidia-smi.exe.
func nvidiaSMIPlaces(getenv func(string) string) []string {
	root := getenv("SystemRoot")
	if root == "" {
		root = `C:\Windows`
	}
	pf := getenv("ProgramFiles")
	if pf == "" {
		pf = `C:\Program Files`
	}
	return []string{filepath.Join(root, "System32", "nvidia-smi.exe"), filepath.Join(pf, "NVIDIA Corporation", "NVSMI", "nvidia-smi.exe")}
}

//go:build !windows

package benchmark

// nvidiaSMIPlaces: in WSL2 the Windows driver exposes nvidia-smi under
// /usr/lib/wsl/lib, which is not always on PATH.
func nvidiaSMIPlaces(func(string) string) []string {
	return []string{"/usr/lib/wsl/lib/nvidia-smi", "/usr/bin/nvidia-smi"}
}

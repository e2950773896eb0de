package driver

import (
	"slices"
	"strings"
)

// passedPrefixes and passedNames are the variables of vgrid's own
// environment that a process target's server inherits: what vLLM, CUDA,
// PyTorch, Hugging Face and Python need, and what a program needs to run
// at all. Everything else (VGRID_TOKEN, DOCKER_*, SSH_AUTH_SOCK, cloud
// credentials, the daemon's own settings) stays with vgrid; a grid passes
// more by naming it in target.env.
var (
	passedPrefixes = []string{"VLLM_", "CUDA_", "NVIDIA_", "NCCL_", "HF_", "HUGGING_FACE_", "TRANSFORMERS_", "TORCH",
		"PYTORCH_", "TRITON_", "OMP_", "MKL_", "PYTHON", "CONDA_", "LC_"}
	passedNames = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SHELL",
		"LD_LIBRARY_PATH", "VIRTUAL_ENV", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR",
		// Windows
		"SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "TEMP", "TMP", "USERPROFILE", "APPDATA", "LOCALAPPDATA",
		"PROGRAMDATA", "PROGRAMFILES", "NUMBER_OF_PROCESSORS", "PROCESSOR_ARCHITECTURE"}
)

// ServerEnviron keeps of environ (KEY=VALUE lines) the variables a
// server inherits (passedPrefixes, passedNames; names compared without
// case on Windows' upper-case spellings). Pure.
func ServerEnviron(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		u := strings.ToUpper(k)
		if slices.Contains(passedNames, u) || slices.ContainsFunc(passedPrefixes, func(p string) bool { return strings.HasPrefix(u, p) }) {
			out = append(out, kv)
		}
	}
	return out
}

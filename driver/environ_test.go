package driver

import (
	"slices"
	"testing"
)

func TestServerEnviron(t *testing.T) {
	in := []string{"PATH=/usr/bin", "HOME=/root", "VGRID_TOKEN=secret", "VGRID_SERVER=http://x", "DOCKER_HOST=ssh://gpu2",
		"SSH_AUTH_SOCK=/tmp/agent", "AWS_SECRET_ACCESS_KEY=k", "VLLM_API_KEY=key", "VLLM_SIM_TIME_SCALE=0.01",
		"CUDA_VISIBLE_DEVICES=0,1", "HF_TOKEN=hf", "HF_HOME=/cache", "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True",
		"NCCL_P2P_DISABLE=1", "LD_LIBRARY_PATH=/usr/local/cuda/lib64", "LC_ALL=C.UTF-8", "SystemRoot=C:\\Windows", "junk", "=C:=C:\\"}
	want := []string{"PATH=/usr/bin", "HOME=/root", "VLLM_API_KEY=key", "VLLM_SIM_TIME_SCALE=0.01", "CUDA_VISIBLE_DEVICES=0,1",
		"HF_TOKEN=hf", "HF_HOME=/cache", "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True", "NCCL_P2P_DISABLE=1",
		"LD_LIBRARY_PATH=/usr/local/cuda/lib64", "LC_ALL=C.UTF-8", "SystemRoot=C:\\Windows"}
	if got := ServerEnviron(in); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

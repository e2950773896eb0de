package compose

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/vgrid/vgrid/profiles"
)

const fixtures = "../profiles/testdata/fixtures/"

func convertFixture(t *testing.T, name, service string, opts ConvertOptions, extra ...string) *Spec {
	t.Helper()
	p := profiles.Project{Files: append([]string{fixtures + name}, extra...), EnvFiles: []string{fixtures + "env.example"}, Name: "myia_vllm"}
	l, err := p.Load(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Convert(l.Project, service, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConvertFixtures(t *testing.T) {
	gpus := func(ids ...string) []container.DeviceRequest {
		return []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: ids, Capabilities: [][]string{{"gpu"}}}}
	}
	tests := []struct {
		file, service string
		check         func(t *testing.T, s *Spec)
	}{
		{"medium.yml", "vllm-medium-qwen3", func(t *testing.T, s *Spec) {
			eq(t, "name", s.Name, "myia_vllm-medium-qwen3")
			eq(t, "runtime", s.Host.Runtime, "nvidia")
			eq(t, "ipc", string(s.Host.IpcMode), "host")
			eq(t, "shm", s.Host.ShmSize, int64(16<<30))
			eq(t, "port binding", s.Host.PortBindings[network.MustParsePort("5002/tcp")][0].HostPort, "5002")
			eq(t, "health", strings.Join(s.Config.Healthcheck.Test, " "), "CMD curl -f http://localhost:5002/health")
			eq(t, "health interval", s.Config.Healthcheck.Interval, 30*time.Second)
			eq(t, "health start period", s.Config.Healthcheck.StartPeriod, 300*time.Second)
			eq(t, "health retries", s.Config.Healthcheck.Retries, 5)
			eq(t, "restart", s.Host.RestartPolicy.Name, container.RestartPolicyDisabled)
			eq(t, "vllm port", s.Port, 5002)
			eq(t, "served model", s.ServedModel, "Qwen/Qwen3-32B-AWQ")
			eq(t, "api key", s.APIKey, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
			eq(t, "gpus", s.GPUs, true)
			has(t, s.Config.Env, "NVIDIA_VISIBLE_DEVICES=0,1")
			eq(t, "network", s.Network, "myia_vllm_default")
			eq(t, "project label", s.Config.Labels[LabelProject], "myia_vllm")
			eq(t, "service label", s.Config.Labels[LabelService], "vllm-medium-qwen3")
			eq(t, "hash label", s.Config.Labels[LabelConfigHash], s.ServiceHash)
			eq(t, "cmd[0]", s.Config.Cmd[0], "--host")
		}},
		{"medium.original.yml", "vllm-medium-qwen3", func(t *testing.T, s *Spec) {
			eq(t, "devices", s.Host.DeviceRequests, gpus("0,1"))
			eq(t, "runtime", s.Host.Runtime, "")
		}},
		{"mini-solo.yml", "vllm-mini-solo", func(t *testing.T, s *Spec) {
			eq(t, "devices", s.Host.DeviceRequests, gpus("2"))
			eq(t, "restart", s.Host.RestartPolicy.Name, container.RestartPolicyUnlessStopped)
			eq(t, "named volumes", s.Volumes, []string{"myia_vllm_hf-cache-mini"})
			eq(t, "served model", s.ServedModel, "qwen3-vl-8b-thinking")
			eq(t, "port", s.Port, 5001)
			var vol *mount.Mount
			for i := range s.Host.Mounts {
				if s.Host.Mounts[i].Target == "/root/.cache/huggingface" {
					vol = &s.Host.Mounts[i]
				}
			}
			if vol == nil || vol.Type != mount.TypeVolume || vol.Source != "myia_vllm_hf-cache-mini" {
				t.Errorf("hf cache volume: %+v", s.Host.Mounts)
			}
			if len(s.Host.Binds) != 1 || !strings.HasSuffix(s.Host.Binds[0], ":/models:ro") {
				t.Errorf("binds %v: want the read-only models bind", s.Host.Binds)
			}
		}},
		{"medium-ornith15-awq.yml", "vllm-medium-ornith15", func(t *testing.T, s *Spec) {
			eq(t, "entrypoint", strings.Join(s.Config.Entrypoint, " "), "/bin/sh -c")
			eq(t, "autoheal label", s.Config.Labels["autoheal"], "False")
			eq(t, "devices", s.Host.DeviceRequests, gpus("0", "1"))
			eq(t, "served model", s.ServedModel, "ornith-1.5-35b-a3b")
			eq(t, "port", s.Port, 5002)
			// create_host_path: false -> a Mount, which the engine refuses
			// when the source is missing (the phantom-mount lesson).
			var hf *mount.Mount
			for i := range s.Host.Mounts {
				if s.Host.Mounts[i].Target == "/root/.cache/huggingface" {
					hf = &s.Host.Mounts[i]
				}
			}
			if hf == nil || hf.Type != mount.TypeBind {
				t.Errorf("HF cache bind with create_host_path: false is not a Mount: %+v / binds %v", s.Host.Mounts, s.Host.Binds)
			}
			for _, b := range s.Host.Binds {
				if strings.Contains(b, "/root/.cache/huggingface") {
					t.Errorf("HF cache in Binds (engine would create it): %s", b)
				}
			}
			eq(t, "compile cache volume", s.Volumes, []string{"myia_vllm_vllm-compile-cache-ornith15"})
		}},
		{"medium-ornith15-awq.yml", "watchdog-ornith15", func(t *testing.T, s *Spec) {
			eq(t, "image", s.Config.Image, "docker:cli")
			eq(t, "gpus", s.GPUs, false)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.service, func(t *testing.T) {
			tt.check(t, convertFixture(t, tt.file, tt.service, ConvertOptions{}))
		})
	}
}

func TestConvertGPUsOff(t *testing.T) {
	for _, f := range []string{"medium.yml", "medium.original.yml"} {
		s := convertFixture(t, f, "vllm-medium-qwen3", ConvertOptions{GPUsOff: true})
		if s.GPUs || s.Host.Runtime != "" || len(s.Host.DeviceRequests) != 0 || len(s.Warnings) == 0 {
			t.Errorf("%s with --gpus=off: runtime %q, devices %v, warnings %v", f, s.Host.Runtime, s.Host.DeviceRequests, s.Warnings)
		}
	}
}

func TestServiceHashFollowsConfig(t *testing.T) {
	a := convertFixture(t, "medium.yml", "vllm-medium-qwen3", ConvertOptions{})
	b := convertFixture(t, "medium.yml", "vllm-medium-qwen3", ConvertOptions{})
	c := convertFixture(t, "medium.chunked_only_safe.yml", "vllm-medium-qwen3", ConvertOptions{})
	if a.ServiceHash != b.ServiceHash || a.ServiceHash == c.ServiceHash || len(a.ServiceHash) != 64 {
		t.Errorf("hashes %s %s %s: want stable and config-dependent", a.ServiceHash, b.ServiceHash, c.ServiceHash)
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !equal(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func has(t *testing.T, list []string, want string) {
	t.Helper()
	for _, x := range list {
		if x == want {
			return
		}
	}
	t.Errorf("%v lacks %q", list, want)
}

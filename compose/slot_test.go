package compose

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vgrid/vgrid/profiles"
)

// slotSpec loads the profile, then the slot's override after it, the way
// the compose driver does, and converts the service.
func slotSpec(t *testing.T, profile, service string, s Slot) (*Spec, []byte) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "profile.yml")
	os.WriteFile(file, []byte(profile), 0o644)
	p := profiles.Project{Files: []string{file}, Name: "lab"}
	l, err := p.Load(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ov, err := s.Override(l.Project, service)
	if err != nil {
		t.Fatal(err)
	}
	ovFile := filepath.Join(dir, "slot.override.yml")
	sp := profiles.Project{Files: []string{file, ovFile}, Name: s.Project, Content: map[string][]byte{ovFile: ov}}
	sl, err := sp.Load(context.Background(), nil)
	if err != nil {
		t.Fatalf("the override does not load: %v\n%s", err, ov)
	}
	spec, err := Convert(sl.Project, service, ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return spec, ov
}

func TestSlotOverrideForms(t *testing.T) {
	slot := Slot{Index: 1, GPUs: "2,3", Port: 5003, Project: "lab-vgrid-slot2"}
	cases := []struct {
		name, profile string
		wantName      string
		wantBind      string // host ip:port for the vLLM port
		wantPort      string // container port/proto
		wantIDs       []string
		wantCUDA      string
	}{
		{name: "the user's medium.yml: runtime nvidia, NVIDIA_VISIBLE_DEVICES, same port inside and out",
			profile: `services:
  vllm:
    image: vllm/vllm-openai:latest
    container_name: myia_vllm-medium-qwen3
    command: --model m --port 5002 --tensor-parallel-size 2
    runtime: nvidia
    environment:
      - NVIDIA_VISIBLE_DEVICES=0,1
    ports:
      - "5002:5002"
`, wantName: "myia_vllm-medium-qwen3-vgrid-slot2", wantBind: ":5003", wantPort: "5002/tcp"},
		{name: "deploy reservations with count all, default port, loopback, metrics port",
			profile: `services:
  vllm:
    image: vllm/vllm-openai:v0.11.0
    command: ["--model", "m"]
    ports: ["127.0.0.1:8000:8000", "9090:9090"]
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              count: all
              capabilities: [gpu]
`, wantName: "lab-vgrid-slot2-vllm-1", wantBind: "127.0.0.1:5003", wantPort: "8000/tcp", wantIDs: []string{"2", "3"}},
		{name: "device_ids and CUDA_VISIBLE_DEVICES, --port= form",
			profile: `services:
  vllm:
    image: vllm/vllm-openai:latest
    command: --model m --port=7000
    environment:
      CUDA_VISIBLE_DEVICES: "0,1"
    ports:
      - target: 7000
        published: "7000"
        host_ip: 0.0.0.0
    deploy:
      resources:
        reservations:
          devices:
            - capabilities: [gpu]
              device_ids: ["0", "1"]
`, wantName: "lab-vgrid-slot2-vllm-1", wantBind: "0.0.0.0:5003", wantPort: "7000/tcp", wantIDs: []string{"2", "3"}, wantCUDA: "0,1"},
		{name: "gpus: all (compose 2.30)",
			profile: `services:
  vllm:
    image: vllm/vllm-openai:latest
    command: --model m
    gpus: all
    ports: ["8000:8000"]
`, wantName: "lab-vgrid-slot2-vllm-1", wantBind: ":5003", wantPort: "8000/tcp", wantIDs: []string{"2", "3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, ov := slotSpec(t, c.profile, "vllm", slot)
			if s.Project != "lab-vgrid-slot2" || s.Config.Labels[LabelProject] != "lab-vgrid-slot2" {
				t.Errorf("project %q (label %q), want lab-vgrid-slot2", s.Project, s.Config.Labels[LabelProject])
			}
			if s.Name != c.wantName {
				t.Errorf("container name %q, want %q", s.Name, c.wantName)
			}
			if s.Config.Labels[LabelSlot] != "2" {
				t.Errorf("slot label %q", s.Config.Labels[LabelSlot])
			}
			if len(s.Host.PortBindings) != 1 {
				t.Errorf("published ports %v: want only vLLM's", s.Host.PortBindings)
			}
			for p, bs := range s.Host.PortBindings {
				got := ""
				if bs[0].HostIP.IsValid() {
					got = bs[0].HostIP.String()
				}
				got += ":" + bs[0].HostPort
				if p.String() != c.wantPort || got != c.wantBind {
					t.Errorf("binding %s -> %s, want %s -> %s\n%s", p, got, c.wantPort, c.wantBind, ov)
				}
			}
			if !slices.Contains(s.Config.Env, "NVIDIA_VISIBLE_DEVICES=2,3") {
				t.Errorf("env %v: want NVIDIA_VISIBLE_DEVICES=2,3", s.Config.Env)
			}
			if c.wantCUDA != "" && !slices.Contains(s.Config.Env, "CUDA_VISIBLE_DEVICES="+c.wantCUDA) {
				t.Errorf("env %v: want CUDA_VISIBLE_DEVICES=%s", s.Config.Env, c.wantCUDA)
			}
			var ids []string
			for _, r := range s.Host.DeviceRequests {
				if r.Count != 0 {
					t.Errorf("device request %+v still asks for a count", r)
				}
				ids = append(ids, r.DeviceIDs...)
			}
			if !slices.Equal(ids, c.wantIDs) {
				t.Errorf("device IDs %v, want %v\n%s", ids, c.wantIDs, ov)
			}
		})
	}
}

func TestSlotOverrideRefusesHostNetwork(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yml")
	os.WriteFile(file, []byte("services:\n  vllm:\n    image: x\n    network_mode: host\n    command: --model m\n"), 0o644)
	l, err := profiles.Project{Files: []string{file}}.Load(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Slot{GPUs: "0", Port: 5003, Project: "p-vgrid-slot1"}.Override(l.Project, "vllm")
	if err == nil || !strings.Contains(err.Error(), "network_mode: host") {
		t.Fatalf("err = %v", err)
	}
}

func TestConvertGPUsField(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yml")
	os.WriteFile(file, []byte("services:\n  vllm:\n    image: x\n    command: --model m\n    gpus: all\n"), 0o644)
	l, err := profiles.Project{Files: []string{file}}.Load(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Convert(l.Project, "vllm", ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Host.DeviceRequests) != 1 || s.Host.DeviceRequests[0].Count != -1 || !slices.Contains(s.Host.DeviceRequests[0].Capabilities[0], "gpu") || !s.GPUs {
		t.Fatalf("gpus: all gave %+v (GPUs %v); want every GPU with the gpu capability", s.Host.DeviceRequests, s.GPUs)
	}
	off, _ := Convert(l.Project, "vllm", ConvertOptions{GPUsOff: true})
	if len(off.Host.DeviceRequests) != 0 || off.GPUs {
		t.Fatalf("--gpus=off left %+v", off.Host.DeviceRequests)
	}
}

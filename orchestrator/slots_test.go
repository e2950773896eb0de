package orchestrator

import (
	"strings"
	"testing"
)

func TestMachine(t *testing.T) {
	for host, want := range map[string]string{
		"": "local", "unix:///var/run/docker.sock": "local", "npipe:////./pipe/docker_engine": "local",
		"tcp://127.0.0.1:2376": "local", "tcp://gpu2:2376": "gpu2", "ssh://ana@gpu2:2222": "gpu2", "ssh://gpu3": "gpu3",
		"lab-gpu2": "context lab-gpu2",
	} {
		if got := Machine(host); got != want {
			t.Errorf("Machine(%q) = %q, want %q", host, got, want)
		}
	}
}

// Slots collide only on one machine: two hosts may use the same GPU IDs
// and ports; one machine's engines (two local sockets) share its GPUs.
func TestCheckSlotsPerMachine(t *testing.T) {
	compose := Target{Driver: "compose", Files: []string{"/p/medium.yml"}, Service: "vllm"}
	cases := []struct {
		slots []SlotDef
		err   string
	}{
		{slots: []SlotDef{{GPUs: "0,1", Port: 5002, DockerHost: "ssh://gpu2"}, {GPUs: "0,1", Port: 5002, DockerHost: "ssh://gpu3"}}},
		{slots: []SlotDef{{GPUs: "0,1", Port: 5002}, {GPUs: "0,1", Port: 5003, DockerHost: "ssh://gpu2"}}},
		{slots: []SlotDef{{GPUs: "0,1", Port: 5002}, {GPUs: "1,2", Port: 5003, DockerHost: "unix:///tmp/d2.sock"}}, err: "both use GPU 1"},
		{slots: []SlotDef{{GPUs: "0", Port: 5002, DockerHost: "ssh://a@gpu2"}, {GPUs: "1", Port: 5002, DockerHost: "ssh://b@gpu2:22"}}, err: "both use port 5002 on gpu2"},
	}
	for _, c := range cases {
		tg := compose
		tg.Slots = c.slots
		err := tg.checkSlots()
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%+v: err = %v, want %q", c.slots, err, c.err)
		}
	}
}

func TestComposeSlotTarget(t *testing.T) {
	tg := Target{Driver: "compose", Files: []string{"/p/medium.yml"}, Project: "myia_vllm", Service: "vllm", DockerHost: "ssh://gpu1",
		Slots: []SlotDef{{GPUs: "0,1", Port: 5002}, {GPUs: "0,1", Port: 5002, DockerHost: "ssh://gpu2"}}}
	s0, err := tg.SlotTarget(0)
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := tg.SlotTarget(1)
	if s0.DockerHost != "ssh://gpu1" || s1.DockerHost != "ssh://gpu2" || s0.Project != "myia_vllm-vgrid-slot1" || s1.Project != "myia_vllm-vgrid-slot2" {
		t.Errorf("slot targets %+v / %+v", s0, s1)
	}
	if s0.Endpoint != "" || len(s0.Command) != 0 || s0.Env != nil {
		t.Errorf("a compose slot target got process settings: %+v", s0)
	}
	keys := tg.Keys()
	if len(keys) != 3 || keys[1] == keys[2] || keys[0] == keys[1] {
		t.Errorf("keys %v: want the target's and one per slot, all distinct", keys)
	}
	tg.Endpoint = "http://gpu1:8000"
	if s, _ := tg.SlotTarget(0); s.Endpoint != "http://gpu1:5002" {
		t.Errorf("endpoint %q, want the slot's port", s.Endpoint)
	}
}

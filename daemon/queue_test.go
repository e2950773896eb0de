package daemon

import (
	"strings"
	"testing"

	"github.com/vgrid/vgrid/orchestrator"
)

func TestPick(t *testing.T) {
	run := func(id, target string, s orchestrator.RunState) *orchestrator.Run {
		return &orchestrator.Run{ID: id, Target: target, State: s}
	}
	// slotted is a run of a process target on port 7000+ whose one slot
	// listens on slotPort.
	slotted := func(id, name string, slotPort int, s orchestrator.RunState) *orchestrator.Run {
		g := orchestrator.Grid{Target: orchestrator.Target{Driver: "process", Command: []string{"vllm", "serve"},
			Endpoint: "http://127.0.0.1:7" + id + "00", Slots: []orchestrator.SlotDef{{GPUs: "0", Port: slotPort}}}}
		return &orchestrator.Run{ID: id, Target: g.Target.Key(), State: s, Grid: g}
	}
	q, r, i, d := orchestrator.RunQueued, orchestrator.RunRunning, orchestrator.RunInterrupted, orchestrator.RunDone
	tests := []struct {
		name string
		runs []*orchestrator.Run // newest first, as the store lists them
		busy []string
		want string
	}{
		{"oldest queued first", []*orchestrator.Run{run("3", "a", q), run("2", "a", q), run("1", "a", d)}, nil, "2"},
		{"one per target, targets in parallel", []*orchestrator.Run{run("4", "b", q), run("3", "a", q), run("2", "b", q), run("1", "a", q)}, nil, "1,2"},
		{"a left run before an older queued one", []*orchestrator.Run{run("3", "a", i), run("2", "a", q), run("1", "a", q)}, nil, "3"},
		{"a run left running by a dead daemon resumes", []*orchestrator.Run{run("2", "a", q), run("1", "a", r)}, nil, "1"},
		{"a busy target waits", []*orchestrator.Run{run("2", "b", q), run("1", "a", q)}, []string{"a"}, "2"},
		{"nothing to do", []*orchestrator.Run{run("1", "a", d)}, nil, ""},
		{"a run waits while another holds one of its slots", []*orchestrator.Run{slotted("3", "c", 8101, q), slotted("2", "b", 8101, q), run("1", "a", q)}, nil, "1,2"},
		{"a run waits while a busy run holds its slot", []*orchestrator.Run{slotted("2", "b", 8101, q)}, []string{"process:http://127.0.0.1:8101"}, ""},
	}
	for _, tt := range tests {
		busy := map[string]bool{}
		for _, b := range tt.busy {
			busy[b] = true
		}
		var got []string
		for _, r := range pick(tt.runs, busy) {
			got = append(got, r.ID)
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%s: got %v, want %s", tt.name, got, tt.want)
		}
	}
}

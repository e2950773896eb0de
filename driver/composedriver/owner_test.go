package composedriver

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

func TestOwnerAlive(t *testing.T) {
	host, _ := os.Hostname()
	dead := exec.Command("true")
	dead.Run()
	sleeper := exec.Command("sleep", "30")
	sleeper.Start()
	defer sleeper.Process.Kill()
	tests := []struct {
		label string
		alive bool
	}{
		{owner("run-a"), false}, // this process, this run
		{fmt.Sprintf("%s:%d:run-b", host, dead.Process.Pid), false},   // killed -9: take over
		{fmt.Sprintf("%s:%d:run-b", host, sleeper.Process.Pid), true}, // another live process here
		{"other-host:1:run-b", true},                                  // cannot check: refuse
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := ownerAlive(tt.label, "run-a"); got != tt.alive {
			t.Errorf("ownerAlive(%q) = %v, want %v", tt.label, got, tt.alive)
		}
	}
}

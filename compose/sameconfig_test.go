package compose

import (
	"testing"

	"github.com/moby/moby/api/types/container"
)

// A running container with the service's config hash is the spec only if
// it also carries every label the spec sets: one started by a vgrid that
// was killed (same run, other pid) has served that process's requests and
// must be recreated, not measured again.
func TestSameConfigNeedsTheSpecsLabels(t *testing.T) {
	spec := &Spec{ServiceHash: "h1", Config: &container.Config{Labels: map[string]string{
		LabelConfigHash: "h1", "io.vgrid.run": "r1", "io.vgrid.owner": "host:200:r1"}}}
	running := func(labels map[string]string) []container.Summary {
		return []container.Summary{{ID: "c1", State: container.StateRunning, Labels: labels}}
	}
	for _, tc := range []struct {
		name string
		cs   []container.Summary
		want bool
	}{
		{"same hash and labels", running(map[string]string{LabelConfigHash: "h1", "io.vgrid.run": "r1", "io.vgrid.owner": "host:200:r1", "other": "x"}), true},
		{"a killed vgrid's container", running(map[string]string{LabelConfigHash: "h1", "io.vgrid.run": "r1", "io.vgrid.owner": "host:100:r1"}), false},
		{"the user's own container", running(map[string]string{LabelConfigHash: "h1"}), false},
		{"other hash", running(map[string]string{LabelConfigHash: "h2", "io.vgrid.run": "r1", "io.vgrid.owner": "host:200:r1"}), false},
		{"stopped", []container.Summary{{ID: "c1", State: container.StateExited, Labels: map[string]string{LabelConfigHash: "h1", "io.vgrid.run": "r1", "io.vgrid.owner": "host:200:r1"}}}, false},
		{"two containers", append(running(nil), running(nil)...), false},
	} {
		if _, got := sameConfig(spec, tc.cs); got != tc.want {
			t.Errorf("%s: same = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Without labels of its own, a spec matches on the hash alone.
	bare := &Spec{ServiceHash: "h1", Config: &container.Config{}}
	if _, ok := sameConfig(bare, running(map[string]string{LabelConfigHash: "h1"})); !ok {
		t.Error("a spec without labels should match on its hash")
	}
}

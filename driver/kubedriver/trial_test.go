package kubedriver

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func manifestFile(t *testing.T, name string) *Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "profiles", "testdata", "k8s", name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A trial's workload is the user's, renamed and relabelled: one replica,
// its own selector, the user's Service no longer selecting its pods, the
// GPUs, volumes and node selection kept.
func TestTrialObjectFromPublicManifests(t *testing.T) {
	ids := TrialIDs{Run: "20261204-215320.448-b823", Trial: "3", Candidate: "5d29902cb299"}
	cases := []struct {
		file, workload string
		gpus           int
		shared         []string
	}{
		{"vllm-docs-gpu.yaml", "deployment/mistral-7b", 1, nil}, // its PVC is in another file
		{"aws-cdk-meta-llama.yaml", "deployment/vllm-meta-llama-server", 0, []string{"vllm-meta-llama"}},
		{"aibrix-quickstart.yaml", "deployment/deepseek-r1-distill-llama-8b", 1, nil},
		{"lws-gpu.yaml", "leaderworkerset/vllm", 8, nil},
		{"nastp-deployment.yaml", "deployment/vllm-deployment", 1, nil},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			m := manifestFile(t, c.file)
			w, err := m.Workload(c.workload)
			if err != nil {
				t.Fatal(err)
			}
			if got := GPUs(w); got != c.gpus {
				t.Errorf("GPUs %d, want %d", got, c.gpus)
			}
			if got := m.SharedClaims(w); !slices.Equal(got, c.shared) {
				t.Errorf("shared ReadWriteOnce claims %v, want %v", got, c.shared)
			}
			o, err := TrialObject(w, ids)
			if err != nil {
				t.Fatal(err)
			}
			if o.GetName() != "vgrid-20261204-215320-448-b823-3" || o.GetLabels()[LabelManagedBy] != "vgrid" || o.GetLabels()[LabelTrial] != "3" {
				t.Errorf("metadata %v %v", o.GetName(), o.GetLabels())
			}
			if o.GetNamespace() != w.GetNamespace() {
				t.Errorf("namespace %q, want %q", o.GetNamespace(), w.GetNamespace())
			}
			if _, has := o.Object["status"]; has {
				t.Error("status kept")
			}
			// The user's Service selects none of the trial's pods.
			for _, svc := range m.Objects {
				if svc.GetKind() != "Service" {
					continue
				}
				sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
				for _, labels := range podLabels(o) {
					if len(sel) > 0 && matches(sel, labels) {
						t.Errorf("service %s selects the trial's pods (%v)", svc.GetName(), labels)
					}
				}
			}
			if GPUs(o) != c.gpus {
				t.Errorf("the trial asks %d GPUs, the workload %d", GPUs(o), c.gpus)
			}
			if strings.ToLower(w.GetKind()) == "deployment" {
				sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
				if !matches(sel, podLabels(o)[0]) || sel[LabelRun] != ids.Run {
					t.Errorf("selector %v does not select its own pods %v", sel, podLabels(o)[0])
				}
				if r, _, _ := unstructured.NestedInt64(o.Object, "spec", "replicas"); r != 1 {
					t.Errorf("replicas %d", r)
				}
			}
			// The user's workload is not touched.
			if w.GetName() == o.GetName() {
				t.Error("the workload itself was renamed")
			}
		})
	}
	if _, err := TrialObject(&unstructured.Unstructured{Object: map[string]any{"kind": "DaemonSet", "metadata": map[string]any{"name": "v"}}}, ids); err == nil || !strings.Contains(err.Error(), "one pod per node") {
		t.Errorf("a DaemonSet: %v", err)
	}
}

func podLabels(o *unstructured.Unstructured) []map[string]string {
	var out []map[string]string
	for _, p := range templatePaths[strings.ToLower(o.GetKind())] {
		l, _, _ := unstructured.NestedStringMap(o.Object, append(slices.Clone(p), "metadata", "labels")...)
		out = append(out, l)
	}
	return out
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestTrialNamesAreDNSLabels(t *testing.T) {
	long := TrialIDs{Run: strings.Repeat("R", 80), Trial: "117"}
	for _, ids := range []TrialIDs{{Run: "20261204-215320.448-b823", Trial: "0"}, long} {
		n := ids.Name()
		if len(n) > 63 || strings.ToLower(n) != n || strings.Trim(n, "-") != n || !strings.HasSuffix(n, "-"+ids.Trial) {
			t.Errorf("%q is not a DNS label ending in the trial", n)
		}
	}
}

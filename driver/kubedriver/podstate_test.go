package kubedriver

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/vgrid/vgrid/failure"
)

// readPodFile decodes a pod of testdata/pods. Those files write some times
// as "@now-5m" (their project fills them in); they become one fixed time.
func readPodFile(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "pods", name))
	if err != nil {
		t.Fatal(err)
	}
	b = regexp.MustCompile(`"?@now[-+0-9a-z]*"?`).ReplaceAll(b, []byte(`"2026-12-04T03:00:00Z"`))
	var pod corev1.Pod
	if err := yaml.Unmarshal(b, &pod); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &pod
}

// Real pods, as the API server reported them, read as a trial's pod: each
// is waiting, running, evicted (redone) or failed with the reason a
// compose trial would get for the same end.
func TestReadPod(t *testing.T) {
	now := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	cases := []struct {
		file             string
		running, evicted bool
		waiting          string // a part of the waiting text
		reason           failure.Reason
		detail           string // a part of the failure's detail
	}{
		{file: "pod-pending.yaml", waiting: "PodInitializing"},
		{file: "container-creating.yaml", waiting: "ContainerCreating"},
		{file: "healthy.yaml", running: true},
		{file: "crashloopbackoff.yaml", reason: failure.ReasonCrashLoop, detail: "exited with code 1"},
		{file: "oomkilled-unhealthy.yaml", running: true, reason: failure.ReasonOOMKilled, detail: "9 restart(s)"},
		{file: "pod-imagepullbackoff.yaml", reason: failure.ReasonImageMissing, detail: "ImagePullBackOff"},
		{file: "start-error.yaml", reason: failure.ReasonCreate, detail: "StartError"},
		{file: "evicted.yaml", evicted: true, waiting: "low on resource: memory"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			pod := readPodFile(t, c.file)
			container := ""
			if len(pod.Spec.Containers) > 0 {
				container = pod.Spec.Containers[0].Name
			}
			w := failure.NewBootWatch("scheduling the pod", now)
			st := ReadPod(pod, container, nil, w, now)
			if st.Running != c.running || st.Evicted != c.evicted || !strings.Contains(st.Waiting, c.waiting) {
				t.Errorf("running %v evicted %v waiting %q, want %v %v %q", st.Running, st.Evicted, st.Waiting, c.running, c.evicted, c.waiting)
			}
			switch {
			case c.reason == failure.ReasonNone && st.Failure != nil:
				t.Errorf("failure %v, want none", st.Failure)
			case c.reason != failure.ReasonNone && (st.Failure == nil || st.Failure.Reason != c.reason || !strings.Contains(st.Failure.Detail, c.detail)):
				t.Errorf("failure %v, want %s with %q", st.Failure, c.reason, c.detail)
			}
		})
	}
}

// A pod waiting for GPUs waits (the scheduler's words kept), and fails
// unschedulable only when the grid's timeouts.schedule says so. The
// message is written here in kube-scheduler's form for an extended
// resource no node has free; the cluster tests will record the real one.
func TestUnschedulableWaitsThenFails(t *testing.T) {
	now := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	msg := "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
	pod := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: msg}}}}
	events := []corev1.Event{{Reason: "FailedScheduling", Message: msg, Type: corev1.EventTypeWarning}}
	w := failure.NewBootWatch("scheduling the pod", now)
	st := ReadPod(pod, "vllm", events, w, now)
	if st.Failure != nil || st.Running || !strings.Contains(st.Waiting, "Insufficient nvidia.com/gpu") {
		t.Fatalf("a pod waiting for GPUs: %+v", st)
	}
	f := Unschedulable(st, 10*time.Minute, w, now.Add(10*time.Minute))
	if f.Reason != failure.ReasonUnschedulable || !strings.Contains(f.Detail, "within 10m0s (timeouts.schedule); the scheduler says: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu") {
		t.Errorf("unschedulable: %v", f)
	}
}

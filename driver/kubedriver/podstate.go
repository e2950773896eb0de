// Package kubedriver is the Kubernetes driver: each trial is a workload
// the cluster schedules. This file reads what the
// cluster says of a trial's pod (its conditions, its container's status,
// the events about it) into the one boot watch every driver feeds, so that
// a pod waiting for GPUs, a failed image pull, an OOM kill or an eviction
// is named as the compose driver names its equivalents.
//
// May import: orchestrator (types), failure, profiles, driver, benchmark
// (GPU names and telemetry), vllm, k8s.io/api, k8s.io/apimachinery,
// k8s.io/client-go, k8s.io/streaming.
package kubedriver

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vgrid/vgrid/failure"
)

// PodState is a trial pod as the driver reads it at one moment.
type PodState struct {
	Node      string // where the scheduler placed it ("" while pending)
	Running   bool   // the vLLM container runs (its log is worth reading)
	Restarts  int    // of the vLLM container
	Waiting   string // why it is not running yet, when that is not a failure (the scheduler's message, an image pull)
	Evicted   bool   // the pod was evicted or its node went away: the trial is redone, not failed
	Terminate string // how the container ended, when it did ("exited with code 1", "OOMKilled (exit 137)")
	Failure   *failure.Failure
}

// imagePull are the waiting reasons of a container whose image cannot be
// had; ImagePullBackOff and ErrImagePull may clear (a registry slow to
// answer), the others never do.
var imagePull = []string{"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}

// ReadPod reads pod (the trial's, its vLLM container named container) and
// the events about it, oldest first. A failure is built through w, so
// that it carries the boot's phase and the log lines fed so far.
func ReadPod(pod *corev1.Pod, container string, events []corev1.Event, w *failure.BootWatch, now time.Time) PodState {
	st := PodState{Node: pod.Spec.NodeName}
	if pod.Status.Reason == "Evicted" || pod.Status.Reason == "NodeLost" || pod.Status.Reason == "Terminated" && pod.DeletionTimestamp != nil {
		st.Evicted = true
		st.Waiting = fmt.Sprintf("the pod was %s: %s", strings.ToLower(pod.Status.Reason), pod.Status.Message)
		return st
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			st.Evicted = true
			st.Waiting = fmt.Sprintf("the pod is being disrupted (%s): %s", c.Reason, c.Message)
			return st
		}
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			st.Waiting = "not scheduled: " + firstNonEmpty(c.Message, lastEvent(events, "FailedScheduling"), c.Reason)
		}
	}
	var cs *corev1.ContainerStatus
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == container {
			cs = &pod.Status.ContainerStatuses[i]
		}
	}
	if cs == nil {
		if st.Waiting == "" && pod.Spec.NodeName == "" {
			st.Waiting = "not scheduled yet"
		}
		return st
	}
	st.Restarts = int(cs.RestartCount)
	switch {
	case cs.State.Running != nil && cs.RestartCount > 0 && cs.LastTerminationState.Terminated != nil:
		// A trial's pod is new: a server that ran before this one died.
		st.Running = true
		st.Failure = crashed(w, cs.LastTerminationState.Terminated, cs.RestartCount, now)
	case cs.State.Running != nil:
		st.Running = true
	case cs.State.Waiting != nil:
		wt := cs.State.Waiting
		switch {
		case slices.Contains(imagePull, wt.Reason):
			st.Failure = w.Fail(failure.ReasonImageMissing, fmt.Sprintf("the node %s cannot get the image %s (%s): %s", pod.Spec.NodeName, cs.Image, wt.Reason, wt.Message), "", now)
		case wt.Reason == "CrashLoopBackOff":
			st.Failure = crashed(w, cs.LastTerminationState.Terminated, cs.RestartCount, now)
		case wt.Reason == "CreateContainerConfigError" || wt.Reason == "CreateContainerError" || wt.Reason == "RunContainerError":
			st.Failure = w.Fail(failure.ReasonCreate, fmt.Sprintf("the kubelet could not start the container (%s): %s", wt.Reason, wt.Message), "", now)
		default:
			st.Waiting = firstNonEmpty(wt.Reason+": "+wt.Message, "the container is being created")
		}
	case cs.State.Terminated != nil:
		t := cs.State.Terminated
		st.Terminate = ended(t)
		switch t.Reason {
		case "OOMKilled":
			st.Failure = w.Fail(failure.ReasonOOMKilled, "the kernel killed the server for the pod's memory limit ("+st.Terminate+") while "+w.Phase(), "", now)
		case "StartError", "ContainerCannotRun":
			st.Failure = w.Fail(failure.ReasonCreate, "the container runtime could not start the server ("+t.Reason+"): "+st.Terminate, "", now)
		default:
			st.Failure = w.Died(st.Terminate, now)
		}
	}
	return st
}

// crashed explains a container the kubelet restarts in a loop: by what
// its log proves (fed to w before), else by how it last ended.
func crashed(w *failure.BootWatch, last *corev1.ContainerStateTerminated, restarts int32, now time.Time) *failure.Failure {
	if f := w.Ended(now); f != nil {
		return f
	}
	how := "ended"
	if last != nil {
		how = ended(last)
		if last.Reason == "OOMKilled" {
			return w.Fail(failure.ReasonOOMKilled, fmt.Sprintf("the kernel killed the server for the pod's memory limit (%s) while %s, %d restart(s)", how, w.Phase(), restarts), "", now)
		}
	}
	return w.Fail(failure.ReasonCrashLoop, fmt.Sprintf("%s while %s and was restarted %d time(s) by the kubelet (CrashLoopBackOff)", how, w.Phase(), restarts), "", now)
}

// ended says how a container ended: its code, with the kernel's or the
// kubelet's reason when there is one.
func ended(t *corev1.ContainerStateTerminated) string {
	s := fmt.Sprintf("exited with code %d", t.ExitCode)
	switch {
	case t.Reason == "OOMKilled":
		s = fmt.Sprintf("OOMKilled (exit %d)", t.ExitCode)
	case t.Signal != 0:
		s += fmt.Sprintf(" (signal %d)", t.Signal)
	case t.ExitCode == 137:
		s += " (SIGKILL)"
	}
	if t.Message != "" {
		s += ": " + t.Message
	}
	return s
}

// Unschedulable is the failure of a pod still not scheduled after the
// grid's timeouts.schedule, with the scheduler's last word.
func Unschedulable(st PodState, timeout time.Duration, w *failure.BootWatch, now time.Time) *failure.Failure {
	return w.Fail(failure.ReasonUnschedulable, fmt.Sprintf("no node took the trial's pod within %s (timeouts.schedule); the scheduler says: %s", timeout, strings.TrimPrefix(st.Waiting, "not scheduled: ")), "", now)
}

// lastEvent is the message of the newest event of reason r.
func lastEvent(events []corev1.Event, r string) string {
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Reason == r {
			return events[i].Message
		}
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(strings.Trim(v, ": ")) != "" {
			return v
		}
	}
	return ""
}

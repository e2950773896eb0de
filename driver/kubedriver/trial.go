package kubedriver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The labels of everything vgrid creates in a cluster.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by" // = "vgrid"
	LabelRun       = "vgrid.io/run"
	LabelTrial     = "vgrid.io/trial"
	LabelCandidate = "vgrid.io/candidate" // the rendering's hash, short
	LabelSlot      = "vgrid.io/slot"      // with target.parallel: which of the run's slots
)

// Manifest is the user's manifest decoded into objects (in file order),
// for what vgrid creates from it; edits to the file itself go through
// package profiles, byte-minimal.
type Manifest struct {
	Objects []*unstructured.Unstructured
}

// DecodeManifest decodes every document of a manifest (Lists expanded).
func DecodeManifest(src []byte) (*Manifest, error) {
	m := &Manifest{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(src), 4096)
	for i := 1; ; i++ {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if obj == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.IsList() {
			l, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", i, err)
			}
			for j := range l.Items {
				m.Objects = append(m.Objects, &l.Items[j])
			}
			continue
		}
		m.Objects = append(m.Objects, u)
	}
}

// Workload finds the workload KIND/NAME (as package profiles names it:
// deployment/vllm).
func (m *Manifest) Workload(ref string) (*unstructured.Unstructured, error) {
	kind, name, _ := strings.Cut(ref, "/")
	var have []string
	for _, o := range m.Objects {
		k := strings.ToLower(o.GetKind())
		if k == kind && o.GetName() == name {
			return o, nil
		}
		if _, ok := templatePaths[k]; ok {
			have = append(have, k+"/"+o.GetName())
		}
	}
	return nil, fmt.Errorf("the manifest has no %s; its workloads: %s", ref, strings.Join(have, ", "))
}

// templatePaths are where each workload kind keeps its pod templates (a
// Pod is its own).
var templatePaths = map[string][][]string{
	"pod":             {{}},
	"deployment":      {{"spec", "template"}},
	"statefulset":     {{"spec", "template"}},
	"daemonset":       {{"spec", "template"}},
	"replicaset":      {{"spec", "template"}},
	"job":             {{"spec", "template"}},
	"leaderworkerset": {{"spec", "leaderWorkerTemplate", "leaderTemplate"}, {"spec", "leaderWorkerTemplate", "workerTemplate"}},
}

// TrialIDs name one trial's workload.
type TrialIDs struct {
	Run, Trial, Candidate string // the run id, the trial's place in it, the rendering's hash
	Slot                  string // with target.parallel
}

// Name is the trial's workload name, vgrid-<run>-<trial>, made a valid
// DNS label (lower case, at most 63 characters).
func (ids TrialIDs) Name() string {
	run := strings.ToLower(ids.Run)
	run = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, run)
	n := "vgrid-" + run + "-" + ids.Trial
	if len(n) > 63 {
		n = "vgrid-" + run[len(run)-(63-len("vgrid--")-len(ids.Trial)):] + "-" + ids.Trial
	}
	return strings.Trim(n, "-")
}

func (ids TrialIDs) labels() map[string]string {
	l := map[string]string{LabelManagedBy: "vgrid", LabelRun: ids.Run, LabelTrial: ids.Trial, LabelCandidate: ids.Candidate}
	if ids.Slot != "" {
		l[LabelSlot] = ids.Slot
	}
	return l
}

// TrialObject is the trial's copy of workload (from the manifest with the
// candidate rendered in): named for the trial, one replica, labelled,
// and selecting its own pods only. The pod template keeps the user's
// labels except those the workload selects on: the user's Service then
// does not send traffic to a trial, nor the user's controller adopt its
// pods. Server-set fields (status, uid, resourceVersion, managedFields)
// are dropped.
func TrialObject(workload *unstructured.Unstructured, ids TrialIDs) (*unstructured.Unstructured, error) {
	kind := strings.ToLower(workload.GetKind())
	paths, ok := templatePaths[kind]
	if !ok {
		return nil, fmt.Errorf("%s/%s: vgrid runs trials of a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod or LeaderWorkerSet", kind, workload.GetName())
	}
	if kind == "daemonset" {
		return nil, fmt.Errorf("daemonset/%s: a DaemonSet runs one pod per node, not one trial; write the server as a Deployment or StatefulSet for vgrid to tune", workload.GetName())
	}
	o := workload.DeepCopy()
	delete(o.Object, "status")
	md := map[string]any{"name": ids.Name(), "labels": toAny(merge(o.GetLabels(), ids.labels()))}
	if ns := o.GetNamespace(); ns != "" {
		md["namespace"] = ns
	}
	if a := o.GetAnnotations(); len(a) > 0 {
		md["annotations"] = toAny(a)
	}
	o.Object["metadata"] = md
	selected, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
	for _, p := range paths {
		tmpl := o.Object
		if len(p) > 0 {
			t, ok, _ := unstructured.NestedMap(o.Object, p...)
			if !ok {
				continue
			}
			tmpl = t
		}
		labels, _, _ := unstructured.NestedStringMap(tmpl, "metadata", "labels")
		for k := range selected {
			delete(labels, k)
		}
		if err := unstructured.SetNestedStringMap(tmpl, merge(labels, ids.labels()), "metadata", "labels"); err != nil {
			return nil, err
		}
		if len(p) > 0 {
			if err := unstructured.SetNestedMap(o.Object, tmpl, p...); err != nil {
				return nil, err
			}
		}
	}
	switch kind {
	case "deployment", "statefulset", "replicaset":
		unstructured.SetNestedStringMap(o.Object, ids.labels(), "spec", "selector", "matchLabels")
		unstructured.RemoveNestedField(o.Object, "spec", "selector", "matchExpressions")
		unstructured.SetNestedField(o.Object, int64(1), "spec", "replicas")
	case "leaderworkerset":
		unstructured.SetNestedField(o.Object, int64(1), "spec", "replicas")
	case "job":
		unstructured.RemoveNestedField(o.Object, "spec", "selector")
		unstructured.RemoveNestedField(o.Object, "spec", "manualSelector")
	}
	return o, nil
}

func merge(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SharedClaims lists the ReadWriteOnce PersistentVolumeClaims (of the
// manifest) that workload's pods mount: trials in parallel would each
// need that volume, and a ReadWriteOnce volume is mounted by one node at
// a time, so such trials wait for each other or fail to start.
func (m *Manifest) SharedClaims(workload *unstructured.Unstructured) []string {
	rwo := map[string]bool{}
	for _, o := range m.Objects {
		if o.GetKind() != "PersistentVolumeClaim" || o.GetNamespace() != workload.GetNamespace() {
			continue
		}
		modes, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "accessModes")
		if slices.Contains(modes, "ReadWriteOnce") || slices.Contains(modes, "ReadWriteOncePod") {
			rwo[o.GetName()] = true
		}
	}
	var out []string
	for _, p := range templatePaths[strings.ToLower(workload.GetKind())] {
		vols, _, _ := unstructured.NestedSlice(workload.Object, append(slices.Clone(p), "spec", "volumes")...)
		for _, v := range vols {
			claim, _, _ := unstructured.NestedString(v.(map[string]any), "persistentVolumeClaim", "claimName")
			if rwo[claim] && !slices.Contains(out, claim) {
				out = append(out, claim)
			}
		}
	}
	return out
}

// GPUs is how many nvidia.com/gpu a pod of the workload asks for (the
// containers' limits, else requests, summed), per pod template.
func GPUs(workload *unstructured.Unstructured) int {
	most := 0
	for _, p := range templatePaths[strings.ToLower(workload.GetKind())] {
		cs, _, _ := unstructured.NestedSlice(workload.Object, append(slices.Clone(p), "spec", "containers")...)
		n := 0
		for _, c := range cs {
			for _, field := range []string{"limits", "requests"} {
				v, ok, _ := unstructured.NestedFieldNoCopy(c.(map[string]any), "resources", field, "nvidia.com/gpu")
				if !ok {
					continue
				}
				var k int
				fmt.Sscan(fmt.Sprint(v), &k)
				n += k
				break
			}
		}
		most = max(most, n)
	}
	return most
}

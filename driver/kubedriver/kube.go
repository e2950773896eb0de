package kubedriver

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/klog/v2"

	"github.com/vgrid/vgrid/driver"
	"github.com/vgrid/vgrid/failure"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/vllm"
)

// Kube runs candidates as workloads the cluster schedules: each trial is
// a copy of the user's workload with the candidate rendered in
// (TrialObject), owned by the run's ConfigMap so that deleting it removes
// every trial. The user's manifest is the profile: backed up before the
// first trial, written and applied only by the crown and the restore.
type Kube struct {
	acc       *Access
	cs        kubernetes.Interface
	dyn       dynamic.Interface
	mapper    meta.RESTMapper
	log       zerolog.Logger
	file      string // the manifest
	mode      os.FileMode
	original  []byte
	doc       *profiles.Document
	unit      string // kind/name/container
	container string
	namespace string
	runID     string
	owner     *corev1.ConfigMap // the run's: every trial object is its dependent
	slot      string            // "" alone; "0", "1", ... with target.parallel

	ReadyTimeoutSchedule time.Duration // timeouts.schedule (default 30m)
	Parallel             int           // target.parallel: trials in flight
	Connect              string        // target.connect: auto (default), pod-ip or port-forward
	fwd                  *forwards     // the port-forwards of the trials in flight, shared by the slots
	// OnPhase, when set, hears each boot phase as WaitReady sees it.
	OnPhase func(phase string)
}

// New reads the target's manifest and finds its cluster; nothing is
// changed and the cluster is not contacted (CheckTarget does).
func New(t orchestrator.Target, log zerolog.Logger) (*Kube, error) {
	quietKlog(log)
	src, err := os.ReadFile(t.Manifest)
	if err != nil {
		return nil, fmt.Errorf("target.manifest: %w", err)
	}
	info, _ := os.Stat(t.Manifest)
	doc, err := profiles.ParseManifest(t.Manifest, src)
	if err != nil {
		return nil, err
	}
	unit, err := doc.ResolveContainer(t.Workload, t.Container)
	if err != nil {
		return nil, err
	}
	acc, err := Resolve(t.Kubeconfig, t.Context)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(acc.Config)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(acc.Config)
	if err != nil {
		return nil, err
	}
	k := &Kube{acc: acc, cs: cs, dyn: dyn, log: log, file: t.Manifest, mode: info.Mode().Perm(), original: src, doc: doc, unit: unit,
		container: unit[strings.LastIndexByte(unit, '/')+1:], ReadyTimeoutSchedule: 30 * time.Minute, fwd: &forwards{m: map[string]func(){}}}
	k.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))
	m, err := DecodeManifest(src)
	if err != nil {
		return nil, err
	}
	w, err := m.Workload(workloadOf(unit))
	if err != nil {
		return nil, err
	}
	k.namespace = firstNonEmpty(t.Namespace, w.GetNamespace(), acc.Namespace, "default")
	return k, nil
}

var klogOnce sync.Once

// quietKlog sends client-go's own log lines (klog: a stream vgrid closes
// is "Copying stdout failed", a watch that restarts) to vgrid's log at
// debug level, not to the user's terminal. klog has one logger per
// process: the first one given serves every later driver (vgrid run
// builds one; vgrid serve gives every run's driver the daemon's log).
func quietKlog(log zerolog.Logger) {
	klogOnce.Do(func() {
		klog.SetLogger(funcr.New(func(prefix, args string) {
			log.Debug().Str("from", "client-go").Msg(strings.TrimSpace(prefix + " " + args))
		}, funcr.Options{}))
	})
}

// Close stops the port-forwards still open.
func (k *Kube) Close() error {
	k.fwd.stop("")
	return nil
}

// forwards are the port-forwards open, one per slot at most.
type forwards struct {
	mu sync.Mutex
	m  map[string]func()
}

// set records slot's forward, stopping the one it replaces.
func (f *forwards) set(slot string, stop func()) {
	f.mu.Lock()
	old := f.m[slot]
	f.m[slot] = stop
	f.mu.Unlock()
	if old != nil {
		old()
	}
}

// stop stops slot's forward, or every one for "".
func (f *forwards) stop(slot string) {
	f.mu.Lock()
	var stops []func()
	for s, stop := range f.m {
		if slot == "" || s == slot {
			stops = append(stops, stop)
			delete(f.m, s)
		}
	}
	f.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

// Slots are n copies of the driver that run trials side by side, each
// replacing only its own previous trial; where their pods run is the
// scheduler's choice (the hardware a trial ran on is the node's).
func (k *Kube) Slots(n int) []orchestrator.Slot {
	var out []orchestrator.Slot
	for i := range n {
		c := *k
		c.slot = fmt.Sprint(i)
		out = append(out, orchestrator.Slot{Name: fmt.Sprintf("kubernetes slot %d of %d", i+1, n), Host: k.acc.Config.Host,
			Key: fmt.Sprintf("kubernetes:%s/%s/%s#%d", k.acc.Context, k.namespace, workloadOf(k.unit), i), Driver: &c})
	}
	return out
}

// originalWorkload is the workload as the original manifest defines it.
func (k *Kube) originalWorkload() (*Manifest, *unstructured.Unstructured, error) {
	m, err := DecodeManifest(k.original)
	if err != nil {
		return nil, nil, err
	}
	w, err := m.Workload(workloadOf(k.unit))
	return m, w, err
}

func workloadOf(unit string) string { return unit[:strings.LastIndexByte(unit, '/')] }

// EngineAlive says whether the API server answers: a run waits for one
// that restarts, and redoes the trial it broke.
func (k *Kube) EngineAlive(ctx context.Context) error {
	_, err := k.cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	return err
}

// CheckTarget checks, changing nothing, that the cluster answers, the
// namespace exists, and some node can hold a trial's GPUs.
func (k *Kube) CheckTarget(ctx context.Context) error {
	if err := k.EngineAlive(ctx); err != nil {
		return fmt.Errorf("the cluster of context %q (%s) does not answer: %w", k.acc.Context, k.acc.Config.Host, err)
	}
	if _, err := k.cs.CoreV1().Namespaces().Get(ctx, k.namespace, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("namespace %q: %w", k.namespace, err)
	}
	m, w, err := k.originalWorkload()
	if err != nil {
		return err
	}
	if shared := m.SharedClaims(w); k.Parallel > 1 && len(shared) > 0 {
		return fmt.Errorf("%s mounts the ReadWriteOnce claim(s) %s: a volume of that mode is mounted by one node at a time, so %d trials in parallel would wait for each other or fail to start; set target.parallel: 1, or give the workload a ReadWriteMany (or ReadOnlyMany) volume for the model", workloadOf(k.unit), strings.Join(shared, ", "), k.Parallel)
	}
	if need := GPUs(w); need > 0 {
		nodes, err := k.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		most := int64(0)
		for _, n := range nodes.Items {
			if q, ok := n.Status.Allocatable["nvidia.com/gpu"]; ok {
				most = max(most, q.Value())
			}
		}
		if int64(need) > most {
			return fmt.Errorf("%s asks %d nvidia.com/gpu per pod, and no node of the cluster has more than %d; no trial could ever be scheduled", workloadOf(k.unit), need, most)
		}
	}
	return nil
}

// Prepare backs the manifest up (labelled with the run id) and creates
// the run's ConfigMap, which owns every trial object.
func (k *Kube) Prepare(ctx context.Context, runID string) (string, error) {
	backup, err := profiles.WriteBackup(k.file, runID, time.Now())
	if err != nil {
		return "", err
	}
	k.runID = runID
	return backup, k.ensureOwner(ctx)
}

// Resume takes up a run: its original is the backup, and the trial
// objects an interrupted vgrid left are deleted (the trials they served
// are redone).
func (k *Kube) Resume(ctx context.Context, runID, backup string) error {
	src, err := os.ReadFile(backup)
	if err != nil {
		return fmt.Errorf("resume: the run's backup %s: %w", backup, err)
	}
	doc, err := profiles.ParseManifest(k.file, src)
	if err != nil {
		return err
	}
	k.original, k.doc, k.runID = src, doc, runID
	if err := k.ensureOwner(ctx); err != nil {
		return err
	}
	return k.deleteTrials(ctx, "")
}

func (k *Kube) ensureOwner(ctx context.Context) error {
	name := (TrialIDs{Run: k.runID, Trial: "run"}).Name()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.namespace,
		Labels: map[string]string{LabelManagedBy: "vgrid", LabelRun: k.runID}}, Data: map[string]string{"manifest": k.file, "workload": workloadOf(k.unit)}}
	got, err := k.cs.CoreV1().ConfigMaps(k.namespace).Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		got, err = k.cs.CoreV1().ConfigMaps(k.namespace).Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("the run's ConfigMap %s/%s: %w", k.namespace, name, err)
	}
	k.owner = got
	return nil
}

// Render renders cand into the manifest (from the original) and builds
// the trial's workload from the result.
// The trial object is named for the run and the trial's place in it
// (vgrid-<run>-<trial>); outside a run's trial, for the rendering's hash.
func (k *Kube) Render(ctx context.Context, cand orchestrator.Candidate) (orchestrator.Plan, error) {
	trial := ""
	if seq, ok := orchestrator.TrialOf(ctx); ok {
		trial = fmt.Sprint(seq)
	}
	return k.render(cand, trial)
}

func (k *Kube) render(cand orchestrator.Candidate, trial string) (*KubePlan, error) {
	plan, err := k.doc.RenderManifest(k.unit, cand.Settings)
	if err != nil {
		return nil, failure.Fail(failure.ReasonRender, "%v", err)
	}
	sum := sha256.Sum256(plan.After)
	hash := hex.EncodeToString(sum[:])
	m, err := DecodeManifest(plan.After)
	if err != nil {
		return nil, err
	}
	w, err := m.Workload(workloadOf(k.unit))
	if err != nil {
		return nil, err
	}
	image := ""
	if cs, _, _ := unstructured.NestedSlice(w.Object, "spec", "template", "spec", "containers"); cs != nil {
		for _, c := range cs {
			if c.(map[string]any)["name"] == k.container {
				image, _ = c.(map[string]any)["image"].(string)
			}
		}
	}
	if trial == "" {
		trial = hash[:10]
	}
	ids := TrialIDs{Run: k.runID, Trial: trial, Candidate: hash[:12], Slot: k.slot}
	return &KubePlan{k: k, after: plan.After, workload: w, ids: ids, flags: plan.Effective,
		rendered: orchestrator.Rendered{Candidate: cand, Hash: hash, Words: driver.Redacted(plan.Effective.Words()), Image: image}}, nil
}

// KubePlan is a candidate rendered: the manifest's new bytes, and the
// workload a trial runs.
type KubePlan struct {
	k        *Kube
	after    []byte
	workload *unstructured.Unstructured
	ids      TrialIDs
	flags    vllm.Flags
	rendered orchestrator.Rendered
}

func (p *KubePlan) Rendered() orchestrator.Rendered { return p.rendered }

// Deploy removes the run's previous trial objects and applies this one.
func (p *KubePlan) Deploy(ctx context.Context) (orchestrator.Deployment, error) {
	k := p.k
	if k.owner == nil {
		if err := k.ensureOwner(ctx); err != nil {
			return nil, err
		}
	}
	k.fwd.stop(k.slot)
	if err := k.deleteTrials(ctx, p.ids.Name()); err != nil {
		return nil, err
	}
	o, err := TrialObject(p.workload, p.ids)
	if err != nil {
		return nil, err
	}
	o.SetNamespace(k.namespace)
	o.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: k.owner.Name, UID: k.owner.UID}})
	if _, err := k.apply(ctx, o); err != nil {
		return nil, failure.Fail(failure.ReasonCreate, "the cluster refused the trial's %s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return &KubeDeployment{p: p, started: time.Now()}, nil
}

// apply server-side applies o with field manager vgrid.
func (k *Kube) apply(ctx context.Context, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := o.GroupVersionKind()
	mapping, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("the cluster does not serve %s: %w", gvk, err)
	}
	return k.dyn.Resource(mapping.Resource).Namespace(firstNonEmpty(o.GetNamespace(), k.namespace)).
		Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "vgrid", Force: true})
}

// deleteTrials deletes this run's trial objects but keep (every kind the
// workload's), in the foreground: their pods are gone when it returns.
func (k *Kube) deleteTrials(ctx context.Context, keep string) error {
	_, w, err := k.originalWorkload()
	if err != nil {
		return err
	}
	gvk := w.GroupVersionKind()
	mapping, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	res := k.dyn.Resource(mapping.Resource).Namespace(k.namespace)
	set := labels.Set{LabelManagedBy: "vgrid", LabelRun: k.runID}
	if k.slot != "" && keep != "" { // a slot replaces its own trial; the end of a run removes all
		set[LabelSlot] = k.slot
	}
	sel := set.String()
	list, err := res.List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return err
	}
	fg := metav1.DeletePropagationForeground
	for _, o := range list.Items {
		if o.GetName() == keep {
			continue
		}
		if err := res.Delete(ctx, o.GetName(), metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	// Foreground: wait until the pods are gone (their GPUs free).
	for {
		pods, err := k.cs.CoreV1().Pods(k.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return err
		}
		left := 0
		for _, p := range pods.Items {
			if name := (TrialIDs{Run: k.runID, Trial: p.Labels[LabelTrial]}).Name(); p.Labels[LabelTrial] != "" && name != keep {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// KubeDeployment is a trial's workload, applied.
type KubeDeployment struct {
	p        *KubePlan
	started  time.Time
	pod      string
	endpoint string
	imageID  string
	node     *corev1.Node // where the pod runs, once scheduled
}

func (d *KubeDeployment) selector() string {
	return labels.Set{LabelRun: d.p.ids.Run, LabelTrial: d.p.ids.Trial}.String()
}

// WaitReady follows the trial's pod until a token decodes: scheduling
// (bounded by timeouts.schedule, not by ready), the image, the boot's log
// lines, the pod's and container's states, then vgrid's readiness probe
// on the pod's address.
func (d *KubeDeployment) WaitReady(ctx context.Context, timeout time.Duration) (*orchestrator.Ready, error) {
	k := d.p.k
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	bw := failure.NewBootWatch("scheduling the pod", time.Now())
	bw.OnPhase = k.OnPhase
	model, port, apiKey := d.p.flags.Served()
	lines := make(chan string, 1024)
	probes := make(chan vllm.ProbeResult, 1)
	probing, following := false, false
	var scheduledAt time.Time
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case l := <-lines:
			if f := bw.Line(l, time.Time{}, time.Now()); f != nil {
				return nil, f
			}
			continue
		case p := <-probes:
			probing = false
			switch ready, f := bw.Probe(p, d.endpoint, time.Now()); {
			case f != nil:
				return nil, f
			case ready:
				return d.ready(ctx, model, apiKey, bw.Boot(time.Since(d.started))), nil
			}
			continue
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		pods, err := k.cs.CoreV1().Pods(k.namespace).List(ctx, metav1.ListOptions{LabelSelector: d.selector()})
		if err != nil {
			if k.EngineAlive(ctx) != nil {
				return nil, failure.Fail(failure.ReasonEngineGone, "the API server stopped answering (%v)", err)
			}
			continue
		}
		pod := newestLive(pods.Items)
		if pod == nil {
			continue
		}
		if d.pod != "" && d.pod != pod.Name {
			// The workload replaced the pod (its node drained, it was
			// evicted): the boot starts again, on the new one.
			return nil, failure.Fail(failure.ReasonEngineGone, "the trial's pod %s was replaced by %s (on node %s): the trial is redone", d.pod, pod.Name, pod.Spec.NodeName)
		}
		d.pod = pod.Name
		events, _ := k.cs.CoreV1().Events(k.namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name})
		var evs []corev1.Event
		if events != nil {
			evs = events.Items
		}
		st := ReadPod(pod, k.container, evs, bw, time.Now())
		switch {
		case st.Evicted:
			return nil, failure.Fail(failure.ReasonEngineGone, "%s (node %s): the trial is redone", st.Waiting, pod.Spec.NodeName)
		case st.Failure != nil:
			return nil, st.Failure
		case st.Node == "":
			if time.Since(d.started) > k.ReadyTimeoutSchedule {
				return nil, Unschedulable(st, k.ReadyTimeoutSchedule, bw, time.Now())
			}
			continue
		}
		if scheduledAt.IsZero() {
			scheduledAt = time.Now()
			d.node, _ = k.cs.CoreV1().Nodes().Get(ctx, st.Node, metav1.GetOptions{})
		}
		if time.Since(scheduledAt) > timeout {
			return nil, bw.Timeout(timeout, time.Now())
		}
		if st.Running && !following {
			following = true
			wg.Add(1)
			go func() { defer wg.Done(); k.follow(ctx, pod.Name, lines) }()
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name == k.container {
				d.imageID = cs.ImageID
			}
		}
		if st.Running && pod.Status.PodIP != "" && !probing {
			if d.endpoint == "" {
				addr, stop, err := k.endpoint(ctx, pod, port)
				if err != nil {
					k.log.Warn().Err(err).Str("pod", pod.Name).Msg("no way to the trial's server yet")
					continue
				}
				k.fwd.set(k.slot, stop)
				d.endpoint = addr
			}
			probing = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := vllm.Probe(ctx, d.endpoint, model, apiKey, 30*time.Second)
				select {
				case probes <- p:
				case <-ctx.Done():
				}
			}()
		}
	}
}

// ready is the trial's server, ready: where it runs (its node, and the
// GPUs it ran on, for the hardware classes no champion crosses) and its
// GPU telemetry, nvidia-smi in its container.
func (d *KubeDeployment) ready(ctx context.Context, model, apiKey string, boot failure.Boot) *orchestrator.Ready {
	k := d.p.k
	r := &orchestrator.Ready{Endpoint: d.endpoint, Model: model, APIKey: apiKey, Boot: boot, ImageID: d.imageID, GPU: k.gpuSource(d.pod)}
	if d.node != nil {
		r.Node = d.node.Name
	}
	hw, err := k.hardware(ctx, d.node, d.pod, GPUs(d.p.workload))
	if err != nil {
		k.log.Warn().Err(err).Str("pod", d.pod).Msg("the trial's GPU models are unknown (no node label " + LabelGPUProduct + ", no nvidia-smi in its container): it is compared only with trials of unknown hardware")
	}
	r.Hardware = hw
	return r
}

// newestLive is the newest pod not being deleted, or nil.
func newestLive(pods []corev1.Pod) *corev1.Pod {
	var best *corev1.Pod
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		if best == nil || p.CreationTimestamp.After(best.CreationTimestamp.Time) {
			best = p
		}
	}
	return best
}

// follow streams the vLLM container's log lines into lines until ctx ends.
func (k *Kube) follow(ctx context.Context, pod string, lines chan<- string) {
	rc, err := k.cs.CoreV1().Pods(k.namespace).GetLogs(pod, &corev1.PodLogOptions{Container: k.container, Follow: true}).Stream(ctx)
	if err != nil {
		return
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		select {
		case lines <- sc.Text():
		case <-ctx.Done():
			return
		}
	}
}

// Verify compares what the server reports with the candidate's flags.
func (d *KubeDeployment) Verify(ctx context.Context) (map[string]string, error) {
	return driver.VerifyEndpoint(ctx, d.endpoint, d.p.flags)
}

// Diagnose explains a trial whose benchmark broke: the pod gone, evicted,
// restarted or failed; nil when it still runs as it did.
func (d *KubeDeployment) Diagnose(ctx context.Context) *failure.Failure {
	k := d.p.k
	pod, err := k.cs.CoreV1().Pods(k.namespace).Get(ctx, d.pod, metav1.GetOptions{})
	if err != nil {
		if k.EngineAlive(ctx) != nil {
			return failure.Fail(failure.ReasonEngineGone, "the API server stopped answering (%v)", err)
		}
		if apierrors.IsNotFound(err) {
			return failure.Fail(failure.ReasonEngineGone, "the trial's pod %s is gone (deleted or its node drained): the trial is redone", d.pod)
		}
		return nil
	}
	st := ReadPod(pod, k.container, nil, failure.NewBootWatch("serving", time.Now()), time.Now())
	switch {
	case st.Evicted:
		return failure.Fail(failure.ReasonEngineGone, "%s: the trial is redone", st.Waiting)
	case st.Failure != nil:
		return st.Failure
	}
	return nil
}

// Crown writes the champion's rendering to the manifest and applies its
// workload to the user's own (server-side apply, field manager vgrid),
// then waits for the rollout; the run's trial objects are deleted first,
// freeing their GPUs.
func (k *Kube) Crown(ctx context.Context, cand orchestrator.Candidate) error {
	p, err := k.render(cand, "")
	if err != nil {
		return err
	}
	return k.put(ctx, p.after, p.workload)
}

// Restore writes the original manifest back and applies its workload.
func (k *Kube) Restore(ctx context.Context) error {
	_, w, err := k.originalWorkload()
	if err != nil {
		return err
	}
	return k.put(ctx, k.original, w)
}

func (k *Kube) put(ctx context.Context, file []byte, w *unstructured.Unstructured) error {
	k.fwd.stop("")
	if k.runID != "" {
		if err := k.deleteTrials(ctx, ""); err != nil {
			return err
		}
		// The run's ConfigMap goes with its last trial: nothing of the run
		// is left in the cluster but the workload it crowned or restored.
		name := (TrialIDs{Run: k.runID, Trial: "run"}).Name()
		if err := k.cs.CoreV1().ConfigMaps(k.namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete the run's ConfigMap %s: %w", name, err)
		}
		k.owner = nil
	}
	if err := profiles.WriteFileAtomic(k.file, file, k.mode); err != nil {
		return err
	}
	o := w.DeepCopy()
	o.SetNamespace(k.namespace)
	if _, err := k.apply(ctx, o); err != nil {
		return fmt.Errorf("apply %s/%s: %w", strings.ToLower(o.GetKind()), o.GetName(), err)
	}
	return k.rollout(ctx, o)
}

// rollout waits until the workload's pods run the applied template and
// are available (Deployment, StatefulSet), up to 30 minutes.
func (k *Kube) rollout(ctx context.Context, o *unstructured.Unstructured) error {
	gvk := o.GroupVersionKind()
	mapping, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	res := k.dyn.Resource(mapping.Resource).Namespace(o.GetNamespace())
	deadline := time.Now().Add(30 * time.Minute)
	for {
		cur, err := res.Get(ctx, o.GetName(), metav1.GetOptions{})
		if err == nil && rolledOut(cur) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/%s did not roll out within 30m", strings.ToLower(o.GetKind()), o.GetName())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func rolledOut(o *unstructured.Unstructured) bool {
	gen := o.GetGeneration()
	obs, _, _ := unstructured.NestedInt64(o.Object, "status", "observedGeneration")
	want, ok, _ := unstructured.NestedInt64(o.Object, "spec", "replicas")
	if !ok {
		want = 1
	}
	updated, _, _ := unstructured.NestedInt64(o.Object, "status", "updatedReplicas")
	avail, _, _ := unstructured.NestedInt64(o.Object, "status", "availableReplicas")
	ready, _, _ := unstructured.NestedInt64(o.Object, "status", "readyReplicas")
	switch strings.ToLower(o.GetKind()) {
	case "deployment":
		return obs >= gen && updated == want && avail == want
	case "statefulset":
		return obs >= gen && updated == want && ready == want
	}
	return obs >= gen
}

var (
	_ orchestrator.Driver        = (*Kube)(nil)
	_ orchestrator.EngineChecker = (*Kube)(nil)
	_ orchestrator.TargetChecker = (*Kube)(nil)
)

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/internal/kubetest"
	"github.com/vgrid/vgrid/orchestrator"
	"github.com/vgrid/vgrid/store"
)

// A Deployment in the style of vLLM's Kubernetes docs (sh -c with one
// args string), its image the simulator's, through vgrid run on a real
// cluster: each candidate rendered into the manifest and run as its own
// workload the scheduler places, benchmarked, stored; the champion
// applied to the user's workload and written to the manifest, which
// keeps a backup the rollback restores byte for byte.
//
// The server is measured through a port-forward (target.connect), and
// the nodes carry no GPU product label: the trial's GPUs are named by
// nvidia-smi in its container, which also gives the benchmark's GPU
// telemetry (here a stand-in on a hostPath, as NVIDIA's container
// toolkit mounts the host's, replaying real H100 output).
func TestKubernetesRun(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	c := kubetest.Start(t, []int{4, 4}, img)
	dir := t.TempDir()
	smi := filepath.Join(dir, "nvidia-smi")
	os.WriteFile(smi, []byte(standInSMI(t)), 0o755)
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: qwen
  labels:
    app: qwen
spec:
  replicas: 1
  selector:
    matchLabels:
      app: qwen
  template:
    metadata:
      labels:
        app: qwen
    spec:
      containers:
      - name: vllm
        image: %s
        imagePullPolicy: Never
        command: ["/bin/sh", "-c"]
        args: [
          "vllm serve Qwen/Qwen3-8B --port 8000 --tensor-parallel-size 2 --max_num_seqs 64"
        ]
        env:
        - {name: VLLM_SIM_TIME_SCALE, value: "0.01"}
        resources:
          limits:
            nvidia.com/gpu: "2"
        volumeMounts:
        - {name: nvidia-smi, mountPath: /usr/bin/nvidia-smi}
      volumes:
      - name: nvidia-smi
        hostPath: {path: %s, type: File}
---
apiVersion: v1
kind: Service
metadata:
  name: qwen
spec:
  selector:
    app: qwen
  ports:
  - port: 8000
    targetPort: 8000
`, img, smi)
	mf := filepath.Join(dir, "vllm.yaml")
	os.WriteFile(mf, []byte(manifest), 0o644)
	c.Apply(manifest)
	c.Kubectl("rollout", "status", "deployment/qwen", "--timeout=120s")
	// The user's service is never left without a ready replica: watched
	// from before the run to after the crown's rollout.
	outage := watchAvailable(t, c.Kubeconfig, "qwen")
	grid := filepath.Join(dir, "grid.yaml")
	os.WriteFile(grid, []byte(fmt.Sprintf(`name: k8s
target:
  driver: kubernetes
  manifest: vllm.yaml
  workload: deployment/qwen
  kubeconfig: %s
  connect: port-forward
space:
  axes:
    max-num-seqs: [16, 128]
benchmark:
  scenarios: [kv-cache]
  requests: 4
timeouts: {ready: 3m, schedule: 2m}
objective: {maximize: kv-cache.acceleration}
tie: prefer lower max-num-seqs
end: crown
`, c.Kubeconfig)), 0o644)
	db := filepath.Join(dir, "vgrid.db")
	// vgrid plan renders every candidate into the manifest's copy and
	// checks the cluster, changing nothing there.
	code, out, errs := vgrid(t, "plan", grid, "--store", db)
	t.Logf("vgrid plan:\n%s\n%s", out, errs)
	if code != 0 || !strings.Contains(out, "max-num-seqs=16") || !strings.Contains(out, "max-num-seqs=128") {
		t.Fatalf("vgrid plan: %d\n%s\n%s", code, out, errs)
	}
	if left := c.Kubectl("get", "deploy,pods,configmaps", "-l", "app.kubernetes.io/managed-by=vgrid", "-o", "name"); strings.TrimSpace(left) != "" {
		t.Errorf("vgrid plan created %s", left)
	}
	if now, _ := os.ReadFile(mf); string(now) != manifest {
		t.Error("vgrid plan changed the manifest")
	}
	code, out, errs = vgrid(t, "run", grid, "--store", db, "--quiet")
	t.Logf("vgrid run:\n%s\n%s", out, errs)
	if code != 0 {
		t.Fatalf("vgrid run: %d\n%s\n%s\n%s", code, out, errs, c.Kubectl("get", "pods", "-A", "-o", "wide"))
	}
	st, err := store.OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run, _ := st.GetRun("latest")
	trials, _ := st.Trials(run.ID)
	if len(trials) != 2 || run.Champion == nil || run.Champion.Champion < 0 {
		t.Fatalf("run %s: %d trials, champion %+v", run.State, len(trials), run.Champion)
	}
	for _, tr := range trials {
		if tr.Phase.String() != "done" {
			t.Errorf("trial %d: %s %v", tr.Seq, tr.Phase, tr.Failure)
		}
		// Measured through a port-forward on this machine.
		if !strings.HasPrefix(tr.Endpoint, "http://127.0.0.1:") || strings.HasSuffix(tr.Endpoint, ":8000") {
			t.Errorf("trial %d measured at %s, not through a port-forward", tr.Seq, tr.Endpoint)
		}
		if (tr.Host != "127.0.0.1" && tr.Host != "127.0.0.2") || tr.Hardware != "2x NVIDIA-H100-80GB-HBM3" {
			t.Errorf("trial %d: node %q, hardware %q", tr.Seq, tr.Host, tr.Hardware)
		}
		if !strings.HasPrefix(tr.ImageID, "sha256:") && !strings.Contains(tr.ImageID, "@sha256:") {
			t.Errorf("trial %d: image %q", tr.Seq, tr.ImageID)
		}
		reps, err := st.Reports(run.ID, tr.Seq)
		if err != nil || len(reps) == 0 || len(reps[0].Scenarios) == 0 {
			t.Fatalf("trial %d: reports %v %v", tr.Seq, reps, err)
		}
		if g := reps[0].Scenarios[0].GPU; g == nil || !g.Available || len(g.GPUs) != 2 || g.GPUs[0].UUID != "GPU-5675a971-1c67-8b90-88cc-d36993190cbb" || g.GPUs[0].MemTotalMiB != 81559 {
			t.Errorf("trial %d: GPU telemetry through exec in its pod: %+v", tr.Seq, g)
		}
	}
	// The champion runs in the user's workload, and the manifest says so.
	champ := trials[run.Champion.Champion].Candidate.Name
	now, _ := os.ReadFile(mf)
	want := strings.TrimPrefix(champ, "max-num-seqs=")
	if !strings.Contains(string(now), "--max_num_seqs "+want) {
		t.Errorf("the manifest after the crown:\n%s", now)
	}
	if args := c.Kubectl("get", "deployment", "qwen", "-o", "jsonpath={.spec.template.spec.containers[0].args[0]}"); !strings.Contains(args, "--max_num_seqs "+want) {
		t.Errorf("the workload's args after the crown: %q", args)
	}
	// No trial object is left.
	if left := c.Kubectl("get", "deploy,pods", "-l", "app.kubernetes.io/managed-by=vgrid", "-o", "name"); strings.TrimSpace(left) != "" {
		t.Errorf("left behind: %s", left)
	}
	if o := outage(); o != "" {
		t.Errorf("the user's service had no available replica during the run: %s", o)
	}
	// The rollback restores the manifest byte for byte.
	if code, out, errs := vgrid(t, "profile", "rollback", "-f", mf, "--to", "latest"); code != 0 {
		t.Fatalf("rollback: %s %s", out, errs)
	}
	if back, _ := os.ReadFile(mf); string(back) != manifest {
		t.Error("the rollback did not restore the manifest")
	}
}

// watchAvailable watches the Deployment name from now on; the function
// it returns stops the watch and describes the first moment the
// Deployment had no available replica ("" when it always had one).
func watchAvailable(t *testing.T, kubeconfig, name string) func() string {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cs.AppsV1().Deployments("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		first := ""
		for ev := range w.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok && first == "" && d.Status.AvailableReplicas < 1 {
				first = fmt.Sprintf("%s at %s: %d available, %d updated, generation %d", ev.Type, time.Now().Format(time.TimeOnly), d.Status.AvailableReplicas, d.Status.UpdatedReplicas, d.Generation)
			}
		}
		done <- first
	}()
	return func() string {
		cancel()
		w.Stop()
		return <-done
	}
}

// standInSMI is an nvidia-smi for a pod with two H100s: it answers the
// name query and samples vgrid's telemetry query with real H100 output
// (benchmark/testdata), the second GPU the first re-indexed.
func standInSMI(t *testing.T) string {
	names, err := os.ReadFile("../../benchmark/testdata/h100_query_gpu_index_name.csv")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../benchmark/testdata/h100_query_gpu_noheader_nounits.csv")
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSpace(string(names))
	sample := strings.Split(strings.TrimSpace(string(data)), "\n")[0]
	second := func(l string) string { return "1" + strings.TrimPrefix(l, "0") }
	return fmt.Sprintf(`#!/bin/sh
case "$*" in
*index,name*) printf '%%s\n' '%s' '%s'; exit 0 ;;
esac
while :; do printf '%%s\n' '%s' '%s'; sleep 0.2; done
`, name, second(name), sample, second(sample))
}

// Bad input gets a clear error before any trial: no cluster answers, an
// unknown context or workload, a manifest whose container runs no vLLM,
// GPUs asked beyond any node's capacity.
func TestKubernetesBadInput(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	c := kubetest.Start(t, []int{4}, img)
	dir := t.TempDir()
	deployment := func(name, args, gpus string) string {
		return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s}
spec:
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers:
        - name: main
          image: %s
          imagePullPolicy: Never
          args: %s
          resources: {limits: {nvidia.com/gpu: "%s"}}
`, name, name, name, img, args, gpus)
	}
	os.WriteFile(filepath.Join(dir, "vllm.yaml"), []byte(deployment("qwen", `[--model, Qwen/Qwen3-8B, --max-num-seqs, "64"]`, "2")), 0o644)
	os.WriteFile(filepath.Join(dir, "big.yaml"), []byte(deployment("big", `[--model, Qwen/Qwen3-8B, --tensor-parallel-size, "8"]`, "8")), 0o644)
	os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(strings.Replace(deployment("web", `["-g", "daemon off;"]`, "0"), img, "nginx:1.27", 1)), 0o644)
	os.WriteFile(filepath.Join(dir, "nowhere.kubeconfig"), []byte(`apiVersion: v1
kind: Config
clusters: [{name: x, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: x, user: u}}]
current-context: x
`), 0o600)
	cases := []struct{ name, target, want string }{
		{"no cluster", "manifest: vllm.yaml\n  kubeconfig: nowhere.kubeconfig", `does not answer`},
		{"unknown context", "manifest: vllm.yaml\n  context: staging\n  kubeconfig: " + c.Kubeconfig, `target.context "staging" is not in the kubeconfig`},
		{"unknown workload", "manifest: vllm.yaml\n  workload: deployment/other\n  kubeconfig: " + c.Kubeconfig, "has no deployment/other; its workloads: deployment/qwen"},
		{"no vLLM", "manifest: web.yaml\n  kubeconfig: " + c.Kubeconfig, "no container of the manifest starts vLLM"},
		{"GPUs beyond any node", "manifest: big.yaml\n  kubeconfig: " + c.Kubeconfig, "asks 8 nvidia.com/gpu per pod, and no node of the cluster has more than 4"},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			grid := filepath.Join(dir, "grid.yaml")
			os.WriteFile(grid, []byte(fmt.Sprintf(`name: bad
target:
  driver: kubernetes
  %s
space: {axes: {max-num-seqs: [16, 32]}}
benchmark: {scenarios: [kv-cache], requests: 2}
objective: {maximize: kv-cache.acceleration}
`, cs.target)), 0o644)
			code, out, errs := vgrid(t, "run", grid, "--store", filepath.Join(dir, cs.name+".db"), "--quiet")
			if code == 0 || !strings.Contains(errs+out, cs.want) {
				t.Errorf("code %d, want an error with %q:\n%s%s", code, cs.want, out, errs)
			}
			if left := c.Kubectl("get", "deploy,pods", "-l", "app.kubernetes.io/managed-by=vgrid", "-o", "name"); strings.TrimSpace(left) != "" {
				t.Errorf("a trial started: %s", left)
			}
		})
	}
}

// target.parallel: trials side by side, placed by the scheduler on both
// nodes; each slot replaces only its own trial, and none is left after.
// The nodes' GPUs differ (GPU feature discovery's product labels): each
// trial records its node and GPUs, and no champion is crowned across the
// two classes.
func TestKubernetesParallel(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	c := kubetest.Start(t, []int{4, 4}, img)
	products := map[string]string{"127.0.0.1": "NVIDIA-H100-80GB-HBM3", "127.0.0.2": "NVIDIA-A100-SXM4-80GB"}
	for node, p := range products {
		c.Kubectl("label", "node", node, "nvidia.com/gpu.product="+p)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vllm.yaml"), []byte(qwenDeployment(img, `--model, Qwen/Qwen3-8B, --tensor-parallel-size, "2", --max-num-seqs, "64"`, "0.01", "2")), 0o644)
	grid := filepath.Join(dir, "grid.yaml")
	os.WriteFile(grid, []byte(fmt.Sprintf(`name: par
target:
  driver: kubernetes
  manifest: vllm.yaml
  kubeconfig: %s
  parallel: 4
space: {axes: {max-num-seqs: [8, 16, 32, 64, 128, 256]}}
benchmark: {scenarios: [kv-cache], requests: 4}
objective: {maximize: kv-cache.acceleration}
tie: prefer lower max-num-seqs
end: restore
`, c.Kubeconfig)), 0o644)
	db := filepath.Join(dir, "vgrid.db")
	if code, out, errs := vgrid(t, "run", grid, "--store", db, "--quiet"); code != 0 {
		t.Fatalf("vgrid run: %d\n%s\n%s", code, out, errs)
	}
	st, err := store.OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	run, _ := st.GetRun("latest")
	trials, _ := st.Trials(run.ID)
	if len(trials) != 6 {
		t.Fatalf("%d trials", len(trials))
	}
	// Some trials benchmarked at the same time.
	type span struct{ from, to time.Time }
	var spans []span
	for _, tr := range trials {
		if tr.Phase.String() != "done" {
			t.Errorf("trial %d: %s %v", tr.Seq, tr.Phase, tr.Failure)
		}
		spans = append(spans, span{tr.Entered(orchestrator.PhaseDeploying), tr.Entered(orchestrator.PhaseDone)})
	}
	overlap := 0
	for i := range spans {
		for j := i + 1; j < len(spans); j++ {
			if spans[i].from.Before(spans[j].to) && spans[j].from.Before(spans[i].to) {
				overlap++
			}
		}
	}
	if overlap == 0 {
		t.Errorf("no two trials ran at once: %v", spans)
	}
	classes := map[string]bool{}
	for _, tr := range trials {
		p, ok := products[tr.Host]
		if !ok || tr.Hardware != "2x "+p {
			t.Errorf("trial %d ran on node %q, hardware %q", tr.Seq, tr.Host, tr.Hardware)
		}
		classes[tr.Hardware] = true
	}
	// Four trials of two GPUs in flight fill both nodes.
	if len(classes) != 2 {
		t.Errorf("the trials ran on %d GPU class(es), want both nodes'", len(classes))
	}
	if v := run.Champion; v == nil || v.Champion >= 0 || !strings.Contains(v.Reason, "no overall champion: the trials ran on different hardware") {
		t.Errorf("a champion across GPU classes: %+v", v)
	}
	if left := c.Kubectl("get", "deploy,pods", "-l", "app.kubernetes.io/managed-by=vgrid", "-o", "name"); strings.TrimSpace(left) != "" {
		t.Errorf("left behind: %s", left)
	}
}

// Faults on a cluster: vgrid killed with SIGKILL mid-benchmark and
// resumed, the API server restarted while a trial's pod runs, the node of
// a trial's pod drained mid-trial. Every trial ends done once (the struck
// one redone, its samples not counted twice) and no trial object is left.
func TestKubernetesFaults(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	c := kubetest.Start(t, []int{4, 4}, img)
	bin := vgridBinary(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vllm.yaml"), []byte(qwenDeployment(img, `--model, Qwen/Qwen3-8B, --tensor-parallel-size, "2", --max-num-seqs, "64"`, "0.05", "2")), 0o644)
	grid := filepath.Join(dir, "grid.yaml")
	os.WriteFile(grid, []byte(fmt.Sprintf(`name: faults
target:
  driver: kubernetes
  manifest: vllm.yaml
  kubeconfig: %s
space: {axes: {max-num-seqs: [16, 32, 64]}}
benchmark: {scenarios: [kv-cache], requests: 6}
timeouts: {ready: 3m, schedule: 2m, engine: 2m}
objective: {maximize: kv-cache.acceleration}
tie: prefer lower max-num-seqs
end: restore
`, c.Kubeconfig)), 0o644)
	check := func(t *testing.T, db string, redone int) {
		t.Helper()
		st := openStore(t, db)
		defer st.Close()
		run, _ := st.GetRun("latest")
		trials, _ := st.Trials(run.ID)
		attempts := 0
		for _, tr := range trials {
			reps, _ := st.Reports(run.ID, tr.Seq)
			if tr.Phase != orchestrator.PhaseDone || len(reps) != 1 {
				t.Errorf("trial %d: %s %v with %d reports, want done with 1", tr.Seq, tr.Phase, tr.Failure, len(reps))
			}
			attempts += tr.Attempts - 1
		}
		if len(trials) != 3 || run.State != orchestrator.RunDone || attempts < redone {
			t.Errorf("run %s, %d trials, %d redone (want at least %d)", run.State, len(trials), attempts, redone)
		}
		if left := c.Kubectl("get", "deploy,pods,configmaps", "-l", "app.kubernetes.io/managed-by=vgrid", "-o", "name"); strings.TrimSpace(left) != "" {
			t.Errorf("left behind: %s", left)
		}
	}

	t.Run("kill -9 and resume", func(t *testing.T) {
		db := filepath.Join(dir, "kill.db")
		killDuring(t, bin, "[2/3] benchmarking", "run", grid, "--store", db)
		if out, err := exec.Command(bin, "run", "--resume", "latest", "--store", db).CombinedOutput(); err != nil {
			t.Fatalf("resume: %v\n%s", err, out)
		}
		check(t, db, 1)
	})

	// waitPod waits until a trial's pod runs, and returns its node.
	waitPod := func(t *testing.T) string {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			out, _ := exec.Command(filepath.Join(kubetest.BinDir(t), "kubectl"), "--kubeconfig", c.Kubeconfig, "get", "pods", "-l", "app.kubernetes.io/managed-by=vgrid",
				"--field-selector", "status.phase=Running", "-o", "jsonpath={.items[0].spec.nodeName}").Output()
			if n := strings.TrimSpace(string(out)); n != "" {
				return n
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatal("no trial pod ran within 2 minutes")
		return ""
	}

	t.Run("API server restart", func(t *testing.T) {
		db := filepath.Join(dir, "api.db")
		cmd := exec.Command(bin, "run", grid, "--store", db, "--quiet")
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitPod(t)
		c.StopAPIServer()
		c.StartAPIServer()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("vgrid run across an API server restart: %v\n%s", err, out)
		}
		check(t, db, 0)
	})

	t.Run("node drained", func(t *testing.T) {
		db := filepath.Join(dir, "drain.db")
		slow := filepath.Join(dir, "slow.yaml") // a benchmark long enough to be struck
		b, _ := os.ReadFile(grid)
		os.WriteFile(slow, []byte(strings.Replace(string(b), "requests: 6", "requests: 40", 1)), 0o644)
		cmd := exec.Command(bin, "run", slow, "--store", db)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && !strings.HasPrefix(sc.Text(), "[1/3] benchmarking") {
		}
		node := waitPod(t)
		c.Kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--grace-period=1", "--timeout=60s")
		defer c.Kubectl("uncordon", node)
		go io.Copy(io.Discard, stdout)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("vgrid run across a drain: %v", err)
		}
		check(t, db, 1)
	})
}

// vgrid serve runs a Kubernetes grid too: submitted over the API, queued
// on the cluster's key, run to its end.
func TestKubernetesServe(t *testing.T) {
	img := dockertest.BuildSimImage(t)
	c := kubetest.Start(t, []int{4}, img)
	dir := t.TempDir()
	mf := filepath.Join(dir, "vllm.yaml")
	os.WriteFile(mf, []byte(qwenDeployment(img, `--model, Qwen/Qwen3-8B, --max-num-seqs, "64"`, "0.01", "1")), 0o644)
	d := startDaemon(t, dir, freePortT(t))
	id := d.submit(t, fmt.Sprintf(`name: served
target:
  driver: kubernetes
  manifest: %s
  kubeconfig: %s
space: {axes: {max-num-seqs: [16, 64]}}
benchmark: {scenarios: [kv-cache], requests: 4}
objective: {maximize: kv-cache.acceleration}
tie: prefer lower max-num-seqs
end: restore
`, mf, c.Kubeconfig))
	state, trials := d.waitRun(t, id, 3*time.Minute, func(state string, _ []orchestrator.Trial) bool { return state == "done" || state == "failed" })
	if state != "done" || len(trials) != 2 {
		t.Fatalf("run %s with %d trials\n%s", state, len(trials), d.log.String())
	}
	for _, tr := range trials {
		if tr.Phase != orchestrator.PhaseDone {
			t.Errorf("trial %d: %s %v", tr.Seq, tr.Phase, tr.Failure)
		}
	}
	if code, body := d.call(t, "GET", "/v1/runs/"+id+"/report?format=md", d.token, ""); code != 200 || !strings.Contains(body, "max-num-seqs=16") || !strings.Contains(body, "## Where the trials ran") || !strings.Contains(body, "| 127.0.0.1 |") {
		t.Errorf("report: %d\n%s", code, body)
	}
	// The dashboard's page of the run: each trial with the node it ran on.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.PostForm(d.url+"/login", url.Values{"token": {d.token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = hc.Get(d.url + "/runs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(page), `<td class="where">127.0.0.1</td>`) != 2 || !strings.Contains(string(page), "Champion") && !strings.Contains(string(page), "champion") {
		t.Errorf("the dashboard's run page: %d\n%s", resp.StatusCode, page)
	}
}

// qwenDeployment is a Deployment qwen of the simulator's image: its
// container vllm takes args (vLLM's flags, after the image's vllm serve),
// runs at time scale, and asks gpus nvidia.com/gpu.
func qwenDeployment(img, args, scale, gpus string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: qwen}
spec:
  selector: {matchLabels: {app: qwen}}
  template:
    metadata: {labels: {app: qwen}}
    spec:
      containers:
        - name: vllm
          image: %s
          imagePullPolicy: Never
          args: [%s]
          env: [{name: VLLM_SIM_TIME_SCALE, value: "%s"}]
          resources: {limits: {nvidia.com/gpu: "%s"}}
`, img, args, scale, gpus)
}

// BenchmarkKubernetesParallel runs eight tensor-parallel-2 candidates on
// two nodes of 4 GPUs (none held by the user's workload), one at a time and then with target.parallel: 4
// (the cluster's 8 GPUs), and reports both wall times, their ratio and
// both champions; it fails when the parallel run takes more than 0.3 of
// the serial one or crowns another candidate. The candidates take about
// as long as each other (with max-num-seqs 1 against 32 concurrent
// requests, one trial alone would last a third of the serial night, and
// no scheduler could beat that). Each run is `vgrid run`
// from start to end (checks, trials, the crown and its rollout).
//
//	go test ./cmd/vgrid -run '^$' -bench KubernetesParallel -benchtime 1x -timeout 30m
func BenchmarkKubernetesParallel(b *testing.B) {
	img := dockertest.BuildSimImage(b)
	c := kubetest.Start(b, []int{4, 4}, img)
	dir := b.TempDir()
	mf := filepath.Join(dir, "vllm.yaml")
	// Trials wait on their servers as real ones do (a real boot takes
	// minutes; here a boot slowed fourfold at time scale 0.3, about a
	// minute, sleeping); the benchmark is short: four simulators
	// streaming at once contend for this machine's CPUs, which GPU
	// servers do not.
	manifest := strings.Replace(qwenDeployment(img, `--model, Qwen/Qwen3-8B, --tensor-parallel-size, "2", --max-num-seqs, "64"`, "0.3", "2"),
		`env: [{name: VLLM_SIM_TIME_SCALE, value: "0.3"}]`, `env: [{name: VLLM_SIM_TIME_SCALE, value: "0.3"}, {name: VLLM_SIM_BOOT_SLOWDOWN, value: "4"}]`, 1)
	os.WriteFile(mf, []byte(manifest), 0o644)
	run := func(parallel int) (time.Duration, string) {
		// Each run starts with the cluster's 8 GPUs free: the user's
		// workload that the previous run crowned is removed first.
		c.Kubectl("delete", "deployment", "qwen", "--ignore-not-found", "--wait")
		grid := filepath.Join(dir, fmt.Sprintf("grid%d.yaml", parallel))
		os.WriteFile(grid, []byte(fmt.Sprintf(`name: tp2-%d
target:
  driver: kubernetes
  manifest: vllm.yaml
  kubeconfig: %s
  parallel: %d
space: {axes: {max-num-seqs: [4, 5, 6, 7, 8, 10, 12, 16]}}
benchmark:
  scenarios: [load]
  requests: 16
  concurrency: [8]
  rates: []
  repetitions: 2
  workload: {kind: synthetic, input_tokens: 256, output_tokens: 16}
objective: {maximize: load.max_output_throughput_tok_s}
tie: prefer higher max-num-seqs
end: crown
`, parallel, c.Kubeconfig, parallel)), 0o644)
		db := filepath.Join(dir, fmt.Sprintf("vgrid%d.db", parallel))
		start := time.Now()
		code, out, errs := vgrid(b, "run", grid, "--store", db, "--quiet")
		wall := time.Since(start)
		if code != 0 {
			b.Fatalf("vgrid run (parallel %d): %d\n%s\n%s", parallel, code, out, errs)
		}
		b.Logf("parallel %d: %s\n%s", parallel, wall.Round(time.Second), out)
		st, err := store.OpenReadOnly(db)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		r, _ := st.GetRun("latest")
		trials, _ := st.Trials(r.ID)
		if r.Champion == nil || r.Champion.Champion < 0 || len(trials) != 8 {
			b.Fatalf("parallel %d: %d trials, verdict %+v", parallel, len(trials), r.Champion)
		}
		return wall, r.Champion.Name
	}
	for b.Loop() {
		serial, champSerial := run(1)
		par, champPar := run(4)
		ratio := par.Seconds() / serial.Seconds()
		b.ReportMetric(serial.Seconds(), "serial-s")
		b.ReportMetric(par.Seconds(), "parallel-s")
		b.ReportMetric(ratio, "ratio")
		fmt.Printf("8 TP-2 candidates, 2 nodes x 4 GPUs: serial %.0fs (champion %s), parallel 4 %.0fs (champion %s), ratio %.2f\n",
			serial.Seconds(), champSerial, par.Seconds(), champPar, ratio)
		if ratio > 0.3 {
			b.Errorf("parallel took %.2f of the serial wall time, want at most 0.3", ratio)
		}
		if champSerial != champPar {
			b.Errorf("champions differ: serial %s, parallel %s", champSerial, champPar)
		}
	}
}

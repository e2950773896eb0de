//go:build linux

package kubetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vgrid/vgrid/internal/dockertest"
	"github.com/vgrid/vgrid/internal/lockfile"
)

// Version is the Kubernetes release the tests run.
const Version = "v1.37.2"

var components = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"}

// packages the cluster needs, with the Debian package that has each.
var packages = map[string]string{"etcd": "etcd-server", "containerd": "containerd", "/usr/lib/cni/bridge": "containernetworking-plugins", "busybox": "busybox-static", "ctr": "containerd", "openssl": "openssl"}

// need skips (or, in CI, fails) the test when something the cluster
// needs is missing.
func need(t testing.TB) {
	t.Helper()
	dockertest.NeedRoot(t, "a Kubernetes cluster (kubelets, containerd, CNI)")
	dockertest.Engine(t) // the pause and test images are built with Docker
	var missing []string
	for bin, pkg := range packages {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "a Kubernetes cluster needs the Debian packages " + strings.Join(missing, ", ") + " (.ci/run installs them)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("skipped: " + msg)
}

// BinDir is where the Kubernetes binaries are (built if missing).
func BinDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VGRID_K8S_BIN")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(home, ".cache", "vgrid-k8s", Version)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if have(dir) {
		return dir
	}
	// One build at a time, across test processes.
	l, err := lockfile.Wait(context.Background(), filepath.Join(os.TempDir(), "vgrid-kubetest-build.lock"), fmt.Sprintf("pid %d: %s", os.Getpid(), t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if have(dir) {
		return dir
	}
	start := time.Now()
	if err := build(dir); err != nil {
		t.Fatalf("building Kubernetes %s: %v", Version, err)
	}
	t.Logf("built Kubernetes %s in %s into %s", Version, time.Since(start).Round(time.Second), dir)
	return dir
}

func have(dir string) bool {
	for _, b := range components {
		if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// build compiles the components from a throwaway module that requires
// k8s.io/kubernetes and maps each staging module (listed in its go.mod as
// `=> ./staging/...`) to its published release.
func build(dir string) error {
	mod, err := os.MkdirTemp("", "vgrid-k8sbuild-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(mod)
	run := func(name string, args ...string) ([]byte, error) {
		cmd := exec.Command(name, args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return out, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, ee.Stderr)
			}
			return out, err
		}
		return out, nil
	}
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module k8sbuild\n\ngo 1.26\n"), 0o644)
	out, err := run("go", "mod", "download", "-json", "k8s.io/kubernetes@"+Version)
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`"GoMod": "([^"]+)"`).FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("go mod download named no go.mod for k8s.io/kubernetes@%s", Version)
	}
	upstream, err := os.ReadFile(string(m[1]))
	if err != nil {
		return err
	}
	staging := "v0." + strings.TrimPrefix(Version, "v1.")
	var b strings.Builder
	fmt.Fprintf(&b, "module k8sbuild\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n", Version)
	for _, l := range regexp.MustCompile(`(?m)^\s*(k8s\.io/\S+)\s+=>\s+\./staging/`).FindAllSubmatch(upstream, -1) {
		fmt.Fprintf(&b, "\t%s => %s %s\n", l[1], l[1], staging)
	}
	b.WriteString(")\n")
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte(b.String()), 0o644)
	var tools strings.Builder
	tools.WriteString("//go:build tools\n\npackage tools\n\nimport (\n")
	for _, c := range components {
		fmt.Fprintf(&tools, "\t_ \"k8s.io/kubernetes/cmd/%s\"\n", c)
	}
	tools.WriteString(")\n")
	os.WriteFile(filepath.Join(mod, "tools.go"), []byte(tools.String()), 0o644)
	if _, err := run("go", "mod", "tidy"); err != nil {
		return err
	}
	ld := fmt.Sprintf("-s -w -X k8s.io/component-base/version.gitVersion=%s -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=%s", Version, strings.Split(Version, ".")[1])
	for _, c := range components {
		if st, err := os.Stat(filepath.Join(dir, c)); err == nil && st.Mode()&0o111 != 0 {
			continue // built by an earlier, interrupted build
		}
		if _, err := run("go", "build", "-trimpath", "-ldflags", ld, "-o", filepath.Join(dir, c+".tmp"), "k8s.io/kubernetes/cmd/"+c); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(dir, c+".tmp"), filepath.Join(dir, c)); err != nil {
			return err
		}
	}
	return nil
}

// Cluster is a running Kubernetes.
type Cluster struct {
	Dir        string // its files: logs/, nodes/, kubeconfig
	Kubeconfig string
	bin        string
	t          testing.TB

	mu     sync.Mutex
	procs  map[string]*proc // by name: etcd, apiserver, scheduler, controller-manager, containerd-NODE, kubelet-NODE
	args   map[string][]string
	nodes  []string
	socks  []string // each node's containerd socket
	bridge []string
	netns0 map[string]bool // network namespaces before the cluster
}

// Start starts a control plane and one node per entry of gpus (nodes
// 127.0.0.1, 127.0.0.2, ...: the API server reaches a kubelet by its node
// name, so an address needs no lookup), each advertising that many
// nvidia.com/gpu; images (already in the Docker engine) are loaded into
// every node's containerd. The cluster is stopped, and everything it
// left (pods' shims and mounts, network namespaces, bridges) removed, when
// the test ends. One cluster at a time on the machine.
func Start(t testing.TB, gpus []int, images ...string) *Cluster {
	t.Helper()
	need(t)
	bin := BinDir(t)
	l, err := lockfile.Wait(context.Background(), filepath.Join(os.TempDir(), "vgrid-kubetest-cluster.lock"), fmt.Sprintf("pid %d: %s", os.Getpid(), t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release() })
	dir, err := os.MkdirTemp("", "vgrid-k8s-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), bin: bin, t: t, procs: map[string]*proc{}, args: map[string][]string{}, netns0: netnsList()}
	t.Cleanup(func() {
		c.down()
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("the cluster's files and logs are kept in %s", dir)
		}
	})
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	c.controlPlane()
	for i, n := range gpus {
		c.AddNode(fmt.Sprintf("127.0.0.%d", i+1), n)
	}
	c.waitFor("the default service account", func() bool { _, err := c.kubectl("get", "sa", "default"); return err == nil })
	c.Load(append([]string{pauseImage(t, dir)}, images...)...)
	return c
}

// controlPlane starts etcd, the API server (token auth, RBAC), the
// scheduler and the controller manager.
func (c *Cluster) controlPlane() {
	t, dir := c.t, c.Dir
	etcd, peer, api, sch, cm := dockertest.FreePort(t), dockertest.FreePort(t), dockertest.FreePort(t), dockertest.FreePort(t), dockertest.FreePort(t)
	for _, args := range [][]string{{"genrsa", "-out", dir + "/sa.key", "2048"}, {"rsa", "-in", dir + "/sa.key", "-pubout", "-out", dir + "/sa.pub"}} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", args[0], err, out)
		}
	}
	os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte("vgrid-test-token,admin,admin,system:masters\n"), 0o600)
	os.WriteFile(c.Kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:%d", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: vgrid-test-token}}]
contexts: [{name: local, context: {cluster: local, user: admin, namespace: default}}]
current-context: local
`, api)), 0o600)
	c.start("etcd", "etcd", "--data-dir", dir+"/etcd", "--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcd),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcd), "--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer))
	c.start("apiserver", c.bin+"/kube-apiserver", fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcd), "--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", api), "--cert-dir="+dir+"/certs", "--service-account-key-file="+dir+"/sa.pub",
		"--service-account-signing-key-file="+dir+"/sa.key", "--service-account-issuer=https://kubernetes.default.svc",
		"--token-auth-file="+dir+"/tokens.csv", "--authorization-mode=RBAC", "--service-cluster-ip-range=10.96.0.0/16")
	c.waitFor("the API server", func() bool { _, err := c.kubectl("get", "ns", "default"); return err == nil })
	c.start("scheduler", c.bin+"/kube-scheduler", "--kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig,
		"--authorization-kubeconfig", c.Kubeconfig, "--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(sch), "--leader-elect=false")
	// Without the controller manager a node keeps its not-ready taint, and
	// pods lack the default service account.
	c.start("controller-manager", c.bin+"/kube-controller-manager", "--kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig,
		"--authorization-kubeconfig", c.Kubeconfig, "--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(cm), "--leader-elect=false",
		"--service-account-private-key-file", dir+"/sa.key", "--root-ca-file", dir+"/certs/apiserver.crt", "--use-service-account-credentials=false")
}

// AddNode starts a kubelet named name (127.0.0.x) with its own containerd
// (two kubelets on one containerd would garbage-collect each other's
// pods), CNI bridge and subnet, and advertises gpus nvidia.com/gpu.
func (c *Cluster) AddNode(name string, gpus int) {
	t := c.t
	n := filepath.Join(c.Dir, "nodes", name)
	for _, d := range []string{"cni", "kubelet"} {
		os.MkdirAll(filepath.Join(n, d), 0o755)
	}
	h := fmt.Sprintf("%x", sha256.Sum256([]byte(n)))[:8]
	var sub int
	fmt.Sscanf(h[:2], "%x", &sub)
	sub = sub%250 + 1
	bridge := "vgk" + h
	sock := filepath.Join(n, "containerd", "containerd.sock")
	// restrict_oom_score_adj: this machine's runc cannot start a process
	// with a negative oom_score_adj, and CRI asks -998 for every sandbox.
	os.WriteFile(filepath.Join(n, "containerd.toml"), []byte(fmt.Sprintf(`version = 2
root = "%[1]s/containerd/root"
state = "%[1]s/containerd/state"
[grpc]
  address = "%[2]s"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:1"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "%[1]s/cni"
`, n, sock)), 0o644)
	os.WriteFile(filepath.Join(n, "cni", "10-bridge.conflist"), []byte(fmt.Sprintf(`{"cniVersion":"0.4.0","name":"vgrid-k8s","plugins":[{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.%d.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},{"type":"portmap","capabilities":{"portMappings":true}}]}`,
		bridge, sub, filepath.Join(n, "cni-ipam"))), 0o644)
	c.mu.Lock()
	c.nodes, c.socks, c.bridge = append(c.nodes, name), append(c.socks, sock), append(c.bridge, bridge)
	c.mu.Unlock()
	c.start("containerd-"+name, "containerd", "--config", filepath.Join(n, "containerd.toml"))
	c.waitFor("containerd of node "+name, func() bool { _, err := os.Stat(sock); return err == nil })
	os.WriteFile(filepath.Join(n, "kubelet.yaml"), []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
containerRuntimeEndpoint: unix://%s
address: %s
port: %d
readOnlyPort: 0
healthzPort: 0
resolvConf: ""
evictionHard: {}
localStorageCapacityIsolation: false
`, sock, name, dockertest.FreePort(t))), 0o644)
	c.start("kubelet-"+name, c.bin+"/kubelet", "--config", filepath.Join(n, "kubelet.yaml"), "--kubeconfig", c.Kubeconfig,
		"--hostname-override", name, "--root-dir", filepath.Join(n, "kubelet"))
	c.waitFor("node "+name+" Ready", func() bool {
		out, err := c.kubectl("get", "node", name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return err == nil && strings.TrimSpace(out) == "True"
	})
	if gpus > 0 {
		c.Kubectl("patch", "node", name, "--subresource=status", "--type=json",
			"-p", fmt.Sprintf(`[{"op":"add","path":"/status/capacity/nvidia.com~1gpu","value":"%d"}]`, gpus))
		// The kubelet derives the allocatable GPUs, which the scheduler
		// counts, at its next status update.
		c.waitFor(fmt.Sprintf("node %s to offer %d nvidia.com/gpu", name, gpus), func() bool {
			out, err := c.kubectl("get", "node", name, "-o", `jsonpath={.status.allocatable.nvidia\.com/gpu}`)
			return err == nil && strings.TrimSpace(out) == fmt.Sprint(gpus)
		})
	}
}

// pauseImage builds the sandbox image: FROM scratch, a static busybox
// that sleeps (registry.k8s.io is not reachable).
func pauseImage(t testing.TB, dir string) string {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	ctx := filepath.Join(dir, "pause")
	os.MkdirAll(ctx, 0o755)
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ctx, "busybox"), b, 0o755)
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM scratch\nCOPY busybox /busybox\nENTRYPOINT [\"/busybox\",\"sleep\",\"2147483647\"]\n"), 0o644)
	dockertest.Docker(t, "build", "-q", "-t", "localhost/pause:1", ctx)
	return "localhost/pause:1"
}

// Load copies images from the Docker engine into every node's containerd
// (pods use imagePullPolicy: Never or IfNotPresent).
func (c *Cluster) Load(images ...string) {
	c.mu.Lock()
	socks := append([]string(nil), c.socks...)
	c.mu.Unlock()
	for _, img := range images {
		for _, s := range socks {
			cmd := exec.Command("sh", "-c", `docker save "$1" | ctr -a "$2" -n k8s.io images import -`, "load", img, s)
			if out, err := cmd.CombinedOutput(); err != nil {
				c.t.Fatalf("load %s into %s: %v\n%s", img, s, err, out)
			}
		}
	}
}

// Kubectl runs kubectl against the cluster and returns its output; an
// error fails the test.
func (c *Cluster) Kubectl(args ...string) string {
	c.t.Helper()
	out, err := c.kubectl(args...)
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Apply applies a manifest (kubectl apply -f -).
func (c *Cluster) Apply(manifest string) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, "kubectl"), "--kubeconfig", c.Kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

func (c *Cluster) kubectl(args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(c.bin, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

// Nodes lists the node names, in the order they were added.
func (c *Cluster) Nodes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.nodes...)
}

// StopAPIServer kills the API server (the fault tests' restart); Restart
// starts it again with the same flags and waits until it answers.
func (c *Cluster) StopAPIServer() { c.stop("apiserver") }

// StartAPIServer starts the API server again after StopAPIServer.
func (c *Cluster) StartAPIServer() {
	c.mu.Lock()
	args := c.args["apiserver"]
	c.mu.Unlock()
	c.start("apiserver", args[0], args[1:]...)
	c.waitFor("the API server", func() bool { _, err := c.kubectl("get", "ns", "default"); return err == nil })
}

func (c *Cluster) start(name, bin string, args ...string) {
	c.t.Helper()
	logf, err := os.OpenFile(filepath.Join(c.Dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.exited) }()
	c.mu.Lock()
	c.procs[name], c.args[name] = p, append([]string{bin}, args...)
	c.mu.Unlock()
}

func (c *Cluster) stop(name string) {
	c.mu.Lock()
	p := c.procs[name]
	delete(c.procs, name)
	c.mu.Unlock()
	if p != nil {
		p.cmd.Process.Kill()
		select { // Wait, on start's goroutine, reaps it
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
}

// proc is a component's process; exited is closed once Wait returned.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// waitFor polls cond for up to 2 minutes; the test fails with the
// component logs' ends otherwise.
func (c *Cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("kubetest: %s did not come within 2 minutes; logs in %s:\n%s", what, c.Dir, c.logTails())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (c *Cluster) logTails() string {
	var b strings.Builder
	logs, _ := filepath.Glob(filepath.Join(c.Dir, "logs", "*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		if len(data) > 1500 {
			data = data[len(data)-1500:]
		}
		fmt.Fprintf(&b, "== %s\n%s\n", filepath.Base(l), data)
	}
	return b.String()
}

// down deletes the workloads (so that the kubelets free their pods'
// network namespaces), stops every process and removes what they left.
func (c *Cluster) down() {
	c.kubectl("delete", "deploy,statefulset,job,pod", "--all", "--all-namespaces", "--wait=false")
	c.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--timeout=40s")
	order := []string{"controller-manager", "scheduler"}
	for _, n := range c.Nodes() {
		order = append(order, "kubelet-"+n)
	}
	order = append(order, "apiserver", "etcd")
	for _, n := range c.Nodes() {
		order = append(order, "containerd-"+n)
	}
	for _, name := range order {
		c.stop(name)
	}
	// Pods' shims (their command lines name the node's folder), their
	// mounts, network namespaces and the bridges.
	exec.Command("sh", "-c", "grep -l '"+c.Dir+"/nodes/' /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 | xargs -r kill -9").Run()
	time.Sleep(200 * time.Millisecond)
	exec.Command("sh", "-c", "awk '$2 ~ \"^"+c.Dir+"\" {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l").Run()
	for ns := range netnsList() {
		if !c.netns0[ns] && strings.HasPrefix(ns, "cni-") {
			exec.Command("ip", "netns", "delete", ns).Run()
		}
	}
	for _, b := range c.bridge {
		exec.Command("ip", "link", "del", b).Run()
	}
}

func netnsList() map[string]bool {
	out, _ := exec.Command("ip", "netns", "list").Output()
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			m[f[0]] = true
		}
	}
	return m
}

package kubedriver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const twoContexts = `apiVersion: v1
kind: Config
clusters:
- {name: lab, cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}}
- {name: prod, cluster: {server: "https://10.0.0.2:6443", insecure-skip-tls-verify: true}}
users:
- {name: ana, user: {token: not-a-real-token}}
contexts:
- {name: lab, context: {cluster: lab, user: ana, namespace: tuning}}
- {name: prod, context: {cluster: prod, user: ana}}
current-context: lab
`

// The cluster is found as kubectl finds it: the file given, else
// $KUBECONFIG; the context given, else the current one; its namespace.
func TestResolve(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "config")
	os.WriteFile(kc, []byte(twoContexts), 0o600)
	t.Setenv("KUBECONFIG", kc)
	a, err := Resolve("", "")
	if err != nil || a.Context != "lab" || a.Namespace != "tuning" || a.Config.Host != "https://10.0.0.1:6443" || a.Source != kc {
		t.Fatalf("current context: %+v %v", a, err)
	}
	if a, err = Resolve(kc, "prod"); err != nil || a.Namespace != "default" || a.Config.Host != "https://10.0.0.2:6443" {
		t.Fatalf("context prod: %+v %v", a, err)
	}
	if _, err := Resolve(kc, "staging"); err == nil || !strings.Contains(err.Error(), `target.context "staging" is not in the kubeconfig`) || !strings.Contains(err.Error(), "its contexts: lab, prod") {
		t.Errorf("unknown context: %v", err)
	}
	if _, err := Resolve(filepath.Join(dir, "nope"), ""); err == nil || !strings.Contains(err.Error(), "target.kubeconfig") {
		t.Errorf("missing file: %v", err)
	}
	// No kubeconfig at all, and not in a pod.
	t.Setenv("KUBECONFIG", filepath.Join(dir, "absent"))
	t.Setenv("HOME", dir)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := Resolve("", ""); err == nil || !strings.Contains(err.Error(), "no cluster to run trials on") {
		t.Errorf("no cluster: %v", err)
	}
}

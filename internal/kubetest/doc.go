// Package kubetest gives tests a real Kubernetes on this machine: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and
// one kubelet per node (v1.37.2), each node with a containerd of its own,
// a CNI bridge and a subnet; GPUs are advertised as the extended resource
// nvidia.com/gpu on each node's status, which the scheduler then counts
// as a device plugin's. The Kubernetes binaries are built once through
// the Go module proxy (module k8s.io/kubernetes, its staging modules
// replaced by their published v0.37.2) and cached in ~/.cache/vgrid-k8s
// (VGRID_K8S_BIN elsewhere). Outside CI a test without root or the
// Debian packages skips and says why; in CI (CI set) it fails.
// ../shared/k8s/README.md lists the facts of this machine it relies on.
//
// May import: internal/lockfile, internal/dockertest.
package kubetest

package kubedriver

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Access is how vgrid reaches a cluster, found as kubectl finds it.
type Access struct {
	Config    *rest.Config
	Context   string // the kubeconfig context used ("" in a pod)
	Namespace string // the context's namespace ("default" when it names none)
	Source    string // where it came from, for messages: a kubeconfig path, or "in-cluster"
}

// Resolve finds the cluster: kubeconfig (target.kubeconfig), else
// $KUBECONFIG (a list of files, merged), else ~/.kube/config; the context
// named (target.context), else the current one. With no kubeconfig at all
// and vgrid running in a pod, the pod's service account is used. Nothing
// is contacted.
func Resolve(kubeconfig, context string) (*Access, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		if _, err := os.Stat(kubeconfig); err != nil {
			return nil, fmt.Errorf("target.kubeconfig %s: %w", kubeconfig, err)
		}
		rules.ExplicitPath = kubeconfig
	}
	raw, err := rules.Load()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig (%s): %w", strings.Join(rules.GetLoadingPrecedence(), ", "), err)
	}
	if len(raw.Contexts) == 0 && kubeconfig == "" && context == "" {
		cfg, err := rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, fmt.Errorf("no cluster to run trials on: no kubeconfig (%s) and vgrid is not in a pod; set target.kubeconfig or KUBECONFIG, or target.context", strings.Join(rules.GetLoadingPrecedence(), ", "))
		}
		if err != nil {
			return nil, fmt.Errorf("in-cluster access: %w", err)
		}
		ns := "default"
		if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
			ns = strings.TrimSpace(string(b))
		}
		return &Access{Config: cfg, Namespace: ns, Source: "in-cluster"}, nil
	}
	name := context
	if name == "" {
		name = raw.CurrentContext
	}
	if _, ok := raw.Contexts[name]; !ok {
		var names []string
		for n := range raw.Contexts {
			names = append(names, n)
		}
		slices.Sort(names)
		if context == "" {
			return nil, fmt.Errorf("the kubeconfig (%s) has no current context; set target.context to one of: %s", strings.Join(rules.GetLoadingPrecedence(), ", "), strings.Join(names, ", "))
		}
		return nil, fmt.Errorf("target.context %q is not in the kubeconfig (%s); its contexts: %s", context, strings.Join(rules.GetLoadingPrecedence(), ", "), strings.Join(names, ", "))
	}
	cc := clientcmd.NewNonInteractiveClientConfig(*raw, name, &clientcmd.ConfigOverrides{}, rules)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", name, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, err
	}
	return &Access{Config: cfg, Context: name, Namespace: ns, Source: source(raw, name, rules)}, nil
}

// source says which file defined the context.
func source(raw *clientcmdapi.Config, name string, rules *clientcmd.ClientConfigLoadingRules) string {
	if c, ok := raw.Contexts[name]; ok && c.LocationOfOrigin != "" {
		return c.LocationOfOrigin
	}
	return strings.Join(rules.GetLoadingPrecedence(), ", ")
}

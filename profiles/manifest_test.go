package profiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vgrid/vgrid/vllm"
)

// Every public manifest in testdata/k8s (INDEX.md says where each comes
// from) is read, its vLLM container found, and a candidate rendered into
// it: the diff is the golden file, and everything the candidate does not
// touch (comments, quoting, other documents, other containers) stays byte
// for byte.
func TestPublicManifests(t *testing.T) {
	cand, err := vllm.NewCandidate([]string{"max-num-seqs=64", "gpu-memory-utilization=0.85", "max-num-batched-tokens=2048", "enable-prefix-caching=true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file, workload, want string // want: the unit found
		before               map[string]string
	}{
		{"vllm-docs-gpu.yaml", "", "deployment/mistral-7b/mistral-7b", map[string]string{"model": "mistralai/Mistral-7B-Instruct-v0.3", "max-num-batched-tokens": "1024"}},
		{"vllm-docs-cpu.yaml", "deployment/vllm-server", "deployment/vllm-server/vllm", map[string]string{"model": "meta-llama/Llama-3.2-1B-Instruct"}},
		{"lws-gpu.yaml", "lws/vllm", "leaderworkerset/vllm/vllm-leader", map[string]string{"model": "meta-llama/Llama-3.1-405B-Instruct", "pipeline-parallel-size": "2", "tensor-parallel-size": "8"}},
		{"aibrix-quickstart.yaml", "", "deployment/deepseek-r1-distill-llama-8b/vllm-openai", map[string]string{"model": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "max-model-len": "12288"}},
		{"nastp-deployment.yaml", "Deployment/vllm-deployment", "deployment/vllm-deployment/vllm", map[string]string{"model": "/models/Llama-3.2-3B-Instruct", "gpu-memory-utilization": "0.9"}},
		{"aws-cdk-meta-llama.yaml", "", "deployment/vllm-meta-llama-server/vllm-meta-llama", map[string]string{"max-model-len": "2048"}},
		{"governance-vllm-reasoning.yaml.tpl", "", "deployment/vllm-reasoning/vllm", map[string]string{"dtype": "auto", "enforce-eager": "true"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", "k8s", c.file))
			if err != nil {
				t.Fatal(err)
			}
			d, err := ParseManifest(c.file, src)
			if err != nil {
				t.Fatal(err)
			}
			unit, err := d.ResolveContainer(c.workload, "")
			if err != nil || unit != c.want {
				t.Fatalf("container: %q %v, want %q", unit, err, c.want)
			}
			flags, err := d.ManifestFlags(unit)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range c.before {
				got, ok := flags.Effective(k)
				if k == "model" && !ok && len(flags) > 0 && flags[0].Name == "" {
					got, ok = flags[0].Value(), true // vllm serve MODEL
				}
				if !ok || got != v {
					t.Errorf("--%s = %q (%v), want %q", k, got, ok, v)
				}
			}
			plan, err := d.RenderManifest(unit, cand)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range cand {
				if got, _ := plan.Effective.Effective(s.Name); got != s.Value {
					t.Errorf("rendered --%s = %q, want %q", s.Name, got, s.Value)
				}
			}
			golden(t, filepath.Join("testdata", "golden", "k8s", c.file+".diff"), UnifiedDiff(c.file, c.file+" (rendered)", plan.Before, plan.After))
			// The same candidate again changes nothing more.
			again, err := ParseManifest(c.file, plan.After)
			if err != nil {
				t.Fatal(err)
			}
			if p2, err := again.RenderManifest(unit, cand); err != nil || p2.Changed() {
				t.Errorf("rendering twice: changed %v, %v", p2 != nil && p2.Changed(), err)
			}
			// The original comes back when the original's flags are applied.
			back, err := again.RenderManifest(unit, restoring(flags, cand))
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := ParseManifest(c.file, back.After); got != nil {
				f2, _ := got.ManifestFlags(unit)
				if d := f2.Diff(flags); d != "" {
					t.Errorf("restoring the original flags: %s", d)
				}
			}
		})
	}
}

// restoring is the candidate that puts the flags cand changed back to
// their values in orig (or removes them).
func restoring(orig vllm.Flags, cand vllm.Candidate) vllm.Candidate {
	var out vllm.Candidate
	for _, s := range cand {
		if v, ok := orig.Get(s.Name); ok {
			out = append(out, vllm.Setting{Name: s.Name, Value: v})
		} else {
			out = append(out, vllm.Setting{Name: s.Name, Unset: true})
		}
	}
	return out
}

// The forms users write, beyond the public files: the image's entrypoint
// with args (-- flags, --flag=value, underscores), a literal block script
// with continuation lines, a Pod, a StatefulSet inside a List, a
// Windows checkout (CRLF).
func TestManifestForms(t *testing.T) {
	cand, _ := vllm.NewCandidate([]string{"max-num-seqs=32", "gpu-memory-utilization=0.8"}, nil)
	cases := []struct {
		name, src, want string // want: a line the rendering holds
	}{
		{"args only", `apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm}
spec:
  template:
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.11.0
          args:
            - --model=Qwen/Qwen3-8B
            - --max_num_seqs=128   # the scheduler's cap
            - --gpu-memory-utilization
            - "0.9"
`, "            - --max_num_seqs=32   # the scheduler's cap"},
		{"literal script", `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: vllm
spec:
  template:
    spec:
      containers:
        - name: server
          image: vllm/vllm-openai:latest
          command: ["/bin/bash", "-c"]
          args:
            - |
              set -e
              exec vllm serve Qwen/Qwen3-8B \
                --max-num-seqs 128 \
                --gpu-memory-utilization 0.9
        - name: sidecar
          image: busybox
          args: ["sleep", "infinity"]
`, "                --max-num-seqs 32 \\"},
		{"pod in a list", `apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: vllm}
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:latest
          command: [vllm, serve]
          args: [Qwen/Qwen3-8B, --max-num-seqs, "128"]
`, `          args: [Qwen/Qwen3-8B, --max-num-seqs, "32", --gpu-memory-utilization, "0.8"]`},
		{"crlf", "apiVersion: apps/v1\r\nkind: Deployment\r\nmetadata:\r\n  name: vllm\r\nspec:\r\n  template:\r\n    spec:\r\n      containers:\r\n      - name: vllm\r\n        image: vllm/vllm-openai\r\n        args:\r\n        - --model\r\n        - m\r\n        - --max-num-seqs\r\n        - \"128\"\r\n", "        - \"32\"\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := ParseManifest("m.yaml", []byte(c.src))
			if err != nil {
				t.Fatal(err)
			}
			unit, err := d.ResolveContainer("", "")
			if err != nil {
				t.Fatal(err)
			}
			plan, err := d.RenderManifest(unit, cand)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(plan.After), c.want) {
				t.Errorf("the rendering lacks %q:\n%s", c.want, plan.After)
			}
			for _, s := range cand {
				if got, _ := plan.Effective.Effective(s.Name); got != s.Value {
					t.Errorf("--%s = %q, want %q", s.Name, got, s.Value)
				}
			}
		})
	}
}

// Bad manifests get a clear error that says what was found and what to do.
func TestManifestErrors(t *testing.T) {
	cases := []struct {
		name, src, workload, container, want string
	}{
		{"no workload", "apiVersion: v1\nkind: Service\nmetadata: {name: vllm}\n", "", "", "no workload with containers"},
		{"not vLLM", "kind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: nginx, image: nginx, args: [-g, daemon off;]}]}}}\n", "", "", "no container of the manifest starts vLLM"},
		{"string args", "kind: Deployment\nmetadata: {name: v}\nspec: {template: {spec: {containers: [{name: v, image: vllm/vllm-openai, args: \"--model m\"}]}}}\n", "", "", "Kubernetes wants a list of strings"},
		{"unknown workload", "kind: Deployment\nmetadata: {name: v}\nspec: {template: {spec: {containers: [{name: v, image: vllm/vllm-openai, args: [--model, m]}]}}}\n", "statefulset/v", "", "has no statefulset/v; its workloads: deployment/v"},
		{"unknown container", "kind: Deployment\nmetadata: {name: v}\nspec: {template: {spec: {containers: [{name: v, image: vllm/vllm-openai, args: [--model, m]}]}}}\n", "deployment/v", "w", `has no container "w"; its containers: v`},
		{"bad kind", "kind: Deployment\nmetadata: {name: v}\nspec: {template: {spec: {containers: [{name: v, image: vllm/vllm-openai, args: [--model, m]}]}}}\n", "service/v", "", "not a service"},
		{"syntax", "kind: Deployment\nmetadata: {name: v\n", "", "", "kubectl would reject it too"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := ParseManifest("m.yaml", []byte(c.src))
			if err == nil {
				_, err = d.ResolveContainer(c.workload, c.container)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}

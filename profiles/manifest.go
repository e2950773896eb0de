package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vgrid/vgrid/internal/yamlerr"
	"github.com/vgrid/vgrid/vllm"
)

// A Kubernetes manifest is a profile too: the user's own file (several
// YAML documents: a Deployment or StatefulSet, a Service, a PVC, ...),
// where a container's command and args play the roles of a compose
// service's entrypoint and command. ParseManifest reads it into a
// Document whose units are the containers of its workloads, named
// KIND/NAME/CONTAINER (deployment/vllm/vllm); Render, the backups and the
// rollback then work as for a compose profile, byte-minimal.

var kubeDialect = &dialect{unit: "container", epKey: "command", cmdKey: "args", reader: "Kubernetes", epArgs: true}

// podSpecs says where each workload kind keeps its pod templates' specs.
var podSpecs = map[string][][]string{
	"pod":             {{"spec"}},
	"deployment":      {{"spec", "template", "spec"}},
	"statefulset":     {{"spec", "template", "spec"}},
	"daemonset":       {{"spec", "template", "spec"}},
	"replicaset":      {{"spec", "template", "spec"}},
	"job":             {{"spec", "template", "spec"}},
	"leaderworkerset": {{"spec", "leaderWorkerTemplate", "leaderTemplate", "spec"}, {"spec", "leaderWorkerTemplate", "workerTemplate", "spec"}},
}

// kindAliases are kubectl's short names.
var kindAliases = map[string]string{"deploy": "deployment", "sts": "statefulset", "ds": "daemonset", "rs": "replicaset", "po": "pod", "lws": "leaderworkerset"}

// ParseManifest parses a Kubernetes manifest.
func ParseManifest(name string, src []byte) (*Document, error) {
	d := newDocument(name, src, kubeDialect)
	dec := yaml.NewDecoder(bytes.NewReader(src))
	for {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if line, col, msg, ok := yamlerr.Syntax(src, err); ok {
				return nil, fmt.Errorf("%s:%d:%d: %s (kubectl would reject it too)", name, line, col, msg)
			}
			return nil, fmt.Errorf("%s is not valid YAML: %w; fix the file (kubectl would reject it too)", name, err)
		}
		if len(root.Content) == 0 {
			continue // an empty document (--- at the end)
		}
		if err := d.addObject(root.Content[0]); err != nil {
			return nil, err
		}
	}
	if len(d.order) == 0 {
		return nil, fmt.Errorf("%s: no workload with containers (a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod or LeaderWorkerSet); vgrid edits the vLLM container of one of them", name)
	}
	return d, nil
}

// addObject registers the containers of one object (and of a List's items).
func (d *Document) addObject(obj *yaml.Node) error {
	obj = deref(obj)
	if obj.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: a document is a %s; a Kubernetes object is a mapping with apiVersion and kind", d.Name, obj.Line, kindName(obj.Kind))
	}
	kindNode, _ := lookup(obj, "kind")
	if kindNode == nil {
		return nil // not an object vgrid reads (kubectl would say why)
	}
	kind := strings.ToLower(kindNode.Value)
	if kind == "list" || strings.HasSuffix(kind, "list") {
		if items, _ := lookup(obj, "items"); items != nil && items.Kind == yaml.SequenceNode {
			for _, it := range items.Content {
				if err := d.addObject(it); err != nil {
					return err
				}
			}
		}
		return nil
	}
	paths, ok := podSpecs[kind]
	if !ok {
		return nil // a Service, a PVC, a Secret...
	}
	name := ""
	if md, _ := lookup(obj, "metadata"); md != nil {
		if n, _ := lookup(md, "name"); n != nil {
			name = n.Value
		}
	}
	if name == "" {
		return fmt.Errorf("%s:%d: the %s has no metadata.name", d.Name, obj.Line, kindNode.Value)
	}
	for _, path := range paths {
		spec := obj
		for _, k := range path {
			if spec, _ = lookup(spec, k); spec == nil {
				break
			}
		}
		if spec == nil {
			continue
		}
		containers, _ := lookup(spec, "containers")
		if containers == nil || containers.Kind != yaml.SequenceNode {
			continue
		}
		for _, c := range containers.Content {
			c = deref(c)
			cn, _ := lookup(c, "name")
			if cn == nil || cn.Value == "" {
				return fmt.Errorf("%s:%d: a container of %s/%s has no name", d.Name, c.Line, kind, name)
			}
			unit := kind + "/" + name + "/" + cn.Value
			if _, dup := d.services[unit]; dup {
				return fmt.Errorf("%s:%d: %s is defined twice; kubectl would apply the last one", d.Name, c.Line, d.who(unit))
			}
			for _, key := range []string{"command", "args"} {
				if v, _ := lookup(c, key); v != nil && v.Kind != yaml.SequenceNode {
					return fmt.Errorf("%s:%d: %s: %s is a %s; Kubernetes wants a list of strings (%s: [\"...\"])", d.Name, v.Line, d.who(unit), key, kindName(v.Kind), key)
				}
			}
			d.services[unit] = c
			d.order = append(d.order, unit)
		}
	}
	return nil
}

// Workload normalizes a workload reference as kubectl takes it
// (deployment/vllm, Deployment/vllm, deploy/vllm) to KIND/NAME.
func Workload(ref string) (string, error) {
	kind, name, ok := strings.Cut(ref, "/")
	if !ok || kind == "" || name == "" {
		return "", fmt.Errorf("workload %q: want KIND/NAME, such as deployment/vllm or statefulset/vllm", ref)
	}
	kind = strings.ToLower(kind)
	if a, ok := kindAliases[kind]; ok {
		kind = a
	}
	kind = strings.TrimSuffix(kind, "s") // deployments/vllm
	if kind == "statefulset" || kind == "daemonset" || kind == "replicaset" || kind == "leaderworkerset" || kind == "deployment" || kind == "pod" || kind == "job" {
		return kind + "/" + name, nil
	}
	return "", fmt.Errorf("workload %q: vgrid edits a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod or LeaderWorkerSet, not a %s", ref, kind)
}

// ResolveContainer returns the unit (KIND/NAME/CONTAINER) of a workload's
// container: the one named, or the only one running vLLM (in the
// workload given, or in the whole manifest).
func (d *Document) ResolveContainer(workload, container string) (string, error) {
	if workload != "" {
		w, err := Workload(workload)
		if err != nil {
			return "", err
		}
		workload = w
	}
	var in, vs []string
	var errs []error
	for _, u := range d.order {
		if workload != "" && !strings.HasPrefix(u, workload+"/") {
			continue
		}
		in = append(in, u)
		if container != "" {
			if u == workload+"/"+container {
				return u, nil
			}
			continue
		}
		switch _, err := d.findRegion(u); {
		case err == nil:
			vs = append(vs, u)
		case !errors.Is(err, ErrNotVLLM):
			errs = append(errs, err)
		}
	}
	where := "the manifest"
	if workload != "" {
		where = workload
	}
	if len(in) == 0 {
		return "", fmt.Errorf("%s has no %s; its workloads: %s", d.Name, workload, strings.Join(d.workloads(), ", "))
	}
	if container != "" {
		return "", fmt.Errorf("%s: %s has no container %q; its containers: %s", d.Name, where, container, strings.Join(containerNames(in), ", "))
	}
	switch len(vs) {
	case 1:
		return vs[0], nil
	case 0:
		if len(errs) > 0 {
			return "", errors.Join(errs...)
		}
		return "", fmt.Errorf("%s: no container of %s starts vLLM (none has %s in a script, or vLLM arguments in its command or args); containers: %s", d.Name, where, serverPrograms, strings.Join(in, ", "))
	}
	return "", fmt.Errorf("%s: several containers run vLLM (%s); choose one with target.workload and target.container", d.Name, strings.Join(vs, ", "))
}

// workloads lists KIND/NAME of the manifest's workloads, in file order.
func (d *Document) workloads() []string {
	var out []string
	for _, u := range d.order {
		if w := u[:strings.LastIndexByte(u, '/')]; !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

func containerNames(units []string) []string {
	out := make([]string, len(units))
	for i, u := range units {
		out[i] = u[strings.LastIndexByte(u, '/')+1:]
	}
	return out
}

// ContainerArgs reads a container's command and args as Kubernetes
// passes them (lists of strings; nothing is interpolated by the file).
func (d *Document) ContainerArgs(unit string) (command, args []string, err error) {
	c, ok := d.services[unit]
	if !ok {
		return nil, nil, fmt.Errorf("%s has no %s", d.Name, d.who(unit))
	}
	for key, dst := range map[string]*[]string{"command": &command, "args": &args} {
		if n, _ := lookup(c, key); n != nil {
			if err := n.Decode(dst); err != nil {
				return nil, nil, fmt.Errorf("%s:%d: %s %s: %w", d.Name, n.Line, d.who(unit), key, err)
			}
		}
	}
	return command, args, nil
}

// ManifestFlags are the vLLM flags a container of the manifest receives.
func (d *Document) ManifestFlags(unit string) (vllm.Flags, error) {
	command, args, err := d.ContainerArgs(unit)
	if err != nil {
		return nil, err
	}
	words, err := effectiveWords(d.who(unit), command, args)
	if err != nil {
		return nil, err
	}
	return vllm.ParseArgs(words), nil
}

// RenderManifest renders cand into a container of the manifest and checks
// the result the way it checks a compose profile: parsed again, the
// container must pass vLLM exactly the original flags with cand applied,
// and every other document and container must be unchanged. Nothing is
// written.
func (d *Document) RenderManifest(unit string, cand vllm.Candidate) (*Plan, error) {
	after, changes, err := d.Render(unit, cand)
	if err != nil {
		return nil, err
	}
	before, err := d.ManifestFlags(unit)
	if err != nil {
		return nil, err
	}
	r, _ := d.region(unit)
	rendered, err := ParseManifest(d.Name, after)
	if err != nil {
		return nil, fmt.Errorf("%s: the rendered manifest does not parse: %w; nothing was written", d.Name, err)
	}
	got, err := rendered.ManifestFlags(unit)
	if err != nil {
		return nil, err
	}
	if diff := got.Diff(before.Apply(cand)); diff != "" {
		return nil, &DriftError{File: d.Name, Service: unit, Detail: diff, Problems: r.problems}
	}
	if dups := got.Duplicates(); len(dups) > 0 {
		return nil, &DriftError{File: d.Name, Service: unit, Detail: "\n  flags given more than once (argparse keeps the last): --" + strings.Join(dups, ", --"), Problems: r.problems}
	}
	for _, u := range d.order {
		if u == unit {
			continue
		}
		c1, a1, _ := d.ContainerArgs(u)
		c2, a2, err := rendered.ContainerArgs(u)
		if err != nil || !slices.Equal(c1, c2) || !slices.Equal(a1, a2) {
			return nil, fmt.Errorf("%s: rendering %s changed %s too; nothing was written", d.Name, d.who(unit), d.who(u))
		}
	}
	return &Plan{File: d.Name, Service: unit, Changes: changes, Before: d.src, After: after, Effective: got}, nil
}

package profiles

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// composePath is the key path compose-go puts before its own messages:
// "services.vllm.environment.[2]: unexpected type int".
var composePath = regexp.MustCompile(`^((?:[\w.-]+|\[\d+\])(?:\.(?:[\w-]+|\[\d+\]))*): (.*)$`)

// explainLoad turns compose-go's message about a key path into one that
// names the file, line and column where the path is written (the last
// file that writes it: compose merges them in order) and, for an item of
// a flow list that an unquoted comma split, the likely cause.
func explainLoad(files []string, contents [][]byte, err error) string {
	msg := err.Error()
	// compose-go may wrap: take the innermost "path: message".
	var path, what string
	if i := strings.LastIndex(msg, "services."); i >= 0 {
		if m := composePath.FindStringSubmatch(msg[i:]); m != nil {
			path, what = m[1], m[2]
		}
	}
	if path == "" {
		return ""
	}
	keys := splitPath(path)
	for f := len(files) - 1; f >= 0; f-- {
		var root yaml.Node
		if yaml.Unmarshal(contents[f], &root) != nil || len(root.Content) == 0 {
			continue
		}
		node, parent, idx := walk(root.Content[0], keys)
		if node == nil {
			// compose merges lists across files before it checks them: an
			// index counts the merged list. Find the item in this file's
			// list by the type the message names.
			node, parent, idx = itemOfType(root.Content[0], keys, what)
		}
		if node == nil {
			continue
		}
		shown := append([]string(nil), keys...)
		if parent != nil && parent.Kind == yaml.SequenceNode {
			shown[len(shown)-1] = fmt.Sprintf("[%d]", idx) // this file's item (compose counts the merged list)
		}
		out := fmt.Sprintf("%s:%d:%d: %s: %s", files[f], node.Line, node.Column, displayPath(shown), what)
		if parent != nil && parent.Kind == yaml.SequenceNode && parent.Style&yaml.FlowStyle != 0 && idx > 0 {
			prev := parent.Content[idx-1]
			if prev.Kind == yaml.ScalarNode && node.Kind == yaml.ScalarNode && prev.Style == 0 && node.Style == 0 {
				joined := prev.Value + "," + node.Value
				out += fmt.Sprintf("; in a flow list [a, b] a comma separates items, so %q was likely read as two items, %q and %q: quote it (%q) or write the list one item per line",
					joined, prev.Value, node.Value, joined)
			}
		}
		return out
	}
	return ""
}

// splitPath splits "services.vllm.environment.[2]" into its keys; an
// index is "[2]".
func splitPath(p string) []string { return strings.Split(p, ".") }

func displayPath(keys []string) string {
	return strings.ReplaceAll(strings.Join(keys, "."), ".[", "[")
}

// walk follows keys from a mapping node; it returns the node, its parent
// and its index in a sequence parent.
func walk(n *yaml.Node, keys []string) (node, parent *yaml.Node, idx int) {
	for _, k := range keys {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		parent = n
		switch {
		case strings.HasPrefix(k, "[") && strings.HasSuffix(k, "]"):
			i, err := strconv.Atoi(k[1 : len(k)-1])
			if err != nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return nil, nil, 0
			}
			n, idx = n.Content[i], i
		case n.Kind == yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return nil, nil, 0
			}
			n = next
		default:
			return nil, nil, 0
		}
	}
	return n, parent, idx
}

// itemOfType finds, in the list at keys' parent path, the last item whose
// YAML type is the one a message like "unexpected type int" names.
func itemOfType(root *yaml.Node, keys []string, what string) (node, parent *yaml.Node, idx int) {
	last := keys[len(keys)-1]
	if !strings.HasPrefix(last, "[") {
		return nil, nil, 0
	}
	list, _, _ := walk(root, keys[:len(keys)-1])
	typ, ok := strings.CutPrefix(what, "unexpected type ")
	if list == nil || list.Kind != yaml.SequenceNode || !ok {
		return nil, nil, 0
	}
	tag := "!!" + strings.Fields(typ)[0]
	for i := len(list.Content) - 1; i >= 0; i-- {
		if it := list.Content[i]; it.Kind == yaml.ScalarNode && it.ShortTag() == tag {
			return it, list, i
		}
	}
	return nil, nil, 0
}

package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/vgrid/vgrid/vllm"
)

// Document is a compose profile held as its exact bytes plus the YAML node
// tree used to find things in them. Edits are made to the bytes, so every
// comment, blank line and quote that is not edited stays as it was.
type Document struct {
	Name       string // file name, for messages
	src        []byte
	lineStarts []int
	services   map[string]*yaml.Node
	order      []string
}

// ParseDocument parses a compose profile.
func ParseDocument(name string, src []byte) (*Document, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("%s is not valid YAML: %w; fix the file (docker compose would reject it too)", name, err)
	}
	d := &Document{Name: name, src: src, services: map[string]*yaml.Node{}}
	d.lineStarts = []int{0}
	for i, c := range src {
		if c == '\n' {
			d.lineStarts = append(d.lineStarts, i+1)
		}
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: the top level is not a mapping; a compose file starts with keys such as `services`", name)
	}
	svcs := mapGet(root.Content[0], "services")
	if svcs == nil || svcs.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: no services: mapping", name)
	}
	for i := 0; i+1 < len(svcs.Content); i += 2 {
		n := svcs.Content[i].Value
		d.services[n] = svcs.Content[i+1]
		d.order = append(d.order, n)
	}
	return d, nil
}

// Bytes returns the document's source.
func (d *Document) Bytes() []byte { return d.src }

// Services lists the services in file order.
func (d *Document) Services() []string { return slices.Clone(d.order) }

func mapGet(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// offset converts a yaml.v3 position (1-based line, 1-based rune column) to
// a byte offset.
func (d *Document) offset(line, col int) int {
	if line-1 >= len(d.lineStarts) {
		return len(d.src)
	}
	off := d.lineStarts[line-1]
	for c := 1; c < col && off < len(d.src); c++ {
		_, size := utf8.DecodeRune(d.src[off:])
		off += size
	}
	return off
}

// lineOf returns the 0-based line holding byte offset off.
func (d *Document) lineOf(off int) int {
	i, found := slices.BinarySearch(d.lineStarts, off)
	if found {
		return i
	}
	return i - 1
}

// lineEnd returns the offset of the '\n' ending line i (or len(src)).
func (d *Document) lineEnd(i int) int {
	if i+1 < len(d.lineStarts) {
		return d.lineStarts[i+1] - 1
	}
	return len(d.src)
}

func (d *Document) lineText(i int) string { return string(d.src[d.lineStarts[i]:d.lineEnd(i)]) }

type regionKind int

const (
	regionString regionKind = iota // a string command, split into words by compose
	regionSeq                      // a list command: one word per item
	regionScript                   // a `sh -c` script: the words after `vllm serve`
)

func (k regionKind) String() string {
	return [...]string{"string command", "list command", "shell script"}[k]
}

// region is where a service's vLLM arguments are written in the file.
type region struct {
	kind     regionKind
	service  string
	words    []word       // the vLLM arguments, offsets in the file
	items    []*yaml.Node // regionSeq: the item nodes of words
	flow     bool         // regionSeq: [a, b] rather than "- a" lines
	style    yaml.Style   // regionSeq: quoting of the existing value items
	flagSty  yaml.Style   // regionSeq: quoting of the existing flag items
	serveEnd int          // regionScript: offset just after the word "serve"
	problems []string     // what docker compose would do differently from what the file shows
}

// ErrNotVLLM says a service does not run vLLM.
var ErrNotVLLM = errors.New("does not run vLLM")

// VLLMServices lists the services that run `vllm serve`.
func (d *Document) VLLMServices() []string {
	var out []string
	for _, s := range d.order {
		if _, err := d.region(s); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// ResolveService returns service if given, or the only service running vLLM.
func (d *Document) ResolveService(service string) (string, error) {
	if service != "" {
		if _, ok := d.services[service]; !ok {
			return "", fmt.Errorf("%s has no service %q; services: %s", d.Name, service, strings.Join(d.order, ", "))
		}
		return service, nil
	}
	vs := d.VLLMServices()
	switch len(vs) {
	case 1:
		return vs[0], nil
	case 0:
		return "", fmt.Errorf("%s: no service runs vLLM (none has `vllm serve` in a script or a vLLM command); services: %s", d.Name, strings.Join(d.order, ", "))
	}
	return "", fmt.Errorf("%s: several services run vLLM (%s); choose one with --service", d.Name, strings.Join(vs, ", "))
}

var shells = []string{"sh", "bash", "ash", "dash", "zsh"}

func isShell(w string) bool { return slices.Contains(shells, path.Base(w)) }

// programPrefix returns how many leading words name the program rather
// than its arguments: "vllm serve", "python -m vllm.entrypoints.openai.api_server".
func programPrefix(ws []string) int {
	for i := 0; i+1 < len(ws) && i < 4; i++ {
		if (ws[i] == "vllm" || strings.HasSuffix(ws[i], "/vllm")) && ws[i+1] == "serve" {
			return i + 2
		}
		if ws[i] == "vllm.entrypoints.openai.api_server" {
			return i + 1
		}
	}
	if len(ws) > 2 && ws[1] == "-m" && ws[2] == "vllm.entrypoints.openai.api_server" {
		return 3
	}
	return 0
}

// region locates the vLLM arguments of a service.
func (d *Document) region(service string) (*region, error) {
	svc, ok := d.services[service]
	if !ok {
		return nil, fmt.Errorf("%s has no service %q; services: %s", d.Name, service, strings.Join(d.order, ", "))
	}
	cmd, ep := mapGet(svc, "command"), mapGet(svc, "entrypoint")
	image := ""
	if n := mapGet(svc, "image"); n != nil {
		image = n.Value
	}

	// A shell script: entrypoint [sh, -c] with the script in command, or a
	// command [sh, -c, script], or an entrypoint carrying the script.
	for _, n := range scriptCandidates(ep, cmd) {
		r, err := d.scriptRegion(service, n)
		if err != nil || r != nil {
			return r, err
		}
	}
	if epShell(ep) {
		return nil, fmt.Errorf("service %q %w: its entrypoint is a shell and its script has no `vllm serve` line", service, ErrNotVLLM)
	}
	if cmd == nil {
		return nil, fmt.Errorf("service %q %w as far as vgrid can see: it has no command:, so its vLLM arguments are not in this file (image %q)", service, ErrNotVLLM, image)
	}
	var r *region
	switch cmd.Kind {
	case yaml.ScalarNode:
		var err error
		if r, err = d.stringRegion(service, cmd); err != nil {
			return nil, err
		}
	case yaml.SequenceNode:
		r = d.seqRegion(service, cmd)
	default:
		return nil, fmt.Errorf("service %q: command is a %s, expected a string or a list", service, kindName(cmd.Kind))
	}
	prefix := programPrefix(texts(r.words))
	if prefix == 0 && !strings.Contains(strings.ToLower(image), "vllm") && !slices.Contains(texts(r.words), "--model") {
		return nil, fmt.Errorf("service %q %w: its command has no --model and its image %q is not a vLLM image", service, ErrNotVLLM, image)
	}
	r.words = r.words[prefix:]
	if r.items != nil {
		r.items = r.items[prefix:]
	}
	return r, nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return "scalar"
}

func epShell(ep *yaml.Node) bool {
	if ep == nil {
		return false
	}
	if ep.Kind == yaml.SequenceNode && len(ep.Content) > 0 {
		return isShell(ep.Content[0].Value)
	}
	if ep.Kind == yaml.ScalarNode {
		f := strings.Fields(ep.Value)
		return len(f) > 0 && isShell(f[0])
	}
	return false
}

// scriptCandidates returns the scalar nodes that may hold a shell script.
func scriptCandidates(ep, cmd *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	seqScript := func(n *yaml.Node, needShell bool) {
		if n == nil || n.Kind != yaml.SequenceNode {
			return
		}
		for i, it := range n.Content {
			if it.Kind != yaml.ScalarNode {
				continue
			}
			if !needShell || (i >= 2 && isShell(n.Content[0].Value) && n.Content[i-1].Value == "-c") {
				out = append(out, it)
			}
		}
	}
	if epShell(ep) {
		seqScript(ep, true)
		if cmd != nil && cmd.Kind == yaml.ScalarNode {
			out = append(out, cmd)
		}
		seqScript(cmd, false)
	} else if ep == nil {
		seqScript(cmd, true)
	}
	return out
}

// blockContent returns the byte span of a block scalar's content lines:
// from the line after the indicator to the end of its last non-blank line.
func (d *Document) blockContent(n *yaml.Node) (start, end int, err error) {
	ind := d.offset(n.Line, n.Column)
	line := d.lineOf(ind)
	header := d.lineText(line)[ind-d.lineStarts[line]:]
	if strings.ContainsAny(strings.SplitN(header, "#", 2)[0], "123456789") {
		return 0, 0, fmt.Errorf("line %d: block scalars with an explicit indentation indicator are not supported; remove the digit after | or >", line+1)
	}
	indent := -1
	last := line
	for i := line + 1; i < len(d.lineStarts); i++ {
		t := d.lineText(i)
		if strings.TrimSpace(t) == "" {
			continue
		}
		ws := len(t) - len(strings.TrimLeft(t, " "))
		if indent < 0 {
			indent = ws
		}
		if ws < indent {
			break
		}
		last = i
	}
	if last == line {
		return 0, 0, fmt.Errorf("line %d: empty block scalar", line+1)
	}
	return d.lineStarts[line+1], d.lineEnd(last), nil
}

func (d *Document) stringRegion(service string, n *yaml.Node) (*region, error) {
	r := &region{kind: regionString, service: service}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		start, end, err := d.blockContent(n)
		if err != nil {
			return nil, fmt.Errorf("service %q command: %w", service, err)
		}
		var ps []problem
		r.words, ps = lexCompose(string(d.src[start:end]), start)
		r.problems = d.describe(ps)
	case 0: // plain
		start := d.offset(n.Line, n.Column)
		if strings.Contains(n.Value, "\n") || !bytes.HasPrefix(d.src[start:], []byte(n.Value)) {
			return nil, fmt.Errorf("service %q: a multi-line plain command is not supported; write it as a block scalar (command: >) or a list", service)
		}
		var ps []problem
		r.words, ps = lexCompose(n.Value, start)
		r.problems = d.describe(ps)
	default:
		return nil, fmt.Errorf("service %q: a quoted string command is not supported; write it as a block scalar (command: >) or a list", service)
	}
	return r, nil
}

// describe turns lexing problems into one sentence per kind, with lines.
func (d *Document) describe(ps []problem) []string {
	lines := map[int][]string{}
	for _, p := range ps {
		l := fmt.Sprint(d.lineOf(p.off) + 1)
		if !slices.Contains(lines[p.kind], l) {
			lines[p.kind] = append(lines[p.kind], l)
		}
	}
	var out []string
	if l := lines[problemHash]; l != nil {
		out = append(out, fmt.Sprintf("%s line(s) %s: words starting with '#' inside the block scalar command are not YAML comments; docker compose passes them to vLLM as arguments. Move these comment lines above `command:`", d.Name, strings.Join(l, ", ")))
	}
	if l := lines[problemParen]; l != nil {
		out = append(out, fmt.Sprintf("%s line(s) %s: an unquoted '(' in the command makes docker compose reject it (\"invalid command line string\")", d.Name, strings.Join(l, ", ")))
	}
	if l := lines[problemStop]; l != nil {
		out = append(out, fmt.Sprintf("%s line %s: an unquoted ; & | < or > in the command: docker compose silently drops it and every argument after it; quote the value", d.Name, l[0]))
	}
	return out
}

func (d *Document) seqRegion(service string, n *yaml.Node) *region {
	r := &region{kind: regionSeq, service: service, flow: n.Style&yaml.FlowStyle != 0}
	for _, it := range n.Content {
		start := d.offset(it.Line, it.Column)
		r.words = append(r.words, word{text: it.Value, start: start, end: start + d.scalarLen(start, it.Style, r.flow)})
		r.items = append(r.items, it)
		if vllm.IsFlagToken(it.Value) && r.flagSty == 0 {
			r.flagSty = it.Style&^yaml.FlowStyle | 1<<15 // 1<<15: seen
		} else if !vllm.IsFlagToken(it.Value) && r.style == 0 {
			r.style = it.Style&^yaml.FlowStyle | 1<<15
		}
	}
	return r
}

// scalarLen measures a single-line flow scalar written at off.
func (d *Document) scalarLen(off int, style yaml.Style, flow bool) int {
	s := d.src[off:]
	if nl := bytes.IndexByte(s, '\n'); nl >= 0 {
		s = s[:nl]
	}
	switch {
	case style&yaml.DoubleQuotedStyle != 0:
		for i := 1; i < len(s); i++ {
			if s[i] == '\\' {
				i++
			} else if s[i] == '"' {
				return i + 1
			}
		}
	case style&yaml.SingleQuotedStyle != 0:
		for i := 1; i < len(s); i++ {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					i++
					continue
				}
				return i + 1
			}
		}
	default:
		end := len(s)
		if i := bytes.Index(s, []byte(" #")); i >= 0 {
			end = i
		}
		if flow {
			if i := bytes.IndexAny(s[:end], ",]"); i >= 0 {
				end = i
			}
		}
		return len(bytes.TrimRight(s[:end], " \t\r"))
	}
	return len(s)
}

func (d *Document) scriptRegion(service string, n *yaml.Node) (*region, error) {
	var start, end int
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		if n.Style == yaml.FoldedStyle && strings.Contains(n.Value, "vllm serve") {
			return nil, fmt.Errorf("service %q: the script is a folded scalar (>): lines are joined and the shell sees one line; use a literal block (|)", service)
		}
		var err error
		if start, end, err = d.blockContent(n); err != nil {
			return nil, fmt.Errorf("service %q script: %w", service, err)
		}
	default:
		if !strings.Contains(n.Value, "vllm") {
			return nil, nil
		}
		return nil, fmt.Errorf("service %q: the `vllm serve` script is a quoted or plain scalar; vgrid edits scripts written as a literal block (|)", service)
	}
	text := string(d.src[start:end])
	inv, err := findServe(text)
	if err != nil {
		return nil, fmt.Errorf("%s: service %q: %w", d.Name, service, err)
	}
	if inv == nil {
		return nil, nil
	}
	r := &region{kind: regionScript, service: service, serveEnd: start + inv.serveEnd}
	for _, w := range inv.args {
		w.start += start
		w.end += start
		r.words = append(r.words, w)
	}
	return r, nil
}

// effectiveWords extracts the vLLM argument words from a service as compose
// resolved it (interpolated entrypoint and command).
func effectiveWords(service string, entrypoint, command []string) ([]string, error) {
	script := ""
	switch {
	case len(entrypoint) > 0 && isShell(entrypoint[0]):
		if i := slices.Index(entrypoint, "-c"); i >= 0 && i+1 < len(entrypoint) {
			script = entrypoint[i+1]
		} else if len(command) > 0 {
			script = command[0]
		}
	case len(entrypoint) == 0 && len(command) > 2 && isShell(command[0]):
		if i := slices.Index(command, "-c"); i >= 0 && i+1 < len(command) {
			script = command[i+1]
		}
	}
	if script != "" {
		inv, err := findServe(script)
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", service, err)
		}
		if inv == nil {
			return nil, fmt.Errorf("service %q %w: its script has no `vllm serve` line", service, ErrNotVLLM)
		}
		return texts(inv.args), nil
	}
	return command[programPrefix(command):], nil
}

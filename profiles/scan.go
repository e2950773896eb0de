package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/vgrid/vgrid/internal/yamlerr"

	"github.com/vgrid/vgrid/vllm"
)

// Document is a compose profile held as its exact bytes plus the YAML node
// tree used to find things in them. Edits are made to the bytes, so every
// comment, blank line and quote that is not edited stays as it was.
type Document struct {
	Name string // file name, for messages
	*dialect
	eol        string // the file's line break: "\n", or "\r\n" in a Windows checkout
	src        []byte
	lineStarts []int
	services   map[string]*yaml.Node
	order      []string
}

// ParseDocument parses a compose profile.
func ParseDocument(name string, src []byte) (*Document, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		if line, col, msg, ok := yamlerr.Syntax(src, err); ok {
			return nil, fmt.Errorf("%s:%d:%d: %s (docker compose would reject it too)", name, line, col, msg)
		}
		return nil, fmt.Errorf("%s is not valid YAML: %w; fix the file (docker compose would reject it too)", name, err)
	}
	d := newDocument(name, src, composeDialect)
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: the top level is not a mapping; a compose file starts with keys such as `services`", name)
	}
	svcs := mapGet(root.Content[0], "services")
	if svcs == nil || svcs.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: no services: mapping", name)
	}
	for i := 0; i+1 < len(svcs.Content); i += 2 {
		n := svcs.Content[i].Value
		d.services[n] = deref(svcs.Content[i+1])
		d.order = append(d.order, n)
	}
	return d, nil
}

// dialect is what a file format calls the parts vgrid edits: a compose
// service's entrypoint and command, or a Kubernetes container's command
// and args (the same two roles: the program, then its arguments).
type dialect struct {
	unit   string // what holds the arguments: "service", "container"
	epKey  string // the key of the program: compose entrypoint, Kubernetes command
	cmdKey string // the key of the arguments: compose command, Kubernetes args
	reader string // what reads the file: "docker compose", "Kubernetes"
	// epArgs: the program's key may hold vLLM's arguments itself, with no
	// arguments' key (Kubernetes: command: [vllm, serve, --model, m]).
	epArgs bool
}

var composeDialect = &dialect{unit: "service", epKey: "entrypoint", cmdKey: "command", reader: "docker compose"}

// who names a service, or a container of a workload, in messages.
func (dl *dialect) who(name string) string {
	if dl.unit == "container" {
		if i := strings.LastIndexByte(name, '/'); i > 0 {
			return fmt.Sprintf("container %q of %s", name[i+1:], name[:i])
		}
	}
	return fmt.Sprintf("%s %q", dl.unit, name)
}

// newDocument holds src's bytes, its line starts and its line break.
func newDocument(name string, src []byte, dl *dialect) *Document {
	d := &Document{Name: name, dialect: dl, src: src, services: map[string]*yaml.Node{}, eol: "\n"}
	if crlf := bytes.Count(src, []byte("\r\n")); crlf > 0 && crlf*2 >= bytes.Count(src, []byte("\n")) {
		d.eol = "\r\n"
	}
	d.lineStarts = []int{0}
	for i, c := range src {
		if c == '\n' {
			d.lineStarts = append(d.lineStarts, i+1)
		}
	}
	return d
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

// lineEnd returns the offset of the line break ending line i ("\n" or
// "\r\n"), or len(src) for a last line without one.
func (d *Document) lineEnd(i int) int {
	end := len(d.src)
	if i+1 < len(d.lineStarts) {
		end = d.lineStarts[i+1] - 1
		if end > d.lineStarts[i] && d.src[end-1] == '\r' {
			end--
		}
	}
	return end
}

// breakStart returns the offset of the line break before line i (i > 0).
func (d *Document) breakStart(i int) int { return d.lineEnd(i - 1) }

func (d *Document) lineText(i int) string { return string(d.src[d.lineStarts[i]:d.lineEnd(i)]) }

type regionKind int

const (
	regionString regionKind = iota // a string command, split into words by compose
	regionSeq                      // a list command: one word per item
	regionScript                   // a shell script: the words after the server program
)

func (k regionKind) String() string {
	return [...]string{"string command", "list command", "shell script"}[k]
}

// region is where a service's vLLM arguments are written in the file.
type region struct {
	kind    regionKind
	service string
	key     string       // the service key whose value holds the words: command or entrypoint
	words   []word       // the vLLM arguments; start and end are file offsets
	items   []*yaml.Node // regionSeq: the item nodes of words
	flow    bool         // regionSeq: [a, b] rather than "- a" lines
	style   yaml.Style   // regionSeq: quoting of the existing value items
	flagSty yaml.Style   // regionSeq: quoting of the existing flag items
	// block: the words lie in the lines of a block scalar, so edits may add
	// and delete whole lines; otherwise they are made inside the words' line.
	block bool
	enc   func(string) (string, error) // string and script: writes inserted text in the file
	// progEnd: a script's file offset just after the program words.
	progEnd int
	// fixed are vLLM arguments written before these words, in an entrypoint
	// that holds the program (entrypoint: [vllm, serve, --model, m]); vgrid
	// does not edit them.
	fixed    []string
	problems []string // what docker compose would do differently from what the file shows
}

// ErrNotVLLM says a service does not run vLLM.
var ErrNotVLLM = errors.New("does not run vLLM")

// VLLMServices lists the services that start vLLM's server.
func (d *Document) VLLMServices() []string {
	var out []string
	for _, s := range d.order {
		if _, err := d.findRegion(s); err == nil {
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
	var vs []string
	var errs []error
	for _, s := range d.order {
		switch _, err := d.findRegion(s); {
		case err == nil:
			vs = append(vs, s)
		case !errors.Is(err, ErrNotVLLM):
			errs = append(errs, err) // it runs vLLM, written in a way vgrid refuses
		}
	}
	switch len(vs) {
	case 1:
		return vs[0], nil
	case 0:
		if len(errs) > 0 {
			return "", errors.Join(errs...)
		}
		return "", fmt.Errorf("%s: no service starts vLLM (none has %s in a script, or vLLM arguments in its command); services: %s", d.Name, serverPrograms, strings.Join(d.order, ", "))
	}
	return "", fmt.Errorf("%s: several services run vLLM (%s); choose one with --service", d.Name, strings.Join(vs, ", "))
}

var shells = []string{"sh", "bash", "ash", "dash", "zsh"}

func isShell(w string) bool { return slices.Contains(shells, path.Base(w)) }

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// lookup returns the value a mapping gives key, following YAML merge keys
// (<<: *anchor, <<: [*a, *b]) the way compose does: the mapping's own key
// wins, then the merged mappings in order. via names the anchor the value
// came through ("" when written in the mapping itself).
func lookup(m *yaml.Node, key string) (val *yaml.Node, via string) {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, ""
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Value == key && k.ShortTag() != "!!merge" {
			v := m.Content[i+1]
			if v.Kind == yaml.AliasNode {
				return deref(v), v.Value
			}
			return v, ""
		}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].ShortTag() != "!!merge" {
			continue
		}
		sources := []*yaml.Node{m.Content[i+1]}
		if s := deref(m.Content[i+1]); s.Kind == yaml.SequenceNode {
			sources = s.Content
		}
		for _, src := range sources {
			if v, via := lookup(src, key); v != nil {
				if via == "" && src.Kind == yaml.AliasNode {
					via = src.Value
				}
				return v, via
			}
		}
	}
	return nil, ""
}

// shared checks that the node supplying a service's key is not also the
// value of another service's key (through an anchor or a merge key): an edit
// there would change every service that shares it.
func (d *Document) shared(service, key string) error {
	n, via := lookup(d.services[service], key)
	if n == nil {
		return nil
	}
	users := []string{}
	for _, s := range d.order {
		if m, _ := lookup(d.services[s], key); m == n {
			users = append(users, s)
		}
	}
	if len(users) < 2 {
		return nil
	}
	anchor := n.Anchor
	if anchor == "" {
		anchor = via
	}
	return fmt.Errorf("%s: the %s: of service %q is written once, under the anchor &%s (line %d; the %s: is at line %d), and services %s share it; an edit there would change all of them. Give service %q a %s: of its own (copy it into the service, which then overrides the anchor's), or run vgrid on a profile where one service uses it",
		d.Name, key, service, anchor, d.anchorLine(anchor), key, n.Line, strings.Join(users, ", "), service, key)
}

// anchorLine returns the 1-based line where &name is defined.
func (d *Document) anchorLine(name string) int {
	re := regexp.MustCompile(`&` + regexp.QuoteMeta(name) + `(\s|$)`)
	if loc := re.FindIndex(d.src); loc != nil {
		return d.lineOf(loc[0]) + 1
	}
	return 0
}

// expansion refuses argument lists that take words from a variable the
// shell or compose expands when the container starts ($ARGS, "$@"): vgrid
// cannot see the flags inside, so it could neither edit nor check them.
// The first positional word (the model) may be a variable.
func (d *Document) expansion(r *region) error {
	if r.kind == regionSeq {
		return nil
	}
	for i, a := range vllm.ParseArgs(texts(r.words)) {
		if a.Name != "" || i == 0 {
			continue
		}
		w := r.words[a.First]
		if strings.Contains(w.text, "$") {
			return fmt.Errorf("%s: %s: vLLM's arguments include %q (line %d), which is expanded when the container starts; vgrid cannot see the flags inside it, so it can neither edit nor check them. Write the flags out in the profile",
				d.Name, d.who(r.service), w.text, d.lineOf(w.start)+1)
		}
	}
	return nil
}

// findRegion locates the vLLM arguments of a service.
func (d *Document) findRegion(service string) (*region, error) {
	svc, ok := d.services[service]
	if !ok {
		return nil, fmt.Errorf("%s has no service %q; services: %s", d.Name, service, strings.Join(d.order, ", "))
	}
	cmd, _ := lookup(svc, d.cmdKey)
	ep, _ := lookup(svc, d.epKey)
	if empty(ep) {
		ep = nil // entrypoint: [] or "" clears the image's: the command runs as is
	}
	if d.epArgs && cmd == nil && ep != nil && !epShell(ep) && ep.Kind == yaml.SequenceNode {
		// The program and its arguments in one list: edited as the
		// arguments' list, the program's words skipped.
		if words, _, err := d.nodeWords(ep); err == nil && programEnd(texts(words)) > 0 {
			r := d.seqRegion(service, ep)
			r.key = d.epKey
			prefix := programEnd(texts(r.words))
			r.words, r.items = r.words[prefix:], r.items[prefix:]
			return r, nil
		}
	}
	image := ""
	if n, _ := lookup(svc, "image"); n != nil {
		image = n.Value
	}
	if epShell(ep) || (ep == nil && cmdShell(cmd)) {
		return d.scriptRegion(service, ep, cmd)
	}
	var fixed []string
	epProgram := false
	if ep != nil {
		words, _, err := d.nodeWords(ep)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", d.who(service), d.epKey, err)
		}
		if end := programEnd(texts(words)); end > 0 {
			epProgram, fixed = true, texts(words[end:])
		}
	}
	if cmd == nil {
		if epProgram {
			return nil, fmt.Errorf("%s: its %s starts vLLM but it has no %s:, so there is no argument list to edit; move the arguments into a %s: list", d.who(service), d.epKey, d.cmdKey, d.cmdKey)
		}
		if ext, _ := lookup(svc, "extends"); ext != nil {
			return nil, fmt.Errorf("service %q %w as far as vgrid can see: it has no command: of its own and takes it through extends:, from a service vgrid does not edit; copy the command into service %q", service, ErrNotVLLM, service)
		}
		return nil, fmt.Errorf("%s %w as far as vgrid can see: it has no %s:, so its vLLM arguments are not in this file (image %q)", d.who(service), ErrNotVLLM, d.cmdKey, image)
	}
	var r *region
	switch cmd.Kind {
	case yaml.ScalarNode:
		src, err := d.scalarSource(cmd)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", d.who(service), d.cmdKey, err)
		}
		words, ps := lexCompose(src.text)
		r = &region{kind: regionString, service: service, block: src.block, enc: src.enc}
		r.words = mapWords(src, words)
		r.problems = d.describe(src, ps)
	case yaml.SequenceNode:
		r = d.seqRegion(service, cmd)
	default:
		return nil, fmt.Errorf("%s: %s is a %s, expected a string or a list", d.who(service), d.cmdKey, kindName(cmd.Kind))
	}
	r.key, r.fixed = d.cmdKey, fixed
	prefix := 0
	if !epProgram {
		prefix = programEnd(texts(r.words))
		if prefix == 0 && !strings.Contains(strings.ToLower(image), "vllm") && !slices.Contains(texts(r.words), "--model") {
			return nil, fmt.Errorf("%s %w: its %s has no --model and its image %q is not a vLLM image", d.who(service), ErrNotVLLM, d.cmdKey, image)
		}
	}
	r.words = r.words[prefix:]
	if r.items != nil {
		r.items = r.items[prefix:]
	}
	return r, nil
}

// region is findRegion, refused when the words are shared with another
// service through an anchor.
func (d *Document) region(service string) (*region, error) {
	r, err := d.findRegion(service)
	if err != nil {
		return nil, err
	}
	if err := d.shared(service, r.key); err != nil {
		return nil, err
	}
	if err := d.expansion(r); err != nil {
		return nil, err
	}
	return r, nil
}

// mapWords turns words lexed in src.text into words with file offsets.
func mapWords(src *source, ws []word) []word {
	out := make([]word, len(ws))
	for i, w := range ws {
		w.start, w.end = src.fileSpan(w.start, w.end)
		out[i] = w
	}
	return out
}

// nodeWords returns the words of an entrypoint or command as compose splits
// it (a list's items, or a string split by go-shellwords), with the source
// of a string.
func (d *Document) nodeWords(n *yaml.Node) ([]word, *source, error) {
	switch n.Kind {
	case yaml.SequenceNode:
		var out []word
		for _, it := range n.Content {
			out = append(out, word{text: deref(it).Value})
		}
		return out, nil, nil
	case yaml.ScalarNode:
		src, err := d.scalarSource(n)
		if err != nil {
			return nil, nil, err
		}
		ws, _ := lexCompose(src.text)
		return ws, src, nil
	}
	return nil, nil, fmt.Errorf("a %s, expected a string or a list", kindName(n.Kind))
}

// empty reports an empty list or string.
func empty(n *yaml.Node) bool {
	return n != nil && (n.Kind == yaml.SequenceNode && len(n.Content) == 0 || n.Kind == yaml.ScalarNode && strings.TrimSpace(n.Value) == "")
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

// firstWord is the first word of a list or string command.
func firstWord(n *yaml.Node) string {
	switch {
	case n == nil:
		return ""
	case n.Kind == yaml.SequenceNode && len(n.Content) > 0:
		return deref(n.Content[0]).Value
	case n.Kind == yaml.ScalarNode:
		if f := strings.Fields(n.Value); len(f) > 0 {
			return strings.Trim(f[0], `'"`)
		}
	}
	return ""
}

func epShell(ep *yaml.Node) bool { return isShell(firstWord(ep)) }

// cmdShell: a command that runs a shell itself ([bash, -c, script]).
func cmdShell(cmd *yaml.Node) bool { return isShell(firstWord(cmd)) }

// scriptRegion finds the server command in the script a shell runs: the
// word after -c in the entrypoint or the command (as a list item, or a
// quoted word of a string), or the command's first word after an
// entrypoint ending in -c.
func (d *Document) scriptRegion(service string, ep, cmd *yaml.Node) (*region, error) {
	holder, key := cmd, d.cmdKey
	if ep != nil {
		holder, key = ep, d.epKey
	}
	script, err := d.scriptAfterC(holder)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", d.who(service), key, err)
	}
	if script == nil && ep != nil && cmd != nil {
		holder, key = cmd, d.cmdKey
		if script, err = d.firstCommandWord(cmd); err != nil {
			return nil, fmt.Errorf("%s %s: %w", d.who(service), d.cmdKey, err)
		}
	}
	if script == nil {
		return nil, fmt.Errorf("%s %w: it runs a shell, but vgrid finds no script after -c", d.who(service), ErrNotVLLM)
	}
	if script.block && holder.Kind == yaml.ScalarNode && holder.Style == yaml.FoldedStyle && strings.Contains(script.text, "\n") {
		return nil, fmt.Errorf("%s: the script is a folded scalar (>): its lines are joined and the shell sees one line; use a literal block (|)", d.who(service))
	}
	inv, err := findServe(script.text)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", d.Name, d.who(service), err)
	}
	if inv == nil {
		return nil, fmt.Errorf("%s %w: it runs a shell script with no %s line", d.who(service), ErrNotVLLM, serverPrograms)
	}
	r := &region{kind: regionScript, service: service, key: key, block: script.block, enc: script.enc, progEnd: script.at[inv.progEnd]}
	r.words = mapWords(script, inv.args)
	return r, nil
}

// scriptAfterC returns the script that follows -c in an entrypoint or
// command, or nil when -c ends it (or there is none).
func (d *Document) scriptAfterC(n *yaml.Node) (*source, error) {
	switch n.Kind {
	case yaml.SequenceNode:
		for i := 1; i+1 < len(n.Content); i++ {
			if deref(n.Content[i]).Value == "-c" {
				it := deref(n.Content[i+1])
				if it.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("the script after -c is a %s", kindName(it.Kind))
				}
				return d.scalarSource(it)
			}
		}
		return nil, nil
	case yaml.ScalarNode:
		ws, src, err := d.nodeWords(n)
		if err != nil {
			return nil, err
		}
		for i := 1; i+1 < len(ws); i++ {
			if ws[i].text == "-c" {
				return nestedScript(src, ws[i+1])
			}
		}
		return nil, nil
	}
	return nil, fmt.Errorf("a %s, expected a string or a list", kindName(n.Kind))
}

// firstCommandWord returns the script a shell entrypoint ending in -c gets:
// the command's first word. A string command is split into words by compose
// first, so a script written as a bare block scalar reaches the shell cut
// into pieces: that is refused with what to write instead.
func (d *Document) firstCommandWord(cmd *yaml.Node) (*source, error) {
	switch cmd.Kind {
	case yaml.SequenceNode:
		if len(cmd.Content) == 0 {
			return nil, nil
		}
		it := deref(cmd.Content[0])
		if it.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("its first item is a %s, expected the script", kindName(it.Kind))
		}
		return d.scalarSource(it)
	case yaml.ScalarNode:
		ws, src, err := d.nodeWords(cmd)
		if err != nil || len(ws) == 0 {
			return nil, err
		}
		if len(ws) > 1 {
			if inv, _ := findServe(src.text); inv != nil {
				return nil, fmt.Errorf("the entrypoint ends in -c and the command is a string, which docker compose splits into words: the shell would run only %q and get the rest as $0, $1, …; write the command as a one-item list (command: [\"vllm serve ...\"], or command: followed by a `- |` item)", ws[0].text)
			}
			return nil, nil
		}
		return nestedScript(src, ws[0])
	}
	return nil, fmt.Errorf("a %s, expected a string or a list", kindName(cmd.Kind))
}

// nestedScript returns the script held in one quoted word of a string
// command (bash -c "vllm serve ..."), mapped to the file.
func nestedScript(src *source, w word) (*source, error) {
	var enc func(string) (string, error)
	switch w.quote {
	case '"':
		// go-shellwords: inside double quotes a backslash escapes any byte.
		enc = func(s string) (string, error) {
			return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s), nil
		}
	case '\'':
		enc = func(s string) (string, error) {
			if strings.Contains(s, "'") {
				return "", fmt.Errorf("%q cannot be written inside the single-quoted script: it holds a single quote", s)
			}
			return s, nil
		}
	default:
		if strings.ContainsAny(src.text[w.start:w.end], `\'"`) {
			return nil, fmt.Errorf("the script %q is written in several quoted pieces; write it as one quoted string, or as a list item", src.text[w.start:w.end])
		}
		enc = func(s string) (string, error) {
			if strings.ContainsAny(s, " \t\n'\"\\") {
				return "", fmt.Errorf("%q cannot be written inside the unquoted script", s)
			}
			return s, nil
		}
	}
	return src.sub(w, enc), nil
}

// describe turns lexing problems into one sentence per kind, with lines.
func (d *Document) describe(src *source, ps []problem) []string {
	lines := map[int][]string{}
	for _, p := range ps {
		l := fmt.Sprint(d.lineOf(src.at[p.off]) + 1)
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
		it = deref(it)
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

// effectiveWords extracts the vLLM argument words from a service as compose
// resolved it (interpolated entrypoint and command).
func effectiveWords(service string, entrypoint, command []string) ([]string, error) {
	_, args, err := effectiveProgram(service, entrypoint, command)
	return args, err
}

// effectiveProgram splits a service's entrypoint and command, as compose
// resolved them, into the words that start vLLM's server (nil when only
// arguments are given and the image's entrypoint starts it) and vLLM's
// arguments.
func effectiveProgram(service string, entrypoint, command []string) (program, args []string, err error) {
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
	case len(entrypoint) > 0:
		if start, end := programSpan(entrypoint); end > 0 {
			return entrypoint[start:end], append(slices.Clone(entrypoint[end:]), command...), nil
		}
	}
	if script != "" {
		inv, err := findServe(script)
		if err != nil {
			return nil, nil, fmt.Errorf("service %q: %w", service, err)
		}
		if inv == nil {
			return nil, nil, fmt.Errorf("service %q %w: its script has no %s line", service, ErrNotVLLM, serverPrograms)
		}
		return inv.program, texts(inv.args), nil
	}
	start, end := programSpan(command)
	if end == 0 {
		return nil, command, nil
	}
	return command[start:end], command[end:], nil
}

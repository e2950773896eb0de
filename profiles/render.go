package profiles

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vgrid/vgrid/vllm"
)

// Change is one edit that rendering makes to a profile.
type Change struct {
	Flag   string `json:"flag"`
	Action string `json:"action"`           // replace, negate, enable, append, remove
	Before string `json:"before,omitempty"` // as written before (secrets redacted)
	After  string `json:"after,omitempty"`  // as written after (secrets redacted)
	Line   int    `json:"line"`             // 1-based line in the original file
	Note   string `json:"note,omitempty"`
}

func (c Change) String() string {
	s := fmt.Sprintf("line %d: %s --%s", c.Line, c.Action, c.Flag)
	switch {
	case c.Before != "" && c.After != "":
		s += fmt.Sprintf(": %s -> %s", c.Before, c.After)
	case c.After != "":
		s += ": " + c.After
	case c.Before != "":
		s += ": was " + c.Before
	}
	if c.Note != "" {
		s += " (" + c.Note + ")"
	}
	return s
}

// edit replaces src[start:end] with text.
type edit struct {
	start, end int
	text       string
}

func applyEdits(src []byte, edits []edit) []byte {
	slices.SortStableFunc(edits, func(a, b edit) int {
		if a.start != b.start {
			return b.start - a.start
		}
		return a.end - b.end // at the same start: insertion last, i.e. applied after the deletion
	})
	// Sorted by start descending, ties: smaller end first. Apply from the end
	// of the file so earlier offsets stay valid; for a tie, apply the longer
	// (deletion) first so an insertion at the same offset survives.
	out := slices.Clone(src)
	for i := 0; i < len(edits); {
		j := i
		for j < len(edits) && edits[j].start == edits[i].start {
			j++
		}
		for k := j - 1; k >= i; k-- {
			e := edits[k]
			out = slices.Concat(out[:e.start], []byte(e.text), out[e.end:])
		}
		i = j
	}
	return out
}

var interpolation = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)

// plainSafe matches values that need no quoting in a shell word or a plain
// YAML scalar.
var plainSafe = regexp.MustCompile(`^[A-Za-z0-9_./:,=+@%-]+$`)

// renderer holds the state of one Render call.
type renderer struct {
	d       *Document
	r       *region
	args    []vllm.Arg
	edits   []edit
	removed map[int]bool // word indices
	appends []string     // words to append, already quoted for the region
	changes []Change
	err     error // the first word that cannot be written in the region
}

// Render applies a candidate to a service's vLLM arguments and returns the
// new file bytes and the list of changes. The document is not modified.
// With no effective change the output is byte-identical to the input.
func (d *Document) Render(service string, cand vllm.Candidate) ([]byte, []Change, error) {
	r, err := d.region(service)
	if err != nil {
		return nil, nil, err
	}
	if err := r.checkFixed(d, cand); err != nil {
		return nil, nil, err
	}
	rd := &renderer{d: d, r: r, args: vllm.ParseArgs(texts(r.words)), removed: map[int]bool{}}
	for _, s := range cand {
		rd.apply(s)
	}
	if err := rd.finish(); err != nil {
		return nil, nil, err
	}
	if rd.err != nil {
		return nil, nil, fmt.Errorf("%s: %s: %w; nothing was written", d.Name, d.who(service), rd.err)
	}
	return applyEdits(d.src, rd.edits), rd.changes, nil
}

func (rd *renderer) line(wordIdx int) int { return rd.d.lineOf(rd.r.words[wordIdx].start) + 1 }

func (rd *renderer) raw(i int) string {
	w := rd.r.words[i]
	return string(rd.d.src[w.start:w.end])
}

func (rd *renderer) rawArg(a vllm.Arg) string {
	var parts []string
	for i := a.First; i <= a.Last; i++ {
		parts = append(parts, rd.raw(i))
	}
	if spec, _ := vllm.Lookup(a.Name); spec.Secret && len(parts) > 1 {
		for i := 1; i < len(parts); i++ {
			if !interpolation.MatchString(parts[i]) {
				parts[i] = "<redacted>"
			}
		}
	}
	return strings.Join(parts, " ")
}

// spelling keeps the file's way of writing a flag name (--kv_cache_dtype).
func spelling(existing, name string) string {
	if strings.Contains(existing, "_") {
		return strings.ReplaceAll(name, "-", "_")
	}
	return name
}

func (rd *renderer) apply(s vllm.Setting) {
	spec, _ := vllm.Lookup(s.Name)
	var occ []vllm.Arg
	for _, a := range rd.args {
		if a.Name == s.Name {
			occ = append(occ, a)
		}
	}
	removeFrom := 0
	switch {
	case s.Unset:
	case spec.Kind == vllm.KindBool && s.Value == "false" && !spec.Negatable:
		// store_true flag: absent is false, and vLLM's default is false.
	case len(occ) == 0:
		rd.appendArg(s, spec)
	default:
		rd.replace(occ[0], s, spec)
		removeFrom = 1
	}
	for _, a := range occ[removeFrom:] {
		for i := a.First; i <= a.Last; i++ {
			rd.removed[i] = true
		}
		note := ""
		if removeFrom == 1 {
			note = "duplicate removed: argparse keeps only the last one"
		}
		rd.changes = append(rd.changes, Change{Flag: s.Name, Action: "remove", Before: rd.rawArg(a), Line: rd.line(a.First), Note: note})
	}
}

// newWords returns the words of a setting as vLLM should receive them.
func newWords(s vllm.Setting, spec vllm.Spec, spelled string) []string {
	name := "--" + spelling(spelled, s.Name)
	if spec.Kind == vllm.KindBool {
		if s.Value == "false" {
			name = "--" + spelling(spelled, "no-"+s.Name)
		}
		return []string{name}
	}
	if spec.Multi {
		return append([]string{name}, strings.Fields(s.Value)...)
	}
	return []string{name, s.Value}
}

func (rd *renderer) replace(a vllm.Arg, s vllm.Setting, spec vllm.Spec) {
	words := newWords(s, spec, a.Spelled)
	before := rd.rawArg(a)
	var after string
	if a.Inline && len(words) == 2 {
		w := rd.quote(words[0] + "=" + words[1])
		if w == rd.raw(a.First) {
			return
		}
		rd.edits = append(rd.edits, edit{rd.r.words[a.First].start, rd.r.words[a.First].end, w})
		after = w
	} else {
		// The flag word: rewrite only when its form changes (--x <-> --no-x, --x=v -> --x v).
		head := rd.quote(words[0])
		if a.Inline || vllm.CanonicalName(rd.r.words[a.First].text) != vllm.CanonicalName(words[0]) {
			rd.edits = append(rd.edits, edit{rd.r.words[a.First].start, rd.r.words[a.First].end, head})
		} else {
			head = rd.raw(a.First)
		}
		vals := words[1:]
		quoted := make([]string, len(vals))
		for i, v := range vals {
			quoted[i] = rd.quote(v)
		}
		oldVals := []string{}
		if !a.Inline {
			for i := a.First + 1; i <= a.Last; i++ {
				oldVals = append(oldVals, rd.raw(i))
			}
		}
		if !slices.Equal(oldVals, quoted) {
			switch {
			case len(oldVals) > 0 && len(quoted) > 0:
				first, last := rd.r.words[a.First+1], rd.r.words[a.Last]
				rd.edits = append(rd.edits, edit{first.start, last.end, strings.Join(quoted, rd.sep(a.First+1))})
			case len(oldVals) > 0: // value words of a flag that now takes none
				for i := a.First + 1; i <= a.Last; i++ {
					rd.removed[i] = true
				}
			case len(quoted) > 0:
				w := rd.r.words[a.First]
				rd.edits = append(rd.edits, edit{w.end, w.end, rd.sep(a.First) + strings.Join(quoted, rd.sep(a.First))})
			}
		}
		after = strings.Join(append([]string{head}, quoted...), " ")
	}
	if after == before {
		return
	}
	c := Change{Flag: s.Name, Action: "replace", Before: before, After: redactWords(s.Name, after), Line: rd.line(a.First)}
	if spec.Kind == vllm.KindBool {
		c.Action = map[string]string{"true": "enable", "false": "negate"}[s.Value]
	}
	if m := interpolation.FindString(before); m != "" {
		c.Note = fmt.Sprintf("interpolation %s replaced by a literal", m)
	}
	c.Before = redactWords(s.Name, c.Before)
	rd.changes = append(rd.changes, c)
}

func redactWords(name, s string) string {
	if spec, _ := vllm.Lookup(name); spec.Secret {
		f := strings.Fields(s)
		for i := 1; i < len(f); i++ {
			if !interpolation.MatchString(f[i]) {
				f[i] = "<redacted>"
			}
		}
		return strings.Join(f, " ")
	}
	return s
}

// sep is what separates two words after word i in this region.
func (rd *renderer) sep(i int) string {
	if rd.r.kind != regionSeq {
		return " "
	}
	if rd.r.flow {
		return ", "
	}
	return rd.d.eol + rd.itemPrefix(i)
}

// itemPrefix is the text before a block sequence item on its line ("      - ").
func (rd *renderer) itemPrefix(i int) string {
	w := rd.r.words[i]
	ls := rd.d.lineStarts[rd.d.lineOf(w.start)]
	return string(rd.d.src[ls:w.start])
}

// eqStyle reports whether the region writes value flags as --name=value
// more often than --name value.
func (rd *renderer) eqStyle() bool {
	eq, sp := 0, 0
	for _, a := range rd.args {
		switch {
		case a.Name == "":
		case a.Inline:
			eq++
		case len(a.Values) > 0:
			sp++
		}
	}
	return eq > sp
}

func (rd *renderer) appendArg(s vllm.Setting, spec vllm.Spec) {
	words := newWords(s, spec, "")
	if len(words) == 2 && rd.eqStyle() {
		words = []string{words[0] + "=" + words[1]}
	}
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = rd.quote(w)
	}
	rd.appends = append(rd.appends, strings.Join(quoted, "\x00"))
	action := "append"
	rd.changes = append(rd.changes, Change{Flag: s.Name, Action: action, After: redactWords(s.Name, strings.Join(quoted, " "))})
}

// quote writes a word so that, after compose interpolation and splitting,
// vLLM receives exactly w.
func (rd *renderer) quote(w string) string {
	w = strings.ReplaceAll(w, "$", "$$")
	if rd.r.kind == regionSeq {
		style := rd.r.style
		if vllm.IsFlagToken(w) && rd.r.flagSty != 0 {
			style = rd.r.flagSty
		}
		switch {
		case style&yaml.DoubleQuotedStyle != 0 || (!plainYAMLString(w) && style&yaml.SingleQuotedStyle == 0):
			return strconv.Quote(w)
		case style&yaml.SingleQuotedStyle != 0:
			return "'" + strings.ReplaceAll(w, "'", "''") + "'"
		}
		return w
	}
	if !plainSafe.MatchString(w) {
		w = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return rd.encode(w)
}

// encode writes text for the layer the region's words are in (a quoted
// YAML scalar, a quoted shell word), keeping the first error.
func (rd *renderer) encode(text string) string {
	out, err := rd.r.enc(text)
	if err != nil && rd.err == nil {
		rd.err = err
	}
	return out
}

// finish turns removals and appends into edits.
func (rd *renderer) finish() error {
	last := -1 // last kept word
	for i := len(rd.r.words) - 1; i >= 0; i-- {
		if !rd.removed[i] {
			last = i
			break
		}
	}
	switch {
	case rd.r.kind == regionSeq:
		rd.removeItems()
	case rd.r.block:
		rd.removeLines()
	default:
		rd.removeInline()
	}
	if len(rd.appends) == 0 {
		return nil
	}
	if last < 0 {
		return fmt.Errorf("%s: every vLLM argument would be removed; vgrid needs at least one to place new flags after", rd.d.who(rd.r.service))
	}
	anchorLine := rd.d.lineOf(rd.r.words[last].start)
	for i := range rd.changes {
		if rd.changes[i].Action == "append" {
			rd.changes[i].Line = anchorLine + 2
		}
	}
	join := func(sep string) string {
		parts := make([]string, len(rd.appends))
		for i, a := range rd.appends {
			parts[i] = strings.ReplaceAll(a, "\x00", sep)
		}
		return strings.Join(parts, sep)
	}
	indent := func(line int) string {
		t := rd.d.lineText(line)
		return t[:len(t)-len(strings.TrimLeft(t, " \t"))]
	}
	eol := rd.d.eol
	lw := rd.r.words[last]
	switch {
	case rd.r.kind == regionSeq && rd.r.flow:
		rd.edits = append(rd.edits, edit{lw.end, lw.end, ", " + join(", ")})
	case rd.r.kind == regionSeq:
		prefix := rd.itemPrefix(last)
		rd.edits = append(rd.edits, edit{rd.d.lineEnd(anchorLine), rd.d.lineEnd(anchorLine), eol + prefix + join(eol+prefix)})
	case !rd.r.block || (rd.r.kind == regionScript && rd.d.lineOf(rd.r.progEnd) == rd.d.lineOf(lw.start)):
		// Inside a quoted scalar or word, or a one-line invocation: on the
		// line of the last argument, right after it.
		rd.edits = append(rd.edits, edit{lw.end, lw.end, " " + join(" ")})
		for i := range rd.changes {
			if rd.changes[i].Action == "append" {
				rd.changes[i].Line = anchorLine + 1
			}
		}
	case rd.r.kind == regionString:
		// One flag per line, like its neighbours.
		var lines []string
		for _, a := range rd.appends {
			lines = append(lines, indent(anchorLine)+strings.ReplaceAll(a, "\x00", " "))
		}
		rd.edits = append(rd.edits, edit{rd.d.lineEnd(anchorLine), rd.d.lineEnd(anchorLine), eol + strings.Join(lines, eol)})
	default: // a script in a literal block
		// Insert before the line of the last argument, so no existing line
		// has to gain a continuation backslash.
		lastArg := rd.args[len(rd.args)-1]
		for _, a := range rd.args {
			if a.First <= last && last <= a.Last {
				lastArg = a
			}
		}
		line := rd.d.lineOf(rd.r.words[lastArg.First].start)
		var b strings.Builder
		for _, a := range rd.appends {
			b.WriteString(indent(line) + strings.ReplaceAll(a, "\x00", " ") + " \\" + eol)
		}
		rd.edits = append(rd.edits, edit{rd.d.lineStarts[line], rd.d.lineStarts[line], b.String()})
		for i := range rd.changes {
			if rd.changes[i].Action == "append" {
				rd.changes[i].Line = line + 1
			}
		}
	}
	return nil
}

// removeInline deletes removed words of a string or script region held in
// a flow scalar or a quoted word: each word with the blanks before it, but
// never past the start of the region's text.
func (rd *renderer) removeInline() {
	floor := 0
	if len(rd.r.words) > 0 {
		floor = rd.r.words[0].start
	}
	if rd.r.kind == regionScript {
		floor = rd.r.progEnd
	}
	for i, w := range rd.r.words {
		if !rd.removed[i] {
			continue
		}
		start := w.start
		for start > floor && strings.IndexByte(" \t\r\n", rd.d.src[start-1]) >= 0 {
			start--
		}
		rd.edits = append(rd.edits, edit{start, w.end, ""})
	}
}

// removeLines deletes removed words of a string or script region in a
// block scalar: whole lines when nothing else is on them, else the words
// and the blanks before them.
func (rd *renderer) removeLines() {
	byLine := map[int][]int{}
	var lines []int
	for i := range rd.r.words {
		if rd.removed[i] {
			l := rd.d.lineOf(rd.r.words[i].start)
			if _, ok := byLine[l]; !ok {
				lines = append(lines, l)
			}
			byLine[l] = append(byLine[l], i)
		}
	}
	deleted := map[int]bool{}
	for _, l := range lines {
		ls := rd.d.lineStarts[l]
		rest := []byte(rd.d.lineText(l))
		for _, i := range byLine[l] {
			w := rd.r.words[i]
			for k := w.start; k < w.end && k-ls < len(rest); k++ {
				rest[k-ls] = ' '
			}
		}
		left := strings.TrimSpace(string(rest))
		if rd.r.kind == regionScript {
			left = strings.TrimSpace(strings.TrimSuffix(left, "\\"))
		}
		if left == "" && (rd.r.kind != regionScript || rd.d.lineOf(rd.r.progEnd) != l) {
			deleted[l] = true
			continue
		}
		for _, i := range byLine[l] {
			w := rd.r.words[i]
			start := w.start
			for start > ls && (rd.d.src[start-1] == ' ' || rd.d.src[start-1] == '\t') {
				start--
			}
			rd.edits = append(rd.edits, edit{start, w.end, ""})
		}
	}
	var gone []int
	for _, l := range lines {
		if deleted[l] {
			gone = append(gone, l)
		}
	}
	rd.edits = append(rd.edits, rd.d.deleteLines(gone)...)
	// A script whose last argument line went away: the new last line must
	// not end in a continuation backslash.
	if rd.r.kind != regionScript || len(rd.r.words) == 0 {
		return
	}
	lastLine := rd.d.lineOf(rd.r.words[len(rd.r.words)-1].start)
	if !deleted[lastLine] {
		return
	}
	for l := lastLine - 1; l >= rd.d.lineOf(rd.r.progEnd); l-- {
		if deleted[l] {
			continue
		}
		t := rd.d.lineText(l)
		trimmed := strings.TrimRight(t, " \t")
		if strings.HasSuffix(trimmed, "\\") {
			cut := strings.TrimRight(strings.TrimSuffix(trimmed, "\\"), " \t")
			rd.edits = append(rd.edits, edit{rd.d.lineStarts[l] + len(cut), rd.d.lineStarts[l] + len(trimmed), ""})
		}
		break
	}
}

// removeItems deletes removed items of a list command.
func (rd *renderer) removeItems() {
	n := len(rd.r.words)
	if !rd.r.flow {
		var lines []int
		for i := 0; i < n; i++ {
			if rd.removed[i] {
				lines = append(lines, rd.d.lineOf(rd.r.words[i].start))
			}
		}
		rd.edits = append(rd.edits, rd.d.deleteLines(lines)...)
		return
	}
	for a := 0; a < n; a++ {
		if !rd.removed[a] {
			continue
		}
		b := a
		for b+1 < n && rd.removed[b+1] {
			b++
		}
		w := rd.r.words
		switch {
		case a > 0:
			rd.edits = append(rd.edits, edit{w[a-1].end, w[b].end, ""})
		case b < n-1:
			rd.edits = append(rd.edits, edit{w[0].start, w[b+1].start, ""})
		default:
			rd.edits = append(rd.edits, edit{w[0].start, w[b].end, ""})
		}
		a = b
	}
}

// plainYAMLString reports whether w written plain reads back as the string w
// (not a number, boolean or null, which compose rejects in a command list).
func plainYAMLString(w string) bool {
	if !plainSafe.MatchString(w) {
		return false
	}
	var v any
	if err := yaml.Unmarshal([]byte(w), &v); err != nil {
		return false
	}
	s, ok := v.(string)
	return ok && s == w
}

// checkFixed refuses a candidate that changes a flag written in the
// entrypoint before the words vgrid edits.
func (r *region) checkFixed(d *Document, cand vllm.Candidate) error {
	fixed := vllm.ParseArgs(r.fixed)
	for _, s := range cand {
		for _, a := range fixed {
			if a.Name == s.Name {
				return fmt.Errorf("%s: --%s is written in its %s, which vgrid does not edit (it edits the %s); move --%s from the %s to the %s", d.who(r.service), s.Name, d.epKey, d.cmdKey, s.Name, d.epKey, d.cmdKey)
			}
		}
	}
	return nil
}

// deleteLines returns the edits that delete whole lines (0-based, in
// increasing order), runs of adjacent lines as one edit. A run that ends
// the file with no line break after it takes the break before it instead,
// so the file still ends without one.
func (d *Document) deleteLines(lines []int) []edit {
	var out []edit
	for i := 0; i < len(lines); {
		j := i
		for j+1 < len(lines) && lines[j+1] == lines[j]+1 {
			j++
		}
		a, b := lines[i], lines[j]
		if b+1 < len(d.lineStarts) {
			out = append(out, edit{d.lineStarts[a], d.lineStarts[b+1], ""})
		} else if a > 0 {
			out = append(out, edit{d.breakStart(a), len(d.src), ""})
		} else {
			out = append(out, edit{0, len(d.src), ""})
		}
		i = j + 1
	}
	return out
}

package vllm

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Help is the command line of one vLLM build, read from what its server
// prints for --help (argparse's format). vLLM has printed it in three
// shapes: every option in sections with its help (up to v0.10, and
// `vllm serve --help=all` since), the usage block alone followed by config
// group names (`python -m vllm.entrypoints.openai.api_server --help` in
// 2026), and group names only (`vllm serve --help` since v0.10). The first
// two carry every option; the third carries none, and ParseHelp says so.
type Help struct {
	Prog string // "vllm serve", "api_server.py"
	// Detailed is set when the options came from the options sections,
	// which list every alias (-tp); the usage block lists only the first
	// option string of each option.
	Detailed bool
	options  []*Option
	byName   map[string]*Option // every option string
}

// Option is one argparse option.
type Option struct {
	Names     []string // option strings: "--tensor-parallel-size", "-tp", "--no-enable-prefix-caching"
	Negatable bool     // has a --no- form (BooleanOptionalAction)
	Flag      bool     // takes no value
	Nargs     string   // "" (one value), "?", "+", "*"
	Choices   []string
	// OpenChoices: the choices may be extended ("{hermes,...} or name
	// registered in --tool-parser-plugin"): other values are not refused.
	OpenChoices bool
	Default     string
}

// Name is the option's first long name ("--max-num-seqs").
func (o *Option) Name() string {
	for _, n := range o.Names {
		if strings.HasPrefix(n, "--") && !strings.HasPrefix(n, "--no-") {
			return n
		}
	}
	return o.Names[0]
}

// Options lists the options, sorted by name.
func (h *Help) Options() []*Option { return h.options }

// ErrNoOptions says a help text names no options: `vllm serve --help` of a
// version that lists config groups only (ask it for --help=all).
var ErrNoOptions = fmt.Errorf("the help lists no options (only config groups: ask for --help=all)")

// ErrPartialHelp says a help text lists only the options matching a search
// (`--help=KEY` of a version that read "all" as a keyword).
var ErrPartialHelp = fmt.Errorf("the help lists only the options matching a keyword, not all of them")

var (
	ansi       = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	optionLine = regexp.MustCompile(`^  (-{1,2}[A-Za-z0-9][^ ]*.*)$`)
	optString  = regexp.MustCompile(`^-{1,2}[A-Za-z0-9][A-Za-z0-9_.+-]*$`)
	defaultRe  = regexp.MustCompile(`\(default: (.*)\)\s*$`)
	// What argparse writes after an option string: METAVAR, [METAVAR],
	// {choices} or ['choices'].
	metavar = regexp.MustCompile(`^\[?(\{|\['|[A-Z][A-Z0-9_]*( |\]|$))`)
)

// ParseHelp reads argparse help output. Log lines before it, ANSI colours
// and a missing first character of "usage:" are tolerated.
func ParseHelp(text string) (*Help, error) {
	text = ansi.ReplaceAllString(strings.ReplaceAll(text, "\r\n", "\n"), "")
	lines := strings.Split(text, "\n")
	if regexp.MustCompile(`(?m)^Arguments matching '`).MatchString(text) {
		return nil, ErrPartialHelp
	}
	h := &Help{byName: map[string]*Option{}}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := regexp.MustCompile(`^u?sage: (\S+(?: serve)?)`).FindStringSubmatch(l); m != nil && h.Prog == "" {
			j := i + 1
			for j < len(lines) && strings.TrimSpace(lines[j]) != "" && strings.HasPrefix(lines[j], " ") {
				j++
			}
			h.Prog = m[1]
			usage := strings.Join(lines[i:j], " ")
			for _, o := range parseUsage(usage) {
				h.add(o, false)
			}
			i = j - 1
			continue
		}
		m := optionLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		inv, help, _ := strings.Cut(m[1], "  ")
		o := parseInvocation(inv)
		if o == nil {
			continue
		}
		// The help runs on the following lines, indented deeper.
		help = strings.TrimSpace(help)
		for j := i + 1; j < len(lines) && strings.HasPrefix(lines[j], "   "); j++ {
			help += " " + strings.TrimSpace(lines[j])
		}
		if d := defaultRe.FindStringSubmatch(help); d != nil {
			o.Default = d[1]
		}
		h.Detailed = true
		h.add(o, true)
	}
	if len(h.options) == 0 {
		return nil, ErrNoOptions
	}
	sort.Slice(h.options, func(i, j int) bool { return h.options[i].Name() < h.options[j].Name() })
	return h, nil
}

// add records an option; an option seen in a section replaces what the
// usage block said of it (the section lists every alias).
func (h *Help) add(o *Option, detailed bool) {
	for _, n := range o.Names {
		if old, ok := h.byName[n]; ok {
			if !detailed {
				return
			}
			h.options = slices.DeleteFunc(h.options, func(x *Option) bool { return x == old })
			for _, on := range old.Names {
				delete(h.byName, on)
			}
		}
	}
	for _, n := range o.Names {
		h.byName[n] = o
	}
	h.options = append(h.options, o)
}

// parseUsage reads the bracketed groups of a usage block:
// [--x X] [--x | --no-x | -dph] [--x [X]] [--x X [X ...]] [--x {a,b}].
func parseUsage(usage string) []*Option {
	var out []*Option
	depth, start := 0, -1
	for i, c := range usage {
		switch c {
		case '[':
			if depth == 0 {
				start = i + 1
			}
			depth++
		case ']':
			depth--
			if depth == 0 && start >= 0 {
				group := strings.TrimSpace(usage[start:i])
				if strings.HasPrefix(group, "-") {
					if o := parseInvocation(strings.ReplaceAll(group, " | ", ", ")); o != nil {
						out = append(out, o)
					}
				}
				start = -1
			}
		}
	}
	return out
}

// parseInvocation reads the option strings and their value of one option:
// "--api-server-count API_SERVER_COUNT, -asc API_SERVER_COUNT",
// "--enable-prefix-caching, --no-enable-prefix-caching",
// "--tool-call-parser {a,b} or name registered in --tool-parser-plugin",
// "--config-format ['auto', 'hf', 'mistral']".
func parseInvocation(inv string) *Option {
	o := &Option{}
	var spec string
	for _, part := range splitAlternatives(inv) {
		name, rest, _ := strings.Cut(strings.TrimSpace(part), " ")
		if !optString.MatchString(name) {
			return nil
		}
		o.Names = append(o.Names, name)
		if spec == "" {
			spec = strings.TrimSpace(rest)
		}
	}
	if len(o.Names) == 0 {
		return nil
	}
	for _, n := range o.Names {
		if strings.HasPrefix(n, "--no-") && slices.Contains(o.Names, "--"+n[5:]) {
			o.Negatable = true
		}
	}
	if spec == "" {
		o.Flag = true
		return o
	}
	if !metavar.MatchString(spec) {
		return nil // not argparse's: "--port 8000 \" in notes pasted after the help
	}
	if i := strings.Index(spec, " or "); i >= 0 {
		o.OpenChoices = true
		spec = spec[:i]
	}
	switch {
	case strings.HasPrefix(spec, "[") && strings.HasSuffix(spec, "...]"):
		o.Nargs = "*"
	case strings.HasSuffix(spec, "...]"):
		o.Nargs = "+"
	case strings.HasPrefix(spec, "[") && !strings.HasPrefix(spec, "['"):
		o.Nargs = "?"
	}
	first := strings.TrimPrefix(spec, "[")
	switch {
	case strings.HasPrefix(first, "{"):
		if end := strings.IndexByte(first, '}'); end > 0 {
			o.Choices = strings.Split(first[1:end], ",")
		}
	case strings.HasPrefix(spec, "['"):
		end := strings.IndexByte(spec, ']')
		for _, c := range strings.Split(spec[1:max(end, 1)], ",") {
			o.Choices = append(o.Choices, strings.Trim(strings.TrimSpace(c), `'"`))
		}
	}
	return o
}

// splitAlternatives splits "A X, -a X" at commas outside brackets and
// braces (choices hold commas).
func splitAlternatives(inv string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(inv); i++ {
		switch inv[i] {
		case '[', '{':
			depth++
		case ']', '}':
			depth--
		case ',':
			if depth == 0 && i+2 < len(inv) && inv[i+1] == ' ' && inv[i+2] == '-' {
				out = append(out, inv[start:i])
				start = i + 2
			}
		}
	}
	return append(out, inv[start:])
}

// Lookup resolves an option string the way vLLM's parser does: '_' and '-'
// alike in long names, a dotted JSON sub-key (--compilation-config.level)
// under its option, -O3 as -O. It does not expand abbreviations: see
// Abbrev.
func (h *Help) Lookup(spelled string) (*Option, bool) {
	name := spelled
	if strings.HasPrefix(name, "--") {
		name = "--" + strings.ReplaceAll(name[2:], "_", "-")
		if i := strings.IndexByte(name, '.'); i > 0 {
			name = name[:i]
		}
	} else if strings.HasPrefix(name, "-O") {
		// -O3: the compilation config's alias up to 2025, then vLLM
		// turns it into --optimization-level 3 before argparse.
		if o, ok := h.byName["-O"]; ok {
			return o, true
		}
		name = "--optimization-level"
	}
	o, ok := h.byName[name]
	return o, ok
}

// Abbrev returns the options a long option string abbreviates. argparse
// (allow_abbrev, on in every vLLM version checked) accepts a unique prefix
// of a long option: vLLM would run --max-num-seq as --max-num-seqs.
func (h *Help) Abbrev(spelled string) []*Option {
	if !strings.HasPrefix(spelled, "--") {
		return nil
	}
	prefix := "--" + strings.ReplaceAll(spelled[2:], "_", "-")
	var out []*Option
	for _, o := range h.options {
		for _, n := range o.Names {
			if strings.HasPrefix(n, prefix) {
				out = append(out, o)
				break
			}
		}
	}
	return out
}

// Suggest returns the option string closest to a misspelled one, or "".
func (h *Help) Suggest(spelled string) string {
	want := strings.TrimLeft(strings.ReplaceAll(spelled, "_", "-"), "-")
	best, bestD := "", 1<<30
	for n := range h.byName {
		d := EditDistance(want, strings.TrimLeft(n, "-"))
		if d < bestD || d == bestD && n < best {
			best, bestD = n, d
		}
	}
	if bestD > max(2, len(want)/4) {
		return ""
	}
	return best
}

// EditDistance is Levenshtein's distance between a and b (for "did you
// mean" suggestions).
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Refusal is an argument a vLLM build would refuse, or would read
// differently from vgrid.
type Refusal struct {
	Spelled string // the argument as written ("--max-num-seq", "--kv-cache-dtype")
	Kind    string // unknown, abbreviation, ambiguous, choice, value
	Detail  string // what is wrong, in argparse's terms
	Suggest string // the option string meant, when one is close
}

// Describe says what is refused, where: "of the vLLM in image sha256:…".
func (r Refusal) Describe(of string) string {
	switch r.Kind {
	case "unknown":
		s := fmt.Sprintf("%s is not a flag of %s", r.Spelled, of)
		if r.Suggest != "" {
			s += "; did you mean " + r.Suggest + "?"
		}
		return s
	case "abbreviation":
		return fmt.Sprintf("%s is an abbreviation of %s: %s accepts it (argparse matches a unique prefix), but a later vLLM with another flag of that prefix refuses it, and vgrid matches flags by full name; write %s",
			r.Spelled, r.Suggest, of, r.Suggest)
	}
	return fmt.Sprintf("%s: %s (%s)", r.Spelled, r.Detail, of)
}

// Check reads an argument list the way this vLLM's argparse would and
// returns what it would refuse, plus abbreviations (which it accepts, but
// vgrid refuses: see Refusal.Describe). Options the usage block alone
// cannot confirm (single-dash aliases, which it omits) are not refused.
func (h *Help) Check(words []string) []Refusal {
	var out []Refusal
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !IsFlagToken(w) {
			continue // positional (the model) or a value of an unchecked option
		}
		spelled, value, inline := w, "", false
		if eq := strings.IndexByte(w, '='); eq > 0 {
			spelled, value, inline = w[:eq], w[eq+1:], true
		}
		if strings.HasPrefix(w, "-O") && len(w) > 2 { // -O3, -O=3
			spelled, value, inline = "-O", strings.TrimPrefix(w[2:], "="), true
		}
		o, ok := h.Lookup(spelled)
		if !ok && spelled == "--model" {
			// `vllm serve` moves --model to the positional model_tag
			// before argparse sees it (its help does not list it).
			o, ok = &Option{Names: []string{"--model"}}, true
		}
		if !ok {
			switch ab := h.Abbrev(spelled); {
			case len(ab) == 1:
				out = append(out, Refusal{Spelled: spelled, Kind: "abbreviation", Suggest: ab[0].Name()})
				o = ab[0]
			case len(ab) > 1:
				var names []string
				for _, a := range ab {
					names = append(names, a.Name())
				}
				out = append(out, Refusal{Spelled: spelled, Kind: "ambiguous", Detail: "ambiguous option: could match " + strings.Join(names, ", ")})
			case !strings.HasPrefix(spelled, "--") && !h.Detailed:
				// A short alias: the usage block does not list them.
			default:
				out = append(out, Refusal{Spelled: spelled, Kind: "unknown", Suggest: h.Suggest(spelled)})
			}
			if o == nil {
				for !inline && i+1 < len(words) && !IsFlagToken(words[i+1]) {
					i++
				}
				continue
			}
		}
		if strings.Contains(spelled, ".") && strings.HasPrefix(spelled, "--") {
			// A JSON sub-key: one value, whatever the option's own.
			if !inline && i+1 < len(words) {
				i++
			}
			continue
		}
		var values []string
		switch {
		case inline:
			if o.Flag {
				out = append(out, Refusal{Spelled: spelled, Kind: "value", Detail: fmt.Sprintf("ignored explicit argument %q: the flag takes no value", value)})
				continue
			}
			values = []string{value}
		case o.Flag:
		case o.Nargs == "":
			if i+1 >= len(words) || IsFlagToken(words[i+1]) {
				out = append(out, Refusal{Spelled: spelled, Kind: "value", Detail: "expected one argument"})
				continue
			}
			i++
			values = []string{words[i]}
		case o.Nargs == "?":
			if i+1 < len(words) && !IsFlagToken(words[i+1]) {
				i++
				values = []string{words[i]}
			}
		default:
			for i+1 < len(words) && !IsFlagToken(words[i+1]) {
				i++
				values = append(values, words[i])
			}
			if o.Nargs == "+" && len(values) == 0 {
				out = append(out, Refusal{Spelled: spelled, Kind: "value", Detail: "expected at least one argument"})
			}
		}
		if len(o.Choices) == 0 || o.OpenChoices {
			continue
		}
		for _, v := range values {
			if !slices.ContainsFunc(o.Choices, func(c string) bool { return strings.EqualFold(c, v) }) {
				out = append(out, Refusal{Spelled: spelled, Kind: "choice",
					Detail: fmt.Sprintf("invalid choice: %q (choose from %s)", v, strings.Join(o.Choices, ", "))})
			}
		}
	}
	return out
}

// HelpArgs are the help requests AskHelp makes, in order: --help=all lists
// every option from 0.9 on (and is refused by argparse before), --help
// lists every option up to 0.9 (and config groups only after).
var HelpArgs = []string{"--help=all", "--help"}

// AskHelp asks a vLLM build for its options, through run: it executes the
// server's program with one more argument and returns what it printed
// (stdout and stderr) and its exit status. It returns the parsed help, the
// text it came from and the argument that produced it.
func AskHelp(ctx context.Context, run func(ctx context.Context, arg string) (out string, code int, err error)) (*Help, string, string, error) {
	var tried []string
	for _, arg := range HelpArgs {
		out, code, err := run(ctx, arg)
		if err != nil {
			return nil, "", "", err
		}
		if code == 0 {
			h, perr := ParseHelp(out)
			if perr == nil {
				return h, out, arg, nil
			}
			tried = append(tried, fmt.Sprintf("%s: %v", arg, perr))
			continue
		}
		tried = append(tried, fmt.Sprintf("%s exited %d: %s", arg, code, lastLines(out, 3)))
	}
	return nil, "", "", fmt.Errorf("the server printed no option list (%s)", strings.Join(tried, "; "))
}

// lastLines returns the last n non-empty lines of s, joined by " | ".
func lastLines(s string, n int) string {
	var out []string
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			out = append([]string{l}, out...)
		}
	}
	return strings.Join(out, " | ")
}

package vllm

import (
	"fmt"
	"slices"
	"strings"
)

// Arg is one flag (or positional word) of a `vllm serve` argument list.
type Arg struct {
	Name    string   // canonical flag name; "" for a positional word
	Spelled string   // the flag as written: "--kv_cache_dtype", "--no-enable-prefix-caching"
	Negated bool     // written as --no-NAME
	Values  []string // zero or more values
	Inline  bool     // written as --name=value
	First   int      `json:"-"` // index of the first word of this argument
	Last    int      `json:"-"` // index of the last word (inclusive)
}

// Value is the argument's value as vLLM sees it: "true"/"false" for booleans,
// the values joined by a space otherwise.
func (a Arg) Value() string {
	if a.Name == "" {
		return strings.Join(a.Values, " ")
	}
	if spec, _ := Lookup(a.Name); spec.Kind == KindBool && len(a.Values) == 0 {
		if a.Negated {
			return "false"
		}
		return "true"
	}
	return strings.Join(a.Values, " ")
}

// IsFlagToken reports whether a word is an option (--name, -x) rather than a
// value. "-1" and "-0.5" are values.
func IsFlagToken(w string) bool {
	if strings.HasPrefix(w, "--") {
		return len(w) > 2
	}
	return len(w) > 1 && w[0] == '-' && (w[1] >= 'a' && w[1] <= 'z' || w[1] >= 'A' && w[1] <= 'Z')
}

// ParseArgs groups words into arguments the way vLLM's argparse would:
// booleans take no value, known single-value flags take one, multi-value and
// unknown flags take every word up to the next flag.
func ParseArgs(words []string) []Arg {
	var out []Arg
	for i := 0; i < len(words); {
		w := words[i]
		if !IsFlagToken(w) {
			out = append(out, Arg{Values: []string{w}, First: i, Last: i})
			i++
			continue
		}
		a := Arg{Spelled: w, First: i}
		if eq := strings.IndexByte(w, '='); eq > 0 {
			a.Spelled, a.Values, a.Inline = w[:eq], []string{w[eq+1:]}, true
		}
		a.Name = CanonicalName(a.Spelled)
		spec, known := specs[a.Name]
		if !known && strings.HasPrefix(a.Name, "no-") {
			if s, ok := specs[a.Name[3:]]; ok && s.Kind == KindBool && s.Negatable {
				spec, known, a.Name, a.Negated = s, true, a.Name[3:], true
			}
		}
		i++
		if !a.Inline {
			switch {
			case known && spec.Kind == KindBool:
			case known && !spec.Multi:
				if i < len(words) && !IsFlagToken(words[i]) {
					a.Values = append(a.Values, words[i])
					i++
				}
			default:
				for i < len(words) && !IsFlagToken(words[i]) {
					a.Values = append(a.Values, words[i])
					i++
				}
			}
		}
		a.Last = i - 1
		out = append(out, a)
	}
	return out
}

// Flags is an effective `vllm serve` argument list.
type Flags []Arg

// Get returns the value of the last occurrence of a flag (argparse keeps the
// last one) and whether it is present.
func (f Flags) Get(name string) (string, bool) {
	name = CanonicalName(name)
	for i := len(f) - 1; i >= 0; i-- {
		if f[i].Name == name {
			return f[i].Value(), true
		}
	}
	return "", false
}

// Effective returns the value vLLM runs with: the flag's value when present,
// otherwise vLLM's default for booleans that are on by default ("true"),
// otherwise "" and false.
func (f Flags) Effective(name string) (string, bool) {
	if v, ok := f.Get(name); ok {
		return v, true
	}
	if spec, _ := Lookup(name); spec.Kind == KindBool {
		if spec.DefaultOn {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// Duplicates lists flag names given more than once (argparse silently keeps
// the last one: the defect that left old values in the user's profiles).
func (f Flags) Duplicates() []string {
	seen := map[string]int{}
	var dups []string
	for _, a := range f {
		if a.Name == "" {
			continue
		}
		seen[a.Name]++
		if seen[a.Name] == 2 {
			dups = append(dups, a.Name)
		}
	}
	return dups
}

// canonical is a comparable form: positional words in order, then flags
// sorted by name, secrets redacted.
func (f Flags) canonical() []string {
	var pos, flags []string
	for _, a := range f {
		if a.Name == "" {
			pos = append(pos, "positional "+a.Value())
			continue
		}
		flags = append(flags, "--"+a.Name+" = "+displayValue(a.Name, a.Value()))
	}
	slices.Sort(flags)
	return append(pos, flags...)
}

// DisplayValue returns v, or "<redacted>" for a secret flag.
func DisplayValue(name, v string) string { return displayValue(name, v) }

// displayValue hides secret values.
func displayValue(name, v string) string {
	if spec, _ := Lookup(name); spec.Secret && v != "" {
		return "<redacted>"
	}
	return v
}

// Apply returns the flags vLLM should see after rendering cand: what
// Render promises, computed on the argument list alone.
func (f Flags) Apply(cand Candidate) Flags {
	out := slices.Clone(f)
	for _, s := range cand {
		out = slices.DeleteFunc(out, func(a Arg) bool { return a.Name == s.Name })
		if s.Unset {
			continue
		}
		spec, _ := Lookup(s.Name)
		switch {
		case spec.Kind == KindBool && s.Value == "true":
			out = append(out, Arg{Name: s.Name, Spelled: "--" + s.Name})
		case spec.Kind == KindBool && spec.Negatable:
			out = append(out, Arg{Name: s.Name, Spelled: "--no-" + s.Name, Negated: true})
		case spec.Kind == KindBool: // store_true flag set to false: absent is false
		case spec.Multi:
			out = append(out, Arg{Name: s.Name, Spelled: "--" + s.Name, Values: strings.Fields(s.Value)})
		default:
			out = append(out, Arg{Name: s.Name, Spelled: "--" + s.Name, Values: []string{s.Value}})
		}
	}
	return out
}

// Diff describes how got differs from want, or returns "" when they match.
func (f Flags) Diff(want Flags) string {
	g, w := f.canonical(), want.canonical()
	if slices.Equal(g, w) {
		return ""
	}
	var b strings.Builder
	for _, x := range w {
		if !slices.Contains(g, x) {
			fmt.Fprintf(&b, "\n  missing:    %s", x)
		}
	}
	for _, x := range g {
		if !slices.Contains(w, x) {
			fmt.Fprintf(&b, "\n  unexpected: %s", x)
		}
	}
	if b.Len() == 0 {
		b.WriteString("\n  same flags, different multiplicity: " + strings.Join(f.Duplicates(), ", "))
	}
	return b.String()
}

// Setting is one flag of a candidate: a value, or Unset to remove the flag.
type Setting struct {
	Name  string // canonical name
	Value string // normalized value ("true"/"false" for booleans)
	Unset bool
}

func (s Setting) String() string {
	if s.Unset {
		return "unset " + s.Name
	}
	return s.Name + "=" + displayValue(s.Name, s.Value)
}

// Candidate is a set of flag settings, applied in order.
type Candidate []Setting

// NewCandidate validates settings given as "name=value" pairs and names to
// unset. Names are canonicalized; each flag may appear once.
func NewCandidate(set []string, unset []string) (Candidate, error) {
	var c Candidate
	seen := map[string]bool{}
	add := func(s Setting) error {
		if seen[s.Name] {
			return fmt.Errorf("flag --%s is given twice in the candidate", s.Name)
		}
		seen[s.Name] = true
		c = append(c, s)
		return nil
	}
	for _, kv := range set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || CanonicalName(k) == "" {
			return nil, fmt.Errorf("setting %q: want KEY=VALUE, e.g. gpu-memory-utilization=0.85", kv)
		}
		name := CanonicalName(k)
		norm, err := Normalize(name, v)
		if err != nil {
			return nil, err
		}
		if err := add(Setting{Name: name, Value: norm}); err != nil {
			return nil, err
		}
	}
	for _, k := range unset {
		if err := add(Setting{Name: CanonicalName(k), Unset: true}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Words returns the argument list as words, the way they were given.
func (f Flags) Words() []string {
	var out []string
	for _, a := range f {
		switch {
		case a.Name == "":
			out = append(out, a.Values...)
		case a.Inline:
			out = append(out, a.Spelled+"="+strings.Join(a.Values, " "))
		default:
			out = append(out, a.Spelled)
			out = append(out, a.Values...)
		}
	}
	return out
}

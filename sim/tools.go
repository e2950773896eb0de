package sim

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// toolDef is one entry of a request's "tools".
type toolDef struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// schema is the subset of JSON Schema the simulator fills in.
type schema struct {
	Type       string             `json:"type"`
	Properties map[string]*schema `json:"properties"`
	Required   []string           `json:"required"`
	Enum       []any              `json:"enum"`
	Items      *schema            `json:"items"`
}

// toolCall is a call the simulated model decided to make.
type toolCall struct {
	ID, Name, Arguments string
}

var (
	numberRe  = regexp.MustCompile(`-?\d+(?:\.\d+)?`)
	emailRe   = regexp.MustCompile(`[\w.+-]+@[\w-]+\.[\w.]+`)
	capWordRe = regexp.MustCompile(`(?:^|[^\p{L}])(\p{Lu}[\p{L}'-]+(?:\s+\p{Lu}[\p{L}'-]+)*)`)
)

// toolScores scores each tool by how much the prompt asks for it: its name
// parts (3 each) and description words (1 each) found in the prompt, in
// any language the lexicon knows; tools already called score -1.
func toolScores(tools []toolDef, prompt string, called []string) []int {
	words := promptWords(prompt)
	scores := make([]int, len(tools))
	for i, t := range tools {
		if slices.Contains(called, t.Function.Name) {
			scores[i] = -1
			continue
		}
		for _, part := range strings.Split(strings.ToLower(t.Function.Name), "_") {
			if len(part) > 2 && (words[part] || words[part+"s"] || words[strings.TrimSuffix(part, "s")]) {
				scores[i] += 3
			}
		}
		for _, d := range strings.Fields(strings.ToLower(t.Function.Description)) {
			d = strings.Trim(d, ".,;:()")
			if len(d) > 4 && words[d] {
				scores[i]++
			}
		}
	}
	return scores
}

// chooseTool picks the tool the user asks for, or -1 when none matches
// well enough to call (tool_choice "auto").
func chooseTool(tools []toolDef, prompt string, called []string) int {
	best, bestScore := -1, 2
	for i, s := range toolScores(tools, prompt, called) {
		if s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// mustChooseTool picks a tool whatever the prompt (tool_choice "required"):
// the best match, else the first tool not called yet, else the first.
func mustChooseTool(tools []toolDef, prompt string, called []string) int {
	best, bestScore := 0, -2
	for i, s := range toolScores(tools, prompt, called) {
		if s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// fillArgs generates arguments valid for a schema, taking values from the
// prompt where they appear (a capitalised place after "in"/"for", numbers,
// e-mail addresses, enum values named in the prompt).
func fillArgs(s *schema, name, prompt string) any {
	if s == nil {
		return nil
	}
	if len(s.Enum) > 0 {
		words := promptWords(prompt)
		for _, v := range s.Enum {
			if str, ok := v.(string); ok && (strings.Contains(strings.ToLower(prompt), strings.ToLower(str)) || words[fold(str)]) {
				return v
			}
		}
		return s.Enum[0]
	}
	switch s.Type {
	case "object":
		obj := map[string]any{}
		keys := make([]string, 0, len(s.Properties))
		for k := range s.Properties {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			obj[k] = fillArgs(s.Properties[k], k, prompt)
		}
		return obj
	case "array":
		return []any{fillArgs(s.Items, strings.TrimSuffix(name, "s"), prompt)}
	case "integer", "number":
		v := promptNumber(strings.ToLower(name), prompt)
		if s.Type == "integer" {
			return int(v)
		}
		return v
	case "boolean":
		// "not the newsletter", "pas la newsletter", "ohne Newsletter".
		negated := regexp.MustCompile(`(?i)(?:^|[^\p{L}])(?:` + negateWords + `)\s+(?:\p{L}+\s+)?(?:` + strings.Join(variants(fold(name)), "|") + `)(?:[^\p{L}]|$)`)
		return !negated.MatchString(fold(prompt))
	}
	lname := strings.ToLower(name)
	after := func(words string) (string, bool) {
		// Prepositions are any case; the value is a capitalised phrase.
		re := regexp.MustCompile(`(?:^|[\s,;:(¿¡])(?i:` + words + `)\s+(\p{Lu}[\p{L}'-]+(?:\s+\p{Lu}[\p{L}'-]+)*)`)
		if m := re.FindStringSubmatch(prompt); m != nil {
			return m[1], true
		}
		return "", false
	}
	codes := currencyRe.FindAllString(prompt, -1)
	switch {
	case strings.Contains(lname, "currency") && len(codes) > 0:
		if strings.Contains(lname, "to") || strings.Contains(lname, "target") {
			return codes[len(codes)-1]
		}
		return codes[0]
	case strings.Contains(lname, "origin") || strings.Contains(lname, "from") || strings.Contains(lname, "source"):
		if v, ok := after(fromPreps); ok {
			return v
		}
	case strings.Contains(lname, "destination") || strings.Contains(lname, "target"):
		if v, ok := after(toPreps); ok {
			return v
		}
	case strings.Contains(lname, "email"):
		if m := emailRe.FindString(prompt); m != "" {
			return m
		}
	case strings.Contains(lname, "city") || strings.Contains(lname, "location") || strings.Contains(lname, "place"):
		if v, ok := after(placePreps); ok {
			return v
		}
	case strings.Contains(lname, "name") || strings.Contains(lname, "user"):
		if v, ok := after(namedWords + "|for user|user"); ok {
			return v
		}
	}
	if m := capWordRe.FindAllStringSubmatch(prompt, -1); len(m) > 1 {
		return m[1][1]
	}
	return name
}

// planToolCall returns the call the model makes, or nil when it answers in
// text; with required set it always calls one of tools.
func planToolCall(tools []toolDef, prompt string, called []string, id string, required bool) (*toolCall, error) {
	i := chooseTool(tools, prompt, called)
	if i < 0 && required && len(tools) > 0 {
		i = mustChooseTool(tools, prompt, called)
	}
	if i < 0 {
		return nil, nil
	}
	var s schema
	if len(tools[i].Function.Parameters) > 0 {
		if err := json.Unmarshal(tools[i].Function.Parameters, &s); err != nil {
			return nil, fmt.Errorf("tool %q: parameters are not a JSON schema: %v", tools[i].Function.Name, err)
		}
	}
	args, _ := json.Marshal(fillArgs(&s, tools[i].Function.Name, prompt))
	return &toolCall{ID: id, Name: tools[i].Function.Name, Arguments: string(args)}, nil
}

var currencyRe = regexp.MustCompile(`\b[A-Z]{3}\b`)

// promptNumber picks the number a property asks for: the one before a word
// the property is named after ("3 nights" for nights), the one before a
// currency code for an amount or price, else the first number.
func promptNumber(name, prompt string) float64 {
	parse := func(s string) float64 {
		var f float64
		fmt.Sscan(s, &f)
		return f
	}
	for _, word := range strings.FieldsFunc(name, func(r rune) bool { return r == '_' || r == '-' }) {
		word = strings.TrimSuffix(word, "s")
		if len(word) < 3 {
			continue
		}
		// "3 nights", "3 nuits", "3 Nächte".
		alts := variants(word)
		for i := range alts {
			alts[i] = regexp.QuoteMeta(alts[i])
		}
		if m := regexp.MustCompile(`(-?\d+(?:\.\d+)?)\s+(?:` + strings.Join(alts, "|") + `)`).FindStringSubmatch(fold(prompt)); m != nil {
			return parse(m[1])
		}
	}
	if strings.Contains(name, "amount") || strings.Contains(name, "price") {
		if m := regexp.MustCompile(`(-?\d+(?:\.\d+)?)\s*[A-Z]{3}\b`).FindStringSubmatch(prompt); m != nil {
			return parse(m[1])
		}
	}
	if m := numberRe.FindString(prompt); m != "" {
		return parse(m)
	}
	return 1
}
